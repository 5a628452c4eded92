/* The fixture of the pool suites over host memory (header-only, one per test binary): a
 * 256-byte aligned host allocator under a recording upstream, two manual streams, and checked
 * pool helpers. A suite uses it with TestSuite(name, .init = setup, .fini = teardown). */
#ifndef MEMRES_TEST_POOL_FIXTURE_H
#define MEMRES_TEST_POOL_FIXTURE_H

#include "manual_stream.h"
#include "pool_util.h"

#include <criterion/criterion.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)
/* 1 byte of front cache disables it in effect (every block is larger); SIZE_MAX, the documented
 * way, is checked by pool_stats/front_cache_size_max_disables_it. */
#define NO_FRONT_CACHE 1

static mr_allocator *g_host; /* plain host allocator, 256-byte aligned like device memory */
static mr_allocator *g_up;   /* recorder over g_host */
static recorder *g_rec;
static mr_stream *g_a, *g_b;

static inline void setup(void) {
  cr_assert_eq(mr_host_allocator_create(&g_host, &(mr_host_options){.alignment = 256}), MR_OK);
  cr_assert_eq(recorder_create(&g_up, &g_rec, g_host, 0, 0), MR_OK);
  cr_assert_eq(manual_stream_create(&g_a), MR_OK);
  cr_assert_eq(manual_stream_create(&g_b), MR_OK);
}
static inline void teardown(void) {
  mr_stream_release(g_a);
  mr_stream_release(g_b);
  mr_allocator_release(g_up);
  mr_allocator_release(g_host);
}

static inline mr_allocator *make_pool(mr_caching_pool_options o) {
  mr_allocator *pool = NULL;
  if (o.stats_slack == 0)
    o.stats_slack = 1;
  mr_status st = mr_caching_pool_create(&pool, g_up, &o);
  cr_assert_eq(st, MR_OK, "mr_caching_pool_create: %s", mr_last_error());
  cr_assert_not_null(pool);
  return pool;
}

/* Release the pool and check the upstream got every segment back. */
static inline void release_pool(mr_allocator *pool) {
  mr_allocator_release(pool);
  cr_expect_eq(recorder_live_segments(g_rec), 0, "segments left upstream: %zu",
               recorder_live_segments(g_rec));
  cr_expect_eq(recorder_live_bytes(g_rec), 0);
  cr_expect_eq(g_rec->bad_frees, 0);
}

#endif
