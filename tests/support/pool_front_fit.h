/* A scenario shared by the pool suites over host memory (test_pool_checks.c) and over a GPU
 * (test_cuda_pool.c): an allocation looks at the 4 newest entries of its size class in the
 * stream's front cache, not only at the newest. Blocks of 130, 129 and 2 KiB are freed in that
 * order (130 and 129 KiB share a class, 128-136 KiB); the last freed stays the stream's hot
 * block. An allocation of 130 KiB then finds the 129 KiB block on top of the class, too small,
 * and takes the 130 KiB one below it: the same address, without the core (no split). Before, it
 * went to the core, which carved a new block. */
#ifndef MEMRES_TEST_POOL_FRONT_FIT_H
#define MEMRES_TEST_POOL_FRONT_FIT_H

#include "pool_util.h"

#include <criterion/criterion.h>

/* Runs the scenario on `pool` (new, default front cache, alignment 256) and stream s, and frees
 * what it allocated; the caller releases the pool. */
static inline void front_fit_looks_below_the_top(mr_allocator *pool, mr_stream *s) {
  const size_t a_size = 130 * 1024, b_size = 129 * 1024, c_size = 2 * 1024;
  void *a = alloc_ok(pool, a_size, s), *b = alloc_ok(pool, b_size, s),
       *c = alloc_ok(pool, c_size, s);
  free_ok(pool, a, a_size, s);
  free_ok(pool, b, b_size, s);
  free_ok(pool, c, c_size, s);
  const uint64_t splits = pool_stats(pool).splits;
  void *q = alloc_ok(pool, a_size, s);
  cr_expect_eq(q, a, "the allocation of 130 KiB got %p, not the 130 KiB block below the top (%p)",
               q, a);
  cr_expect_eq(pool_stats(pool).splits, splits, "the core served it (a split)");
  validate_ok(pool);
  free_ok(pool, q, a_size, s);
}

#endif
