/* The pool-wide peaks (peak_in_use, peak_requested) with the default statistics slack: exact
 * while one stream is the only one to allocate (its own counters are the pool's, and it publishes
 * nothing), and still right once a second stream starts and the first hands over what it kept.
 * Over host memory with manual streams; test_cuda_pool checks the same over device memory. */
#include "manual_stream.h"
#include "pool_util.h"

#include <criterion/criterion.h>

#define MiB ((size_t)1024 * 1024)

static mr_allocator *g_host, *g_pool;
static mr_stream *g_a, *g_b;

static void setup(void) {
  cr_assert_eq(mr_host_allocator_create(&g_host, &(mr_host_options){.alignment = 256}), MR_OK);
  cr_assert_eq(manual_stream_create(&g_a), MR_OK);
  cr_assert_eq(manual_stream_create(&g_b), MR_OK);
  /* stats_slack left at its default (1 MiB) */
  cr_assert_eq(mr_caching_pool_create(&g_pool, g_host, NULL), MR_OK, "%s", mr_last_error());
}

static void teardown(void) {
  mr_allocator_release(g_pool);
  mr_stream_release(g_a);
  mr_stream_release(g_b);
  mr_allocator_release(g_host);
}

TestSuite(pool_peaks, .init = setup, .fini = teardown);

static void *take(size_t size, mr_stream *s) {
  void *p = NULL;
  cr_assert_eq(mr_alloc_async(g_pool, size, s, &p), MR_OK, "alloc(%zu): %s", size, mr_last_error());
  return p;
}

static void give(void *p, size_t size, mr_stream *s) {
  cr_assert_eq(mr_free_async(g_pool, p, size, s), MR_OK, "free(%zu): %s", size, mr_last_error());
}

Test(pool_peaks, one_stream_is_exact_under_the_slack) {
  void *p[3];
  for (int i = 0; i < 3; i++)
    p[i] = take(100 * 1024, g_a); /* each well under the 1 MiB slack */
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.peak_in_use, 3 * 100 * 1024);
  cr_expect_eq(s.peak_requested, 3 * 100 * 1024);
  for (int i = 0; i < 3; i++)
    give(p[i], 100 * 1024, g_a);
  s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_in_use, 0);
  cr_expect_eq(s.peak_in_use, 3 * 100 * 1024, "the peak fell with the frees");
}

Test(pool_peaks, a_second_stream_takes_over_the_first_ones_peak) {
  void *p[3];
  for (int i = 0; i < 3; i++)
    p[i] = take(4 * MiB, g_a);
  for (int i = 0; i < 3; i++)
    give(p[i], 4 * MiB, g_a);
  cr_expect_eq(pool_stats(g_pool).peak_in_use, 12 * MiB);
  void *q = take(4 * MiB, g_b); /* the second active stream */
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.peak_in_use, 12 * MiB, "A's peak was lost when B started");
  cr_expect_eq(s.bytes_in_use, 4 * MiB);
  for (int i = 0; i < 3; i++)
    p[i] = take(4 * MiB, g_a); /* 16 MiB in use across both */
  s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_in_use, 16 * MiB);
  cr_expect_eq(s.peak_in_use, 16 * MiB);
  cr_expect_eq(s.peak_requested, 16 * MiB);
  for (int i = 0; i < 3; i++)
    give(p[i], 4 * MiB, g_a);
  give(q, 4 * MiB, g_b);
  s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_in_use, 0);
  cr_expect_eq(s.peak_in_use, 16 * MiB);
  cr_expect_eq(mr_caching_pool_validate(g_pool), MR_OK, "%s", mr_last_error());
}

Test(pool_peaks, a_free_on_another_stream_also_ends_solo) {
  void *p = take(4 * MiB, g_a), *q = take(4 * MiB, g_a);
  give(p, 4 * MiB, g_b); /* B's first op is a free */
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_in_use, 4 * MiB);
  cr_expect_eq(s.peak_in_use, 8 * MiB);
  void *r = take(4 * MiB, g_a);
  void *t = take(4 * MiB, g_a);
  s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_in_use, 12 * MiB);
  cr_expect_eq(s.peak_in_use, 12 * MiB);
  give(q, 4 * MiB, g_a);
  give(r, 4 * MiB, g_a);
  give(t, 4 * MiB, g_a);
}
