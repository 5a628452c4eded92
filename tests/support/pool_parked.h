/* Scenarios shared by the pool suites over host memory (test_pool_hot.c) and over a GPU
 * (test_cuda_pool.c): parked blocks. A block freed on the stream that holds it keeps its slot in
 * that stream's live map while it waits in the front cache, marked freed (as the hot block does);
 * the allocation that takes it back rewrites that slot, and nothing else in the map. Checked
 * through the pool's own state (read while no other thread uses the pool): the map's count and
 * room stay as they are through such a free and allocation, a rehash of the map moves the parked
 * slots with everything else and the blocks come back from them, and a parked block freed again
 * is a double free that changes nothing. mr_caching_pool_validate checks every parked entry
 * against its slot. */
#ifndef MEMRES_TEST_POOL_PARKED_H
#define MEMRES_TEST_POOL_PARKED_H

#include "pool_state.h"
#include "pool_util.h"

#include <criterion/criterion.h>

/* Eight sizes of eight size classes (a front-cache bin each), none of which the next takes. */
static const size_t k_parked_sizes[8] = {3 << 10,  5 << 10,  9 << 10,   17 << 10,
                                         33 << 10, 65 << 10, 129 << 10, 257 << 10};

/* Frees and allocations of parked blocks write no slot but their own: the map holds the same
 * count and room throughout, and each block comes back at its address. */
static inline void parked_blocks_keep_their_slots(mr_allocator *pool, mr_stream *s) {
  void *p[8];
  for (int i = 0; i < 8; i++)
    p[i] = alloc_ok(pool, k_parked_sizes[i], s);
  const mr__pstream *ps = pool_stream_state(pool, s);
  const size_t count = ps->lives.count, left = ps->lives.left;
  cr_expect_eq(count, 8);
  for (int i = 0; i < 8; i++)
    free_ok(pool, p[i], k_parked_sizes[i], s);
  /* the last one freed is the hot block, the 7 before it are parked */
  cr_expect_eq(ps->parked, 7, "%zu blocks parked", ps->parked);
  cr_expect(ps->lives.count == count && ps->lives.left == left,
            "the frees changed the map: %zu blocks and room for %zu, were %zu and %zu",
            ps->lives.count, ps->lives.left, count, left);
  mr_stats st = pool_stats(pool);
  cr_expect_eq(st.live_blocks, 0);
  cr_expect_eq(st.bytes_in_use, 0);
  for (int i = 0; i < 8; i++)
    cr_expect_eq(alloc_ok(pool, k_parked_sizes[i], s), p[i], "size %zu came back elsewhere",
                 k_parked_sizes[i]);
  cr_expect_eq(ps->parked, 0);
  cr_expect(ps->lives.count == count && ps->lives.left == left,
            "taking them back changed the map: %zu blocks and room for %zu, were %zu and %zu",
            ps->lives.count, ps->lives.left, count, left);
  validate_ok(pool);
  for (int i = 0; i < 8; i++)
    free_ok(pool, p[i], k_parked_sizes[i], s);
  validate_ok(pool);
}

/* Seven parked blocks (and the hot one) while 100 more blocks of 1 MiB go live: the map grows (a
 * rehash moves every slot), the parked blocks find their slots again (the pool validates), and
 * each comes back at its address. The pool must hold the 100 MiB from its creation
 * (initial_reserve, 128 MiB): a pool that grows flushes the cache of a stream that is alone (see
 * mr__core_alloc), and that unparks every block. */
static inline void parked_blocks_survive_a_rehash(mr_allocator *pool, mr_stream *s) {
  void *p[8], *more[100];
  for (int i = 0; i < 8; i++)
    p[i] = alloc_ok(pool, k_parked_sizes[i], s);
  for (int i = 0; i < 8; i++)
    free_ok(pool, p[i], k_parked_sizes[i], s);
  const mr__pstream *ps = pool_stream_state(pool, s);
  const size_t slots = ps->lives.mask + 1;
  cr_expect_eq(ps->parked, 7);
  const uint64_t reserved = pool_stats(pool).bytes_reserved;
  for (int i = 0; i < 100; i++)
    more[i] = alloc_ok(pool, 1 << 20, s);
  cr_expect_eq(pool_stats(pool).bytes_reserved, reserved, "the pool grew");
  cr_expect_gt(ps->lives.mask + 1, slots, "the map did not grow: %zu slots", slots);
  cr_expect_eq(ps->parked, 7, "a rehash lost parked blocks: %zu left", ps->parked);
  validate_ok(pool);
  for (int i = 7; i >= 0; i--) /* the hot block first, then the bins */
    cr_expect_eq(alloc_ok(pool, k_parked_sizes[i], s), p[i], "size %zu came back elsewhere",
                 k_parked_sizes[i]);
  cr_expect_eq(ps->parked, 0);
  validate_ok(pool);
  for (int i = 0; i < 8; i++)
    free_ok(pool, p[i], k_parked_sizes[i], s);
  for (int i = 0; i < 100; i++)
    free_ok(pool, more[i], 1 << 20, s);
  validate_ok(pool);
  cr_expect_eq(pool_stats(pool).live_blocks, 0);
}

/* A parked block freed again, on its stream or another, with its size or another: a double free,
 * and the block stays parked, handed out once when asked for. */
static inline void a_parked_block_freed_again_is_a_double_free(mr_allocator *pool, mr_stream *a,
                                                               mr_stream *b) {
  const size_t size = 5 << 10;
  void *p = alloc_ok(pool, size, a), *q = alloc_ok(pool, 3 << 10, a);
  free_ok(pool, p, size, a);
  free_ok(pool, q, 3 << 10, a); /* p parked, q hot */
  const mr__pstream *ps = pool_stream_state(pool, a);
  cr_expect_eq(ps->parked, 1);
  /* the first refused free parks q too, as every free on A files A's hot block first */
  cr_expect_eq(mr_free_async(pool, p, size, a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  cr_expect_eq(mr_free_async(pool, p, size, b), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  cr_expect_eq(mr_free_async(pool, p, 2 * size, a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  cr_expect_eq(ps->parked, 2, "a refused free unparked a block: %zu parked", ps->parked);
  validate_ok(pool);
  mr_stats st = pool_stats(pool);
  cr_expect_eq(st.frees, 2);
  cr_expect_eq(st.live_blocks, 0);
  cr_expect_eq(alloc_ok(pool, size, a), p);
  void *r = alloc_ok(pool, size, a);
  cr_expect_neq(r, p, "a parked block was handed out twice");
  free_ok(pool, p, size, a);
  free_ok(pool, r, size, a);
  validate_ok(pool);
}

#endif
