/* The hot block: the last block freed on a stream stays in that stream's live map, marked freed,
 * and the next allocation on the stream that it fits (at most an eighth of it unused) takes it
 * back. Over host memory with manual streams; test_cuda_pool checks the same over device memory.
 * Checked: which allocation takes it, that it is never handed out twice, that a second free of
 * it (on its stream or another) is a double free, that another stream never gets it, and that
 * the pool validates and counts it right throughout. */
#include "manual_stream.h"
#include "pool_util.h"

#include <criterion/criterion.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

static mr_allocator *g_host, *g_pool;
static mr_stream *g_a, *g_b;

static void setup(void) {
  cr_assert_eq(mr_host_allocator_create(&g_host, &(mr_host_options){.alignment = 256}), MR_OK);
  cr_assert_eq(manual_stream_create(&g_a), MR_OK);
  cr_assert_eq(manual_stream_create(&g_b), MR_OK);
  cr_assert_eq(mr_caching_pool_create(&g_pool, g_host, &(mr_caching_pool_options){.stats_slack = 1}),
               MR_OK, "%s", mr_last_error());
}

static void teardown(void) {
  mr_allocator_release(g_pool);
  mr_stream_release(g_a);
  mr_stream_release(g_b);
  mr_allocator_release(g_host);
}

TestSuite(pool_hot, .init = setup, .fini = teardown);

static void *take(size_t size, mr_stream *s) {
  void *p = NULL;
  mr_status st = mr_alloc_async(g_pool, size, s, &p);
  cr_assert_eq(st, MR_OK, "alloc(%zu): %s", size, mr_last_error());
  return p;
}

static void give(void *p, size_t size, mr_stream *s) {
  mr_status st = mr_free_async(g_pool, p, size, s);
  cr_assert_eq(st, MR_OK, "free(%p, %zu): %s", p, size, mr_last_error());
}

static void validates(void) {
  cr_assert_eq(mr_caching_pool_validate(g_pool), MR_OK, "%s", mr_last_error());
}

Test(pool_hot, the_next_allocation_that_fits_takes_it_back) {
  size_t sizes[] = {256, 64 * KiB, 4 * MiB};
  for (int i = 0; i < 3; i++) {
    void *p = take(sizes[i], g_a);
    give(p, sizes[i], g_a);
    /* a little smaller still fits (same rounded size, or at most an eighth unused) */
    void *q = take(sizes[i] - sizes[i] / 16, g_a);
    cr_expect_eq(q, p, "size %zu: the block just freed was not reused", sizes[i]);
    give(q, sizes[i] - sizes[i] / 16, g_a);
    validates();
  }
}

Test(pool_hot, a_much_smaller_request_leaves_it_alone) {
  void *p = take(64 * KiB, g_a);
  give(p, 64 * KiB, g_a);
  void *small = take(4 * KiB, g_a);
  cr_expect_neq(small, p, "a 4 KiB request took the freed 64 KiB block");
  void *again = take(64 * KiB, g_a);
  cr_expect_eq(again, p, "the freed 64 KiB block went elsewhere");
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.live_blocks, 2);
  cr_expect_eq(s.allocs, 3);
  cr_expect_eq(s.frees, 1);
  cr_expect_eq(s.bytes_requested, 68 * KiB);
  give(small, 4 * KiB, g_a);
  give(again, 64 * KiB, g_a);
  validates();
  cr_expect_eq(pool_stats(g_pool).live_blocks, 0);
}

Test(pool_hot, freeing_it_again_is_a_double_free) {
  void *p = take(4 * KiB, g_a);
  give(p, 4 * KiB, g_a);
  cr_expect_eq(mr_free_async(g_pool, p, 4 * KiB, g_a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  cr_expect_eq(mr_free_async(g_pool, p, 4 * KiB, g_b), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  cr_expect_eq(mr_free_async(g_pool, p, 0, g_a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  validates();
  /* the refused frees filed it in the front cache: the next allocation of its size takes it */
  void *again = take(4 * KiB, g_a);
  cr_expect_eq(again, p);
  give(again, 4 * KiB, g_a);
  /* still handed out once only */
  void *q = take(4 * KiB, g_a), *r = take(4 * KiB, g_a);
  cr_expect(q != r);
  give(q, 4 * KiB, g_a);
  give(r, 4 * KiB, g_a);
  validates();
}

Test(pool_hot, a_wrong_size_free_leaves_it_and_the_block_alone) {
  void *p = take(4 * KiB, g_a), *q = take(4 * KiB, g_a);
  give(p, 4 * KiB, g_a); /* p is hot */
  cr_expect_eq(mr_free_async(g_pool, q, 8 * KiB, g_a), MR_ERR_INVALID_ARG, "%s", mr_last_error());
  validates();
  give(q, 4 * KiB, g_a);
  cr_expect_eq(take(4 * KiB, g_a), q, "the last block freed is the hot one");
  cr_expect_eq(take(4 * KiB, g_a), p, "the one before went to the front cache");
  give(p, 4 * KiB, g_a);
  give(q, 4 * KiB, g_a);
  validates();
}

Test(pool_hot, another_stream_never_gets_it) {
  void *p = take(4 * KiB, g_a);
  manual_stream_submit(g_a); /* work on A still runs */
  give(p, 4 * KiB, g_a);
  void *q = take(4 * KiB, g_b);
  cr_expect_neq(q, p, "B got a block A may still use");
  give(q, 4 * KiB, g_b);
  validates(); /* files A's hot block in A's front cache */
  void *r = take(4 * KiB, g_b);
  cr_expect_neq(r, p, "B got A's cached block");
  give(r, 4 * KiB, g_b);
  manual_stream_complete(g_a);
}

Test(pool_hot, freed_on_another_stream_it_is_that_streams_hot_block) {
  void *p = take(4 * KiB, g_a);
  give(p, 4 * KiB, g_b); /* allocated on A, freed on B: B's from now on */
  cr_expect_eq(take(4 * KiB, g_b), p);
  give(p, 4 * KiB, g_b);
  void *q = take(4 * KiB, g_a);
  cr_expect_neq(q, p, "A got the block B freed");
  give(q, 4 * KiB, g_a);
  validates();
}
