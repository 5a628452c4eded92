/* The pool-wide peaks (peak_in_use, peak_requested) with the default statistics slack: exact
 * while one stream is the only one to allocate (its own counters are the pool's, and it publishes
 * nothing), and still right once a second stream starts and the first hands over what it kept.
 * Over host memory with manual streams; test_cuda_pool checks the same over device memory. */
#include "pool_fixture.h"

static mr_allocator *g_pool;

static void pool_setup(void) {
  setup();
  g_pool = make_pool((mr_caching_pool_options){.stats_slack = MiB} /* the default slack */);
}

static void pool_teardown(void) {
  release_pool(g_pool);
  teardown();
}

TestSuite(pool_peaks, .init = pool_setup, .fini = pool_teardown);

Test(pool_peaks, one_stream_is_exact_under_the_slack) {
  void *p[3];
  for (int i = 0; i < 3; i++)
    p[i] = alloc_ok(g_pool, 100 * 1024, g_a); /* each well under the 1 MiB slack */
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.peak_in_use, 3 * 100 * 1024);
  cr_expect_eq(s.peak_requested, 3 * 100 * 1024);
  for (int i = 0; i < 3; i++)
    free_ok(g_pool, p[i], 100 * 1024, g_a);
  s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_in_use, 0);
  cr_expect_eq(s.peak_in_use, 3 * 100 * 1024, "the peak fell with the frees");
}

Test(pool_peaks, a_second_stream_takes_over_the_first_ones_peak) {
  void *p[3];
  for (int i = 0; i < 3; i++)
    p[i] = alloc_ok(g_pool, 4 * MiB, g_a);
  for (int i = 0; i < 3; i++)
    free_ok(g_pool, p[i], 4 * MiB, g_a);
  cr_expect_eq(pool_stats(g_pool).peak_in_use, 12 * MiB);
  void *q = alloc_ok(g_pool, 4 * MiB, g_b); /* the second active stream */
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.peak_in_use, 12 * MiB, "A's peak was lost when B started");
  cr_expect_eq(s.bytes_in_use, 4 * MiB);
  for (int i = 0; i < 3; i++)
    p[i] = alloc_ok(g_pool, 4 * MiB, g_a); /* 16 MiB in use across both */
  s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_in_use, 16 * MiB);
  cr_expect_eq(s.peak_in_use, 16 * MiB);
  cr_expect_eq(s.peak_requested, 16 * MiB);
  for (int i = 0; i < 3; i++)
    free_ok(g_pool, p[i], 4 * MiB, g_a);
  free_ok(g_pool, q, 4 * MiB, g_b);
  s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_in_use, 0);
  cr_expect_eq(s.peak_in_use, 16 * MiB);
  cr_expect_eq(mr_caching_pool_validate(g_pool), MR_OK, "%s", mr_last_error());
}

Test(pool_peaks, a_free_on_another_stream_also_ends_solo) {
  void *p = alloc_ok(g_pool, 4 * MiB, g_a), *q = alloc_ok(g_pool, 4 * MiB, g_a);
  free_ok(g_pool, p, 4 * MiB, g_b); /* B's first op is a free */
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_in_use, 4 * MiB);
  cr_expect_eq(s.peak_in_use, 8 * MiB);
  void *r = alloc_ok(g_pool, 4 * MiB, g_a);
  void *t = alloc_ok(g_pool, 4 * MiB, g_a);
  s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_in_use, 12 * MiB);
  cr_expect_eq(s.peak_in_use, 12 * MiB);
  free_ok(g_pool, q, 4 * MiB, g_a);
  free_ok(g_pool, r, 4 * MiB, g_a);
  free_ok(g_pool, t, 4 * MiB, g_a);
}
