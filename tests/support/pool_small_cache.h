/* A scenario shared by the pool suites over host memory (test_pool_streams.c) and over a GPU
 * (test_cuda_pool.c): when nothing in the core fits, a stream flushes its own front cache before
 * the pool grows only if it is the pool's one active stream, or if its cache holds at least what
 * growing would add (a small segment, 2 MiB by default). Otherwise the pool grows and the cache
 * stays the stream's: a flushed cache is missed on the stream's next allocations, each a core
 * allocation, and threads with small working sets flushed theirs over and over.
 *
 * A allocates 8 blocks of 256 KiB (one small segment, full) and frees `freed` of them; then it
 * asks for 128 KiB, which its cache has no class for and the core has no room for. With B
 * active (B fills a segment of its own first), 2 blocks freed (512 KiB) leave the cache as it
 * is and the pool grows; all 8 (2 MiB) are flushed and one is split, as they are when A is
 * alone. */
#ifndef MEMRES_TEST_POOL_SMALL_CACHE_H
#define MEMRES_TEST_POOL_SMALL_CACHE_H

#include "pool_util.h"

#include <criterion/criterion.h>

/* Runs the scenario on `pool` (new, default options) with streams a and b (b NULL: A alone) of
 * one thread, and frees what it allocated (the callers complete the streams' work). */
static inline void small_cache_kept_when_others_allocate(mr_allocator *pool, mr_stream *a,
                                                         mr_stream *b, int freed) {
  enum { N = 8 };
  const size_t size = 256 * 1024, ask = 128 * 1024, half = 1024 * 1024;
  void *pb[2] = {NULL, NULL}, *pa[N];
  if (b)
    for (int i = 0; i < 2; i++)
      pb[i] = alloc_ok(pool, half, b);
  for (int i = 0; i < N; i++)
    pa[i] = alloc_ok(pool, size, a);
  for (int i = 0; i < freed; i++)
    free_ok(pool, pa[i], size, a);
  const mr_stats before = pool_stats(pool);
  void *q = alloc_ok(pool, ask, a);
  const mr_stats after = pool_stats(pool);
  const int grows = b && freed < N;
  if (grows) {
    cr_expect_eq(after.upstream_allocs, before.upstream_allocs + 1,
                 "B active, %d KiB cached: the pool did not grow (%llu upstream allocations, "
                 "%llu before)",
                 freed * 256, (unsigned long long)after.upstream_allocs,
                 (unsigned long long)before.upstream_allocs);
    cr_expect_eq(after.splits, before.splits + 1, "the new segment was not split once");
    const uint64_t splits = after.splits;
    void *r = alloc_ok(pool, size, a); /* from A's cache, as it was */
    int cached = 0;
    for (int i = 0; i < freed; i++)
      cached |= r == pa[i];
    cr_expect(cached, "A's cache was flushed: 256 KiB came at %p, not a block A freed", r);
    cr_expect_eq(pool_stats(pool).splits, splits, "the core served A's 256 KiB (a split)");
    free_ok(pool, r, size, a);
  } else {
    cr_expect_eq(after.upstream_allocs, before.upstream_allocs,
                 "%s, %d KiB cached: the pool grew where A's cache could serve",
                 b ? "B active" : "A alone", freed * 256);
    int inside = 0;
    for (int i = 0; i < freed; i++)
      inside |= (uintptr_t)q >= (uintptr_t)pa[i] && (uintptr_t)q < (uintptr_t)pa[i] + size;
    cr_expect(inside, "128 KiB came at %p, not out of a block A freed", q);
  }
  validate_ok(pool);
  free_ok(pool, q, ask, a);
  for (int i = freed; i < N; i++)
    free_ok(pool, pa[i], size, a);
  for (int i = 0; i < 2; i++)
    if (pb[i])
      free_ok(pool, pb[i], half, b);
  validate_ok(pool);
}

#endif
