/* The caching pool's growth on a real GPU (skipped without one), the twin of test_pool_growth.c
 * over device memory: segment sizes under the default policy, small segments that grow with the
 * pool, record slabs, the other kind's room before growing, and out of memory (a maximum reserve,
 * and the device's own). */
#if !MEMRES_HAVE_CUDA
/* Built without CUDA: cuda.h cannot be included; the suite reports itself skipped. */
#include "gpu.h"

#include <criterion/criterion.h>

TestSuite(cuda_pool_growth, .init = require_gpu);
Test(cuda_pool_growth, needs_cuda) { cr_skip_test("memres was built without CUDA"); }

#else
#include "cuda_pool_util.h"
#include "gpu.h"
#include "pool_small_growth.h"
#include "pool_util.h"

#include <memres/cuda.h>

#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

TestSuite(cuda_pool_growth, .init = require_gpu, .timeout = 120);

/* ---- out of memory -----------------------------------------------------------------------------
 */

Test(cuda_pool_growth, maximum_reserve_oom_and_recovery) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(
      up, (mr_caching_pool_options){.maximum_reserve = 64 * MiB, .growth = MR_GROWTH_EXACT});
  mr_stream *a = new_stream();
  void *p = alloc_ok(pool, 40 * MiB, a);
  void *q = NULL;
  cr_expect_eq(mr_alloc_async(pool, 40 * MiB, a, &q), MR_ERR_OUT_OF_MEMORY);
  cr_expect_null(q);
  cr_expect(strstr(mr_last_error(), "reserved") != NULL, "%s", mr_last_error());
  cr_expect_eq(mr_caching_pool_validate(pool), MR_OK, "%s", mr_last_error());
  free_ok(pool, p, 40 * MiB, a);
  q = alloc_ok(pool, 40 * MiB, a);
  cr_assert_eq(cudaMemsetAsync(q, 0, 40 * MiB, mr_stream_cuda(a)), cudaSuccess);
  free_ok(pool, q, 40 * MiB, a);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  cr_expect_leq(pool_stats(pool).peak_reserved, 64 * MiB);
  release_all(pool, a, NULL, up);
}

/* Larger than the GPU: upstream fails, the pool reports MR_ERR_OUT_OF_MEMORY and stays usable. */
Test(cuda_pool_growth, upstream_oom) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){0});
  mr_stream *a = new_stream();
  void *keep = alloc_ok(pool, 1 * MiB, a);
  void *p = NULL;
  mr_status st = mr_alloc_async(pool, (size_t)1 << 44, a, &p); /* 16 TiB */
  cr_expect_eq(st, MR_ERR_OUT_OF_MEMORY, "%s: %s", mr_status_str(st), mr_last_error());
  cr_expect_null(p);
  cr_expect_eq(mr_caching_pool_validate(pool), MR_OK, "%s", mr_last_error());
  p = alloc_ok(pool, 8 * MiB, a);
  free_ok(pool, p, 8 * MiB, a);
  free_ok(pool, keep, 1 * MiB, a);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  release_all(pool, a, NULL, up);
}

/* The default growth over device memory: a minimum-sized segment, then for a request above the
 * minimum the request and as much again (test_pool_growth covers every policy over host memory). */
Test(cuda_pool_growth, fixed_growth_segment_sizes) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){.large_segment_min = 20 * MiB});
  mr_stream *a = new_stream();
  void *small = alloc_ok(pool, 3 * MiB, a);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 20 * MiB);
  void *big = alloc_ok(pool, 30 * MiB, a);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 80 * MiB, "20 MiB, then 30 MiB and as much again");
  void *next = alloc_ok(pool, 30 * MiB, a);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 80 * MiB, "the second 30 MiB used the room");
  cr_expect_eq(cudaMemsetAsync(next, 0x5A, 30 * MiB, mr_stream_cuda(a)), cudaSuccess);
  free_ok(pool, next, 30 * MiB, a);
  free_ok(pool, big, 30 * MiB, a);
  free_ok(pool, small, 3 * MiB, a);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  release_all(pool, a, NULL, up);
}

/* Small segments grow with the pool, over device memory (see pool_small_growth.h; over host
 * memory: pool_growth/small_segments_*): 10 GiB reserved in 2 to 32 MiB segments, a block of a
 * 32 MiB segment written and read back; 2 MiB segments throughout under EXACT; 2 MiB when
 * 4 MiB would pass the maximum reserve, or when the device allocator fails the 4 MiB one. */
static void touch_device(void *p, size_t n, mr_stream *s) {
  cr_expect_eq(cudaMemsetAsync(p, 0x3C, n, mr_stream_cuda(s)), cudaSuccess);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(s)), cudaSuccess);
  cr_expect(device_bytes_are(p, 0x3C, n), "a block of a 32 MiB segment holds what was written");
}

Test(cuda_pool_growth, small_segments_grow_with_the_pool) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){0});
  mr_stream *a = new_stream();
  small_segments_grow_with_the_pool(pool, a, touch_device);
  finish_one_stream(pool, a, up);
}

Test(cuda_pool_growth, small_segments_stay_under_exact) {
  on_one_stream((mr_caching_pool_options){.growth = MR_GROWTH_EXACT},
                small_segments_stay_under_exact);
}

Test(cuda_pool_growth, small_segments_fit_the_maximum_reserve) {
  on_one_stream((mr_caching_pool_options){.maximum_reserve = 514 * MiB},
                small_segments_fit_the_maximum_reserve);
}

Test(cuda_pool_growth, small_segments_fall_back_when_upstream_fails) {
  mr_allocator *up = device_upstream(), *fault = NULL;
  cr_assert_eq(mr_fault_allocator_create(&fault, up, NULL), MR_OK, "%s", mr_last_error());
  mr_allocator *pool = make_pool(fault, (mr_caching_pool_options){0});
  mr_stream *a = new_stream();
  small_segments_fall_back_when_upstream_fails(pool, fault, a);
  mr_allocator_release(fault); /* the pool keeps its own reference */
  finish_one_stream(pool, a, up);
}

/* Records past the first 16,384 come from 2 MiB slabs, over device memory (see
 * pool_small_growth.h; over host memory: pool_growth/records_come_from_larger_slabs). */
Test(cuda_pool_growth, records_come_from_larger_slabs) {
  on_one_stream((mr_caching_pool_options){0}, records_come_from_larger_slabs);
}

/* The other kind's room before growing, over device memory (test_pool_options covers it over host
 * memory): a small request takes a large segment's free block, a large one a small segment's,
 * before the pool takes more from the device; the memory is usable where it lands. */
Test(cuda_pool_growth, other_kinds_room_before_growing) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){.small_limit = 4 * KiB,
                                                               .small_segment = 64 * KiB,
                                                               .large_segment_min = 2 * MiB});
  mr_stream *a = new_stream();
  void *l = alloc_ok(pool, 128 * KiB, a);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 2 * MiB, "one large segment");
  void *s1 = alloc_ok(pool, 4 * KiB, a);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 2 * MiB, "the small request used its room");
  cr_expect(within(s1, l, 2 * MiB));
  void *fill = alloc_ok(pool, 2 * MiB - 132 * KiB, a);
  void *s2 = alloc_ok(pool, 4 * KiB, a);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 2 * MiB + 64 * KiB, "then a small segment");
  void *m = alloc_ok(pool, 16 * KiB, a);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 2 * MiB + 64 * KiB,
               "the large request used the small segment's room");
  cr_expect(within(m, s2, 64 * KiB));
  cr_expect_eq(cudaMemsetAsync(s1, 0x11, 4 * KiB, mr_stream_cuda(a)), cudaSuccess);
  cr_expect_eq(cudaMemsetAsync(m, 0x22, 16 * KiB, mr_stream_cuda(a)), cudaSuccess);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  cr_expect(device_bytes_are(s1, 0x11, 4 * KiB) && device_bytes_are(m, 0x22, 16 * KiB));
  free_ok(pool, m, 16 * KiB, a);
  free_ok(pool, s2, 4 * KiB, a);
  free_ok(pool, fill, 2 * MiB - 132 * KiB, a);
  free_ok(pool, s1, 4 * KiB, a);
  free_ok(pool, l, 128 * KiB, a);
  finish_one_stream(pool, a, up);
}

#endif /* MEMRES_HAVE_CUDA */
