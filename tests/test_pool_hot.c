/* The hot block: the last block freed on a stream stays in that stream's live map, marked freed,
 * and the next allocation on the stream that it fits (at most an eighth of it unused) takes it
 * back. Over host memory with manual streams; test_cuda_pool checks the same over device memory.
 * Checked: which allocation takes it, that it is never handed out twice, that a second free of
 * it (on its stream or another) is a double free, that another stream never gets it, and that
 * the pool validates and counts it right throughout. The blocks freed before it wait in the front
 * cache parked in their slots, the same way (pool_parked.h). */
#include "pool_fixture.h"
#include "pool_parked.h"

static mr_allocator *g_pool;

static void pool_setup(void) {
  setup();
  g_pool = make_pool((mr_caching_pool_options){0});
}

static void pool_teardown(void) {
  release_pool(g_pool);
  teardown();
}

TestSuite(pool_hot, .init = pool_setup, .fini = pool_teardown);

Test(pool_hot, the_next_allocation_that_fits_takes_it_back) {
  size_t sizes[] = {256, 64 * KiB, 4 * MiB};
  for (int i = 0; i < 3; i++) {
    void *p = alloc_ok(g_pool, sizes[i], g_a);
    free_ok(g_pool, p, sizes[i], g_a);
    /* a little smaller still fits (same rounded size, or at most an eighth unused) */
    void *q = alloc_ok(g_pool, sizes[i] - sizes[i] / 16, g_a);
    cr_expect_eq(q, p, "size %zu: the block just freed was not reused", sizes[i]);
    free_ok(g_pool, q, sizes[i] - sizes[i] / 16, g_a);
    validate_ok(g_pool);
  }
}

Test(pool_hot, a_much_smaller_request_leaves_it_alone) {
  void *p = alloc_ok(g_pool, 64 * KiB, g_a);
  free_ok(g_pool, p, 64 * KiB, g_a);
  void *small = alloc_ok(g_pool, 4 * KiB, g_a);
  cr_expect_neq(small, p, "a 4 KiB request took the freed 64 KiB block");
  void *again = alloc_ok(g_pool, 64 * KiB, g_a);
  cr_expect_eq(again, p, "the freed 64 KiB block went elsewhere");
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.live_blocks, 2);
  cr_expect_eq(s.allocs, 3);
  cr_expect_eq(s.frees, 1);
  cr_expect_eq(s.bytes_requested, 68 * KiB);
  free_ok(g_pool, small, 4 * KiB, g_a);
  free_ok(g_pool, again, 64 * KiB, g_a);
  validate_ok(g_pool);
  cr_expect_eq(pool_stats(g_pool).live_blocks, 0);
}

Test(pool_hot, freeing_it_again_is_a_double_free) {
  void *p = alloc_ok(g_pool, 4 * KiB, g_a);
  free_ok(g_pool, p, 4 * KiB, g_a);
  cr_expect_eq(mr_free_async(g_pool, p, 4 * KiB, g_a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  cr_expect_eq(mr_free_async(g_pool, p, 4 * KiB, g_b), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  cr_expect_eq(mr_free_async(g_pool, p, 0, g_a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  validate_ok(g_pool);
  /* the refused frees filed it in the front cache: the next allocation of its size takes it */
  void *again = alloc_ok(g_pool, 4 * KiB, g_a);
  cr_expect_eq(again, p);
  free_ok(g_pool, again, 4 * KiB, g_a);
  /* still handed out once only */
  void *q = alloc_ok(g_pool, 4 * KiB, g_a), *r = alloc_ok(g_pool, 4 * KiB, g_a);
  cr_expect(q != r);
  free_ok(g_pool, q, 4 * KiB, g_a);
  free_ok(g_pool, r, 4 * KiB, g_a);
  validate_ok(g_pool);
}

Test(pool_hot, a_wrong_size_free_leaves_it_and_the_block_alone) {
  void *p = alloc_ok(g_pool, 4 * KiB, g_a), *q = alloc_ok(g_pool, 4 * KiB, g_a);
  free_ok(g_pool, p, 4 * KiB, g_a); /* p is hot */
  cr_expect_eq(mr_free_async(g_pool, q, 8 * KiB, g_a), MR_ERR_INVALID_ARG, "%s", mr_last_error());
  validate_ok(g_pool);
  free_ok(g_pool, q, 4 * KiB, g_a);
  cr_expect_eq(alloc_ok(g_pool, 4 * KiB, g_a), q, "the last block freed is the hot one");
  cr_expect_eq(alloc_ok(g_pool, 4 * KiB, g_a), p, "the one before went to the front cache");
  free_ok(g_pool, p, 4 * KiB, g_a);
  free_ok(g_pool, q, 4 * KiB, g_a);
  validate_ok(g_pool);
}

Test(pool_hot, another_stream_never_gets_it) {
  void *p = alloc_ok(g_pool, 4 * KiB, g_a);
  manual_stream_submit(g_a); /* work on A still runs */
  free_ok(g_pool, p, 4 * KiB, g_a);
  void *q = alloc_ok(g_pool, 4 * KiB, g_b);
  cr_expect_neq(q, p, "B got a block A may still use");
  free_ok(g_pool, q, 4 * KiB, g_b);
  validate_ok(g_pool); /* files A's hot block in A's front cache */
  void *r = alloc_ok(g_pool, 4 * KiB, g_b);
  cr_expect_neq(r, p, "B got A's cached block");
  free_ok(g_pool, r, 4 * KiB, g_b);
  manual_stream_complete(g_a);
}

Test(pool_hot, freed_on_another_stream_it_is_that_streams_hot_block) {
  void *p = alloc_ok(g_pool, 4 * KiB, g_a);
  free_ok(g_pool, p, 4 * KiB, g_b); /* allocated on A, freed on B: B's from now on */
  cr_expect_eq(alloc_ok(g_pool, 4 * KiB, g_b), p);
  free_ok(g_pool, p, 4 * KiB, g_b);
  void *q = alloc_ok(g_pool, 4 * KiB, g_a);
  cr_expect_neq(q, p, "A got the block B freed");
  free_ok(g_pool, q, 4 * KiB, g_a);
  validate_ok(g_pool);
}

/* A stream keeps the slot of the block it handed out last, so that freeing that block takes no
 * probe. Once the block has left that slot (freed on another stream, or freed and then filed
 * away as the hot block) a free of it on the first stream is a double free all the same. */
Test(pool_hot, the_block_handed_out_last_once_gone_is_a_double_free) {
  void *p = alloc_ok(g_pool, 4 * KiB, g_a); /* A's last */
  free_ok(g_pool, p, 4 * KiB, g_b);         /* taken out of A's map by B */
  cr_expect_eq(mr_free_async(g_pool, p, 4 * KiB, g_a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  void *q = alloc_ok(g_pool, 4 * KiB, g_a);
  void *r = alloc_ok(g_pool, 4 * KiB, g_a); /* A's last now */
  free_ok(g_pool, q, 4 * KiB, g_a);
  free_ok(g_pool, r, 4 * KiB, g_a); /* from its remembered slot; files q away */
  cr_expect_eq(mr_free_async(g_pool, r, 4 * KiB, g_a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  cr_expect_eq(mr_free_async(g_pool, q, 4 * KiB, g_a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.live_blocks, 0);
  cr_expect_eq(s.frees, 3);
  validate_ok(g_pool);
}

/* Blocks freed before the hot one wait in the front cache parked in their slots (see
 * pool_parked.h; over device memory: cuda_pool/parked_*). */
Test(pool_hot, parked_blocks_keep_their_slots) { parked_blocks_keep_their_slots(g_pool, g_a); }

Test(pool_hot, parked_blocks_survive_a_rehash) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.initial_reserve = 128 * MiB});
  parked_blocks_survive_a_rehash(pool, g_a);
  release_pool(pool);
}

Test(pool_hot, a_parked_block_freed_again_is_a_double_free) {
  a_parked_block_freed_again_is_a_double_free(g_pool, g_a, g_b);
}
