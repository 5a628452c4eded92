/* How the caching pool grows: the size of each segment it takes from upstream under each growth
 * policy, over host memory (a recording upstream says what was asked). test_cuda_pool checks the
 * default policy over device memory. */
#include "pool_util.h"

#include <criterion/criterion.h>

#include <inttypes.h>

#define MiB ((size_t)1024 * 1024)

typedef struct fixture {
  mr_allocator *rec_alloc, *pool;
  recorder *rec;
} fixture;

static void open_pool(fixture *f, mr_growth growth) {
  cr_assert_eq(recorder_create(&f->rec_alloc, &f->rec, NULL, 256, 0), MR_OK);
  mr_caching_pool_options o = {.growth = growth, .large_segment_min = 20 * MiB};
  cr_assert_eq(mr_caching_pool_create(&f->pool, f->rec_alloc, &o), MR_OK, "%s", mr_last_error());
}

static void close_pool(fixture *f) {
  mr_allocator_release(f->pool);
  cr_expect_eq(recorder_live_segments(f->rec), 0, "segments left upstream");
  mr_allocator_release(f->rec_alloc);
}

/* Allocates `size` (no front cache or free block can serve it: every earlier block is live) and
 * returns the bytes the pool took from upstream for it. */
static uint64_t grows_by(fixture *f, size_t size, void **p) {
  uint64_t before = recorder_live_bytes(f->rec);
  mr_status st = mr_alloc_async(f->pool, size, NULL, p);
  cr_assert_eq(st, MR_OK, "alloc(%zu): %s", size, mr_last_error());
  return recorder_live_bytes(f->rec) - before;
}

Test(pool_growth, fixed_takes_the_minimum_then_room_for_one_more) {
  fixture f;
  open_pool(&f, MR_GROWTH_FIXED);
  void *p[4];
  /* at or below the minimum: one minimum-sized segment */
  cr_expect_eq(grows_by(&f, 3 * MiB, &p[0]), 20 * MiB);
  cr_expect_eq(grows_by(&f, 18 * MiB, &p[1]), 20 * MiB, "the first segment had 17 MiB left");
  /* above it: the request rounded to 2 MiB, and as much again */
  cr_expect_eq(grows_by(&f, 30 * MiB, &p[2]), 60 * MiB);
  /* the extra is at most 4 minimums */
  cr_expect_eq(grows_by(&f, 200 * MiB + 1, &p[3]), 202 * MiB + 80 * MiB);
  cr_expect_eq(mr_caching_pool_validate(f.pool), MR_OK, "%s", mr_last_error());
  mr_free_async(f.pool, p[0], 3 * MiB, NULL);
  mr_free_async(f.pool, p[1], 18 * MiB, NULL);
  mr_free_async(f.pool, p[2], 30 * MiB, NULL);
  mr_free_async(f.pool, p[3], 200 * MiB + 1, NULL);
  close_pool(&f);
}

Test(pool_growth, fixed_room_is_used_by_the_next_request) {
  fixture f;
  open_pool(&f, MR_GROWTH_FIXED);
  void *a, *b;
  cr_expect_eq(grows_by(&f, 30 * MiB, &a), 60 * MiB);
  cr_expect_eq(grows_by(&f, 30 * MiB, &b), 0, "the second 30 MiB fits the first segment's room");
  mr_free_async(f.pool, a, 30 * MiB, NULL);
  mr_free_async(f.pool, b, 30 * MiB, NULL);
  close_pool(&f);
}

Test(pool_growth, exact_takes_the_request_rounded_to_2_mib) {
  fixture f;
  open_pool(&f, MR_GROWTH_EXACT);
  void *p[2];
  cr_expect_eq(grows_by(&f, 3 * MiB, &p[0]), 4 * MiB);
  cr_expect_eq(grows_by(&f, 30 * MiB + 1, &p[1]), 32 * MiB);
  mr_free_async(f.pool, p[0], 3 * MiB, NULL);
  mr_free_async(f.pool, p[1], 30 * MiB + 1, NULL);
  close_pool(&f);
}

Test(pool_growth, double_doubles_the_last_segment) {
  fixture f;
  open_pool(&f, MR_GROWTH_DOUBLE);
  void *p[3];
  cr_expect_eq(grows_by(&f, 19 * MiB, &p[0]), 20 * MiB);
  cr_expect_eq(grows_by(&f, 21 * MiB, &p[1]), 40 * MiB);
  cr_expect_eq(grows_by(&f, 41 * MiB, &p[2]), 80 * MiB);
  mr_free_async(f.pool, p[0], 19 * MiB, NULL);
  mr_free_async(f.pool, p[1], 21 * MiB, NULL);
  mr_free_async(f.pool, p[2], 41 * MiB, NULL);
  close_pool(&f);
}
