/* memres: the family of allocators. Each constructor returns a new allocator (refcount 1). */
#ifndef MEMRES_ALLOCATORS_H
#define MEMRES_ALLOCATORS_H

#include "allocator.h"

MR_EXTERN_C_BEGIN

/* ---- host: aligned malloc/free ------------------------------------------------------------ */
typedef struct mr_host_options {
  size_t alignment; /* power of two; 0 -> 64 */
} mr_host_options;

MR_API mr_status mr_host_allocator_create(mr_allocator **out, const mr_host_options *opts);
/* The process's host allocator (64-byte aligned), created once; every thread's context starts
 * with it. Not retained for the caller: do not release it. */
MR_API mr_allocator *mr_host_default(void);

/* ---- pinned: cudaHostAlloc/cudaFreeHost --------------------------------------------------- */
typedef struct mr_pinned_options {
  unsigned int flags; /* cudaHostAlloc flags; 0 -> cudaHostAllocDefault | cudaHostAllocPortable */
} mr_pinned_options;

MR_API mr_status mr_pinned_allocator_create(mr_allocator **out, int device_id,
                                            const mr_pinned_options *opts);

/* ---- device: stream-ordered mempool, or cudaMalloc ---------------------------------------- */
typedef enum mr_device_backend {
  MR_DEVICE_AUTO = 0,     /* the default mempool if the device supports mempools, else cudaMalloc */
  MR_DEVICE_DEFAULT_POOL, /* cudaMallocFromPoolAsync on the device's default mempool */
  MR_DEVICE_PRIVATE_POOL, /* a new pool (cudaMemPoolCreate) owned by this allocator */
  MR_DEVICE_MALLOC,       /* plain cudaMalloc/cudaFree (synchronous) */
  MR_DEVICE_BACKEND_COUNT_
} mr_device_backend;

typedef struct mr_device_options {
  mr_device_backend backend;
  /* Release threshold set on the pool (cudaMemPoolAttrReleaseThreshold); UINT64_MAX keeps
   * everything. 0 leaves the pool's current setting (default pool) / 0 (private pool). */
  uint64_t release_threshold;
} mr_device_options;

MR_API mr_status mr_device_allocator_create(mr_allocator **out, int device_id,
                                            const mr_device_options *opts);
/* Which backend the allocator ended up with. */
MR_API mr_device_backend mr_device_allocator_backend(const mr_allocator *a);
/* The process's default allocator for GPU `device_id` (MR_DEVICE_AUTO on that device), created
 * on first use, once, whichever threads ask (as RMM's per-device resource). Not retained for the
 * caller: do not release it; it lives until the process exits. NULL when it cannot be had, with
 * MR_ERR_INVALID_ARG (negative id) or MR_ERR_NO_DEVICE (no such GPU, no GPU, built without
 * CUDA), or the creation's error, in mr_last_error(). */
MR_API mr_allocator *mr_device_default(int device_id);

/* ---- caching pool: stream-ordered, over any upstream -------------------------------------- */
typedef enum mr_cross_stream_policy {
  MR_CROSS_STREAM_EVENTS = 0, /* another stream takes a block only once its free event completed */
  MR_CROSS_STREAM_NONE,       /* blocks are only reused by the stream that freed them */
  MR_CROSS_STREAM_WAIT,       /* as EVENTS, and else the taker waits on the event (no host sync) */
  MR_CROSS_STREAM_POLICY_COUNT_
} mr_cross_stream_policy;

typedef enum mr_growth {
  MR_GROWTH_FIXED = 0, /* large_segment_min; above it, the request and as much again, the extra
                          at most 4 x large_segment_min */
  MR_GROWTH_DOUBLE,    /* each new large segment doubles the last, up to 1 GiB */
  MR_GROWTH_EXACT,     /* a large segment is the request rounded to 2 MiB (least slack) */
  MR_GROWTH_COUNT_
} mr_growth;

typedef struct mr_caching_pool_options {
  size_t initial_reserve;   /* bytes taken from upstream at creation (0: none) */
  size_t maximum_reserve;   /* upper bound on bytes held from upstream (0: no bound) */
  size_t release_threshold; /* after a free, cached free segments above this are released
                               (0: keep everything until trim) */
  size_t small_limit;       /* requests <= this come from small segments (0: 1 MiB) */
  size_t small_segment;     /* size of a small segment (0: 2 MiB); under FIXED and DOUBLE it
                               doubles while at most 1/128 of the bytes reserved, up to 32 MiB
                               (or small_segment if larger); smaller again if upstream or
                               maximum_reserve cannot give it */
  size_t large_segment_min; /* smallest large segment taken from upstream (0: 20 MiB) */
  size_t alignment;         /* block alignment, power of two (0: 256) */
  mr_cross_stream_policy cross_stream;
  mr_growth growth;
  size_t front_cache_bytes; /* per stream, bytes of freed blocks kept for lock-free-ish reuse
                               before they go back to the shared structure (0: 256 MiB;
                               SIZE_MAX: disable the front cache) */
  size_t stats_slack;       /* pool-wide peak counters are updated once a stream's change in
                               use reaches this many bytes (0: 1 MiB; 1: every operation, exact
                               peaks). Per-stream statistics, current pool-wide values, and
                               the pool-wide peaks while one stream is the only one to
                               allocate, are always exact. */
  const char *name;         /* NULL: "caching(<upstream>)" */
} mr_caching_pool_options;

/* Takes a reference on `upstream`. opts may be NULL (defaults). The pool keeps block addresses
 * in 48 bits (all that x86-64 and arm64 processes map unless they ask for more): a segment the
 * upstream places above 2^48 is given back, and the allocation fails with MR_ERR_UNSUPPORTED. */
MR_API mr_status mr_caching_pool_create(mr_allocator **out, mr_allocator *upstream,
                                        const mr_caching_pool_options *opts);
/* Statistics of one stream's use of the pool (allocs, frees, cache hits, bytes in use...). A
 * free counts on the stream it is made on: bytes_in_use and live_blocks are what was allocated
 * on the stream minus what was freed on it, shown as 0 when blocks allocated elsewhere were freed
 * there (the pool-wide figures always balance). */
MR_API mr_status mr_caching_pool_stream_stats(mr_allocator *pool, mr_stream *stream, mr_stats *out);
/* Walks every structure of the pool and checks its invariants (blocks tile segments, free
 * lists and bitmaps agree, statistics add up). MR_OK or MR_ERR_INVALID_ARG with the finding.
 * For tests and debugging: call it while no other thread allocates or frees from the pool (an
 * alloc or free in flight on another thread is seen half done and reported). */
MR_API mr_status mr_caching_pool_validate(mr_allocator *pool);

/* ---- fault injection: fail the Nth call, or every Nth ------------------------------------- */
typedef struct mr_fault_options {
  uint64_t fail_nth;   /* the Nth alloc (1-based) fails; 0: none */
  uint64_t fail_every; /* every Nth alloc fails; 0: none */
  mr_status status;    /* what a failing call returns (0: MR_ERR_OUT_OF_MEMORY) */
} mr_fault_options;

MR_API mr_status mr_fault_allocator_create(mr_allocator **out, mr_allocator *upstream,
                                           const mr_fault_options *opts);
/* Change the schedule; counting restarts at 0. */
MR_API mr_status mr_fault_allocator_set(mr_allocator *fault, const mr_fault_options *opts);
/* Number of allocs seen and failed so far. */
MR_API uint64_t mr_fault_allocator_calls(const mr_allocator *fault);
MR_API uint64_t mr_fault_allocator_failures(const mr_allocator *fault);

MR_EXTERN_C_END

#endif
