/* memres: the allocator vtable and the calls every allocator answers. */
#ifndef MEMRES_ALLOCATOR_H
#define MEMRES_ALLOCATOR_H

#include "stream.h"

MR_EXTERN_C_BEGIN

typedef struct mr_allocator mr_allocator;

/* Statistics. Starts with its own size and version so it can grow: set them with
 * MR_STATS_INIT before calling mr_stats. Fields an allocator does not track stay 0. */
typedef struct mr_stats {
  uint32_t struct_size;
  uint32_t version;
  uint64_t bytes_in_use; /* bytes handed out and not freed (as the allocator rounds them) */
  uint64_t peak_in_use;
  uint64_t bytes_requested; /* bytes asked for by live allocations */
  uint64_t peak_requested;
  uint64_t bytes_reserved; /* bytes held from upstream (pools), = in use for plain allocators */
  uint64_t peak_reserved;
  uint64_t live_blocks;
  uint64_t allocs;
  uint64_t frees;
  uint64_t cache_hits; /* allocations served from cached memory */
  uint64_t upstream_allocs;
  uint64_t upstream_frees;
  uint64_t splits;
  uint64_t merges;
  uint64_t oom_retries; /* upstream failures followed by a release of cached memory and a retry */
  uint64_t largest_free_block;
  uint64_t failed_allocs;
} mr_stats;

#define MR_STATS_VERSION 1u
#define MR_STATS_INIT                                                                              \
  { .struct_size = sizeof(mr_stats), .version = MR_STATS_VERSION }

/* The vtable. Required: alloc, free. Optional (NULL gets a default):
 *   trim: does nothing and returns MR_OK;  stats: MR_ERR_UNSUPPORTED;  destroy: does nothing;
 *   grant_access: MR_ERR_UNSUPPORTED (see mr_allocator_grant_access).
 * `stream` is the stream the caller orders the operation on; NULL means none (host order).
 * `size` passed to free is the size given to alloc. Each op returns a status and reports
 * errors through mr_set_error (internal.h) / the public mr_report_error. */
typedef mr_status mr_alloc_fn(mr_allocator *self, size_t size, mr_stream *stream, void **out);
typedef mr_status mr_free_fn(mr_allocator *self, void *ptr, size_t size, mr_stream *stream);
typedef mr_status mr_trim_fn(mr_allocator *self, size_t keep_bytes);
typedef mr_status mr_stats_fn(mr_allocator *self, mr_stats *out);
typedef void mr_destroy_fn(mr_allocator *self);
typedef mr_status mr_grant_access_fn(mr_allocator *self, int peer_device);

typedef struct mr_allocator_ops {
  uint32_t version; /* MR_ALLOCATOR_OPS_VERSION */
  mr_alloc_fn *alloc;
  mr_free_fn *free;
  mr_trim_fn *trim;
  mr_stats_fn *stats;
  mr_destroy_fn *destroy;
  /* Version 2. Tables of version 1 (built before it existed) end above: it is not read. */
  mr_grant_access_fn *grant_access;
} mr_allocator_ops;

/* 2 added grant_access at the end; mr_allocator_create accepts versions 1 and 2. */
#define MR_ALLOCATOR_OPS_VERSION 2u

/* Plug in an allocator: a vtable and a state pointer, nothing else. `ops` must outlive the
 * allocator; `destroy` (if any) frees `state` when the last reference goes. `name` is copied
 * (up to 47 characters). `stream` (may be NULL) is the bound stream that mr_alloc/mr_free use;
 * it is retained. Refcount starts at 1. */
MR_API mr_status mr_allocator_create(mr_allocator **out, const mr_allocator_ops *ops, void *state,
                                     mr_device device, const char *name, mr_stream *stream);

MR_API mr_allocator *mr_allocator_retain(mr_allocator *a);
MR_API void mr_allocator_release(mr_allocator *a); /* NULL is fine */

/* A view of the same pool bound to `stream` (NULL: none). The view retains `a`; releasing the
 * view never destroys the pool's state while `a` or other views hold it. */
MR_API mr_status mr_allocator_bind(mr_allocator *a, mr_stream *stream, mr_allocator **view);

MR_API void *mr_allocator_state(const mr_allocator *a);
MR_API const mr_allocator_ops *mr_allocator_ops_of(const mr_allocator *a);
MR_API mr_device mr_allocator_device(const mr_allocator *a);
MR_API const char *mr_allocator_name(const mr_allocator *a);
MR_API mr_stream *mr_allocator_stream(const mr_allocator *a); /* bound stream, not retained */

/* On the bound stream (TurboMind's way). size 0 and NULL out-pointers are MR_ERR_INVALID_ARG;
 * *out is set to NULL on failure. Freeing NULL is MR_OK and does nothing. */
MR_API mr_status mr_alloc(mr_allocator *a, size_t size, void **out);
MR_API mr_status mr_free(mr_allocator *a, void *ptr, size_t size);
/* On an explicit stream (RMM's way). */
MR_API mr_status mr_alloc_async(mr_allocator *a, size_t size, mr_stream *stream, void **out);
MR_API mr_status mr_free_async(mr_allocator *a, void *ptr, size_t size, mr_stream *stream);

MR_API mr_status mr_trim(mr_allocator *a, size_t keep_bytes);
/* Let GPU `peer_device` read and write the memory `a` hands out (blocks already handed out and
 * future ones). Device allocators: cudaMemPoolSetAccess on a mempool, peer access enabled from
 * the peer for cudaMalloc; pools and adaptors pass it to their upstream. Errors: the allocator's
 * own device (MR_ERR_INVALID_ARG), no such GPU (MR_ERR_NO_DEVICE; a negative id is
 * MR_ERR_INVALID_ARG), no peer path between the two GPUs, or an allocator without the op
 * (MR_ERR_UNSUPPORTED), each with a message. */
MR_API mr_status mr_allocator_grant_access(mr_allocator *a, int peer_device);
/* `out->struct_size` must be set (MR_STATS_INIT); fields past it are not written. */
MR_API mr_status mr_stats_get(mr_allocator *a, mr_stats *out);
/* The statistics as a JSON object into buf (truncated to len, always terminated). Returns the
 * length the full text needs, or 0 on error. */
MR_API size_t mr_stats_json(const mr_stats *s, char *buf, size_t len);

/* For allocator writers: record an error for this thread (see mr_last_error) and return it. */
MR_API mr_status mr_report_error(mr_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

MR_EXTERN_C_END

#endif
