/* A scenario shared by the pool suites over host memory (test_pool_checks.c) and over a GPU
 * (test_cuda_pool.c): what a stream's front cache keeps when its frees pass front_cache_bytes.
 * The eviction sends the oldest half of every size class to the core and keeps the newest half,
 * so the stream's next allocations of each size still find blocks in its cache (taking the
 * largest blocks first had emptied the large classes: their next allocations all went to the
 * core).
 *
 * With a 1 MiB budget, 6 blocks of 128 KiB and 20 of 16 KiB are freed in that order. Filing the
 * 17th small one passes the budget (768 + 17 x 16 = 1040 KiB): the 3 oldest large blocks and the
 * 9 oldest small ones go (512 KiB stay, half the budget). The next 3 allocations of 128 KiB are
 * then the 3 newest large blocks, the next 11 of 16 KiB the 11 newest small ones (the last freed
 * is the stream's hot block), all without a split in the core. */
#ifndef MEMRES_TEST_POOL_EVICT_H
#define MEMRES_TEST_POOL_EVICT_H

#include "pool_util.h"

#include <criterion/criterion.h>

enum { EVICT_LARGE = 6, EVICT_SMALL = 20 };

/* Whether p is one of v[from..to). */
static inline int evict_among(void *const *v, int from, int to, const void *p) {
  for (int i = from; i < to; i++)
    if (v[i] == p)
      return 1;
  return 0;
}

/* Runs the scenario on `pool` (new, created with front_cache_bytes = 1 MiB) and stream s, and
 * frees what it allocated; the caller releases the pool. */
static inline void evict_keeps_newest_halves(mr_allocator *pool, mr_stream *s) {
  const size_t large = 128 * 1024, small = 16 * 1024;
  void *l[EVICT_LARGE], *sm[EVICT_SMALL], *ql[EVICT_LARGE / 2], *qs[EVICT_SMALL - 9];
  for (int i = 0; i < EVICT_LARGE; i++)
    l[i] = alloc_ok(pool, large, s);
  for (int i = 0; i < EVICT_SMALL; i++)
    sm[i] = alloc_ok(pool, small, s);
  for (int i = 0; i < EVICT_LARGE; i++)
    free_ok(pool, l[i], large, s);
  for (int i = 0; i < EVICT_SMALL; i++)
    free_ok(pool, sm[i], small, s);
  const uint64_t splits = pool_stats(pool).splits;
  for (int i = 0; i < EVICT_LARGE / 2; i++) {
    ql[i] = alloc_ok(pool, large, s);
    cr_expect(evict_among(l, EVICT_LARGE / 2, EVICT_LARGE, ql[i]),
              "allocation %d of 128 KiB got %p, not one of the 3 newest freed (the eviction took "
              "them from the cache)",
              i, ql[i]);
  }
  /* the 9 oldest small ones went; the hot block and the other 10 stayed */
  for (int i = 0; i < EVICT_SMALL - 9; i++) {
    qs[i] = alloc_ok(pool, small, s);
    cr_expect(evict_among(sm, 9, EVICT_SMALL, qs[i]),
              "allocation %d of 16 KiB got %p, not one of the 11 newest freed", i, qs[i]);
  }
  cr_expect_eq(pool_stats(pool).splits, splits, "the core served an allocation the cache kept");
  validate_ok(pool);
  for (int i = 0; i < EVICT_LARGE / 2; i++)
    free_ok(pool, ql[i], large, s);
  for (int i = 0; i < EVICT_SMALL - 9; i++)
    free_ok(pool, qs[i], small, s);
}

#endif
