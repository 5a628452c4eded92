/* How the caching pool grows: the size of each segment it takes from upstream under each growth
 * policy, over host memory (a recording upstream says what was asked), and how small segments
 * grow with the pool (pool_small_growth.h, over address space alone). test_cuda_pool_growth
 * checks the default policy and the small segments' growth over device memory. */
#include "manual_stream.h"
#include "pool_small_growth.h"
#include "pool_util.h"

#include <criterion/criterion.h>

#include <inttypes.h>
#include <sys/mman.h>

#define MiB ((size_t)1024 * 1024)

typedef struct fixture {
  mr_allocator *rec_alloc, *pool;
  recorder *rec;
} fixture;

static void open_pool(fixture *f, mr_growth growth) {
  cr_assert_eq(recorder_create(&f->rec_alloc, &f->rec, NULL, 256, 0), MR_OK);
  mr_caching_pool_options o = {.growth = growth, .large_segment_min = 20 * MiB};
  cr_assert_eq(mr_caching_pool_create(&f->pool, f->rec_alloc, &o), MR_OK, "%s", mr_last_error());
}

static void close_pool(fixture *f) {
  mr_allocator_release(f->pool);
  cr_expect_eq(recorder_live_segments(f->rec), 0, "segments left upstream");
  mr_allocator_release(f->rec_alloc);
}

/* Allocates `size` (no front cache or free block can serve it: every earlier block is live) and
 * returns the bytes the pool took from upstream for it. */
static uint64_t grows_by(fixture *f, size_t size, void **p) {
  uint64_t before = recorder_live_bytes(f->rec);
  mr_status st = mr_alloc_async(f->pool, size, NULL, p);
  cr_assert_eq(st, MR_OK, "alloc(%zu): %s", size, mr_last_error());
  return recorder_live_bytes(f->rec) - before;
}

Test(pool_growth, fixed_takes_the_minimum_then_room_for_one_more) {
  fixture f;
  open_pool(&f, MR_GROWTH_FIXED);
  void *p[4];
  /* at or below the minimum: one minimum-sized segment */
  cr_expect_eq(grows_by(&f, 3 * MiB, &p[0]), 20 * MiB);
  cr_expect_eq(grows_by(&f, 18 * MiB, &p[1]), 20 * MiB, "the first segment had 17 MiB left");
  /* above it: the request rounded to 2 MiB, and as much again */
  cr_expect_eq(grows_by(&f, 30 * MiB, &p[2]), 60 * MiB);
  /* the extra is at most 4 minimums */
  cr_expect_eq(grows_by(&f, 200 * MiB + 1, &p[3]), 202 * MiB + 80 * MiB);
  cr_expect_eq(mr_caching_pool_validate(f.pool), MR_OK, "%s", mr_last_error());
  mr_free_async(f.pool, p[0], 3 * MiB, NULL);
  mr_free_async(f.pool, p[1], 18 * MiB, NULL);
  mr_free_async(f.pool, p[2], 30 * MiB, NULL);
  mr_free_async(f.pool, p[3], 200 * MiB + 1, NULL);
  close_pool(&f);
}

Test(pool_growth, fixed_room_is_used_by_the_next_request) {
  fixture f;
  open_pool(&f, MR_GROWTH_FIXED);
  void *a, *b;
  cr_expect_eq(grows_by(&f, 30 * MiB, &a), 60 * MiB);
  cr_expect_eq(grows_by(&f, 30 * MiB, &b), 0, "the second 30 MiB fits the first segment's room");
  mr_free_async(f.pool, a, 30 * MiB, NULL);
  mr_free_async(f.pool, b, 30 * MiB, NULL);
  close_pool(&f);
}

Test(pool_growth, exact_takes_the_request_rounded_to_2_mib) {
  fixture f;
  open_pool(&f, MR_GROWTH_EXACT);
  void *p[2];
  cr_expect_eq(grows_by(&f, 3 * MiB, &p[0]), 4 * MiB);
  cr_expect_eq(grows_by(&f, 30 * MiB + 1, &p[1]), 32 * MiB);
  mr_free_async(f.pool, p[0], 3 * MiB, NULL);
  mr_free_async(f.pool, p[1], 30 * MiB + 1, NULL);
  close_pool(&f);
}

Test(pool_growth, double_doubles_the_last_segment) {
  fixture f;
  open_pool(&f, MR_GROWTH_DOUBLE);
  void *p[3];
  cr_expect_eq(grows_by(&f, 19 * MiB, &p[0]), 20 * MiB);
  cr_expect_eq(grows_by(&f, 21 * MiB, &p[1]), 40 * MiB);
  cr_expect_eq(grows_by(&f, 41 * MiB, &p[2]), 80 * MiB);
  mr_free_async(f.pool, p[0], 19 * MiB, NULL);
  mr_free_async(f.pool, p[1], 21 * MiB, NULL);
  mr_free_async(f.pool, p[2], 41 * MiB, NULL);
  close_pool(&f);
}

/* ---- small segments grow with the pool (pool_small_growth.h) --------------------------------- */

/* An upstream of address space alone: a PROT_NONE mapping handed out in order, never touched (the
 * pool over host memory never touches its blocks), so that a pool can reserve GiBs here. */
typedef struct vspace {
  char *base;
  size_t cap, used;
  uint64_t live;
} vspace;

static mr_status vs_alloc(mr_allocator *self, size_t size, mr_stream *s, void **out) {
  (void)s;
  vspace *v = mr_allocator_state(self);
  size = (size + 4095) & ~(size_t)4095;
  if (size > v->cap - v->used)
    return mr_report_error(MR_ERR_OUT_OF_MEMORY, "vspace: %zu bytes left", v->cap - v->used);
  *out = v->base + v->used;
  v->used += size;
  v->live += size;
  return MR_OK;
}

static mr_status vs_free(mr_allocator *self, void *p, size_t size, mr_stream *s) {
  (void)p;
  (void)s;
  vspace *v = mr_allocator_state(self);
  v->live -= (size + 4095) & ~(size_t)4095;
  return MR_OK;
}

typedef struct sg_fixture {
  vspace space;
  mr_allocator *up, *fault, *pool;
  mr_stream *s;
} sg_fixture;

static void sg_open(sg_fixture *f, mr_caching_pool_options o, int with_fault) {
  static const mr_allocator_ops ops = {
      .version = MR_ALLOCATOR_OPS_VERSION, .alloc = vs_alloc, .free = vs_free};
  memset(f, 0, sizeof *f);
  f->space.cap = 11 * SG_GIB;
  f->space.base =
      mmap(NULL, f->space.cap, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  cr_assert_neq(f->space.base, MAP_FAILED, "no 11 GiB of address space");
  cr_assert_eq(mr_allocator_create(&f->up, &ops, &f->space, mr_device_host(), "vspace", NULL),
               MR_OK);
  mr_allocator *below = f->up;
  if (with_fault) {
    cr_assert_eq(mr_fault_allocator_create(&f->fault, f->up, NULL), MR_OK, "%s", mr_last_error());
    below = f->fault;
  }
  cr_assert_eq(mr_caching_pool_create(&f->pool, below, &o), MR_OK, "%s", mr_last_error());
  cr_assert_eq(manual_stream_create(&f->s), MR_OK);
}

static void sg_close(sg_fixture *f) {
  manual_stream_complete(f->s);
  mr_allocator_release(f->pool);
  mr_allocator_release(f->fault);
  mr_allocator_release(f->up);
  mr_stream_release(f->s);
  cr_expect_eq(f->space.live, 0, "segments left upstream");
  munmap(f->space.base, f->space.cap);
}

/* A scenario of pool_small_growth.h on a new pool with options o over address space, on one
 * manual stream. */
static void on_address_space(mr_caching_pool_options o,
                             void (*scenario)(mr_allocator *, mr_stream *)) {
  sg_fixture f;
  sg_open(&f, o, 0);
  scenario(f.pool, f.s);
  sg_close(&f);
}

static void grow_untouched(mr_allocator *pool, mr_stream *s) {
  small_segments_grow_with_the_pool(pool, s, NULL);
}

Test(pool_growth, small_segments_grow_with_the_pool) {
  on_address_space((mr_caching_pool_options){0}, grow_untouched);
}

Test(pool_growth, small_segments_stay_under_exact) {
  on_address_space((mr_caching_pool_options){.growth = MR_GROWTH_EXACT},
                   small_segments_stay_under_exact);
}

Test(pool_growth, small_segments_fit_the_maximum_reserve) {
  on_address_space((mr_caching_pool_options){.maximum_reserve = 514 * SG_MIB},
                   small_segments_fit_the_maximum_reserve);
}

Test(pool_growth, small_segments_fall_back_when_upstream_fails) {
  sg_fixture f;
  sg_open(&f, (mr_caching_pool_options){0}, 1);
  small_segments_fall_back_when_upstream_fails(f.pool, f.fault, f.s);
  sg_close(&f);
}

Test(pool_growth, records_come_from_larger_slabs) {
  on_address_space((mr_caching_pool_options){0}, records_come_from_larger_slabs);
}
