/* The pinned allocator: cudaHostAlloc/cudaFreeHost with the GPU `device_id` current. Its device
 * is {MR_PINNED, device_id}. alloc ignores the stream (the memory is usable at once); free on a
 * CUDA stream first synchronizes that stream, so work queued on it before the free completes
 * before the memory goes back; other backends' streams and NULL free at once. */
#include "internal.h"

#include "../common/cuda_internal.h"
#include "memres/cuda.h"

#include <stdio.h>
#include <stdlib.h>

#define PINNED_KNOWN_FLAGS                                                                         \
  (cudaHostAllocPortable | cudaHostAllocMapped | cudaHostAllocWriteCombined)

typedef struct pinned_state {
  int device;
  unsigned int flags;
  mr__counters counters;
} pinned_state;

static mr_alloc_fn pinned_alloc;
static mr_free_fn pinned_free;
static mr_stats_fn pinned_stats;
static mr_destroy_fn pinned_destroy;

static const mr_allocator_ops k_pinned_ops = {
    .version = MR_ALLOCATOR_OPS_VERSION,
    .alloc = pinned_alloc,
    .free = pinned_free,
    .stats = pinned_stats,
    .destroy = pinned_destroy,
};

static mr_status pinned_alloc(mr_allocator *self, size_t size, mr_stream *stream, void **out) {
  MR_UNUSED(stream);
  pinned_state *p = self->state;
  int prev;
  mr_status st = mr__device_enter(p->device, &prev);
  if (st != MR_OK) {
    atomic_fetch_add_explicit(&p->counters.failed, 1, memory_order_relaxed);
    return st;
  }
  void *ptr = NULL;
  cudaError_t err = cudaHostAlloc(&ptr, size, p->flags);
  mr__device_leave(p->device, prev);
  if (err != cudaSuccess) {
    atomic_fetch_add_explicit(&p->counters.failed, 1, memory_order_relaxed);
    return mr__cuda_fail(err == cudaErrorMemoryAllocation ? MR_ERR_OUT_OF_MEMORY : MR_ERR_CUDA, err,
                         "pinned allocator '%s': cudaHostAlloc(%zu bytes, flags 0x%x)", self->name,
                         size, p->flags);
  }
  mr__counters_alloc(&p->counters, size);
  *out = ptr;
  return MR_OK;
}

static mr_status pinned_free(mr_allocator *self, void *ptr, size_t size, mr_stream *stream) {
  pinned_state *p = self->state;
  int prev;
  mr_status st = mr__device_enter(p->device, &prev);
  if (st != MR_OK)
    return st;
  cudaError_t err = cudaSuccess;
  if (mr_stream_is_cuda(stream)) {
    err = cudaStreamSynchronize(mr_stream_cuda(stream));
    if (err != cudaSuccess) {
      mr__device_leave(p->device, prev);
      return mr__cuda_fail(MR_ERR_CUDA, err,
                           "pinned allocator '%s': cudaStreamSynchronize before freeing %p",
                           self->name, ptr);
    }
  }
  err = cudaFreeHost(ptr);
  mr__device_leave(p->device, prev);
  if (err != cudaSuccess)
    return mr__cuda_fail(MR_ERR_CUDA, err, "pinned allocator '%s': cudaFreeHost(%p, %zu bytes)",
                         self->name, ptr, size);
  mr__counters_free(&p->counters, size);
  return MR_OK;
}

static mr_status pinned_stats(mr_allocator *self, mr_stats *out) {
  pinned_state *p = self->state;
  mr__counters_fill(&p->counters, out);
  return MR_OK;
}

static void pinned_destroy(mr_allocator *self) { free(self->state); }

mr_status mr_pinned_allocator_create(mr_allocator **out, int device_id,
                                     const mr_pinned_options *opts) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_pinned_allocator_create: out is NULL");
  *out = NULL;
  unsigned int flags =
      opts && opts->flags ? opts->flags : (cudaHostAllocDefault | cudaHostAllocPortable);
  if (flags & ~(unsigned int)PINNED_KNOWN_FLAGS)
    return mr__error(MR_ERR_INVALID_ARG, "mr_pinned_allocator_create: unknown flags 0x%x", flags);
  mr_status st = mr_device_check((mr_device){MR_PINNED, device_id});
  if (st != MR_OK)
    return st;
  pinned_state *p = calloc(1, sizeof *p);
  if (!p)
    return mr__error(MR_ERR_OUT_OF_MEMORY, "mr_pinned_allocator_create: malloc(%zu) failed",
                     sizeof *p);
  p->device = device_id;
  p->flags = flags;
  char name[MR_NAME_MAX];
  snprintf(name, sizeof name, "pinned:%d", device_id);
  st = mr_allocator_create(out, &k_pinned_ops, p, (mr_device){MR_PINNED, device_id}, name, NULL);
  if (st != MR_OK)
    free(p);
  return st;
}
