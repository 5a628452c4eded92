/* The CUDA stream backend: non-blocking streams memres owns, and wrappers around streams the
 * application owns (mr_stream_from_cuda). Every call that depends on the current device makes
 * the stream's device current and restores the caller's afterwards. Every CUDA error becomes
 * MR_ERR_CUDA (MR_ERR_NO_DEVICE where no GPU can be used) with cudaGetErrorName and
 * cudaGetErrorString in mr_last_error(). Priorities out of the device's range are clamped, as
 * CUDA does. Identities come from cudaStreamGetId (small counters); the other backends count
 * down from UINT64_MAX, so the two never meet. */
#include "internal.h"

#include "../common/cuda_internal.h"
#include "memres/cuda.h"

#include <stdlib.h>

typedef struct cuda_stream {
  cudaStream_t stream;
  int device;
  bool owned; /* created by mr_stream_create: destroyed with the mr_stream */
} cuda_stream;

static cuda_stream *cs_of(mr_stream *s) { return mr_stream_state(s); }

/* Run `call` (an expression yielding cudaError_t) with the stream's device current. */
#define ON_DEVICE(dev, what, call)                                                                 \
  do {                                                                                             \
    int prev_;                                                                                     \
    mr_status st_ = mr__device_enter((dev), &prev_);                                               \
    if (st_ != MR_OK)                                                                              \
      return st_;                                                                                  \
    cudaError_t err_ = (call);                                                                     \
    mr__device_leave((dev), prev_);                                                                \
    if (err_ != cudaSuccess)                                                                       \
      return mr__cuda_fail(MR_ERR_CUDA, err_, "%s (device %d)", (what), (dev));                    \
  } while (0)

static mr_status cu_event_create(mr_stream *self, void **event) {
  cudaEvent_t ev = NULL;
  ON_DEVICE(cs_of(self)->device, "cudaEventCreateWithFlags",
            cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  *event = ev;
  return MR_OK;
}

static void cu_event_destroy(mr_stream *self, void *event) {
  MR_UNUSED(self);
  cudaError_t err = cudaEventDestroy((cudaEvent_t)event);
  if (err != cudaSuccess && err != cudaErrorCudartUnloading)
    mr__cuda_fail(MR_ERR_CUDA, err, "cudaEventDestroy");
  else if (err != cudaSuccess)
    (void)cudaGetLastError();
}

static mr_status cu_event_record(mr_stream *self, void *event) {
  cuda_stream *c = cs_of(self);
  ON_DEVICE(c->device, "cudaEventRecord", cudaEventRecord((cudaEvent_t)event, c->stream));
  return MR_OK;
}

static mr_status cu_event_query(mr_stream *self, void *event, bool *done) {
  MR_UNUSED(self);
  cudaError_t err = cudaEventQuery((cudaEvent_t)event);
  if (err == cudaSuccess) {
    *done = true;
    return MR_OK;
  }
  if (err == cudaErrorNotReady) {
    (void)cudaGetLastError();
    *done = false;
    return MR_OK;
  }
  *done = false;
  return mr__cuda_fail(MR_ERR_CUDA, err, "cudaEventQuery");
}

static mr_status cu_event_synchronize(mr_stream *self, void *event) {
  MR_UNUSED(self);
  cudaError_t err = cudaEventSynchronize((cudaEvent_t)event);
  if (err != cudaSuccess)
    return mr__cuda_fail(MR_ERR_CUDA, err, "cudaEventSynchronize");
  return MR_OK;
}

static mr_status cu_wait_event(mr_stream *self, mr_stream *owner, void *event) {
  MR_UNUSED(owner);
  cuda_stream *c = cs_of(self);
  ON_DEVICE(c->device, "cudaStreamWaitEvent",
            cudaStreamWaitEvent(c->stream, (cudaEvent_t)event, 0));
  return MR_OK;
}

static mr_status cu_synchronize(mr_stream *self) {
  cuda_stream *c = cs_of(self);
  ON_DEVICE(c->device, "cudaStreamSynchronize", cudaStreamSynchronize(c->stream));
  return MR_OK;
}

static mr_status cu_copy(mr_stream *self, void *dst, const void *src, size_t bytes) {
  cuda_stream *c = cs_of(self);
  ON_DEVICE(c->device, "cudaMemcpyAsync",
            cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, c->stream));
  return MR_OK;
}

static mr_status cu_fill(mr_stream *self, void *dst, int value, size_t bytes) {
  cuda_stream *c = cs_of(self);
  ON_DEVICE(c->device, "cudaMemsetAsync", cudaMemsetAsync(dst, value, bytes, c->stream));
  return MR_OK;
}

static void *cu_native(mr_stream *self) { return (void *)cs_of(self)->stream; }

static void cu_destroy(mr_stream *self) {
  cuda_stream *c = cs_of(self);
  if (c->owned) {
    int prev;
    if (mr__device_enter(c->device, &prev) == MR_OK) {
      cudaError_t err = cudaStreamDestroy(c->stream);
      mr__device_leave(c->device, prev);
      if (err != cudaSuccess && err != cudaErrorCudartUnloading)
        mr__cuda_fail(MR_ERR_CUDA, err, "cudaStreamDestroy (device %d)", c->device);
      else if (err != cudaSuccess)
        (void)cudaGetLastError();
    }
  }
  free(c);
}

static const mr_stream_ops k_cuda_ops = {
    .version = MR_STREAM_OPS_VERSION,
    .backend = "cuda",
    .event_create = cu_event_create,
    .event_destroy = cu_event_destroy,
    .event_record = cu_event_record,
    .event_query = cu_event_query,
    .event_synchronize = cu_event_synchronize,
    .wait_event = cu_wait_event,
    .synchronize = cu_synchronize,
    .copy = cu_copy,
    .fill = cu_fill,
    .native = cu_native,
    .destroy = cu_destroy,
};

const mr_stream_ops *const mr__cuda_stream_ops = &k_cuda_ops;

/* Wrap `stream` (already valid on `device`, which is current) in an mr_stream. On failure the
 * caller still owns `stream`. */
static mr_status wrap(mr_stream **out, cudaStream_t stream, int device, bool owned,
                      const char *who) {
  unsigned long long id = 0;
  cudaError_t err = cudaStreamGetId(stream, &id);
  if (err != cudaSuccess)
    return mr__cuda_fail(MR_ERR_CUDA, err, "%s: cudaStreamGetId (device %d)", who, device);
  cuda_stream *c = malloc(sizeof *c);
  if (!c)
    return mr__error(MR_ERR_OUT_OF_MEMORY, "%s: malloc(%zu) failed", who, sizeof *c);
  c->stream = stream;
  c->device = device;
  c->owned = owned;
  mr_status st =
      mr__stream_create_with_id(out, &k_cuda_ops, c, (mr_device){MR_DEVICE, device}, (uint64_t)id);
  if (st != MR_OK)
    free(c);
  return st;
}

/* The entry of both constructors: checks out and the device id, clears *out, and makes the
 * device current (*prev: the caller's, for mr__device_leave). */
static mr_status enter(mr_stream **out, int device_id, int *prev, const char *who) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "%s: out is NULL", who);
  *out = NULL;
  mr_status st = mr_device_check(mr_device_gpu(device_id));
  if (st != MR_OK)
    return st;
  return mr__device_enter(device_id, prev);
}

mr_status mr_stream_create(mr_stream **out, int device_id, int priority) {
  int prev;
  mr_status st = enter(out, device_id, &prev, "mr_stream_create");
  if (st != MR_OK)
    return st;
  cudaStream_t stream = NULL;
  cudaError_t err = cudaStreamCreateWithPriority(&stream, cudaStreamNonBlocking, priority);
  if (err != cudaSuccess) {
    st = mr__cuda_fail(MR_ERR_CUDA, err,
                       "mr_stream_create: cudaStreamCreateWithPriority(device %d, "
                       "priority %d)",
                       device_id, priority);
  } else {
    st = wrap(out, stream, device_id, true, "mr_stream_create");
    if (st != MR_OK)
      (void)cudaStreamDestroy(stream);
  }
  mr__device_leave(device_id, prev);
  return st;
}

mr_status mr_stream_from_cuda(mr_stream **out, cudaStream_t stream, int device_id) {
  int prev;
  mr_status st = enter(out, device_id, &prev, "mr_stream_from_cuda");
  if (st != MR_OK)
    return st;
#if CUDART_VERSION >= 12080
  /* The legacy and per-thread default streams belong to the current device: only an explicit
   * stream can be on another one. */
  if (stream != 0 && stream != cudaStreamLegacy && stream != cudaStreamPerThread) {
    int on = -1;
    cudaError_t err = cudaStreamGetDevice(stream, &on);
    if (err != cudaSuccess) {
      mr__device_leave(device_id, prev);
      return mr__cuda_fail(MR_ERR_CUDA, err, "mr_stream_from_cuda: cudaStreamGetDevice");
    }
    if (on != device_id) {
      mr__device_leave(device_id, prev);
      return mr__error(MR_ERR_INVALID_ARG,
                       "mr_stream_from_cuda: the stream is on device %d, not device %d", on,
                       device_id);
    }
  }
#endif
  st = wrap(out, stream, device_id, false, "mr_stream_from_cuda");
  mr__device_leave(device_id, prev);
  return st;
}

cudaStream_t mr_stream_cuda(const mr_stream *s) {
  if (!mr_stream_is_cuda(s))
    return 0;
  return cs_of((mr_stream *)s)->stream;
}
