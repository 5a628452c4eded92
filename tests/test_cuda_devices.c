/* Several GPUs, the parts one GPU can check: per-device defaults (one allocator per GPU, the same
 * from every thread, allocating on its GPU), device ids past the last GPU, and
 * mr_allocator_grant_access's refusals (the allocator's own device, a missing peer). Skipped
 * (with the reason) without a GPU; the two-GPU half is in test_cuda_multi.c. */
#if !MEMRES_HAVE_CUDA
#include "gpu.h"

#include <criterion/criterion.h>

TestSuite(cuda_one, .init = require_gpu);
Test(cuda_one, needs_cuda) { cr_skip_test("memres was built without CUDA"); }

#else
#include "gpu.h"

#include "cuda_util.h"
#include <memres/cuda.h>

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

TestSuite(cuda_one, .init = require_gpu);

static int device_of(const void *p) {
  struct cudaPointerAttributes attr;
  memset(&attr, 0, sizeof attr);
  cr_assert_eq(cudaPointerGetAttributes(&attr, p), cudaSuccess);
  cr_assert_eq(attr.type, cudaMemoryTypeDevice, "device memory");
  return attr.device;
}

Test(cuda_one, device_default_is_one_allocator_per_gpu) {
  mr_allocator *a = mr_device_default(0);
  cr_assert_not_null(a, "%s", mr_last_error());
  cr_expect_eq(mr_device_default(0), a, "created once");
  cr_expect_eq(mr_allocator_device(a).kind, MR_DEVICE);
  cr_expect_eq(mr_allocator_device(a).id, 0);
  mr_device_backend b = mr_device_allocator_backend(a);
  cr_expect(b == MR_DEVICE_DEFAULT_POOL || b == MR_DEVICE_MALLOC, "MR_DEVICE_AUTO: %d", (int)b);
  void *p = NULL;
  cr_assert_eq(mr_alloc(a, 1 << 20, &p), MR_OK, "%s", mr_last_error());
  cr_expect_eq(device_of(p), 0);
  cr_assert_eq(mr_free(a, p, 1 << 20), MR_OK);
  cr_expect_eq(current_device(), 0);
}

static void *ask_default(void *arg) {
  mr_allocator **out = arg;
  *out = mr_device_default(0);
  return NULL;
}

Test(cuda_one, device_default_is_the_same_from_every_thread) {
  enum { N = 8 };
  mr_allocator *seen[N] = {0};
  pthread_t th[N];
  for (int i = 0; i < N; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, ask_default, &seen[i]), 0);
  for (int i = 0; i < N; i++)
    pthread_join(th[i], NULL);
  cr_assert_not_null(seen[0]);
  for (int i = 1; i < N; i++)
    cr_expect_eq(seen[i], seen[0], "thread %d got another allocator", i);
  cr_expect_eq(mr_device_default(0), seen[0]);
}

Test(cuda_one, device_default_of_every_gpu_and_past_the_last) {
  int n = mr_device_count();
  for (int d = 0; d < n; d++) {
    mr_allocator *a = mr_device_default(d);
    cr_assert_not_null(a, "device %d: %s", d, mr_last_error());
    cr_expect_eq(mr_allocator_device(a).id, d);
    for (int e = 0; e < d; e++)
      cr_expect_neq(mr_device_default(e), a, "one allocator per GPU");
  }
  mr_clear_error();
  cr_expect_null(mr_device_default(n));
  cr_expect_eq(mr_last_status(), MR_ERR_NO_DEVICE, "%s", mr_last_error());
  cr_expect_null(mr_device_default(-1));
  cr_expect_eq(mr_last_status(), MR_ERR_INVALID_ARG);
}

Test(cuda_one, device_default_serves_the_context) {
  mr_allocator *a = mr_device_default(0);
  cr_assert_not_null(a);
  MR_GUARD(g, a);
  cr_expect_eq(mr_context_alloc_for(mr_device_gpu(0)), a);
  mr_buffer *b = NULL;
  cr_assert_eq(mr_buffer_create(&b, 256, MR_F32, mr_device_gpu(0)), MR_OK, "%s", mr_last_error());
  cr_expect_eq(device_of(mr_buffer_data(b)), 0);
  mr_buffer_release(b);
}

static mr_allocator *make(mr_device_backend b) {
  mr_allocator *a = NULL;
  mr_device_options o = {.backend = b, .release_threshold = 0};
  mr_status st = mr_device_allocator_create(&a, 0, &o);
  if (st == MR_ERR_UNSUPPORTED)
    return NULL; /* no mempools on this GPU */
  cr_assert_eq(st, MR_OK, "%s", mr_last_error());
  return a;
}

Test(cuda_one, grant_access_to_its_own_device_or_a_missing_one_is_an_error) {
  int n = mr_device_count();
  const mr_device_backend backends[] = {MR_DEVICE_AUTO, MR_DEVICE_DEFAULT_POOL,
                                        MR_DEVICE_PRIVATE_POOL, MR_DEVICE_MALLOC};
  for (int i = 0; i < 4; i++) {
    mr_allocator *a = make(backends[i]);
    if (!a)
      continue;
    mr_allocator *pool = NULL;
    cr_assert_eq(mr_caching_pool_create(&pool, a, NULL), MR_OK);
    mr_allocator *targets[] = {a, pool};
    for (int t = 0; t < 2; t++) {
      mr_clear_error();
      cr_expect_eq(mr_allocator_grant_access(targets[t], 0), MR_ERR_INVALID_ARG, "backend %d: %s",
                   i, mr_last_error());
      cr_expect(strstr(mr_last_error(), "already on device 0"), "message: %s", mr_last_error());
      mr_clear_error();
      cr_expect_eq(mr_allocator_grant_access(targets[t], n), MR_ERR_NO_DEVICE, "%s",
                   mr_last_error());
      cr_expect_eq(mr_allocator_grant_access(targets[t], -1), MR_ERR_INVALID_ARG);
      cr_expect_eq(current_device(), 0);
    }
    mr_allocator_release(pool);
    mr_allocator_release(a);
  }
}

Test(cuda_one, pinned_memory_cannot_grant_access) {
  mr_allocator *pin = NULL;
  cr_assert_eq(mr_pinned_allocator_create(&pin, 0, NULL), MR_OK, "%s", mr_last_error());
  cr_expect_eq(mr_allocator_grant_access(pin, 0), MR_ERR_UNSUPPORTED,
               "pinned memory is mapped for every GPU already");
  mr_allocator_release(pin);
}

#endif /* MEMRES_HAVE_CUDA */
