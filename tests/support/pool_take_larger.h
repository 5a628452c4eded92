/* A scenario shared by the pool suites over host memory (test_pool_streams.c) and over a GPU
 * (test_cuda_pool.c): a stream that would grow takes another stream's front cache (reclaim, in
 * caching_core.c), and a block of a higher size class than the request serves it, whole, when
 * the request's own class has none. A frees 8 blocks of 512 KiB, which fill two small segments;
 * once A's work is done, B asks for less: 300 KiB (the classes next above its own are empty), or
 * 20 KiB (the search also crosses a word of the bin map). Without the higher classes, the blocks
 * taken stayed in B's front cache unused and the pool grew. */
#ifndef MEMRES_TEST_POOL_TAKE_LARGER_H
#define MEMRES_TEST_POOL_TAKE_LARGER_H

#include "pool_util.h"

#include <criterion/criterion.h>

/* Runs the scenario for a request of `smaller` bytes on `pool` (new, default options) with
 * streams a and b of one thread; done(a) returns once A's work is complete. Frees what it
 * allocated; B's work is left for the caller to complete. */
static inline void taken_cache_serves_a_smaller_request(mr_allocator *pool, mr_stream *a,
                                                        mr_stream *b, size_t smaller,
                                                        void (*done)(mr_stream *)) {
  enum { N = 8 };
  const size_t size = 512 * 1024;
  void *pa[N];
  for (int i = 0; i < N; i++)
    pa[i] = alloc_ok(pool, size, a);
  for (int i = 0; i < N; i++)
    free_ok(pool, pa[i], size, a);
  done(a);
  const mr_stats before = pool_stats(pool);
  void *q = alloc_ok(pool, smaller, b);
  int was_a = 0;
  for (int i = 0; i < N; i++)
    was_a |= q == pa[i];
  cr_expect(was_a, "B's %zu bytes came at %p, not one of A's 512 KiB blocks", smaller, q);
  const mr_stats after = pool_stats(pool);
  cr_expect_eq(after.bytes_reserved, before.bytes_reserved,
               "the pool grew from %llu to %llu bytes with A's blocks free",
               (unsigned long long)before.bytes_reserved, (unsigned long long)after.bytes_reserved);
  cr_expect_eq(after.upstream_allocs, before.upstream_allocs, "an upstream allocation");
  validate_ok(pool);
  free_ok(pool, q, smaller, b);
  validate_ok(pool);
}

#endif
