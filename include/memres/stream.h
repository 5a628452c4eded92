/* memres: streams and events behind a small vtable (CUDA, host, or a backend of your own). */
#ifndef MEMRES_STREAM_H
#define MEMRES_STREAM_H

#include "device.h"

#include <stddef.h>
#include <stdint.h>

MR_EXTERN_C_BEGIN

typedef struct mr_stream mr_stream;
typedef struct mr_event mr_event;

/* A stream backend. Every op receives the stream it acts on; reach your state with
 * mr_stream_state(). An event handle (void *) is created by the backend of the stream the event
 * was created on, and is only ever passed back to that backend's ops.
 * Required: event_create, event_destroy, event_record, event_query.
 * Optional (NULL gets the default named):
 *   event_synchronize: polls event_query until done;
 *   wait_event: synchronizes on the event (blocks the host until it completes);
 *   synchronize: records an event and synchronizes on it;
 *   copy/fill: memcpy/memset on the host, done when the call returns;
 *   native: returns NULL;
 *   destroy: does nothing. */
typedef struct mr_stream_ops {
  uint32_t version; /* MR_STREAM_OPS_VERSION */
  const char *backend;
  mr_status (*event_create)(mr_stream *self, void **event);
  void (*event_destroy)(mr_stream *self, void *event);
  /* Record the event at the current point of this stream's work. */
  mr_status (*event_record)(mr_stream *self, void *event);
  /* *done = whether all work before the last record of the event has completed. */
  mr_status (*event_query)(mr_stream *self, void *event, bool *done);
  mr_status (*event_synchronize)(mr_stream *self, void *event);
  /* Make later work on self wait for `event`, recorded on `owner` (same backend), without
   * blocking the host. */
  mr_status (*wait_event)(mr_stream *self, mr_stream *owner, void *event);
  mr_status (*synchronize)(mr_stream *self);
  mr_status (*copy)(mr_stream *self, void *dst, const void *src, size_t bytes);
  mr_status (*fill)(mr_stream *self, void *dst, int value, size_t bytes);
  void *(*native)(mr_stream *self);
  void (*destroy)(mr_stream *self);
} mr_stream_ops;

#define MR_STREAM_OPS_VERSION 1u

/* A stream of your own backend. `ops` must outlive the stream; `state` is yours (destroy frees
 * it). The stream gets a process-unique identity. Refcount starts at 1. */
MR_API mr_status mr_stream_create_custom(mr_stream **out, const mr_stream_ops *ops, void *state,
                                         mr_device device);

/* A host stream: work on it is complete when the call returns; events are always complete. */
MR_API mr_status mr_stream_create_host(mr_stream **out);

/* A new non-blocking CUDA stream on GPU `device_id` with `priority` (0 = default; lower numbers
 * are higher priority, as in CUDA). MR_ERR_NO_DEVICE without a GPU or without CUDA. */
MR_API mr_status mr_stream_create(mr_stream **out, int device_id, int priority);

MR_API mr_stream *mr_stream_retain(mr_stream *s);
MR_API void mr_stream_release(mr_stream *s); /* NULL is fine */

MR_API void *mr_stream_state(const mr_stream *s);
MR_API const mr_stream_ops *mr_stream_ops_of(const mr_stream *s);
MR_API mr_device mr_stream_device(const mr_stream *s);
/* Process-unique identity (for CUDA streams: cudaStreamGetId, so a reused handle of a destroyed
 * stream is not mistaken for the old one). */
MR_API uint64_t mr_stream_id(const mr_stream *s);
MR_API void *mr_stream_native(const mr_stream *s); /* cudaStream_t for CUDA streams */
MR_API const char *mr_stream_backend(const mr_stream *s);
MR_API bool mr_stream_is_cuda(const mr_stream *s);

MR_API mr_status mr_stream_synchronize(mr_stream *s);
MR_API mr_status mr_stream_copy(mr_stream *s, void *dst, const void *src, size_t bytes);
MR_API mr_status mr_stream_fill(mr_stream *s, void *dst, int value, size_t bytes);

/* Events: created on a stream's backend; record on any stream of that backend. */
MR_API mr_status mr_event_create(mr_event **out, mr_stream *backend_of);
MR_API void mr_event_destroy(mr_event *e); /* NULL is fine */
MR_API mr_status mr_event_record(mr_event *e, mr_stream *s);
MR_API mr_status mr_event_query(mr_event *e, bool *done);
MR_API mr_status mr_event_synchronize(mr_event *e);
/* Make `s` wait on `e` (recorded on another stream) without blocking the host where the backends
 * match; across backends, synchronizes on the event. */
MR_API mr_status mr_stream_wait_event(mr_stream *s, mr_event *e);
/* The stream the event was last recorded on (not retained), or NULL. */
MR_API mr_stream *mr_event_stream(const mr_event *e);

MR_EXTERN_C_END

#endif
