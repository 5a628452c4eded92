/* Helpers of the caching-pool suites over a GPU (test_cuda_pool.c, test_cuda_pool_growth.c):
 * the device allocator they build pools on, pools, streams, and device memory read back.
 * Header-only; include it only where MEMRES_HAVE_CUDA is set. */
#ifndef MEMRES_TEST_CUDA_POOL_UTIL_H
#define MEMRES_TEST_CUDA_POOL_UTIL_H

#include "pool_util.h"

#include <memres/cuda.h>

#include <criterion/criterion.h>

#include <stdlib.h>

static inline mr_allocator *device_upstream(void) {
  mr_allocator *up = NULL;
  mr_status st =
      mr_device_allocator_create(&up, 0, &(mr_device_options){MR_DEVICE_DEFAULT_POOL, 0});
  if (st != MR_OK) /* no mempool support: whatever the device offers */
    st = mr_device_allocator_create(&up, 0, &(mr_device_options){MR_DEVICE_AUTO, 0});
  cr_assert_eq(st, MR_OK, "device allocator: %s", mr_last_error());
  return up;
}

static inline mr_allocator *make_pool(mr_allocator *up, mr_caching_pool_options o) {
  mr_allocator *pool = NULL;
  if (!o.stats_slack)
    o.stats_slack = 1;
  cr_assert_eq(mr_caching_pool_create(&pool, up, &o), MR_OK, "pool: %s", mr_last_error());
  return pool;
}

static inline mr_stream *new_stream(void) {
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK, "%s", mr_last_error());
  return s;
}

/* Releases a test's pool, its streams (b may be NULL) and the pool's upstream. */
static inline void release_all(mr_allocator *pool, mr_stream *a, mr_stream *b, mr_allocator *up) {
  mr_allocator_release(pool);
  mr_stream_release(a);
  mr_stream_release(b);
  mr_allocator_release(up);
}

/* The end of a test on one stream: its work done, the pool consistent, everything released. */
static inline void finish_one_stream(mr_allocator *pool, mr_stream *a, mr_allocator *up) {
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  cr_expect_eq(mr_caching_pool_validate(pool), MR_OK, "%s", mr_last_error());
  release_all(pool, a, NULL, up);
}

/* A scenario of the pool suites (tests/support/pool_*.h) on a new pool with options o over
 * device memory, on one stream, then finish_one_stream. */
static inline void on_one_stream(mr_caching_pool_options o,
                                 void (*scenario)(mr_allocator *, mr_stream *)) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, o);
  mr_stream *a = new_stream();
  scenario(pool, a);
  finish_one_stream(pool, a, up);
}

/* Copy n bytes of device memory back and check every byte is v. */
static inline int device_bytes_are(const void *dev, int v, size_t n) {
  unsigned char *h = malloc(n);
  cr_assert_not_null(h);
  cr_assert_eq(cudaMemcpy(h, dev, n, cudaMemcpyDeviceToHost), cudaSuccess);
  int ok = bytes_are(h, v, n);
  free(h);
  return ok;
}

#endif
