/* Scenarios shared by the pool suites over host memory (test_pool_growth.c) and over a GPU
 * (test_cuda_pool_growth.c): small segments grow with the pool (small_segment_size in
 * caching_segments.c). Under the FIXED and DOUBLE policies a small segment is small_segment (2 MiB
 * by default) while the pool is small, and doubles while it stays at most 1/128 of what the pool
 * reserves, up to 32 MiB: with the defaults, 2 MiB segments up to 512 MiB reserved, then 4 MiB up
 * to 1 GiB, 8 MiB up to 2 GiB, 16 MiB up to 4 GiB, and 32 MiB from there on. Under EXACT it stays
 * small_segment. A maximum reserve or an upstream that cannot give the larger segment gets
 * small_segment instead.
 *
 * Each scenario allocates blocks of 1 MiB (the default small limit: two to a 2 MiB segment)
 * until the pool reserves a given amount, reading what each allocation added to the pool's
 * reserve from its statistics. Up to 10 GiB is reserved and never touched by the pool: the host
 * suite runs them over address space alone (a PROT_NONE mapping). The pool's block records grow
 * with it too: records_come_from_larger_slabs. */
#ifndef MEMRES_TEST_POOL_SMALL_GROWTH_H
#define MEMRES_TEST_POOL_SMALL_GROWTH_H

#include "../../src/alloc/caching_internal.h"
#include "pool_util.h"

#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>

#define SG_MIB ((size_t)1 << 20)
#define SG_GIB ((size_t)1 << 30)

/* The blocks a scenario allocated, freed by sg_free_all. */
typedef struct sg_blocks {
  void **v;
  size_t n, cap;
} sg_blocks;

static inline void sg_push(sg_blocks *b, void *p) {
  if (b->n == b->cap) {
    b->cap = b->cap ? 2 * b->cap : 1024;
    b->v = realloc(b->v, b->cap * sizeof *b->v);
    cr_assert_not_null(b->v);
  }
  b->v[b->n++] = p;
}

static inline void sg_free_all(mr_allocator *pool, sg_blocks *b, mr_stream *s) {
  while (b->n)
    free_ok(pool, b->v[--b->n], SG_MIB, s);
  free(b->v);
  b->v = NULL;
  b->cap = 0;
}

/* Allocates 1 MiB blocks on s until the pool reserves `until` bytes, counting the segments it
 * took by size (seg_count[k]: segments of 2^(k+1) MiB, k < 6; any other size fails the test).
 * Returns the pool's reserve. */
static inline uint64_t sg_grow_until(mr_allocator *pool, mr_stream *s, sg_blocks *b, uint64_t until,
                                     size_t seg_count[6]) {
  uint64_t reserved = pool_stats(pool).bytes_reserved;
  while (reserved < until) {
    sg_push(b, alloc_ok(pool, SG_MIB, s));
    const uint64_t now = pool_stats(pool).bytes_reserved, grown = now - reserved;
    if (grown) {
      int k = 0;
      while (k < 6 && grown != ((uint64_t)2 * SG_MIB << k))
        k++;
      cr_assert_lt(k, 6, "the pool grew by %llu bytes at %llu reserved", (unsigned long long)grown,
                   (unsigned long long)reserved);
      seg_count[k]++;
    }
    reserved = now;
  }
  return reserved;
}

/* The default options: 256 segments of 2 MiB, then 128 each of 4, 8 and 16 MiB, then 32 MiB
 * ones, which stay 32 MiB past 8 GiB (where 1/128 of the reserve is 64 MiB). touch (may be NULL)
 * checks that a block of the last (32 MiB) segment is usable. */
static inline void small_segments_grow_with_the_pool(mr_allocator *pool, mr_stream *s,
                                                     void (*touch)(void *p, size_t n,
                                                                   mr_stream *s)) {
  sg_blocks b = {0};
  size_t count[6] = {0};
  const uint64_t reserved = sg_grow_until(pool, s, &b, 10 * (uint64_t)SG_GIB, count);
  if (touch)
    touch(b.v[b.n - 1], SG_MIB, s);
  cr_expect_eq(count[0], 256, "2 MiB segments up to 512 MiB: %zu", count[0]);
  cr_expect_eq(count[1], 128, "4 MiB segments up to 1 GiB: %zu", count[1]);
  cr_expect_eq(count[2], 128, "8 MiB segments up to 2 GiB: %zu", count[2]);
  cr_expect_eq(count[3], 128, "16 MiB segments up to 4 GiB: %zu", count[3]);
  cr_expect_eq(count[4], 192, "32 MiB segments from 4 to 10 GiB: %zu", count[4]);
  cr_expect_eq(count[5], 0, "no 64 MiB segment: %zu", count[5]);
  cr_expect_eq(reserved, 10 * (uint64_t)SG_GIB);
  cr_expect_eq(b.n, reserved / SG_MIB - 31,
               "every segment filled before the next, the last (32 MiB) holding one block: %zu",
               b.n);
  validate_ok(pool);
  sg_free_all(pool, &b, s);
}

/* Under EXACT (small_segment 2 MiB): every segment 2 MiB, up to 1.5 GiB. */
static inline void small_segments_stay_under_exact(mr_allocator *pool, mr_stream *s) {
  sg_blocks b = {0};
  size_t count[6] = {0};
  sg_grow_until(pool, s, &b, 3 * (uint64_t)SG_GIB / 2, count);
  cr_expect_eq(count[0], 768, "2 MiB segments: %zu", count[0]);
  cr_expect_eq(count[1] + count[2] + count[3] + count[4] + count[5], 0, "no larger segment");
  validate_ok(pool);
  sg_free_all(pool, &b, s);
}

/* A maximum reserve of 512 MiB + 2 MiB: at 512 MiB the next segment would be 4 MiB, which does
 * not fit; the pool takes 2 MiB instead, and then fails with MR_ERR_OUT_OF_MEMORY, still whole. */
static inline void small_segments_fit_the_maximum_reserve(mr_allocator *pool, mr_stream *s) {
  sg_blocks b = {0};
  size_t count[6] = {0};
  const uint64_t reserved = sg_grow_until(pool, s, &b, 512 * (uint64_t)SG_MIB, count);
  cr_assert_eq(reserved, 512 * (uint64_t)SG_MIB);
  sg_push(&b, alloc_ok(pool, SG_MIB, s)); /* the last segment's second half */
  sg_push(&b, alloc_ok(pool, SG_MIB, s));
  cr_expect_eq(pool_stats(pool).bytes_reserved, 514 * (uint64_t)SG_MIB,
               "a 2 MiB segment, within the maximum");
  sg_push(&b, alloc_ok(pool, SG_MIB, s));
  void *p = NULL;
  cr_expect_eq(mr_alloc_async(pool, SG_MIB, s, &p), MR_ERR_OUT_OF_MEMORY, "at the maximum");
  cr_expect_null(p);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 514 * (uint64_t)SG_MIB);
  validate_ok(pool);
  sg_free_all(pool, &b, s);
}

/* An upstream that fails the 4 MiB segment (fault: its next call fails once) gives the pool a
 * 2 MiB one on the next call: the pool asks for small_segment before it gives anything back. The
 * segment after that is 4 MiB again. */
static inline void small_segments_fall_back_when_upstream_fails(mr_allocator *pool,
                                                                mr_allocator *fault, mr_stream *s) {
  sg_blocks b = {0};
  size_t count[6] = {0};
  sg_grow_until(pool, s, &b, 512 * (uint64_t)SG_MIB, count);
  sg_push(&b, alloc_ok(pool, SG_MIB, s)); /* the last segment's second half */
  const uint64_t calls = mr_fault_allocator_calls(fault);
  cr_assert_eq(mr_fault_allocator_set(fault, &(mr_fault_options){.fail_nth = 1}), MR_OK);
  sg_push(&b, alloc_ok(pool, SG_MIB, s));
  cr_expect_eq(mr_fault_allocator_failures(fault), 1, "the 4 MiB segment was asked and failed");
  cr_expect_eq(mr_fault_allocator_calls(fault), 2, "then one more call (%llu before)",
               (unsigned long long)calls);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 514 * (uint64_t)SG_MIB, "a 2 MiB segment instead");
  sg_push(&b, alloc_ok(pool, SG_MIB, s));
  sg_push(&b, alloc_ok(pool, SG_MIB, s));
  cr_expect_eq(pool_stats(pool).bytes_reserved, 518 * (uint64_t)SG_MIB, "then 4 MiB again");
  validate_ok(pool);
  sg_free_all(pool, &b, s);
}

static inline int sg_cmp_addr(const void *a, const void *b) {
  const uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return (x > y) - (x < y);
}

/* Block records come in slabs of 256 until the pool has 64 of them (16,384 records), then in
 * slabs of 2 MiB (16,384 records of 128 bytes; caching_segments.c). 20,000 live blocks of 4 KiB
 * take records from both: the pool holds 65 slabs and stays whole, and every block is its own. */
static inline void records_come_from_larger_slabs(mr_allocator *pool, mr_stream *s) {
  enum { N = 20000 };
  const size_t size = 4096;
  void **v = malloc(N * sizeof *v);
  cr_assert_not_null(v);
  for (int i = 0; i < N; i++)
    v[i] = alloc_ok(pool, size, s);
  const mr__pool *p = pool->state;
  cr_expect_eq(p->nslabs, 65, "64 slabs of 256 records, then one of 2 MiB: %zu", p->nslabs);
  cr_expect_eq(sizeof(mr__blk), 128, "a record is two cache lines");
  validate_ok(pool);
  uintptr_t *sorted = malloc(N * sizeof *sorted);
  cr_assert_not_null(sorted);
  for (int i = 0; i < N; i++)
    sorted[i] = (uintptr_t)v[i];
  qsort(sorted, N, sizeof *sorted, sg_cmp_addr);
  for (int i = 1; i < N; i++)
    cr_assert_geq(sorted[i] - sorted[i - 1], size, "two blocks overlap at %#lx",
                  (unsigned long)sorted[i]);
  free(sorted);
  for (int i = N; i-- > 0;)
    free_ok(pool, v[i], size, s);
  validate_ok(pool);
  free(v);
}

#endif
