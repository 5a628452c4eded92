/* A scenario shared by the pool suites over host memory (test_pool_checks.c) and over a GPU
 * (test_cuda_pool.c): the sizes a live-map slot packs beside a block's address (its size in
 * units of the pool's alignment, under 65,535 units; its slack, block size minus requested
 * size, under 1 MiB) and those past either limit, which the block's record keeps instead
 * (escaped: see mr__live_slot). On both sides of each limit a free with a wrong size is refused
 * and names the size the block was allocated with, the right size frees it (on its own stream
 * or on another), the requested bytes are counted exactly, and the pool's self-check passes. */
#ifndef MEMRES_TEST_POOL_SIZES_H
#define MEMRES_TEST_POOL_SIZES_H

#include "pool_util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static inline void sizes_validate(mr_allocator *pool, const char *when) {
  cr_assert_eq(mr_caching_pool_validate(pool), MR_OK, "%s: %s", when, mr_last_error());
}

static inline void *sizes_alloc(mr_allocator *pool, size_t size, mr_stream *s) {
  uint64_t before = pool_stats(pool).bytes_requested;
  void *p = alloc_ok(pool, size, s);
  cr_expect_eq(pool_stats(pool).bytes_requested - before, size, "alloc(%zu): requested bytes",
               size);
  sizes_validate(pool, "after the alloc");
  return p;
}

/* Frees p (allocated with `size`) on s, after two frees of a wrong size that must be refused;
 * then checks the pool unless `keep_hot` (the self-check files a stream's hot block away). */
static inline void sizes_free(mr_allocator *pool, void *p, size_t size, mr_stream *s,
                              int keep_hot) {
  char want[64];
  snprintf(want, sizeof want, "allocated with %zu", size);
  const size_t wrong[2] = {size + 1, size - 1};
  for (int k = 0; k < 2; k++) {
    cr_expect_eq(mr_free_async(pool, p, wrong[k], s), MR_ERR_INVALID_ARG,
                 "free(%p, %zu) of a block of %zu", p, wrong[k], size);
    cr_expect(strstr(mr_last_error(), want), "the message does not say '%s': %s", want,
              mr_last_error());
  }
  sizes_validate(pool, "after the refused frees");
  uint64_t before = pool_stats(pool).bytes_requested;
  free_ok(pool, p, size, s);
  cr_expect_eq(before - pool_stats(pool).bytes_requested, size, "free(%zu): requested bytes", size);
  if (!keep_hot)
    sizes_validate(pool, "after the free");
}

/* pool16: alignment 16; pool256: alignment 256; both with the default front cache (256 MiB), so
 * that an 8 MiB block freed stays its stream's hot block. a, b: two streams. */
static inline void check_slot_sizes(mr_allocator *pool16, mr_allocator *pool256, mr_stream *a,
                                    mr_stream *b) {
  /* the units: 65,534 fit, 65,535 and more are escaped (16-byte units: 1 MiB - 32 bytes) */
  const struct {
    size_t size;
    int other_stream;
  } cases[] = {
      {65534 * 16 - 5, 0}, /* packed: the most units */
      {65535 * 16, 0},     /* escaped: units all ones */
      {2 * 1024 * 1024 + 5, 1},
      {65535 * 16 - 1, 1}, /* escaped, freed on the other stream (taken from a's map) */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    void *p = sizes_alloc(pool16, cases[i].size, a);
    sizes_free(pool16, p, cases[i].size, cases[i].other_stream ? b : a, 0);
  }
  /* the slack, through the hot block: 8 MiB freed then taken back for 7 MiB (1 MiB of slack:
   * escaped), then for 7 MiB + 1 (packed again), then for 8 MiB */
  const size_t M = 1024 * 1024;
  void *p = sizes_alloc(pool256, 8 * M, a);
  sizes_free(pool256, p, 8 * M, a, 1);
  const size_t again[3] = {7 * M, 7 * M + 1, 8 * M};
  for (int k = 0; k < 3; k++) {
    void *q = sizes_alloc(pool256, again[k], a);
    cr_expect_eq(q, p, "alloc(%zu) did not take back the hot block of 8 MiB", again[k]);
    sizes_free(pool256, q, again[k], a, k < 2);
  }
}

#endif
