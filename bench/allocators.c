/* memres-bench: one adapter per allocator, so every workload drives each the same way.
 *
 * Raw baselines: glibc malloc, cudaHostAlloc, cudaMalloc, cudaMallocAsync (device 0's default
 * pool, release threshold UINT64_MAX). memres: host, pinned, device (default pool, private pool,
 * cudaMalloc), the caching pool over device, pinned and host, and the fault-injection adaptor
 * (with no fault scheduled: the cost of a decorator). Each measurement opens a fresh allocator,
 * so a pool's peaks are those of one workload. GPU allocators order their work on CUDA streams,
 * host ones on host streams (mr_stream_create_host); malloc and the synchronous CUDA calls take
 * no stream. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

/* ---- streams -------------------------------------------------------------------------------- */
static mr_status no_stream(balloc *a, bstream *s) {
  (void)a;
  memset(s, 0, sizeof *s);
  return MR_OK;
}

static void no_stream_close(balloc *a, bstream *s) {
  (void)a;
  memset(s, 0, sizeof *s);
}

static mr_status no_handoff(balloc *a, bstream *from, bstream *to) {
  (void)a;
  (void)from;
  (void)to;
  return MR_OK;
}

static mr_status mr_stream_open_kind(balloc *a, bstream *s) {
  memset(s, 0, sizeof *s);
  mr_status st =
      a->d->kind == MR_HOST ? mr_stream_create_host(&s->mr) : mr_stream_create(&s->mr, 0, 0);
  if (st != MR_OK)
    return st;
  st = mr_event_create(&s->ev, s->mr);
  if (st != MR_OK) {
    mr_stream_release(s->mr);
    s->mr = NULL;
  }
  return st;
}

static void mr_stream_close_(balloc *a, bstream *s) {
  (void)a;
  if (s->mr)
    (void)mr_stream_synchronize(s->mr);
  mr_event_destroy(s->ev);
  mr_stream_release(s->mr);
  memset(s, 0, sizeof *s);
}

static mr_status mr_handoff(balloc *a, bstream *from, bstream *to) {
  (void)a;
  mr_status st = mr_event_record(from->ev, from->mr);
  if (st != MR_OK)
    return st;
  return mr_stream_wait_event(to->mr, from->ev);
}

static mr_status gpu_sync(balloc *a) {
  (void)a;
  return bcu_device_sync();
}

/* ---- glibc malloc ------------------------------------------------------------------------------
 */
static mr_status malloc_open(balloc *a) {
  (void)a;
  return MR_OK;
}

static void nothing_close(balloc *a) { (void)a; }

static mr_status malloc_alloc(balloc *a, size_t size, bstream *s, void **p) {
  (void)a;
  (void)s;
  *p = malloc(size);
  if (!*p)
    return mr_report_error(MR_ERR_OUT_OF_MEMORY, "malloc(%zu) returned NULL", size);
  return MR_OK;
}

static mr_status malloc_free(balloc *a, void *p, size_t size, bstream *s) {
  (void)a;
  (void)size;
  (void)s;
  free(p);
  return MR_OK;
}

/* ---- cudaHostAlloc, cudaMalloc
 * ------------------------------------------------------------------- */
static mr_status gpu_open(balloc *a) {
  (void)a;
  return mr_device_check(mr_device_gpu(0));
}

static mr_status pinned_alloc(balloc *a, size_t size, bstream *s, void **p) {
  (void)a;
  (void)s;
  return bcu_host_alloc(size, p);
}

static mr_status pinned_free(balloc *a, void *p, size_t size, bstream *s) {
  (void)a;
  (void)size;
  (void)s;
  return bcu_free_host(p);
}

static mr_status cumalloc_alloc(balloc *a, size_t size, bstream *s, void **p) {
  (void)a;
  (void)s;
  return bcu_malloc(size, p);
}

static mr_status cumalloc_free(balloc *a, void *p, size_t size, bstream *s) {
  (void)a;
  (void)size;
  (void)s;
  return bcu_free(p);
}

static void gpu_close_trim(balloc *a) {
  (void)a;
  (void)bcu_trim_default_pool();
}

/* ---- cudaMallocAsync on the default pool
 * --------------------------------------------------------- */
static mr_status async_open(balloc *a) {
  mr_status st = gpu_open(a);
  return st != MR_OK ? st : bcu_async_init();
}

static mr_status async_alloc(balloc *a, size_t size, bstream *s, void **p) {
  (void)a;
  return bcu_malloc_async(size, s ? s->cu : NULL, p);
}

static mr_status async_free(balloc *a, void *p, size_t size, bstream *s) {
  (void)a;
  (void)size;
  return bcu_free_async(p, s ? s->cu : NULL);
}

static mr_status async_stream_open(balloc *a, bstream *s) {
  (void)a;
  memset(s, 0, sizeof *s);
  return bcu_stream_create(&s->cu, &s->cu_ev);
}

static void async_stream_close(balloc *a, bstream *s) {
  (void)a;
  bcu_stream_destroy(s->cu, s->cu_ev);
  memset(s, 0, sizeof *s);
}

static mr_status async_handoff(balloc *a, bstream *from, bstream *to) {
  (void)a;
  return bcu_handoff(from->cu, from->cu_ev, to->cu);
}

/* ---- memres allocators
 * --------------------------------------------------------------------------- */
static mr_status mr_alloc_(balloc *a, size_t size, bstream *s, void **p) {
  return mr_alloc_async(a->mr, size, s ? s->mr : NULL, p);
}

static mr_status mr_free_(balloc *a, void *p, size_t size, bstream *s) {
  return mr_free_async(a->mr, p, size, s ? s->mr : NULL);
}

static void mr_close(balloc *a) {
  unsigned flags = a->d->flags;
  if (flags & BA_ASYNC)
    (void)bcu_device_sync();
  mr_allocator_release(a->mr);
  mr_allocator_release(a->upstream);
  a->mr = a->upstream = NULL;
  if (a->d->kind == MR_DEVICE)
    (void)bcu_trim_default_pool(); /* memory cached in the default pool goes back to the GPU */
}

static mr_status host_open(balloc *a) { return mr_host_allocator_create(&a->mr, NULL); }

static mr_status mpinned_open(balloc *a) { return mr_pinned_allocator_create(&a->mr, 0, NULL); }

static mr_status device_open_backend(mr_allocator **out, mr_device_backend backend,
                                     uint64_t threshold) {
  mr_device_options o = {.backend = backend, .release_threshold = threshold};
  return mr_device_allocator_create(out, 0, &o);
}

static mr_status mdevice_open(balloc *a) {
  return device_open_backend(&a->mr, MR_DEVICE_DEFAULT_POOL, UINT64_MAX);
}

static mr_status mprivate_open(balloc *a) {
  return device_open_backend(&a->mr, MR_DEVICE_PRIVATE_POOL, UINT64_MAX);
}

static mr_status mcumalloc_open(balloc *a) {
  return device_open_backend(&a->mr, MR_DEVICE_MALLOC, 0);
}

static mr_status pool_over(balloc *a, mr_status st) {
  if (st != MR_OK)
    return st;
  st = mr_caching_pool_create(&a->mr, a->upstream, NULL);
  if (st != MR_OK) {
    mr_allocator_release(a->upstream);
    a->upstream = NULL;
  }
  return st;
}

static mr_status pool_device_open(balloc *a) {
  return pool_over(a, device_open_backend(&a->upstream, MR_DEVICE_AUTO, 0));
}

static mr_status pool_pinned_open(balloc *a) {
  return pool_over(a, mr_pinned_allocator_create(&a->upstream, 0, NULL));
}

static mr_status pool_host_open(balloc *a) {
  return pool_over(a, mr_host_allocator_create(&a->upstream, NULL));
}

static mr_status fault_host_open(balloc *a) {
  mr_status st = mr_host_allocator_create(&a->upstream, NULL);
  if (st != MR_OK)
    return st;
  mr_fault_options fo = {0};
  st = mr_fault_allocator_create(&a->mr, a->upstream, &fo);
  if (st != MR_OK) {
    mr_allocator_release(a->upstream);
    a->upstream = NULL;
  }
  return st;
}

/* ---- the table ---------------------------------------------------------------------------------
 */
#define RAW_NOSTREAM no_stream, no_stream_close, no_handoff
#define MR_STREAMS mr_stream_open_kind, mr_stream_close_, mr_handoff

static const balloc_desc k_allocators[] = {
    {"malloc", "glibc malloc/free (baseline of the host allocators)", MR_HOST, 0, malloc_open,
     nothing_close, malloc_alloc, malloc_free, RAW_NOSTREAM, NULL},
    {"host", "memres host allocator (aligned malloc)", MR_HOST, 0, host_open, mr_close, mr_alloc_,
     mr_free_, MR_STREAMS, NULL},
    {"pool-host", "memres caching pool over the host allocator, default options", MR_HOST, BA_POOL,
     pool_host_open, mr_close, mr_alloc_, mr_free_, MR_STREAMS, NULL},
    {"fault-host", "memres fault-injection adaptor over host, no fault scheduled", MR_HOST, 0,
     fault_host_open, mr_close, mr_alloc_, mr_free_, MR_STREAMS, NULL},
    {"pinned", "raw cudaHostAlloc/cudaFreeHost", MR_PINNED, BA_GPU, gpu_open, nothing_close,
     pinned_alloc, pinned_free, RAW_NOSTREAM, NULL},
    {"memres-pinned", "memres pinned allocator (cudaHostAlloc)", MR_PINNED, BA_GPU, mpinned_open,
     mr_close, mr_alloc_, mr_free_, MR_STREAMS, NULL},
    {"pool-pinned", "memres caching pool over the pinned allocator, default options", MR_PINNED,
     BA_GPU | BA_ASYNC | BA_POOL, pool_pinned_open, mr_close, mr_alloc_, mr_free_, MR_STREAMS,
     gpu_sync},
    {"cudaMalloc", "raw cudaMalloc/cudaFree", MR_DEVICE, BA_GPU, gpu_open, gpu_close_trim,
     cumalloc_alloc, cumalloc_free, RAW_NOSTREAM, NULL},
    {"cudaMallocAsync", "raw cudaMallocAsync/cudaFreeAsync, default pool, threshold UINT64_MAX",
     MR_DEVICE, BA_GPU | BA_ASYNC, async_open, gpu_close_trim, async_alloc, async_free,
     async_stream_open, async_stream_close, async_handoff, gpu_sync},
    {"memres-device", "memres device allocator, default pool, threshold UINT64_MAX", MR_DEVICE,
     BA_GPU | BA_ASYNC, mdevice_open, mr_close, mr_alloc_, mr_free_, MR_STREAMS, gpu_sync},
    {"memres-private", "memres device allocator, private pool, threshold UINT64_MAX", MR_DEVICE,
     BA_GPU | BA_ASYNC, mprivate_open, mr_close, mr_alloc_, mr_free_, MR_STREAMS, gpu_sync},
    {"memres-cudaMalloc", "memres device allocator, cudaMalloc backend", MR_DEVICE, BA_GPU,
     mcumalloc_open, mr_close, mr_alloc_, mr_free_, MR_STREAMS, NULL},
    {"pool-device", "memres caching pool over the device allocator, default options", MR_DEVICE,
     BA_GPU | BA_ASYNC | BA_POOL, pool_device_open, mr_close, mr_alloc_, mr_free_, MR_STREAMS,
     gpu_sync},
};

size_t bench_allocator_count(void) { return sizeof k_allocators / sizeof k_allocators[0]; }

const balloc_desc *bench_allocator_at(size_t i) {
  return i < bench_allocator_count() ? &k_allocators[i] : NULL;
}

const balloc_desc *bench_allocator_find(const char *name) {
  for (size_t i = 0; i < bench_allocator_count(); i++)
    if (strcmp(k_allocators[i].name, name) == 0)
      return &k_allocators[i];
  return NULL;
}
