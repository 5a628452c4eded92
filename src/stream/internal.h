/* Stream and event objects, shared by src/stream and the allocators that order work on them. */
#ifndef MEMRES_STREAM_INTERNAL_H
#define MEMRES_STREAM_INTERNAL_H

#include "../common/internal.h"
#include "../common/refcount.h"

struct mr_stream {
  mr__rc rc; /* first, as in mr_allocator (see there) */
  const mr_stream_ops *ops;
  void *state;
  mr_device device;
  uint64_t id;
};

struct mr_event {
  mr_stream *backend;     /* the stream whose backend made the handle (retained) */
  mr_stream *recorded_on; /* last stream recorded on (not retained; may be gone) */
  void *handle;
};

/* Destroys a stream whose last reference is gone. */
void mr__stream_destroy(mr_stream *s);

/* A fresh process-unique identity for a stream without one of its own. */
uint64_t mr__stream_next_id(void);

/* Used by the CUDA backend to build its streams with their own identity. */
mr_status mr__stream_create_with_id(mr_stream **out, const mr_stream_ops *ops, void *state,
                                    mr_device device, uint64_t id);

/* The CUDA backend's table (NULL when built without CUDA), for mr_stream_is_cuda. */
extern const mr_stream_ops *const mr__cuda_stream_ops;

#endif
