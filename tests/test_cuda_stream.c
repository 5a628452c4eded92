/* CUDA streams and events on a real GPU (skipped without one). Work is held back with a host
 * function that waits on a gate the test opens, so "pending" is deterministic. */
#if !MEMRES_HAVE_CUDA
/* Built without CUDA: cuda.h cannot be included; the suite reports itself skipped. */
#include "gpu.h"

#include <criterion/criterion.h>

TestSuite(cuda_stream, .init = require_gpu);
Test(cuda_stream, needs_cuda) { cr_skip_test("memres was built without CUDA"); }

#else
#include "gpu.h"

#include "cuda_util.h"
#include <memres/cuda.h>

#include <criterion/criterion.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_int g_gate; /* 0: closed; host functions queued behind it wait */

static void CUDART_CB wait_for_gate(void *arg) {
  (void)arg;
  while (!atomic_load(&g_gate))
    sched_yield();
}

static void open_gate(void) { atomic_store(&g_gate, 1); }

/* Queue a gate on s: work after it on s stays pending until open_gate(). */
static void close_gate_on(cudaStream_t s) {
  atomic_store(&g_gate, 0);
  cr_assert_eq(cudaLaunchHostFunc(s, wait_for_gate, NULL), cudaSuccess);
}

/* A failed assertion must never leave a gate closed (the process could not exit). */
static void teardown(void) { open_gate(); }

TestSuite(cuda_stream, .init = require_gpu, .fini = teardown);

Test(cuda_stream, create_properties) {
  int before = current_device();
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK, "%s", mr_last_error());
  cr_assert_eq(current_device(), before);
  cr_assert(mr_stream_is_cuda(s));
  cr_assert_str_eq(mr_stream_backend(s), "cuda");
  cr_assert_eq(mr_stream_device(s).kind, MR_DEVICE);
  cr_assert_eq(mr_stream_device(s).id, 0);
  cudaStream_t cs = mr_stream_cuda(s);
  cr_assert_not_null(cs);
  cr_assert_eq((void *)cs, mr_stream_native(s));
  unsigned int flags = 0;
  cr_assert_eq(cudaStreamGetFlags(cs, &flags), cudaSuccess);
  cr_assert_eq(flags & cudaStreamNonBlocking, cudaStreamNonBlocking);
  unsigned long long id = 0;
  cr_assert_eq(cudaStreamGetId(cs, &id), cudaSuccess);
  cr_assert_eq(mr_stream_id(s), (uint64_t)id, "identity is cudaStreamGetId");
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  mr_stream_release(s);
}

Test(cuda_stream, priority) {
  int least = 0, greatest = 0;
  cr_assert_eq(cudaDeviceGetStreamPriorityRange(&least, &greatest), cudaSuccess);
  mr_stream *hi = NULL, *lo = NULL, *clamped = NULL;
  cr_assert_eq(mr_stream_create(&hi, 0, greatest), MR_OK);
  cr_assert_eq(mr_stream_create(&lo, 0, least), MR_OK);
  int p = 12345;
  cr_assert_eq(cudaStreamGetPriority(mr_stream_cuda(hi), &p), cudaSuccess);
  cr_assert_eq(p, greatest);
  cr_assert_eq(cudaStreamGetPriority(mr_stream_cuda(lo), &p), cudaSuccess);
  cr_assert_eq(p, least);
  /* out of range is clamped, as CUDA does */
  cr_assert_eq(mr_stream_create(&clamped, 0, greatest - 100), MR_OK);
  cr_assert_eq(cudaStreamGetPriority(mr_stream_cuda(clamped), &p), cudaSuccess);
  cr_assert_eq(p, greatest);
  mr_stream_release(hi);
  mr_stream_release(lo);
  mr_stream_release(clamped);
}

Test(cuda_stream, identities_are_not_reused) {
  mr_stream *a = NULL, *b = NULL, *h = NULL;
  cr_assert_eq(mr_stream_create(&a, 0, 0), MR_OK);
  cr_assert_eq(mr_stream_create(&b, 0, 0), MR_OK);
  cr_assert_eq(mr_stream_create_host(&h), MR_OK);
  uint64_t ida = mr_stream_id(a);
  cr_assert_neq(ida, mr_stream_id(b));
  cr_assert_neq(ida, mr_stream_id(h));
  cr_assert_neq(mr_stream_id(b), mr_stream_id(h));
  mr_stream_release(a);
  /* a new stream may get the old handle back, never the old identity */
  for (int i = 0; i < 8; i++) {
    mr_stream *c = NULL;
    cr_assert_eq(mr_stream_create(&c, 0, 0), MR_OK);
    cr_assert_neq(mr_stream_id(c), ida);
    cr_assert_neq(mr_stream_id(c), mr_stream_id(b));
    mr_stream_release(c);
  }
  mr_stream_release(b);
  mr_stream_release(h);
}

Test(cuda_stream, from_cuda_wraps_without_owning) {
  cudaStream_t app = NULL;
  cr_assert_eq(cudaStreamCreate(&app), cudaSuccess);
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_from_cuda(&s, app, 0), MR_OK, "%s", mr_last_error());
  cr_assert(mr_stream_is_cuda(s));
  cr_assert_eq(mr_stream_cuda(s), app);
  unsigned long long id = 0;
  cr_assert_eq(cudaStreamGetId(app, &id), cudaSuccess);
  cr_assert_eq(mr_stream_id(s), (uint64_t)id);
  mr_stream *again = NULL;
  cr_assert_eq(mr_stream_from_cuda(&again, app, 0), MR_OK);
  cr_assert_eq(mr_stream_id(again), mr_stream_id(s), "same CUDA stream, same identity");
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  mr_stream_release(s);
  mr_stream_release(again);
  /* the application's stream still works */
  void *d = NULL;
  cr_assert_eq(cudaMalloc(&d, 4096), cudaSuccess);
  cr_assert_eq(cudaMemsetAsync(d, 0x11, 4096, app), cudaSuccess);
  unsigned char h[4096];
  cr_assert_eq(cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, app), cudaSuccess);
  cr_assert_eq(cudaStreamSynchronize(app), cudaSuccess);
  for (size_t i = 0; i < sizeof h; i++)
    cr_assert_eq(h[i], 0x11);
  cr_assert_eq(cudaFree(d), cudaSuccess);
  cr_assert_eq(cudaStreamDestroy(app), cudaSuccess, "still ours to destroy");
}

Test(cuda_stream, from_cuda_default_stream) {
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_from_cuda(&s, 0, 0), MR_OK, "%s", mr_last_error());
  cr_assert(mr_stream_is_cuda(s));
  cr_assert_null(mr_stream_cuda(s));
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  mr_stream_release(s);
}

Test(cuda_stream, cuda_of_other_streams_is_the_default_stream) {
  mr_stream *h = NULL;
  cr_assert_eq(mr_stream_create_host(&h), MR_OK);
  cr_assert_null(mr_stream_cuda(h));
  cr_assert_null(mr_stream_cuda(NULL));
  mr_stream_release(h);
}

Test(cuda_stream, events_pending_then_done) {
  mr_stream *s = NULL;
  mr_event *e = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK);
  cr_assert_eq(mr_event_create(&e, s), MR_OK);
  bool done = false;
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert(done, "an event never recorded is complete");
  close_gate_on(mr_stream_cuda(s));
  cr_assert_eq(mr_event_record(e, s), MR_OK);
  cr_assert_eq(mr_event_stream(e), s);
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert_not(done);
  cr_assert_eq(cudaGetLastError(), cudaSuccess, "a not-ready query leaves no error behind");
  open_gate();
  cr_assert_eq(mr_event_synchronize(e), MR_OK);
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert(done);
  mr_event_destroy(e);
  mr_stream_release(s);
}

Test(cuda_stream, wait_event_across_two_streams) {
  mr_stream *a = NULL, *b = NULL;
  mr_event *ea = NULL, *eb = NULL;
  cr_assert_eq(mr_stream_create(&a, 0, 0), MR_OK);
  cr_assert_eq(mr_stream_create(&b, 0, 0), MR_OK);
  cr_assert_eq(mr_event_create(&ea, a), MR_OK);
  cr_assert_eq(mr_event_create(&eb, b), MR_OK);
  enum { N = 1 << 20 };
  unsigned char *dev = NULL, *host = NULL;
  cr_assert_eq(cudaMalloc((void **)&dev, N), cudaSuccess);
  cr_assert_eq(cudaMallocHost((void **)&host, N), cudaSuccess);
  memset(host, 0, N);

  close_gate_on(mr_stream_cuda(a));
  cr_assert_eq(mr_stream_fill(a, dev, 0x42, N), MR_OK);
  cr_assert_eq(mr_event_record(ea, a), MR_OK);
  /* b waits for a's fill without blocking the host, then copies the result out */
  cr_assert_eq(mr_stream_wait_event(b, ea), MR_OK);
  cr_assert_eq(mr_stream_copy(b, host, dev, N), MR_OK);
  cr_assert_eq(mr_event_record(eb, b), MR_OK);
  bool done = true;
  cr_assert_eq(mr_event_query(eb, &done), MR_OK);
  cr_assert_not(done, "b's work is held behind a's gate");
  open_gate();
  cr_assert_eq(mr_event_synchronize(eb), MR_OK);
  for (size_t i = 0; i < N; i += 4099)
    cr_assert_eq(host[i], 0x42, "byte %zu", i);
  cr_assert_eq(host[N - 1], 0x42);

  mr_event_destroy(ea);
  mr_event_destroy(eb);
  cr_assert_eq(cudaFree(dev), cudaSuccess);
  cr_assert_eq(cudaFreeHost(host), cudaSuccess);
  mr_stream_release(a);
  mr_stream_release(b);
}

Test(cuda_stream, host_stream_waiting_on_cuda_event_synchronizes) {
  mr_stream *c = NULL, *h = NULL;
  mr_event *e = NULL;
  cr_assert_eq(mr_stream_create(&c, 0, 0), MR_OK);
  cr_assert_eq(mr_stream_create_host(&h), MR_OK);
  cr_assert_eq(mr_event_create(&e, c), MR_OK);
  enum { N = 1 << 16 };
  unsigned char *dev = NULL, host[N];
  cr_assert_eq(cudaMalloc((void **)&dev, N), cudaSuccess);
  cr_assert_eq(mr_stream_fill(c, dev, 0x33, N), MR_OK);
  cr_assert_eq(mr_stream_copy(c, host, dev, N), MR_OK);
  cr_assert_eq(mr_event_record(e, c), MR_OK);
  cr_assert_eq(mr_stream_wait_event(h, e), MR_OK);
  bool done = false;
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert(done, "across backends the wait synchronized");
  cr_assert_eq(host[0], 0x33);
  cr_assert_eq(host[N - 1], 0x33);
  /* a CUDA event cannot be recorded on a host stream */
  cr_assert_eq(mr_event_record(e, h), MR_ERR_INVALID_ARG);
  cr_assert(strstr(mr_last_error(), "cuda"), "%s", mr_last_error());
  mr_event_destroy(e);
  cr_assert_eq(cudaFree(dev), cudaSuccess);
  mr_stream_release(h);
  mr_stream_release(c);
}

Test(cuda_stream, copy_and_fill_with_data) {
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK);
  enum { N = 3 * 1024 * 1024 + 17 };
  unsigned char *src = malloc(N), *dst = malloc(N), *d1 = NULL, *d2 = NULL;
  cr_assert_not_null(src);
  cr_assert_not_null(dst);
  for (size_t i = 0; i < N; i++)
    src[i] = (unsigned char)(i * 7 + 3);
  cr_assert_eq(cudaMalloc((void **)&d1, N), cudaSuccess);
  cr_assert_eq(cudaMalloc((void **)&d2, N), cudaSuccess);
  cr_assert_eq(mr_stream_copy(s, d1, src, N), MR_OK);         /* host -> device */
  cr_assert_eq(mr_stream_copy(s, d2, d1, N), MR_OK);          /* device -> device */
  cr_assert_eq(mr_stream_fill(s, d2 + 100, 0xee, 50), MR_OK); /* a hole */
  cr_assert_eq(mr_stream_copy(s, dst, d2, N), MR_OK);         /* device -> host */
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  for (size_t i = 0; i < N; i++) {
    unsigned char want = (i >= 100 && i < 150) ? 0xee : src[i];
    if (dst[i] != want)
      cr_assert_fail("byte %zu: %u, want %u", i, dst[i], want);
  }
  cr_assert_eq(cudaFree(d1), cudaSuccess);
  cr_assert_eq(cudaFree(d2), cudaSuccess);
  free(src);
  free(dst);
  mr_stream_release(s);
}

Test(cuda_stream, cuda_errors_are_reported) {
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create(&s, 0, 0), MR_OK);
  /* memset of an address that is no memory at all */
  mr_status st = mr_stream_fill(s, (void *)0x10, 0, 64);
  cr_assert_eq(st, MR_ERR_CUDA, "%s", mr_last_error());
  cr_assert(strstr(mr_last_error(), "cudaMemsetAsync"), "%s", mr_last_error());
  cr_assert(strstr(mr_last_error(), "cudaError"), "%s", mr_last_error());
  cr_assert_eq(cudaGetLastError(), cudaSuccess, "the error was cleared");
  cr_assert_eq(mr_stream_synchronize(s), MR_OK, "the stream still works");
  mr_stream_release(s);
}

Test(cuda_stream, bad_device_ids) {
  int n = mr_device_count();
  mr_stream *s = (mr_stream *)&s;
  cr_assert_eq(mr_stream_create(&s, n, 0), MR_ERR_NO_DEVICE);
  cr_assert_null(s);
  cr_assert(strstr(mr_last_error(), "device"), "%s", mr_last_error());
  cr_assert_eq(mr_stream_create(&s, -1, 0), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_from_cuda(&s, 0, n), MR_ERR_NO_DEVICE);
  cr_assert_eq(mr_stream_from_cuda(&s, 0, -2), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_from_cuda(NULL, 0, 0), MR_ERR_INVALID_ARG);
  cr_assert_null(s);
}

#endif /* MEMRES_HAVE_CUDA */
