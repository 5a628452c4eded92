/* Helpers for the GPU suites that call the CUDA runtime themselves (include only where
 * MEMRES_HAVE_CUDA is set, after <criterion/criterion.h>). */
#ifndef MEMRES_TEST_CUDA_UTIL_H
#define MEMRES_TEST_CUDA_UTIL_H

#include <memres/cuda.h>

#include <criterion/criterion.h>
#include <stdint.h>

/* The calling thread's current CUDA device. */
static inline int current_device(void) {
  int d = -1;
  cr_assert_eq(cudaGetDevice(&d), cudaSuccess);
  return d;
}

/* Whether device 0 supports stream-ordered memory pools. */
static inline int pools_supported(void) {
  int v = 0;
  cr_assert_eq(cudaDeviceGetAttribute(&v, cudaDevAttrMemoryPoolsSupported, 0), cudaSuccess);
  return v;
}

static const mr_device_backend k_backends[] = {MR_DEVICE_AUTO, MR_DEVICE_DEFAULT_POOL,
                                               MR_DEVICE_PRIVATE_POOL, MR_DEVICE_MALLOC};

/* A device allocator of backend b on device 0 (skips the test where the device lacks pools). */
static inline mr_allocator *device_alloc(mr_device_backend b, uint64_t threshold) {
  mr_allocator *a = NULL;
  mr_device_options o = {.backend = b, .release_threshold = threshold};
  mr_status st = mr_device_allocator_create(&a, 0, &o);
  if (st == MR_ERR_UNSUPPORTED && !pools_supported())
    cr_skip_test("device 0 has no mempool support");
  cr_assert_eq(st, MR_OK, "backend %d: %s", (int)b, mr_last_error());
  return a;
}

#endif
