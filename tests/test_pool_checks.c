/* The caching pool over host memory with manual streams: validation of bad frees, destroy with
 * live blocks, views, trim and statistics (pool-wide and per stream). Options and user
 * allocators upstream: test_pool_options.c; stream order: test_pool_streams.c. */
#include "pool_evict.h"
#include "pool_fixture.h"
#include "pool_front_fit.h"
#include "pool_sizes.h"

#include <stdatomic.h>
#include <string.h>

TestSuite(pool_validation, .init = setup, .fini = teardown);
TestSuite(pool_stats, .init = setup, .fini = teardown);

/* ---- validation --------------------------------------------------------------------------------
 */

/* The pool keeps working: a cycle of allocs and frees, then validate. */
static void still_works(mr_allocator *pool) {
  void *p[8];
  for (int i = 0; i < 8; i++)
    p[i] = alloc_ok(pool, 1000 * (size_t)(i + 1), g_a);
  for (int i = 0; i < 8; i++)
    free_ok(pool, p[i], 1000 * (size_t)(i + 1), g_a);
  validate_ok(pool);
}

Test(pool_validation, unknown_pointer) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  void *p = alloc_ok(pool, 4096, g_a);
  mr_stats before = pool_stats(pool);
  int local;
  cr_expect_eq(mr_free_async(pool, &local, 4, g_a), MR_ERR_UNKNOWN_POINTER);
  cr_expect_eq(mr_last_status(), MR_ERR_UNKNOWN_POINTER);
  void *m = malloc(64);
  cr_expect_eq(mr_free_async(pool, m, 64, g_a), MR_ERR_UNKNOWN_POINTER);
  free(m);
  cr_expect_eq(mr_free_async(pool, (char *)p + 256, 256, g_a), MR_ERR_UNKNOWN_POINTER,
               "interior pointer");
  mr_stats after = pool_stats(pool);
  cr_expect_eq(after.frees, before.frees);
  cr_expect_eq(after.bytes_in_use, before.bytes_in_use);
  validate_ok(pool);
  free_ok(pool, p, 4096, g_a);
  still_works(pool);
  release_pool(pool);
}

Test(pool_validation, double_free) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  for (size_t front = 0; front < 2; front++) {
    mr_allocator *pl =
        front ? make_pool((mr_caching_pool_options){.front_cache_bytes = NO_FRONT_CACHE})
              : mr_allocator_retain(pool);
    void *p = alloc_ok(pl, 4096, g_a);
    void *q = alloc_ok(pl, 4096, g_a); /* keeps p from merging with what follows */
    free_ok(pl, p, 4096, g_a);
    mr_stats before = pool_stats(pl);
    cr_expect_eq(mr_free_async(pl, p, 4096, g_a), MR_ERR_DOUBLE_FREE, "front cache %s",
                 front ? "off" : "on");
    cr_expect_eq(mr_free_async(pl, p, 4096, g_b), MR_ERR_DOUBLE_FREE, "on another stream");
    mr_stats after = pool_stats(pl);
    cr_expect_eq(after.frees, before.frees);
    validate_ok(pl);
    /* q merges with p's free block: freeing q twice is an error too (either status). */
    free_ok(pl, q, 4096, g_a);
    mr_status st = mr_free_async(pl, q, 4096, g_a);
    cr_expect(st == MR_ERR_DOUBLE_FREE || st == MR_ERR_UNKNOWN_POINTER, "second free of q: %s",
              mr_status_str(st));
    validate_ok(pl);
    still_works(pl);
    mr_allocator_release(pl);
  }
  release_pool(pool);
}

Test(pool_validation, wrong_size) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  void *p = alloc_ok(pool, 1000, g_a);
  void *big = alloc_ok(pool, 2 * MiB, g_a);
  mr_stats before = pool_stats(pool);
  cr_expect_eq(mr_free_async(pool, p, 5000, g_a), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_free_async(pool, p, 100 * MiB, g_a), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_free_async(pool, big, 4 * KiB, g_a), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_free_async(pool, p, 0, g_a), MR_ERR_INVALID_ARG);
  mr_stats after = pool_stats(pool);
  cr_expect_eq(after.frees, before.frees);
  cr_expect_eq(after.live_blocks, 2);
  validate_ok(pool);
  free_ok(pool, p, 1000, g_a);
  free_ok(pool, big, 2 * MiB, g_a);
  still_works(pool);
  release_pool(pool);
}

/* Sizes on both sides of what a live-map slot packs (see pool_sizes.h; over a GPU:
 * test_cuda_pool.c). */
Test(pool_validation, sizes_packed_in_a_slot_and_past_it) {
  mr_allocator *pool16 = make_pool((mr_caching_pool_options){.alignment = 16});
  mr_allocator *pool256 = make_pool((mr_caching_pool_options){0});
  check_slot_sizes(pool16, pool256, g_a, g_b);
  still_works(pool16);
  still_works(pool256);
  mr_allocator_release(pool16);
  release_pool(pool256); /* checks that the upstream got both pools' segments back */
}

static atomic_int g_live_reports;
static atomic_int g_other_reports;
static char g_live_message[512];

static void on_error(mr_status st, const char *msg, void *arg) {
  (void)arg;
  if (st == MR_ERR_LIVE_ALLOCATIONS) {
    atomic_fetch_add(&g_live_reports, 1);
    snprintf(g_live_message, sizeof g_live_message, "%s", msg);
  } else {
    atomic_fetch_add(&g_other_reports, 1);
  }
}

Test(pool_validation, destroy_with_live_blocks) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  void *p1 = alloc_ok(pool, 100, g_a);
  void *p2 = alloc_ok(pool, 3 * MiB, g_b);
  void *p3 = alloc_ok(pool, 5000, NULL);
  free_ok(pool, alloc_ok(pool, 777, g_a), 777, g_a); /* a pending cached block too */
  (void)p1, (void)p2, (void)p3;
  cr_expect_gt(recorder_live_segments(g_rec), 0);
  mr_set_error_handler(on_error, NULL);
  mr_allocator_release(pool);
  mr_set_error_handler(NULL, NULL);
  cr_expect_eq(atomic_load(&g_live_reports), 1, "MR_ERR_LIVE_ALLOCATIONS reported %d times",
               atomic_load(&g_live_reports));
  cr_expect(strstr(g_live_message, "3") != NULL, "message should count the live blocks: %s",
            g_live_message);
  cr_expect_eq(recorder_live_segments(g_rec), 0);
  cr_expect_eq(recorder_live_bytes(g_rec), 0);
  cr_expect_eq(g_rec->bad_frees, 0);
}

Test(pool_validation, destroy_clean_reports_nothing) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  void *p = alloc_ok(pool, 100, g_a);
  free_ok(pool, p, 100, g_a); /* pending on A: destroy still releases it */
  mr_set_error_handler(on_error, NULL);
  mr_allocator_release(pool);
  mr_set_error_handler(NULL, NULL);
  cr_expect_eq(atomic_load(&g_live_reports), 0);
  cr_expect_eq(recorder_live_segments(g_rec), 0);
}

Test(pool_validation, views_share_the_pool) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  mr_allocator *va, *vb;
  cr_assert_eq(mr_allocator_bind(pool, g_a, &va), MR_OK);
  cr_assert_eq(mr_allocator_bind(pool, g_b, &vb), MR_OK);
  void *p;
  cr_assert_eq(mr_alloc(va, 4096, &p), MR_OK);
  cr_assert_eq(mr_free(va, p, 4096), MR_OK);
  void *q;
  cr_assert_eq(mr_alloc(vb, 4096, &q), MR_OK);
  cr_expect_not(ranges_overlap(p, 4096, q, 4096), "view on B got A's pending block");
  cr_assert_eq(mr_free(vb, q, 4096), MR_OK);
  mr_allocator_release(pool);
  mr_allocator_release(va);
  cr_expect_gt(recorder_live_segments(g_rec), 0, "the view on B still holds the pool");
  mr_allocator_release(vb);
  cr_expect_eq(recorder_live_segments(g_rec), 0);
}

/* ---- trim
 * ---------------------------------------------------------------------------------------- */

Test(pool_stats, trim_returns_free_segments) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.growth = MR_GROWTH_EXACT});
  void *small = alloc_ok(pool, 4 * KiB, NULL);
  void *big[3];
  for (int i = 0; i < 3; i++)
    big[i] = alloc_ok(pool, 4 * MiB, NULL);
  size_t segs = recorder_live_segments(g_rec);
  cr_expect_eq(segs, 4);
  for (int i = 0; i < 3; i++)
    free_ok(pool, big[i], 4 * MiB, NULL);
  cr_expect_eq(recorder_live_segments(g_rec), 4, "release_threshold 0 keeps everything");
  cr_expect_eq(mr_trim(pool, 0), MR_OK);
  cr_expect_eq(recorder_live_segments(g_rec), 1, "trim kept %zu segments",
               recorder_live_segments(g_rec));
  cr_expect(recorder_contains(g_rec, small, 4 * KiB));
  mr_stats s = pool_stats(pool);
  cr_expect_eq(s.bytes_reserved, recorder_live_bytes(g_rec));
  cr_expect_eq(s.upstream_frees, 3);
  free_ok(pool, small, 4 * KiB, NULL);
  cr_expect_eq(mr_trim(pool, 0), MR_OK);
  cr_expect_eq(recorder_live_segments(g_rec), 0);
  s = pool_stats(pool);
  cr_expect_eq(s.bytes_reserved, 0);
  cr_expect_eq(s.upstream_frees, s.upstream_allocs);
  still_works(pool);
  cr_expect_eq(mr_trim(pool, 0), MR_OK);
  validate_ok(pool);
  release_pool(pool);
}

Test(pool_stats, trim_keep_bytes) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.growth = MR_GROWTH_EXACT});
  void *big[4];
  for (int i = 0; i < 4; i++)
    big[i] = alloc_ok(pool, 4 * MiB, NULL);
  for (int i = 0; i < 4; i++)
    free_ok(pool, big[i], 4 * MiB, NULL);
  cr_expect_eq(mr_trim(pool, 8 * MiB), MR_OK);
  mr_stats s = pool_stats(pool);
  cr_expect_leq(s.bytes_reserved, 8 * MiB, "trim(8 MiB) kept %llu bytes",
                (unsigned long long)s.bytes_reserved);
  cr_expect_eq(s.bytes_reserved, recorder_live_bytes(g_rec));
  validate_ok(pool);
  release_pool(pool);
}

Test(pool_stats, release_threshold) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.growth = MR_GROWTH_EXACT,
                                                           .release_threshold = 4 * MiB,
                                                           .front_cache_bytes = NO_FRONT_CACHE});
  void *big[3];
  for (int i = 0; i < 3; i++)
    big[i] = alloc_ok(pool, 4 * MiB, NULL);
  for (int i = 0; i < 3; i++)
    free_ok(pool, big[i], 4 * MiB, NULL);
  mr_stats s = pool_stats(pool);
  cr_expect_leq(s.bytes_reserved, 4 * MiB,
                "POOL BUG: release_threshold 4 MiB not applied after a free (only on the next "
                "alloc): reserved %llu",
                (unsigned long long)s.bytes_reserved);
  cr_expect_eq(s.bytes_reserved, recorder_live_bytes(g_rec));
  validate_ok(pool);
  release_pool(pool);
}

/* ---- statistics -------------------------------------------------------------------------------
 */

Test(pool_stats, fresh_pool_is_zero) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  mr_stats s = pool_stats(pool);
  cr_expect_eq(s.bytes_in_use, 0);
  cr_expect_eq(s.bytes_reserved, 0);
  cr_expect_eq(s.allocs, 0);
  cr_expect_eq(s.upstream_allocs, 0);
  cr_expect_eq(recorder_live_segments(g_rec), 0);
  release_pool(pool);
}

Test(pool_stats, simple_small_scenario_exact) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.front_cache_bytes = NO_FRONT_CACHE});
  void *p = alloc_ok(pool, 1024, NULL);
  mr_stats s = pool_stats(pool);
  cr_expect_eq(s.allocs, 1);
  cr_expect_eq(s.frees, 0);
  cr_expect_eq(s.live_blocks, 1);
  cr_expect_eq(s.bytes_in_use, 1024);
  cr_expect_eq(s.bytes_requested, 1024);
  cr_expect_eq(s.peak_in_use, 1024);
  cr_expect_eq(s.bytes_reserved, 2 * MiB, "small segment default 2 MiB");
  cr_expect_eq(s.peak_reserved, 2 * MiB);
  cr_expect_eq(s.upstream_allocs, 1);
  cr_expect_eq(s.upstream_frees, 0);
  cr_expect_eq(s.cache_hits, 0);
  cr_expect_eq(s.splits, 1);
  cr_expect_eq(s.merges, 0);
  free_ok(pool, p, 1024, NULL);
  s = pool_stats(pool);
  cr_expect_eq(s.frees, 1);
  cr_expect_eq(s.live_blocks, 0);
  cr_expect_eq(s.bytes_in_use, 0);
  cr_expect_eq(s.bytes_requested, 0);
  cr_expect_eq(s.peak_in_use, 1024);
  cr_expect_eq(s.merges, 1);
  cr_expect_eq(s.bytes_reserved, 2 * MiB);
  cr_expect_eq(s.largest_free_block, 2 * MiB);
  void *q = alloc_ok(pool, 1000, NULL); /* rounds to 1024 (alignment 256) */
  cr_expect_eq(q, p);
  s = pool_stats(pool);
  cr_expect_eq(s.allocs, 2);
  cr_expect_eq(s.cache_hits, 1);
  cr_expect_eq(s.upstream_allocs, 1);
  cr_expect_eq(s.bytes_in_use, 1024);
  cr_expect_eq(s.bytes_requested, 1000);
  cr_expect_eq(s.splits, 2);
  void *r = alloc_ok(pool, 2048, NULL);
  s = pool_stats(pool);
  cr_expect_eq(s.bytes_in_use, 3072);
  cr_expect_eq(s.peak_in_use, 3072);
  cr_expect_eq(s.bytes_requested, 3048);
  cr_expect_eq(s.peak_requested, 3048);
  cr_expect_eq(s.live_blocks, 2);
  cr_expect_eq(s.splits, 3);
  free_ok(pool, q, 1000, NULL);
  free_ok(pool, r, 2048, NULL);
  s = pool_stats(pool);
  cr_expect_eq(s.bytes_in_use, 0);
  cr_expect_eq(s.peak_in_use, 3072);
  cr_expect_eq(s.frees, 3);
  cr_expect_eq(s.merges, 3, "r merges with q and the rest: 3 merges, got %llu",
               (unsigned long long)s.merges);
  cr_expect_eq(mr_trim(pool, 0), MR_OK);
  s = pool_stats(pool);
  cr_expect_eq(s.upstream_frees, 1);
  cr_expect_eq(s.bytes_reserved, 0);
  cr_expect_eq(s.peak_reserved, 2 * MiB);
  validate_ok(pool);
  release_pool(pool);
}

Test(pool_stats, simple_large_scenario_exact) {
  mr_allocator *pool = make_pool(
      (mr_caching_pool_options){.growth = MR_GROWTH_EXACT, .front_cache_bytes = NO_FRONT_CACHE});
  void *p = alloc_ok(pool, 4 * MiB, NULL);
  mr_stats s = pool_stats(pool);
  cr_expect_eq(s.bytes_reserved, 4 * MiB, "EXACT growth: 4 MiB request, 4 MiB segment");
  cr_expect_eq(s.upstream_allocs, 1);
  cr_expect_eq(s.splits, 0);
  cr_expect_eq(s.bytes_in_use, 4 * MiB);
  void *q = alloc_ok(pool, 3 * MiB, NULL); /* a 4 MiB segment, split */
  s = pool_stats(pool);
  cr_expect_eq(s.bytes_reserved, 8 * MiB);
  cr_expect_eq(s.upstream_allocs, 2);
  cr_expect_eq(s.splits, 1);
  cr_expect_eq(s.largest_free_block, 1 * MiB);
  free_ok(pool, p, 4 * MiB, NULL);
  free_ok(pool, q, 3 * MiB, NULL);
  s = pool_stats(pool);
  cr_expect_eq(s.merges, 1);
  cr_expect_eq(s.largest_free_block, 4 * MiB);
  cr_expect_eq(s.peak_in_use, 7 * MiB);
  cr_expect_eq(s.peak_reserved, 8 * MiB);
  void *r = alloc_ok(pool, 4 * MiB, NULL);
  s = pool_stats(pool);
  cr_expect_eq(s.cache_hits, 1);
  cr_expect_eq(s.upstream_allocs, 2);
  free_ok(pool, r, 4 * MiB, NULL);
  cr_expect_eq(mr_trim(pool, 0), MR_OK);
  s = pool_stats(pool);
  cr_expect_eq(s.upstream_frees, 2);
  cr_expect_eq(s.bytes_reserved, 0);
  release_pool(pool);
}

/* POOL BUG: the header says SIZE_MAX disables the front cache; the pool keeps every freed block
 * in an unbounded front cache instead (nothing merges, nothing reaches the shared structure). */
Test(pool_stats, front_cache_size_max_disables_it) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.front_cache_bytes = SIZE_MAX});
  void *p = alloc_ok(pool, 1024, NULL);
  free_ok(pool, p, 1024, NULL);
  mr_stats s = pool_stats(pool);
  cr_expect_eq(s.merges, 1,
               "POOL BUG: front_cache_bytes = SIZE_MAX did not disable the front "
               "cache: the freed block did not merge back (merges %llu)",
               (unsigned long long)s.merges);
  cr_expect_eq(s.largest_free_block, 2 * MiB);
  release_pool(pool);
}

/* front_cache_bytes bounds what a stream keeps: frees on the owner stream past the budget send
 * the oldest half of each size class to the shared structure (down to half the budget), where
 * they merge. 32 blocks of 64 KiB fill one 2 MiB segment in address order; freed in that order
 * with a 1 MiB budget, the cache is trimmed at 17 blocks (blocks 0-16: 0-8 go) and again at 17
 * (9-25: 9-17 go): blocks 0-17 are contiguous and must come back as one free block of
 * 18 x 64 KiB. Without the budget every block stays cached and nothing merges. */
Test(pool_stats, the_front_cache_keeps_to_its_budget) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.front_cache_bytes = 1 * MiB});
  void *p[32];
  cr_assert(pool_alloc_in_order(pool, NULL, p, 32, 64 * KiB), "32 x 64 KiB not carved in order: %s",
            mr_last_error());
  cr_assert_eq(pool_stats(pool).bytes_reserved, 2 * MiB);
  for (int i = 0; i < 32; i++)
    free_ok(pool, p[i], 64 * KiB, NULL);
  mr_stats s = pool_stats(pool);
  cr_expect_eq(s.bytes_in_use, 0);
  cr_expect_eq(s.largest_free_block, 18 * 64 * KiB,
               "the blocks over the budget did not reach the shared structure: largest free "
               "block %llu",
               (unsigned long long)s.largest_free_block);
  validate_ok(pool);
  /* what was evicted serves a request no cached block fits, without growing */
  void *big = alloc_ok(pool, 1 * MiB, NULL);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 2 * MiB, "the pool grew");
  free_ok(pool, big, 1 * MiB, NULL);
  validate_ok(pool);
  release_pool(pool);
}

/* An eviction keeps the newest half of every size class (see pool_evict.h; over a GPU:
 * cuda_pool/an_eviction_keeps_the_newest_half_of_each_size). */
Test(pool_stats, an_eviction_keeps_the_newest_half_of_each_size) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.front_cache_bytes = 1 * MiB});
  evict_keeps_newest_halves(pool, NULL);
  release_pool(pool);
}

/* An allocation looks below the top of its size class (see pool_front_fit.h; over a GPU:
 * cuda_pool/an_allocation_looks_below_the_top_of_its_class). */
Test(pool_stats, an_allocation_looks_below_the_top_of_its_class) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  front_fit_looks_below_the_top(pool, g_a);
  release_pool(pool);
}

Test(pool_stats, per_stream) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  void *a1 = alloc_ok(pool, 1024, g_a);
  void *a2 = alloc_ok(pool, 2048, g_a);
  void *b1 = alloc_ok(pool, 4096, g_b);
  free_ok(pool, a1, 1024, g_a);
  a1 = alloc_ok(pool, 1024, g_a); /* a cache hit on A */
  mr_stats sa = MR_STATS_INIT, sb = MR_STATS_INIT;
  cr_assert_eq(mr_caching_pool_stream_stats(pool, g_a, &sa), MR_OK, "%s", mr_last_error());
  cr_assert_eq(mr_caching_pool_stream_stats(pool, g_b, &sb), MR_OK, "%s", mr_last_error());
  cr_expect_eq(sa.allocs, 3);
  cr_expect_eq(sa.frees, 1);
  cr_expect_eq(sa.cache_hits, 2, "a2 from the rest of A's segment, a1 again from the cache");
  cr_expect_eq(sa.bytes_in_use, 3072);
  cr_expect_eq(sa.live_blocks, 2);
  cr_expect_eq(sa.peak_in_use, 3072);
  cr_expect_eq(sb.allocs, 1);
  cr_expect_eq(sb.frees, 0);
  cr_expect_eq(sb.bytes_in_use, 4096);
  cr_expect_eq(sb.cache_hits, 0);
  free_ok(pool, a1, 1024, g_a);
  free_ok(pool, a2, 2048, g_a);
  free_ok(pool, b1, 4096, g_b);
  cr_assert_eq(mr_caching_pool_stream_stats(pool, g_a, &sa), MR_OK);
  cr_expect_eq(sa.bytes_in_use, 0);
  cr_expect_eq(sa.frees, 3);
  mr_stats all = pool_stats(pool);
  cr_expect_eq(all.allocs, 4);
  cr_expect_eq(all.frees, 4);
  /* A stream the pool never saw: zeros (or an error), never garbage. */
  mr_stream *c;
  cr_assert_eq(manual_stream_create(&c), MR_OK);
  mr_stats sc = MR_STATS_INIT;
  if (mr_caching_pool_stream_stats(pool, c, &sc) == MR_OK)
    cr_expect_eq(sc.allocs, 0);
  mr_stream_release(c);
  cr_expect_eq(mr_caching_pool_stream_stats(g_up, g_a, &sa), MR_ERR_INVALID_ARG,
               "stream stats of a non-pool");
  release_pool(pool);
}

Test(pool_stats, json) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  void *p = alloc_ok(pool, 1024, NULL);
  mr_stats s = pool_stats(pool);
  char buf[1024];
  size_t n = mr_stats_json(&s, buf, sizeof buf);
  cr_expect_gt(n, 0);
  cr_expect(strstr(buf, "\"allocs\":1") != NULL, "%s", buf);
  free_ok(pool, p, 1024, NULL);
  release_pool(pool);
}
