/* Pinned and device allocators on a real GPU (skipped without one). */
#if !MEMRES_HAVE_CUDA
/* Built without CUDA: cuda.h cannot be included; the suite reports itself skipped. */
#include "gpu.h"

#include <criterion/criterion.h>

TestSuite(cuda_alloc, .init = require_gpu);
Test(cuda_alloc, needs_cuda) { cr_skip_test("memres was built without CUDA"); }

#else
#include "gpu.h"
#include "manual_stream.h"

#include "cuda_util.h"
#include <memres/cuda.h>

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(cuda_alloc, .init = require_gpu);

static const char *const k_backend_names[] = {"auto", "default_pool", "private_pool", "malloc"};

/* Host -> device -> host through the stream, checked byte by byte. */
static void round_trip(mr_stream *s, void *dev, size_t n, unsigned seed) {
  unsigned char *src = malloc(n), *dst = malloc(n);
  cr_assert_not_null(src);
  cr_assert_not_null(dst);
  for (size_t i = 0; i < n; i++)
    src[i] = (unsigned char)(i * 31 + seed);
  memset(dst, 0, n);
  cr_assert_eq(mr_stream_copy(s, dev, src, n), MR_OK, "%s", mr_last_error());
  cr_assert_eq(mr_stream_copy(s, dst, dev, n), MR_OK, "%s", mr_last_error());
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  cr_assert_eq(memcmp(src, dst, n), 0);
  free(src);
  free(dst);
}

/* ---- pinned --------------------------------------------------------------------------------- */

Test(cuda_alloc, pinned_basics) {
  int before = current_device();
  mr_allocator *a = NULL;
  cr_assert_eq(mr_pinned_allocator_create(&a, 0, NULL), MR_OK, "%s", mr_last_error());
  cr_assert_eq(mr_allocator_device(a).kind, MR_PINNED);
  cr_assert_eq(mr_allocator_device(a).id, 0);
  cr_assert_str_eq(mr_allocator_name(a), "pinned:0");
  cr_assert_eq(mr_device_allocator_backend(a), MR_DEVICE_BACKEND_COUNT_);
  enum { N = 1 << 20 };
  unsigned char *p = NULL;
  cr_assert_eq(mr_alloc(a, N, (void **)&p), MR_OK);
  struct cudaPointerAttributes attr;
  cr_assert_eq(cudaPointerGetAttributes(&attr, p), cudaSuccess);
  cr_assert_eq(attr.type, cudaMemoryTypeHost, "page-locked host memory");
  memset(p, 0x3c, N);
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK);
  void *d = NULL;
  cr_assert_eq(cudaMalloc(&d, N), cudaSuccess);
  cr_assert_eq(mr_stream_copy(s, d, p, N), MR_OK);
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  memset(p, 0, N);
  cr_assert_eq(mr_stream_copy(s, p, d, N), MR_OK);
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  for (size_t i = 0; i < N; i++)
    if (p[i] != 0x3c)
      cr_assert_fail("byte %zu: %u", i, p[i]);
  mr_stats st = MR_STATS_INIT;
  cr_assert_eq(mr_stats_get(a, &st), MR_OK);
  cr_assert_eq(st.bytes_in_use, N);
  cr_assert_eq(st.allocs, 1);
  /* a free on a CUDA stream waits for that stream's work first */
  cr_assert_eq(mr_free_async(a, p, N, s), MR_OK);
  cr_assert_eq(mr_stats_get(a, &st), MR_OK);
  cr_assert_eq(st.bytes_in_use, 0);
  cr_assert_eq(st.frees, 1);
  cr_assert_eq(current_device(), before);
  cr_assert_eq(cudaFree(d), cudaSuccess);
  mr_stream_release(s);
  mr_allocator_release(a);
}

Test(cuda_alloc, pinned_mapped_flag) {
  mr_allocator *a = NULL;
  mr_pinned_options o = {.flags = cudaHostAllocMapped | cudaHostAllocPortable};
  cr_assert_eq(mr_pinned_allocator_create(&a, 0, &o), MR_OK, "%s", mr_last_error());
  void *p = NULL, *dp = NULL;
  cr_assert_eq(mr_alloc(a, 4096, &p), MR_OK);
  unsigned int flags = 0;
  cr_assert_eq(cudaHostGetFlags(&flags, p), cudaSuccess);
  cr_assert(flags & cudaHostAllocMapped, "flags 0x%x", flags);
  cr_assert_eq(cudaHostGetDevicePointer(&dp, p, 0), cudaSuccess);
  cr_assert_not_null(dp);
  cr_assert_eq(mr_free(a, p, 4096), MR_OK);
  mr_allocator_release(a);
}

Test(cuda_alloc, pinned_any_stream_is_fine) {
  mr_allocator *a = NULL;
  mr_stream *m = NULL;
  cr_assert_eq(manual_stream_create(&m), MR_OK);
  cr_assert_eq(mr_pinned_allocator_create(&a, 0, NULL), MR_OK);
  void *p = NULL;
  cr_assert_eq(mr_alloc_async(a, 256, m, &p), MR_OK, "%s", mr_last_error());
  cr_assert_eq(mr_free_async(a, p, 256, m), MR_OK);
  mr_allocator_release(a);
  mr_stream_release(m);
}

/* ---- device: every backend ------------------------------------------------------------------ */

Test(cuda_alloc, every_backend_allocates_device_memory) {
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK);
  for (int b = 0; b < 4; b++) {
    if (k_backends[b] != MR_DEVICE_MALLOC && k_backends[b] != MR_DEVICE_AUTO && !pools_supported())
      continue;
    int before = current_device();
    mr_allocator *a = device_alloc(k_backends[b], 0);
    mr_device_backend got = mr_device_allocator_backend(a);
    if (k_backends[b] == MR_DEVICE_AUTO)
      cr_assert_eq(got, pools_supported() ? MR_DEVICE_DEFAULT_POOL : MR_DEVICE_MALLOC);
    else
      cr_assert_eq(got, k_backends[b]);
    char want[48];
    snprintf(want, sizeof want, "device:0/%s", k_backend_names[got]);
    cr_assert_str_eq(mr_allocator_name(a), want);
    cr_assert_eq(mr_allocator_device(a).kind, MR_DEVICE);
    cr_assert_eq(mr_allocator_device(a).id, 0);

    void *p = NULL, *q = NULL;
    cr_assert_eq(mr_alloc(a, 1000, &p), MR_OK, "NULL stream: %s", mr_last_error());
    cr_assert_eq(mr_alloc_async(a, 5 << 20, s, &q), MR_OK, "CUDA stream: %s", mr_last_error());
    struct cudaPointerAttributes attr;
    cr_assert_eq(cudaPointerGetAttributes(&attr, q), cudaSuccess);
    cr_assert_eq(attr.type, cudaMemoryTypeDevice);
    cr_assert_eq(attr.device, 0);
    round_trip(s, q, 5 << 20, (unsigned)b);
    cr_assert_eq(mr_stream_fill(s, p, 0, 1000), MR_OK);
    mr_stats st = MR_STATS_INIT;
    cr_assert_eq(mr_stats_get(a, &st), MR_OK);
    cr_assert_eq(st.bytes_in_use, 1000 + (5 << 20));
    cr_assert_eq(st.live_blocks, 2);
    cr_assert_eq(mr_free_async(a, q, 5 << 20, s), MR_OK);
    cr_assert_eq(mr_free(a, p, 1000), MR_OK);
    cr_assert_eq(mr_stream_synchronize(s), MR_OK);
    cr_assert_eq(mr_stats_get(a, &st), MR_OK);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_eq(st.peak_in_use, 1000 + (5 << 20));
    cr_assert_eq(st.allocs, 2);
    cr_assert_eq(st.frees, 2);
    cr_assert_eq(mr_trim(a, 0), MR_OK);
    cr_assert_eq(current_device(), before, "backend %s", k_backend_names[b]);
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    mr_allocator_release(a);
  }
  mr_stream_release(s);
}

Test(cuda_alloc, bound_view_allocates_on_its_stream) {
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK);
  mr_allocator *a = device_alloc(MR_DEVICE_PRIVATE_POOL, UINT64_MAX), *v = NULL;
  cr_assert_eq(mr_allocator_bind(a, s, &v), MR_OK);
  mr_allocator_release(a);
  void *p = NULL;
  cr_assert_eq(mr_alloc(v, 1 << 20, &p), MR_OK, "%s", mr_last_error());
  round_trip(s, p, 1 << 20, 9);
  cr_assert_eq(mr_free(v, p, 1 << 20), MR_OK);
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  mr_allocator_release(v);
  mr_stream_release(s);
}

Test(cuda_alloc, private_pool_trim_and_threshold) {
  enum { N = 64 << 20 };
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK);
  mr_allocator *keep = device_alloc(MR_DEVICE_PRIVATE_POOL, UINT64_MAX);
  void *p = NULL;
  cr_assert_eq(mr_alloc_async(keep, N, s, &p), MR_OK);
  cr_assert_eq(mr_free_async(keep, p, N, s), MR_OK);
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  mr_stats st = MR_STATS_INIT;
  cr_assert_eq(mr_stats_get(keep, &st), MR_OK);
  cr_assert_eq(st.bytes_in_use, 0);
  cr_assert_geq(st.bytes_reserved, N, "threshold UINT64_MAX keeps freed memory in the pool");
  cr_assert_geq(st.peak_reserved, N);
  cr_assert_eq(mr_trim(keep, 0), MR_OK);
  cr_assert_eq(mr_stats_get(keep, &st), MR_OK);
  cr_assert_eq(st.bytes_reserved, 0, "trim(0) gives everything back");
  cr_assert_geq(st.peak_reserved, N);

  /* the default threshold (0) of a private pool releases at the next synchronization */
  mr_allocator *lean = device_alloc(MR_DEVICE_PRIVATE_POOL, 0);
  cr_assert_eq(mr_alloc_async(lean, N, s, &p), MR_OK);
  cr_assert_eq(mr_free_async(lean, p, N, s), MR_OK);
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  cr_assert_eq(mr_stats_get(lean, &st), MR_OK);
  cr_assert_eq(st.bytes_reserved, 0);
  cr_assert_geq(st.peak_reserved, N);

  /* trim keeps what it is told to keep */
  cr_assert_eq(mr_alloc_async(keep, N, s, &p), MR_OK);
  cr_assert_eq(mr_free_async(keep, p, N, s), MR_OK);
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  cr_assert_eq(mr_trim(keep, N), MR_OK);
  cr_assert_eq(mr_stats_get(keep, &st), MR_OK);
  cr_assert_geq(st.bytes_reserved, N);
  mr_allocator_release(keep);
  mr_allocator_release(lean);
  mr_stream_release(s);
}

Test(cuda_alloc, default_pool_threshold_is_set) {
  if (!pools_supported())
    cr_skip_test("device 0 has no mempool support");
  mr_allocator *a = device_alloc(MR_DEVICE_DEFAULT_POOL, 123ull << 20);
  cudaMemPool_t pool;
  cr_assert_eq(cudaDeviceGetDefaultMemPool(&pool, 0), cudaSuccess);
  unsigned long long v = 0;
  cr_assert_eq(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &v), cudaSuccess);
  cr_assert_eq(v, 123ull << 20);
  mr_allocator_release(a);
  /* 0 leaves the pool's setting as it was */
  a = device_alloc(MR_DEVICE_DEFAULT_POOL, 0);
  cr_assert_eq(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &v), cudaSuccess);
  cr_assert_eq(v, 123ull << 20);
  mr_allocator_release(a);
}

Test(cuda_alloc, other_backends_streams_are_refused) {
  mr_stream *h = NULL, *m = NULL;
  cr_assert_eq(mr_stream_create_host(&h), MR_OK);
  cr_assert_eq(manual_stream_create(&m), MR_OK);
  for (int b = 0; b < 4; b++) {
    if (k_backends[b] != MR_DEVICE_MALLOC && k_backends[b] != MR_DEVICE_AUTO && !pools_supported())
      continue;
    mr_allocator *a = device_alloc(k_backends[b], 0);
    void *p = &p;
    cr_assert_eq(mr_alloc_async(a, 64, h, &p), MR_ERR_INVALID_ARG);
    cr_assert_null(p);
    cr_assert(strstr(mr_last_error(), "'host' stream"), "%s", mr_last_error());
    cr_assert_eq(mr_alloc_async(a, 64, m, &p), MR_ERR_INVALID_ARG);
    cr_assert(strstr(mr_last_error(), "'manual' stream"), "%s", mr_last_error());
    cr_assert_eq(mr_alloc(a, 64, &p), MR_OK);
    cr_assert_eq(mr_free_async(a, p, 64, m), MR_ERR_INVALID_ARG);
    mr_stats st = MR_STATS_INIT;
    cr_assert_eq(mr_stats_get(a, &st), MR_OK);
    cr_assert_eq(st.live_blocks, 1, "a refused free changes nothing");
    cr_assert_eq(mr_free(a, p, 64), MR_OK);
    mr_allocator_release(a);
  }
  mr_stream_release(h);
  mr_stream_release(m);
}

Test(cuda_alloc, out_of_memory_and_recovery) {
  const size_t huge = (size_t)1 << 50; /* 1 PiB */
  char size_text[32];
  snprintf(size_text, sizeof size_text, "%zu", huge);
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK);
  for (int b = 0; b < 4; b++) {
    if (k_backends[b] != MR_DEVICE_MALLOC && k_backends[b] != MR_DEVICE_AUTO && !pools_supported())
      continue;
    mr_allocator *a = device_alloc(k_backends[b], 0);
    void *p = &p;
    cr_assert_eq(mr_alloc_async(a, huge, s, &p), MR_ERR_OUT_OF_MEMORY, "backend %s: %s",
                 k_backend_names[b], mr_last_error());
    cr_assert_null(p);
    cr_assert(strstr(mr_last_error(), size_text), "the size asked: %s", mr_last_error());
    cr_assert(strstr(mr_last_error(), mr_allocator_name(a)), "the allocator: %s", mr_last_error());
    cr_assert(strstr(mr_last_error(), "cudaErrorMemoryAllocation"), "%s", mr_last_error());
    cr_assert_eq(cudaGetLastError(), cudaSuccess, "no error left behind");
    mr_stats st = MR_STATS_INIT;
    cr_assert_eq(mr_stats_get(a, &st), MR_OK);
    cr_assert_eq(st.failed_allocs, 1);
    cr_assert_eq(st.allocs, 0);
    /* the allocator still works */
    cr_assert_eq(mr_alloc_async(a, 1 << 20, s, &p), MR_OK, "%s", mr_last_error());
    round_trip(s, p, 1 << 20, 77);
    cr_assert_eq(mr_free_async(a, p, 1 << 20, s), MR_OK);
    cr_assert_eq(mr_stream_synchronize(s), MR_OK);
    mr_allocator_release(a);
  }
  mr_stream_release(s);
}

Test(cuda_alloc, pinned_out_of_memory) {
  mr_allocator *a = NULL;
  cr_assert_eq(mr_pinned_allocator_create(&a, 0, NULL), MR_OK);
  void *p = &p;
  cr_assert_eq(mr_alloc(a, (size_t)1 << 50, &p), MR_ERR_OUT_OF_MEMORY, "%s", mr_last_error());
  cr_assert_null(p);
  cr_assert(strstr(mr_last_error(), "pinned:0"), "%s", mr_last_error());
  cr_assert_eq(cudaGetLastError(), cudaSuccess);
  cr_assert_eq(mr_alloc(a, 4096, &p), MR_OK);
  cr_assert_eq(mr_free(a, p, 4096), MR_OK);
  mr_allocator_release(a);
}

Test(cuda_alloc, live_blocks_at_destroy_are_reported) {
  mr_allocator *a = device_alloc(MR_DEVICE_MALLOC, 0);
  void *p = NULL;
  cr_assert_eq(mr_alloc(a, 4096, &p), MR_OK);
  mr_clear_error();
  mr_allocator_release(a);
  cr_assert_eq(mr_last_status(), MR_ERR_LIVE_ALLOCATIONS);
  cr_assert(strstr(mr_last_error(), "1 live block"), "%s", mr_last_error());
  cr_assert_eq(cudaFree(p), cudaSuccess, "the block is still valid memory");
}

Test(cuda_alloc, bad_device_ids_and_options) {
  int n = mr_device_count();
  mr_allocator *a = (mr_allocator *)&a;
  cr_assert_eq(mr_device_allocator_create(&a, n, NULL), MR_ERR_NO_DEVICE);
  cr_assert_null(a);
  char want[32];
  snprintf(want, sizeof want, "no device %d", n);
  cr_assert(strstr(mr_last_error(), want), "%s", mr_last_error());
  cr_assert_eq(mr_pinned_allocator_create(&a, n, NULL), MR_ERR_NO_DEVICE);
  cr_assert_eq(mr_device_allocator_create(&a, -1, NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_pinned_allocator_create(&a, -1, NULL), MR_ERR_INVALID_ARG);
  mr_device_options bad = {.backend = (mr_device_backend)42};
  cr_assert_eq(mr_device_allocator_create(&a, 0, &bad), MR_ERR_INVALID_ARG);
  cr_assert_null(a);
}

#endif /* MEMRES_HAVE_CUDA */
