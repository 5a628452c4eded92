/* The device allocator: stream-ordered cudaMallocFromPoolAsync/cudaFreeAsync on the device's
 * default mempool or on a private pool, or plain cudaMalloc/cudaFree. Every call makes the
 * allocator's GPU current and restores the caller's device afterwards.
 *
 * The stream of alloc/free: NULL is the legacy default stream (0); a CUDA mr_stream is its
 * cudaStream_t; a stream of another backend is MR_ERR_INVALID_ARG (it cannot order GPU work).
 * cudaErrorMemoryAllocation is MR_ERR_OUT_OF_MEMORY (the runtime's last error is cleared, so the
 * allocator and the application go on working). MR_DEVICE_DEFAULT_POOL or _PRIVATE_POOL on a
 * device without mempool support is MR_ERR_UNSUPPORTED; MR_DEVICE_AUTO picks cudaMalloc there.
 * trim: cudaMemPoolTrimTo on either pool; nothing for cudaMalloc. Statistics: the plain
 * counters; a private pool also reports bytes_reserved/peak_reserved from the pool itself. */
#include "internal.h"

#include "../common/cuda_internal.h"
#include "memres/cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct device_state {
  int device;
  mr_device_backend backend;
  cudaMemPool_t pool; /* NULL for MR_DEVICE_MALLOC */
  mr__counters counters;
} device_state;

static mr_alloc_fn dev_alloc;
static mr_free_fn dev_free;
static mr_trim_fn dev_trim;
static mr_stats_fn dev_stats;
static mr_destroy_fn dev_destroy;
static mr_grant_access_fn dev_grant_access;

static const mr_allocator_ops k_device_ops = {
    .version = MR_ALLOCATOR_OPS_VERSION,
    .alloc = dev_alloc,
    .free = dev_free,
    .trim = dev_trim,
    .stats = dev_stats,
    .destroy = dev_destroy,
    .grant_access = dev_grant_access,
};

static const char *backend_str(mr_device_backend b) {
  switch (b) {
  case MR_DEVICE_AUTO:
    return "auto";
  case MR_DEVICE_DEFAULT_POOL:
    return "default_pool";
  case MR_DEVICE_PRIVATE_POOL:
    return "private_pool";
  case MR_DEVICE_MALLOC:
    return "malloc";
  default:
    return "invalid";
  }
}

static mr_status cuda_stream_of(mr_allocator *self, mr_stream *stream, const char *op,
                                cudaStream_t *out) {
  if (!stream) {
    *out = 0;
    return MR_OK;
  }
  if (!mr_stream_is_cuda(stream))
    return mr__error(MR_ERR_INVALID_ARG,
                     "device allocator '%s': %s on a '%s' stream (a CUDA stream or NULL is needed)",
                     self->name, op, mr_stream_backend(stream));
  *out = mr_stream_cuda(stream);
  return MR_OK;
}

static mr_status dev_alloc(mr_allocator *self, size_t size, mr_stream *stream, void **out) {
  device_state *d = self->state;
  cudaStream_t cs = 0;
  mr_status st = cuda_stream_of(self, stream, "alloc", &cs);
  int prev;
  if (st == MR_OK)
    st = mr__device_enter(d->device, &prev);
  if (st != MR_OK) {
    atomic_fetch_add_explicit(&d->counters.failed, 1, memory_order_relaxed);
    return st;
  }
  void *ptr = NULL;
  cudaError_t err =
      d->pool ? cudaMallocFromPoolAsync(&ptr, size, d->pool, cs) : cudaMalloc(&ptr, size);
  mr__device_leave(d->device, prev);
  if (err != cudaSuccess) {
    atomic_fetch_add_explicit(&d->counters.failed, 1, memory_order_relaxed);
    if (err == cudaErrorMemoryAllocation)
      return mr__cuda_fail(MR_ERR_OUT_OF_MEMORY, err,
                           "device allocator '%s': out of memory for %zu bytes on device %d",
                           self->name, size, d->device);
    return mr__cuda_fail(MR_ERR_CUDA, err, "device allocator '%s': %s(%zu bytes)", self->name,
                         d->pool ? "cudaMallocFromPoolAsync" : "cudaMalloc", size);
  }
  mr__counters_alloc(&d->counters, size);
  *out = ptr;
  return MR_OK;
}

static mr_status dev_free(mr_allocator *self, void *ptr, size_t size, mr_stream *stream) {
  device_state *d = self->state;
  cudaStream_t cs = 0;
  mr_status st = cuda_stream_of(self, stream, "free", &cs);
  if (st != MR_OK)
    return st;
  int prev;
  st = mr__device_enter(d->device, &prev);
  if (st != MR_OK)
    return st;
  cudaError_t err = d->pool ? cudaFreeAsync(ptr, cs) : cudaFree(ptr);
  mr__device_leave(d->device, prev);
  if (err != cudaSuccess)
    return mr__cuda_fail(MR_ERR_CUDA, err, "device allocator '%s': %s(%p, %zu bytes)", self->name,
                         d->pool ? "cudaFreeAsync" : "cudaFree", ptr, size);
  mr__counters_free(&d->counters, size);
  return MR_OK;
}

static mr_status dev_trim(mr_allocator *self, size_t keep_bytes) {
  device_state *d = self->state;
  if (!d->pool)
    return MR_OK;
  int prev;
  mr_status st = mr__device_enter(d->device, &prev);
  if (st != MR_OK)
    return st;
  cudaError_t err = cudaMemPoolTrimTo(d->pool, keep_bytes);
  mr__device_leave(d->device, prev);
  if (err != cudaSuccess)
    return mr__cuda_fail(MR_ERR_CUDA, err, "device allocator '%s': cudaMemPoolTrimTo(%zu)",
                         self->name, keep_bytes);
  return MR_OK;
}

static mr_status dev_stats(mr_allocator *self, mr_stats *out) {
  device_state *d = self->state;
  mr__counters_fill(&d->counters, out);
  if (d->backend == MR_DEVICE_PRIVATE_POOL) {
    unsigned long long cur = 0, high = 0;
    cudaError_t err = cudaMemPoolGetAttribute(d->pool, cudaMemPoolAttrReservedMemCurrent, &cur);
    if (err == cudaSuccess)
      err = cudaMemPoolGetAttribute(d->pool, cudaMemPoolAttrReservedMemHigh, &high);
    if (err != cudaSuccess)
      return mr__cuda_fail(MR_ERR_CUDA, err, "device allocator '%s': cudaMemPoolGetAttribute",
                           self->name);
    out->bytes_reserved = cur;
    out->peak_reserved = high;
  }
  return MR_OK;
}

/* Peer access: a mempool is opened to the peer with cudaMemPoolSetAccess (every block it holds
 * and will hold); cudaMalloc memory by enabling peer access in the peer's context, which maps
 * every allocation of this device there (cudaErrorPeerAccessAlreadyEnabled is success). */
static mr_status dev_grant_access(mr_allocator *self, int peer) {
  device_state *d = self->state;
  if (peer == d->device)
    return mr__error(MR_ERR_INVALID_ARG,
                     "mr_allocator_grant_access: '%s' is already on device %d (no peer to grant)",
                     self->name, peer);
  mr_status st = mr_device_check(mr_device_gpu(peer));
  if (st != MR_OK)
    return st;
  int can = 0;
  cudaError_t err = cudaDeviceCanAccessPeer(&can, peer, d->device);
  if (err != cudaSuccess)
    return mr__cuda_fail(MR_ERR_CUDA, err,
                         "mr_allocator_grant_access: '%s': cudaDeviceCanAccessPeer(%d, %d)",
                         self->name, peer, d->device);
  if (!can)
    return mr__error(MR_ERR_UNSUPPORTED,
                     "mr_allocator_grant_access: '%s': device %d cannot access device %d's memory "
                     "(no peer path: cudaDeviceCanAccessPeer is 0)",
                     self->name, peer, d->device);
  if (d->pool) {
    struct cudaMemAccessDesc desc;
    memset(&desc, 0, sizeof desc);
    desc.location.type = cudaMemLocationTypeDevice;
    desc.location.id = peer;
    desc.flags = cudaMemAccessFlagsProtReadWrite;
    int prev;
    st = mr__device_enter(d->device, &prev);
    if (st != MR_OK)
      return st;
    err = cudaMemPoolSetAccess(d->pool, &desc, 1);
    mr__device_leave(d->device, prev);
    if (err != cudaSuccess)
      return mr__cuda_fail(MR_ERR_CUDA, err,
                           "mr_allocator_grant_access: '%s': cudaMemPoolSetAccess(device %d, "
                           "read-write)",
                           self->name, peer);
    return MR_OK;
  }
  int prev;
  st = mr__device_enter(peer, &prev);
  if (st != MR_OK)
    return st;
  err = cudaDeviceEnablePeerAccess(d->device, 0);
  mr__device_leave(peer, prev);
  if (err == cudaErrorPeerAccessAlreadyEnabled) {
    (void)cudaGetLastError();
    return MR_OK;
  }
  if (err != cudaSuccess)
    return mr__cuda_fail(MR_ERR_CUDA, err,
                         "mr_allocator_grant_access: '%s': cudaDeviceEnablePeerAccess(%d) from "
                         "device %d",
                         self->name, d->device, peer);
  return MR_OK;
}

static void dev_destroy(mr_allocator *self) {
  device_state *d = self->state;
  uint64_t live = atomic_load(&d->counters.live);
  if (live)
    mr__error(MR_ERR_LIVE_ALLOCATIONS,
              "device allocator '%s' destroyed with %llu live block(s) (%llu bytes)", self->name,
              (unsigned long long)live, (unsigned long long)atomic_load(&d->counters.in_use));
  if (d->backend == MR_DEVICE_PRIVATE_POOL) {
    /* Outstanding blocks keep the pool alive until they are freed (cudaMemPoolDestroy). */
    cudaError_t err = cudaMemPoolDestroy(d->pool);
    if (err != cudaSuccess && err != cudaErrorCudartUnloading)
      mr__cuda_fail(MR_ERR_CUDA, err, "device allocator '%s': cudaMemPoolDestroy", self->name);
    else if (err != cudaSuccess)
      (void)cudaGetLastError();
  }
  free(d);
}

static mr_status set_threshold(device_state *d, uint64_t threshold) {
  unsigned long long v = threshold;
  cudaError_t err = cudaMemPoolSetAttribute(d->pool, cudaMemPoolAttrReleaseThreshold, &v);
  if (err != cudaSuccess)
    return mr__cuda_fail(MR_ERR_CUDA, err,
                         "mr_device_allocator_create: release threshold %llu on device %d",
                         (unsigned long long)threshold, d->device);
  return MR_OK;
}

/* Fill d->backend/d->pool on the current device (d->device). */
static mr_status setup(device_state *d, const mr_device_options *o) {
  int supported = 0;
  cudaError_t err = cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, d->device);
  if (err != cudaSuccess)
    return mr__cuda_fail(MR_ERR_CUDA, err,
                         "mr_device_allocator_create: cudaDevAttrMemoryPoolsSupported (device %d)",
                         d->device);
  d->backend = o->backend;
  if (d->backend == MR_DEVICE_AUTO)
    d->backend = supported ? MR_DEVICE_DEFAULT_POOL : MR_DEVICE_MALLOC;
  if (d->backend != MR_DEVICE_MALLOC && !supported)
    return mr__error(MR_ERR_UNSUPPORTED,
                     "mr_device_allocator_create: device %d has no mempool support (backend %s)",
                     d->device, backend_str(d->backend));
  switch (d->backend) {
  case MR_DEVICE_DEFAULT_POOL:
    err = cudaDeviceGetDefaultMemPool(&d->pool, d->device);
    if (err != cudaSuccess)
      return mr__cuda_fail(MR_ERR_CUDA, err,
                           "mr_device_allocator_create: "
                           "cudaDeviceGetDefaultMemPool(%d)",
                           d->device);
    return o->release_threshold ? set_threshold(d, o->release_threshold) : MR_OK;
  case MR_DEVICE_PRIVATE_POOL: {
    struct cudaMemPoolProps props;
    memset(&props, 0, sizeof props);
    props.allocType = cudaMemAllocationTypePinned;
    props.handleTypes = cudaMemHandleTypeNone;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = d->device;
    err = cudaMemPoolCreate(&d->pool, &props);
    if (err != cudaSuccess) {
      d->pool = NULL;
      return mr__cuda_fail(err == cudaErrorMemoryAllocation ? MR_ERR_OUT_OF_MEMORY : MR_ERR_CUDA,
                           err, "mr_device_allocator_create: cudaMemPoolCreate(device %d)",
                           d->device);
    }
    mr_status st = o->release_threshold ? set_threshold(d, o->release_threshold) : MR_OK;
    if (st != MR_OK) {
      (void)cudaMemPoolDestroy(d->pool);
      d->pool = NULL;
    }
    return st;
  }
  default:
    d->pool = NULL;
    return MR_OK;
  }
}

mr_status mr_device_allocator_create(mr_allocator **out, int device_id,
                                     const mr_device_options *opts) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_device_allocator_create: out is NULL");
  *out = NULL;
  mr_device_options o = {.backend = MR_DEVICE_AUTO, .release_threshold = 0};
  if (opts)
    o = *opts;
  if ((unsigned)o.backend >= MR_DEVICE_BACKEND_COUNT_)
    return mr__error(MR_ERR_INVALID_ARG, "mr_device_allocator_create: bad backend %d",
                     (int)o.backend);
  mr_status st = mr_device_check(mr_device_gpu(device_id));
  if (st != MR_OK)
    return st;
  device_state *d = calloc(1, sizeof *d);
  if (!d)
    return mr__error(MR_ERR_OUT_OF_MEMORY, "mr_device_allocator_create: malloc(%zu) failed",
                     sizeof *d);
  d->device = device_id;
  int prev;
  st = mr__device_enter(device_id, &prev);
  if (st != MR_OK) {
    free(d);
    return st;
  }
  st = setup(d, &o);
  mr__device_leave(device_id, prev);
  if (st != MR_OK) {
    free(d);
    return st;
  }
  char name[MR_NAME_MAX];
  snprintf(name, sizeof name, "device:%d/%s", device_id, backend_str(d->backend));
  st = mr_allocator_create(out, &k_device_ops, d, mr_device_gpu(device_id), name, NULL);
  if (st != MR_OK) {
    if (d->backend == MR_DEVICE_PRIVATE_POOL)
      (void)cudaMemPoolDestroy(d->pool);
    free(d);
  }
  return st;
}

mr_device_backend mr_device_allocator_backend(const mr_allocator *a) {
  if (!a || a->ops != &k_device_ops)
    return MR_DEVICE_BACKEND_COUNT_;
  return ((const device_state *)a->state)->backend;
}
