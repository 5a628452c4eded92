/* The caching pool over host memory with manual streams: stream order (no early reuse across
 * streams under each policy, reuse once events complete, the wait policy, same-stream reuse,
 * pending blocks). Validation and statistics: test_pool_checks.c; options: test_pool_options.c. */
#include "pool_fixture.h"
#include "pool_small_cache.h"
#include "pool_take_larger.h"
#include "pool_take_over.h"
#include "pool_turns.h"

#include <string.h>

TestSuite(pool_streams, .init = setup, .fini = teardown);

/* ---- stream order ---------------------------------------------------------------------------- */

/* A block freed on A (work pending) never reaches B: not by address, and B's writes do not touch
 * A's bytes. Sizes: a small block, and a large one that fills its own segment (growth EXACT). */
static void no_early_reuse(mr_cross_stream_policy policy, size_t size) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){
      .cross_stream = policy, .growth = MR_GROWTH_EXACT, .front_cache_bytes = NO_FRONT_CACHE});
  void *p = alloc_ok(pool, size, g_a);
  memset(p, 0xA5, size); /* A's work on its block */
  free_ok(pool, p, size, g_a);
  for (int i = 0; i < 4; i++) { /* several tries, each keeping the last alive */
    void *q = alloc_ok(pool, size, g_b);
    cr_assert_not(ranges_overlap(p, size, q, size), "B got %p (%zu) overlapping A's pending %p", q,
                  size, p);
    memset(q, 0xB6, size);
    cr_assert(bytes_are(p, 0xA5, size), "A's pending block was written while pending");
    if (i < 3)
      free_ok(pool, q, size, g_b);
    else {
      validate_ok(pool);
      free_ok(pool, q, size, g_b);
    }
  }
  /* The NULL stream (host order) may not take it either. */
  void *n = alloc_ok(pool, size, NULL);
  cr_assert_not(ranges_overlap(p, size, n, size), "NULL stream got A's pending block");
  free_ok(pool, n, size, NULL);
  validate_ok(pool);
  release_pool(pool);
}

Test(pool_streams, events_no_early_reuse_small) { no_early_reuse(MR_CROSS_STREAM_EVENTS, 4 * KiB); }
Test(pool_streams, events_no_early_reuse_large) { no_early_reuse(MR_CROSS_STREAM_EVENTS, 4 * MiB); }
Test(pool_streams, none_no_early_reuse_small) { no_early_reuse(MR_CROSS_STREAM_NONE, 4 * KiB); }
Test(pool_streams, none_no_early_reuse_large) { no_early_reuse(MR_CROSS_STREAM_NONE, 4 * MiB); }

/* A large block that is its own segment: freed on A, B keeps one block alive so the only cached
 * candidate for B's next request is A's block. */
static void after_completion(mr_cross_stream_policy policy) {
  const size_t size = 4 * MiB;
  mr_allocator *pool = make_pool((mr_caching_pool_options){
      .cross_stream = policy, .growth = MR_GROWTH_EXACT, .front_cache_bytes = NO_FRONT_CACHE});
  void *p = alloc_ok(pool, size, g_a);
  memset(p, 0xA5, size);
  free_ok(pool, p, size, g_a);
  void *q = alloc_ok(pool, size, g_b); /* not p: A is pending */
  cr_assert_not(ranges_overlap(p, size, q, size));
  manual_stream_complete(g_a);
  mr_stats before = pool_stats(pool);
  void *r = alloc_ok(pool, size, g_b);
  mr_stats after = pool_stats(pool);
  if (policy == MR_CROSS_STREAM_NONE) {
    cr_expect_not(ranges_overlap(p, size, r, size), "NONE: B got A's block after completion");
    cr_expect_eq(after.upstream_allocs, before.upstream_allocs + 1);
  } else {
    cr_expect_eq(r, p, "EVENTS: B did not reuse A's completed block (%p, expected %p)", r, p);
    cr_expect_eq(after.upstream_allocs, before.upstream_allocs);
    cr_expect_eq(after.cache_hits, before.cache_hits + 1);
  }
  cr_expect_not(ranges_overlap(q, size, r, size));
  free_ok(pool, q, size, g_b);
  free_ok(pool, r, size, g_b);
  validate_ok(pool);
  release_pool(pool);
}

Test(pool_streams, events_reuse_after_completion) { after_completion(MR_CROSS_STREAM_EVENTS); }
Test(pool_streams, none_never_crosses_streams) { after_completion(MR_CROSS_STREAM_NONE); }

/* Under NONE, no amount of completion lets B take A's cached memory (small blocks too). */
Test(pool_streams, none_never_crosses_streams_small) {
  const size_t size = 8 * KiB;
  mr_allocator *pool = make_pool((mr_caching_pool_options){.cross_stream = MR_CROSS_STREAM_NONE});
  void *pa[16];
  for (int i = 0; i < 16; i++)
    pa[i] = alloc_ok(pool, size, g_a);
  for (int i = 0; i < 16; i++)
    free_ok(pool, pa[i], size, g_a);
  manual_stream_complete(g_a);
  void *pb[16];
  for (int i = 0; i < 16; i++) {
    pb[i] = alloc_ok(pool, size, g_b);
    for (int j = 0; j < 16; j++)
      cr_assert_not(ranges_overlap(pa[j], size, pb[i], size), "B got A's block under NONE");
  }
  for (int i = 0; i < 16; i++)
    free_ok(pool, pb[i], size, g_b);
  validate_ok(pool);
  release_pool(pool);
}

/* Under WAIT, B takes A's pending block at once, made to wait on A: from the core's index without
 * a front cache, from A's front cache (taken before the pool grows) with one. */
static void wait_policy(size_t size, size_t front_cache) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.cross_stream = MR_CROSS_STREAM_WAIT,
                                                           .growth = MR_GROWTH_EXACT,
                                                           .front_cache_bytes = front_cache});
  void *p = alloc_ok(pool, size, g_a);
  free_ok(pool, p, size, g_a);
  unsigned long waits = manual_stream_waits(g_b);
  mr_stats before = pool_stats(pool);
  void *q = alloc_ok(pool, size, g_b); /* A still pending */
  mr_stats after = pool_stats(pool);
  cr_expect_eq(q, p, "WAIT: B did not take A's block (%p, expected %p)", q, p);
  cr_expect_eq(after.upstream_allocs, before.upstream_allocs);
  cr_expect_gt(manual_stream_waits(g_b), waits, "WAIT: B was not made to wait");
  cr_expect_eq(manual_stream_last_wait_owner(g_b), g_a, "WAIT: B waited on another stream");
  cr_expect_eq(manual_stream_completed(g_a), 0, "nothing completed A");
  free_ok(pool, q, size, g_b);
  validate_ok(pool);
  release_pool(pool);
}

Test(pool_streams, wait_policy_large) { wait_policy(4 * MiB, NO_FRONT_CACHE); }
Test(pool_streams, wait_policy_small) { wait_policy(4 * KiB, NO_FRONT_CACHE); }
Test(pool_streams, wait_policy_from_a_front_cache) { wait_policy(64 * KiB, 0); }

/* WAIT never makes the NULL stream (host order) take a pending block. */
Test(pool_streams, wait_policy_null_stream) {
  const size_t size = 4 * MiB;
  mr_allocator *pool = make_pool(
      (mr_caching_pool_options){.cross_stream = MR_CROSS_STREAM_WAIT, .growth = MR_GROWTH_EXACT});
  void *p = alloc_ok(pool, size, g_a);
  free_ok(pool, p, size, g_a);
  void *n = alloc_ok(pool, size, NULL);
  cr_expect_not(ranges_overlap(p, size, n, size), "NULL stream got A's pending block");
  free_ok(pool, n, size, NULL);
  release_pool(pool);
}

static void same_stream(mr_cross_stream_policy policy, mr_stream *s, size_t size,
                        size_t front_cache) {
  mr_allocator *pool = make_pool(
      (mr_caching_pool_options){.cross_stream = policy, .front_cache_bytes = front_cache});
  void *p = alloc_ok(pool, size, s);
  free_ok(pool, p, size, s);
  mr_stats before = pool_stats(pool);
  void *q = alloc_ok(pool, size, s);
  mr_stats after = pool_stats(pool);
  cr_expect_eq(q, p, "same-stream reuse gave %p, expected %p", q, p);
  cr_expect_eq(after.cache_hits, before.cache_hits + 1);
  cr_expect_eq(after.upstream_allocs, before.upstream_allocs);
  free_ok(pool, q, size, s);
  validate_ok(pool);
  release_pool(pool);
}

Test(pool_streams, same_stream_reuse_immediate) {
  mr_cross_stream_policy pol[] = {MR_CROSS_STREAM_EVENTS, MR_CROSS_STREAM_NONE,
                                  MR_CROSS_STREAM_WAIT};
  size_t sizes[] = {256, 4 * KiB, 3 * MiB};
  size_t fronts[] = {0, NO_FRONT_CACHE, SIZE_MAX};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      for (int k = 0; k < 2; k++) {
        same_stream(pol[i], g_a, sizes[j], fronts[k]);
        same_stream(pol[i], NULL, sizes[j], fronts[k]);
      }
}

/* A block freed on A while pending stays A's, whatever B frees meanwhile. */
Test(pool_streams, many_pending_blocks) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  enum { N = 64 };
  void *pa[N], *pb[N];
  size_t sz[N];
  for (int i = 0; i < N; i++) {
    sz[i] = 256 * (size_t)(1 + i % 7);
    pa[i] = alloc_ok(pool, sz[i], g_a);
    memset(pa[i], i, sz[i]);
  }
  for (int i = 0; i < N; i++)
    free_ok(pool, pa[i], sz[i], g_a);
  for (int i = 0; i < N; i++) {
    pb[i] = alloc_ok(pool, sz[i], g_b);
    for (int j = 0; j < N; j++)
      cr_assert_not(ranges_overlap(pa[j], sz[j], pb[i], sz[i]));
    memset(pb[i], 0xEE, sz[i]);
  }
  for (int i = 0; i < N; i++)
    cr_assert(bytes_are(pa[i], i, sz[i]), "pending block %d overwritten", i);
  for (int i = 0; i < N; i++)
    free_ok(pool, pb[i], sz[i], g_b);
  validate_ok(pool);
  release_pool(pool);
}

/* ---- streams that take turns ----------------------------------------------------------------- */

/* The work before the hand-off is done when the next stream starts (its own stays in flight). */
static void manual_handoff(mr_stream *from, mr_stream *to) {
  turns_order(from, to);
  manual_stream_complete(from);
}

static void host_use(void *p, size_t size, mr_stream *s) {
  (void)s;
  memset(p, 0x5A, size);
}

/* See pool_turns.h; over a GPU: cuda_pool/streams_in_turn_share_one_working_set. */
Test(pool_streams, streams_in_turn_share_one_working_set) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  mr_stream *s[TURNS_STREAMS] = {g_a, g_b};
  for (int i = 2; i < TURNS_STREAMS; i++)
    cr_assert_eq(manual_stream_create(&s[i]), MR_OK);
  turns_share_one_working_set(pool, s, manual_handoff, host_use, 400);
  for (int i = 0; i < TURNS_STREAMS; i++)
    manual_stream_complete(s[i]);
  release_pool(pool);
  for (int i = 2; i < TURNS_STREAMS; i++)
    mr_stream_release(s[i]);
}

/* See pool_turns.h; over a GPU: cuda_pool/a_consumer_thread_does_not_hoard. */
Test(pool_streams, a_consumer_thread_does_not_hoard) {
  const size_t budget = 64 * MiB;
  mr_allocator *pool = make_pool((mr_caching_pool_options){.front_cache_bytes = budget});
  turns_across_threads(pool, budget, g_a, g_b, manual_stream_complete, 400);
  manual_stream_complete(g_a);
  manual_stream_complete(g_b);
  release_pool(pool);
}

/* See pool_small_cache.h; over a GPU: cuda_pool/a_small_cache_is_kept_while_others_allocate. */
Test(pool_streams, a_small_cache_is_kept_while_others_allocate) {
  const struct { int with_b, freed; } runs[] = {{1, 2}, {1, 8}, {0, 2}};
  for (int i = 0; i < 3; i++) {
    mr_allocator *pool = make_pool((mr_caching_pool_options){0});
    small_cache_kept_when_others_allocate(pool, g_a, runs[i].with_b ? g_b : NULL, runs[i].freed);
    manual_stream_complete(g_a);
    manual_stream_complete(g_b);
    release_pool(pool);
  }
}

/* See pool_take_larger.h; over a GPU: cuda_pool/a_taken_cache_serves_a_smaller_request. */
Test(pool_streams, a_taken_cache_serves_a_smaller_request) {
  const size_t smaller[] = {300 * KiB, 20 * KiB};
  for (int i = 0; i < 2; i++) {
    mr_allocator *pool = make_pool((mr_caching_pool_options){0});
    taken_cache_serves_a_smaller_request(pool, g_a, g_b, smaller[i], manual_stream_complete);
    manual_stream_complete(g_b);
    release_pool(pool);
  }
}

/* See pool_take_over.h; over a GPU: cuda_pool/a_taken_cache_over_budget_is_evicted. */
Test(pool_streams, a_taken_cache_over_budget_is_evicted) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.front_cache_bytes = MiB});
  taken_cache_over_budget_is_evicted(pool, g_a, g_b, manual_stream_complete);
  manual_stream_complete(g_b);
  release_pool(pool);
}

/* Taking back another stream's front cache before growing does not hand its blocks over while
 * its work is in flight: B grows instead, and gets A's blocks once A's work is done. */
Test(pool_streams, a_cache_taken_back_waits_for_its_stream) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){0});
  enum { N = 8 };
  const size_t size = 512 * KiB;
  void *pa[N], *pb[N], *pc[N];
  for (int i = 0; i < N; i++) {
    pa[i] = alloc_ok(pool, size, g_a);
    memset(pa[i], 0xA0 + i, size);
  }
  for (int i = 0; i < N; i++)
    free_ok(pool, pa[i], size, g_a); /* A's work on them is still in flight */
  const mr_stats before = pool_stats(pool);
  for (int i = 0; i < N; i++) {
    pb[i] = alloc_ok(pool, size, g_b);
    for (int j = 0; j < N; j++)
      cr_assert_not(ranges_overlap(pa[j], size, pb[i], size), "B got A's pending block %d", j);
    memset(pb[i], 0xEE, size);
  }
  for (int i = 0; i < N; i++)
    cr_assert(bytes_are(pa[i], 0xA0 + i, size), "A's pending block %d was written", i);
  cr_expect_gt(pool_stats(pool).bytes_reserved, before.bytes_reserved, "B grew the pool");
  validate_ok(pool);
  manual_stream_complete(g_a);
  const uint64_t reserved = pool_stats(pool).bytes_reserved;
  for (int i = 0; i < N; i++) { /* A's blocks are B's to take now, before any growth */
    pc[i] = alloc_ok(pool, size, g_b);
    int was_a = 0;
    for (int j = 0; j < N; j++)
      was_a |= pc[i] == pa[j];
    cr_expect(was_a, "allocation %d after A completed got %p, not one of A's blocks", i, pc[i]);
  }
  cr_expect_eq(pool_stats(pool).bytes_reserved, reserved, "the pool grew with A's blocks free");
  validate_ok(pool);
  for (int i = 0; i < N; i++) {
    free_ok(pool, pb[i], size, g_b);
    free_ok(pool, pc[i], size, g_b);
  }
  manual_stream_complete(g_b);
  release_pool(pool);
}
