/* Two or more GPUs: allocations and streams land on their own device whatever device is current,
 * and the caller's current device is left as it was; per-device defaults; peer access granted
 * through a pool lets GPU 1 read GPU 0's blocks; one thread per GPU, each in its own guard,
 * allocates without cross-talk. Skipped (with the reason) on fewer GPUs; the one-GPU half is in
 * test_cuda_devices.c, the parts that need no GPU in test_devices.c. */
#if !MEMRES_HAVE_CUDA
#include "gpu.h"

#include <criterion/criterion.h>

static void require_two(void) { require_gpus(2); }
TestSuite(cuda_multi, .init = require_two);
Test(cuda_multi, needs_cuda) { cr_skip_test("memres was built without CUDA"); }

#else
#include "gpu.h"

#include "cuda_util.h"
#include <memres/cuda.h>

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void require_two(void) { require_gpus(2); }
TestSuite(cuda_multi, .init = require_two);

Test(cuda_multi, allocators_restore_the_current_device) {
  cr_assert_eq(cudaSetDevice(1), cudaSuccess);
  for (int b = 0; b < 4; b++) {
    mr_allocator *a = device_alloc(k_backends[b], 0);
    cr_assert_eq(current_device(), 1);
    void *p = NULL;
    cr_assert_eq(mr_alloc(a, 4096, &p), MR_OK, "%s", mr_last_error());
    cr_assert_eq(current_device(), 1);
    struct cudaPointerAttributes attr;
    cr_assert_eq(cudaPointerGetAttributes(&attr, p), cudaSuccess);
    cr_assert_eq(attr.device, 0, "allocated on the allocator's device");
    cr_assert_eq(mr_free(a, p, 4096), MR_OK);
    cr_assert_eq(mr_trim(a, 0), MR_OK);
    cr_assert_eq(current_device(), 1);
    mr_allocator_release(a);
    cr_assert_eq(current_device(), 1);
  }
  mr_allocator *pin = NULL;
  cr_assert_eq(mr_pinned_allocator_create(&pin, 0, NULL), MR_OK);
  void *p = NULL;
  cr_assert_eq(mr_alloc(pin, 4096, &p), MR_OK);
  cr_assert_eq(mr_free(pin, p, 4096), MR_OK);
  cr_assert_eq(current_device(), 1);
  mr_allocator_release(pin);
}

Test(cuda_multi, streams_restore_the_current_device) {
  cr_assert_eq(cudaSetDevice(1), cudaSuccess);
  mr_stream *s = NULL, *w = NULL;
  mr_event *e = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK);
  cr_assert_eq(current_device(), 1);
  int on = -1;
  cr_assert_eq(cudaStreamGetDevice(mr_stream_cuda(s), &on), cudaSuccess);
  cr_assert_eq(on, 0, "created on device 0");
  cr_assert_eq(mr_event_create(&e, s), MR_OK);
  cr_assert_eq(mr_event_record(e, s), MR_OK);
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  cr_assert_eq(mr_stream_from_cuda(&w, mr_stream_cuda(s), 0), MR_OK);
  cr_assert_eq(current_device(), 1);
  mr_stream *wrong = NULL;
  cr_assert_eq(mr_stream_from_cuda(&wrong, mr_stream_cuda(s), 1), MR_ERR_INVALID_ARG,
               "a stream of device 0 declared as device 1");
  cr_assert_eq(current_device(), 1);
  mr_event_destroy(e);
  mr_stream_release(w);
  mr_stream_release(s);
  cr_assert_eq(current_device(), 1);
}

/* ---- several GPUs ------------------------------------------------------------------------------
 */

/* The GPU a pointer's memory is on, or -1 (not device memory, or the query failed). */
static int device_of(const void *p) {
  struct cudaPointerAttributes attr;
  memset(&attr, 0, sizeof attr);
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess || attr.type != cudaMemoryTypeDevice) {
    (void)cudaGetLastError();
    return -1;
  }
  return attr.device;
}

Test(cuda_multi, allocations_land_on_their_device_whatever_is_current) {
  for (int d = 0; d < 2; d++) {
    mr_allocator *def = mr_device_default(d);
    cr_assert_not_null(def, "device %d: %s", d, mr_last_error());
    cr_expect_eq(mr_allocator_device(def).id, d);
    mr_allocator *pool = NULL;
    cr_assert_eq(mr_caching_pool_create(&pool, def, NULL), MR_OK, "%s", mr_last_error());
    mr_allocator *priv = NULL;
    mr_device_options o = {.backend = MR_DEVICE_MALLOC, .release_threshold = 0};
    cr_assert_eq(mr_device_allocator_create(&priv, d, &o), MR_OK, "%s", mr_last_error());
    mr_allocator *allocs[] = {def, pool, priv};
    for (int cur = 0; cur < 2; cur++) {
      cr_assert_eq(cudaSetDevice(cur), cudaSuccess);
      for (int i = 0; i < 3; i++) {
        void *p = NULL;
        cr_assert_eq(mr_alloc(allocs[i], 3 << 20, &p), MR_OK, "%s", mr_last_error());
        cr_expect_eq(device_of(p), d, "'%s' (device %d) with device %d current",
                     mr_allocator_name(allocs[i]), d, cur);
        cr_expect_eq(current_device(), cur, "current device left as it was");
        cr_assert_eq(mr_free(allocs[i], p, 3 << 20), MR_OK, "%s", mr_last_error());
      }
    }
    mr_allocator_release(priv);
    mr_allocator_release(pool);
  }
  cr_expect_neq(mr_device_default(0), mr_device_default(1));
}

/* GPU 0's pool grants GPU 1 access; a copy run by GPU 1 (on a GPU-1 stream) reads what GPU 0's
 * block holds. Checked for every backend of the pool's upstream. */
Test(cuda_multi, a_pool_grants_peer_access_and_gpu1_reads_its_blocks) {
  int can = 0;
  cr_assert_eq(cudaDeviceCanAccessPeer(&can, 1, 0), cudaSuccess);
  enum { N = 1 << 20 };
  for (int b = 0; b < 4; b++) {
    cr_assert_eq(cudaSetDevice(0), cudaSuccess);
    mr_allocator *up = device_alloc(k_backends[b], 0);
    mr_allocator *pool = NULL;
    cr_assert_eq(mr_caching_pool_create(&pool, up, NULL), MR_OK, "%s", mr_last_error());
    void *before = NULL;
    cr_assert_eq(mr_alloc(pool, N, &before), MR_OK, "%s", mr_last_error());
    mr_status st = mr_allocator_grant_access(pool, 1);
    if (!can) {
      cr_expect_eq(st, MR_ERR_UNSUPPORTED, "no peer path: %s", mr_last_error());
      cr_expect(strstr(mr_last_error(), "peer"), "message: %s", mr_last_error());
      cr_assert_eq(mr_free(pool, before, N), MR_OK);
      mr_allocator_release(pool);
      mr_allocator_release(up);
      cr_skip_test("device 1 cannot access device 0 (cudaDeviceCanAccessPeer is 0)");
    }
    cr_assert_eq(st, MR_OK, "backend %d: %s", b, mr_last_error());
    cr_expect_eq(current_device(), 0);
    cr_expect_eq(mr_allocator_grant_access(pool, 1), MR_OK, "granting twice is fine: %s",
                 mr_last_error());
    if (mr_device_allocator_backend(up) == MR_DEVICE_DEFAULT_POOL) {
      cudaMemPool_t mp;
      cr_assert_eq(cudaDeviceGetDefaultMemPool(&mp, 0), cudaSuccess);
      struct cudaMemLocation loc = {.type = cudaMemLocationTypeDevice, .id = 1};
      enum cudaMemAccessFlags flags = cudaMemAccessFlagsProtNone;
      cr_assert_eq(cudaMemPoolGetAccess(&flags, mp, &loc), cudaSuccess);
      cr_expect_eq(flags, cudaMemAccessFlagsProtReadWrite);
    }
    void *after = NULL;
    cr_assert_eq(mr_alloc(pool, N, &after), MR_OK, "%s", mr_last_error());
    void *blocks[] = {before, after};
    for (int k = 0; k < 2; k++) {
      unsigned char *host = malloc(N), *back = malloc(N);
      cr_assert(host && back);
      for (int i = 0; i < N; i++)
        host[i] = (unsigned char)(i * 7 + k + b);
      cr_assert_eq(cudaSetDevice(0), cudaSuccess);
      cr_assert_eq(cudaMemcpy(blocks[k], host, N, cudaMemcpyHostToDevice), cudaSuccess);
      cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);
      /* GPU 1 runs the copy from GPU 0's block into its own memory */
      cr_assert_eq(cudaSetDevice(1), cudaSuccess);
      void *dst = NULL;
      cudaStream_t s1;
      cr_assert_eq(cudaMalloc(&dst, N), cudaSuccess);
      cr_assert_eq(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking), cudaSuccess);
      cr_assert_eq(cudaMemcpyAsync(dst, blocks[k], N, cudaMemcpyDeviceToDevice, s1), cudaSuccess);
      cr_assert_eq(cudaStreamSynchronize(s1), cudaSuccess);
      cr_assert_eq(cudaMemcpy(back, dst, N, cudaMemcpyDeviceToHost), cudaSuccess);
      cr_expect(memcmp(back, host, N) == 0,
                "backend %d, block %s the grant: GPU 1 read wrong bytes", b,
                k ? "after" : "before");
      cr_assert_eq(cudaStreamDestroy(s1), cudaSuccess);
      cr_assert_eq(cudaFree(dst), cudaSuccess);
      free(host);
      free(back);
    }
    cr_assert_eq(cudaSetDevice(1), cudaSuccess);
    cr_assert_eq(mr_free(pool, before, N), MR_OK);
    cr_assert_eq(mr_free(pool, after, N), MR_OK);
    cr_expect_eq(current_device(), 1);
    mr_allocator_release(pool);
    mr_allocator_release(up);
  }
}

Test(cuda_multi, grant_access_refuses_its_own_device_and_missing_ones) {
  int n = mr_device_count();
  mr_allocator *a = mr_device_default(1);
  cr_assert_not_null(a);
  cr_expect_eq(mr_allocator_grant_access(a, 1), MR_ERR_INVALID_ARG);
  cr_expect(strstr(mr_last_error(), "already on device 1"), "message: %s", mr_last_error());
  cr_expect_eq(mr_allocator_grant_access(a, n), MR_ERR_NO_DEVICE);
}

/* One thread per GPU, each in its own guard with its own stream and pool. */
typedef struct gpu_thread {
  int id, gpus;
  mr_allocator *pool;
  int ok;
  char why[200];
} gpu_thread;

#define GPU_CHECK(t, cond, ...)                                                                    \
  do {                                                                                             \
    if (!(cond) && (t)->ok) {                                                                      \
      (t)->ok = 0;                                                                                 \
      snprintf((t)->why, sizeof(t)->why, __VA_ARGS__);                                             \
    }                                                                                              \
  } while (0)

static void *gpu_thread_main(void *arg) {
  gpu_thread *t = arg;
  t->ok = 1;
  mr_stream *s = NULL;
  mr_status st = mr_stream_create(&s, t->id, 0);
  GPU_CHECK(t, st == MR_OK, "stream: %s", mr_last_error());
  if (!t->ok)
    return NULL;
  mr_allocator *view = NULL;
  st = mr_allocator_bind(t->pool, s, &view);
  GPU_CHECK(t, st == MR_OK, "bind: %s", mr_last_error());
  if (t->ok) {
    MR_GUARD(g, s, view);
    int start = -1;
    (void)cudaGetDevice(&start);
    for (int i = 0; i < 200 && t->ok; i++) {
      GPU_CHECK(t, mr_context_alloc_for(mr_device_gpu(t->id)) == view,
                "iteration %d: the context's allocator for GPU %d is not the thread's", i, t->id);
      for (int other = 0; other < t->gpus; other++)
        if (other != t->id)
          GPU_CHECK(t, mr_context_alloc_for(mr_device_gpu(other)) == NULL,
                    "GPU %d's thread has an allocator for GPU %d", t->id, other);
      mr_buffer *b = NULL;
      size_t count = 1024u << (i % 10);
      st = mr_buffer_create(&b, count, MR_U8, mr_device_gpu(t->id));
      GPU_CHECK(t, st == MR_OK, "buffer %d: %s", i, mr_last_error());
      if (st != MR_OK)
        break;
      GPU_CHECK(t, device_of(mr_buffer_data(b)) == t->id, "buffer %d on device %d, not %d", i,
                device_of(mr_buffer_data(b)), t->id);
      GPU_CHECK(t, mr_buffer_clear(b) == MR_OK, "clear: %s", mr_last_error());
      mr_buffer_release(b);
    }
    int now = -1;
    (void)cudaGetDevice(&now);
    GPU_CHECK(t, now == start, "current device changed from %d to %d", start, now);
    GPU_CHECK(t, mr_stream_synchronize(s) == MR_OK, "sync: %s", mr_last_error());
  }
  mr_allocator_release(view);
  mr_stream_release(s);
  return NULL;
}

Test(cuda_multi, one_thread_per_gpu_each_in_its_guard) {
  int n = mr_device_count();
  if (n > 8)
    n = 8;
  gpu_thread t[8];
  pthread_t th[8];
  mr_allocator *pools[8];
  for (int d = 0; d < n; d++) {
    mr_allocator *def = mr_device_default(d);
    cr_assert_not_null(def, "device %d: %s", d, mr_last_error());
    cr_assert_eq(mr_caching_pool_create(&pools[d], def, NULL), MR_OK, "%s", mr_last_error());
  }
  for (int d = 0; d < n; d++) {
    t[d] = (gpu_thread){.id = d, .gpus = n, .pool = pools[d]};
    cr_assert_eq(pthread_create(&th[d], NULL, gpu_thread_main, &t[d]), 0);
  }
  for (int d = 0; d < n; d++) {
    pthread_join(th[d], NULL);
    cr_expect(t[d].ok, "GPU %d's thread: %s", d, t[d].why);
  }
  for (int d = 0; d < n; d++) {
    mr_stats s = MR_STATS_INIT;
    cr_assert_eq(mr_stats_get(pools[d], &s), MR_OK);
    cr_expect_eq(s.allocs, 200, "GPU %d's pool served its own thread only", d);
    cr_expect_eq(s.bytes_in_use, 0);
    cr_expect_eq(mr_caching_pool_validate(pools[d]), MR_OK, "%s", mr_last_error());
    mr_allocator_release(pools[d]);
  }
}

#endif /* MEMRES_HAVE_CUDA */
