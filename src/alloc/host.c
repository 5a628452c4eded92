/* The host allocator: posix_memalign/free at a power-of-two alignment (default 64), and the
 * process's default host allocator. The stream argument is ignored: host memory is usable when
 * alloc returns and gone when free returns. Requests above PTRDIFF_MAX can never be met (and
 * would upset some mallocs and sanitizers): they are MR_ERR_OUT_OF_MEMORY without a call. */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define HOST_DEFAULT_ALIGNMENT 64

typedef struct host_state {
  size_t alignment;
  mr__counters counters;
} host_state;

static mr_alloc_fn host_alloc;
static mr_free_fn host_free;
static mr_stats_fn host_stats;
static mr_destroy_fn host_destroy;

static const mr_allocator_ops k_host_ops = {
    .version = MR_ALLOCATOR_OPS_VERSION,
    .alloc = host_alloc,
    .free = host_free,
    .stats = host_stats,
    .destroy = host_destroy,
};

static mr_status host_alloc(mr_allocator *self, size_t size, mr_stream *stream, void **out) {
  MR_UNUSED(stream);
  host_state *h = self->state;
  if (size > (size_t)PTRDIFF_MAX) {
    atomic_fetch_add_explicit(&h->counters.failed, 1, memory_order_relaxed);
    return mr__error(MR_ERR_OUT_OF_MEMORY,
                     "host allocator '%s': cannot allocate %zu bytes (more than PTRDIFF_MAX)",
                     self->name, size);
  }
  size_t align = h->alignment < sizeof(void *) ? sizeof(void *) : h->alignment;
  void *p = NULL;
  int rc = posix_memalign(&p, align, size);
  if (rc != 0 || !p) {
    atomic_fetch_add_explicit(&h->counters.failed, 1, memory_order_relaxed);
    return mr__error(rc == EINVAL ? MR_ERR_INVALID_ARG : MR_ERR_OUT_OF_MEMORY,
                     "host allocator '%s': posix_memalign(alignment %zu, %zu bytes) failed (%s)",
                     self->name, align, size, rc == EINVAL ? "EINVAL" : "ENOMEM");
  }
  mr__counters_alloc(&h->counters, size);
  *out = p;
  return MR_OK;
}

static mr_status host_free(mr_allocator *self, void *ptr, size_t size, mr_stream *stream) {
  MR_UNUSED(stream);
  host_state *h = self->state;
  free(ptr);
  mr__counters_free(&h->counters, size);
  return MR_OK;
}

static mr_status host_stats(mr_allocator *self, mr_stats *out) {
  host_state *h = self->state;
  mr__counters_fill(&h->counters, out);
  return MR_OK;
}

static void host_destroy(mr_allocator *self) { free(self->state); }

mr_status mr_host_allocator_create(mr_allocator **out, const mr_host_options *opts) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_host_allocator_create: out is NULL");
  *out = NULL;
  size_t alignment = opts && opts->alignment ? opts->alignment : HOST_DEFAULT_ALIGNMENT;
  if (!mr__is_pow2(alignment))
    return mr__error(MR_ERR_INVALID_ARG,
                     "mr_host_allocator_create: alignment %zu is not a power of two", alignment);
  host_state *h = calloc(1, sizeof *h);
  if (!h)
    return mr__error(MR_ERR_OUT_OF_MEMORY, "mr_host_allocator_create: malloc(%zu) failed",
                     sizeof *h);
  h->alignment = alignment;
  mr_status st = mr_allocator_create(out, &k_host_ops, h, mr_device_host(), "host", NULL);
  if (st != MR_OK)
    free(h);
  return st;
}

static pthread_once_t g_default_once = PTHREAD_ONCE_INIT;
static mr_allocator *g_default;

static void make_default(void) {
  if (mr_host_allocator_create(&g_default, NULL) != MR_OK)
    g_default = NULL;
}

mr_allocator *mr_host_default(void) {
  pthread_once(&g_default_once, make_default);
  return g_default;
}
