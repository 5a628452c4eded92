/* A scenario shared by the pool suites over host memory (test_pool_streams.c) and over a GPU
 * (test_cuda_pool.c): a stream that takes another stream's front cache (reclaim, in
 * caching_core.c) and so goes over its own budget is evicted as after any free: its cache ends at
 * most half its budget, the newest half of each size kept, and its hot block stays.
 *
 * With a 1 MiB budget, B and A each fill a small segment (2 MiB) with 8 blocks of 256 KiB, then
 * free some of their own: B 3, caching 2 (512 KiB) and keeping the last as its hot block; A 5,
 * caching them all (1.25 MiB once its hot block is filed). Once A's work is done, B asks 300 KiB:
 * nothing cached is that large and the core has nothing free, so B takes A's cache, 1.75 MiB in
 * all. The eviction sends the oldest 4 of the 7 to the core, then the largest while over 512 KiB,
 * which leaves 2 (512 KiB); the 300 KiB come from B's two oldest blocks, merged there, without
 * growing. Before b10809e only the oldest half went (768 KiB stayed); with no eviction, 1.75 MiB.
 * (A stream that has not filled its segment would find the rest of it in the core instead.) */
#ifndef MEMRES_TEST_POOL_TAKE_OVER_H
#define MEMRES_TEST_POOL_TAKE_OVER_H

#include "pool_state.h"
#include "pool_util.h"

#include <criterion/criterion.h>

/* Runs the scenario on `pool` (new, front_cache_bytes = 1 MiB) with streams a and b of one
 * thread; done(a) returns once A's work is complete. Frees what it allocated; the streams' work
 * is left for the caller to complete. */
static inline void taken_cache_over_budget_is_evicted(mr_allocator *pool, mr_stream *a,
                                                      mr_stream *b, void (*done)(mr_stream *)) {
  const size_t size = 256 * 1024, larger = 300 * 1024, budget = 1024 * 1024; /* 4 blocks */
  void *pb[8], *pa[8];
  for (int i = 0; i < 8; i++)
    pb[i] = alloc_ok(pool, size, b);
  for (int i = 0; i < 8; i++)
    pa[i] = alloc_ok(pool, size, a);
  for (int i = 0; i < 3; i++)
    free_ok(pool, pb[i], size, b);
  for (int i = 0; i < 5; i++)
    free_ok(pool, pa[i], size, a);
  done(a);
  const mr_stats before = pool_stats(pool);
  void *q = alloc_ok(pool, larger, b);
  const mr_stats after = pool_stats(pool);
  cr_expect_eq(after.upstream_allocs, before.upstream_allocs,
               "the pool grew with A's blocks free (%llu bytes reserved, then %llu)",
               (unsigned long long)before.bytes_reserved, (unsigned long long)after.bytes_reserved);
  const mr__pstream *sb = pool_stream_state(pool, b);
  cr_expect_eq(sb->cache_bytes, budget / 2,
               "B's front cache holds %zu bytes after taking A's, not half its budget (the "
               "newest 2 blocks)",
               sb->cache_bytes);
  cr_expect(sb->hot && sb->hot_addr == (uintptr_t)pb[2], "B's hot block did not stay");
  validate_ok(pool);
  void *h = alloc_ok(pool, size, b);
  cr_expect_eq(h, pb[2], "B's next 256 KiB came at %p, not its hot block %p", h, pb[2]);
  free_ok(pool, h, size, b);
  free_ok(pool, q, larger, b);
  for (int i = 3; i < 8; i++)
    free_ok(pool, pb[i], size, b);
  for (int i = 5; i < 8; i++)
    free_ok(pool, pa[i], size, a);
  validate_ok(pool);
}

#endif
