/* memres-bench: the raw CUDA runtime calls the baselines are made of, and device information.
 * The only file of the benchmark that calls CUDA (baselines_nocuda.c stands in without it).
 * Every failure is recorded with mr_report_error so the table shows the CUDA error. */
#include "bench.h"

#include <cuda_runtime.h>

#include <stdio.h>

static mr_status fail(cudaError_t err, const char *what) {
  (void)cudaGetLastError(); /* a non-sticky error must not surface in the next call */
  mr_status st = err == cudaErrorMemoryAllocation ? MR_ERR_OUT_OF_MEMORY
                 : err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver ? MR_ERR_NO_DEVICE
                                                                                  : MR_ERR_CUDA;
  return mr_report_error(st, "%s: %s: %s", what, cudaGetErrorName(err), cudaGetErrorString(err));
}

#define CU_CHECK(call, what)                                                                       \
  do {                                                                                             \
    cudaError_t err_ = (call);                                                                     \
    if (err_ != cudaSuccess)                                                                       \
      return fail(err_, what);                                                                     \
  } while (0)

bool bcu_built(void) { return true; }

mr_status bcu_malloc(size_t size, void **p) {
  CU_CHECK(cudaMalloc(p, size), "cudaMalloc");
  return MR_OK;
}

mr_status bcu_free(void *p) {
  CU_CHECK(cudaFree(p), "cudaFree");
  return MR_OK;
}

mr_status bcu_host_alloc(size_t size, void **p) {
  CU_CHECK(cudaHostAlloc(p, size, cudaHostAllocDefault | cudaHostAllocPortable), "cudaHostAlloc");
  return MR_OK;
}

mr_status bcu_free_host(void *p) {
  CU_CHECK(cudaFreeHost(p), "cudaFreeHost");
  return MR_OK;
}

mr_status bcu_async_init(void) {
  cudaMemPool_t pool;
  uint64_t threshold = UINT64_MAX;
  CU_CHECK(cudaSetDevice(0), "cudaSetDevice(0)");
  CU_CHECK(cudaDeviceGetDefaultMemPool(&pool, 0), "cudaDeviceGetDefaultMemPool");
  CU_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
           "cudaMemPoolSetAttribute(ReleaseThreshold)");
  return MR_OK;
}

mr_status bcu_malloc_async(size_t size, void *stream, void **p) {
  CU_CHECK(cudaMallocAsync(p, size, (cudaStream_t)stream), "cudaMallocAsync");
  return MR_OK;
}

mr_status bcu_free_async(void *p, void *stream) {
  CU_CHECK(cudaFreeAsync(p, (cudaStream_t)stream), "cudaFreeAsync");
  return MR_OK;
}

mr_status bcu_stream_create(void **stream, void **event) {
  cudaStream_t s = NULL;
  cudaEvent_t e = NULL;
  *stream = NULL;
  *event = NULL;
  CU_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  cudaError_t err = cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
  if (err != cudaSuccess) {
    (void)cudaStreamDestroy(s);
    return fail(err, "cudaEventCreateWithFlags");
  }
  *stream = (void *)s;
  *event = (void *)e;
  return MR_OK;
}

void bcu_stream_destroy(void *stream, void *event) {
  if (event)
    (void)cudaEventDestroy((cudaEvent_t)event);
  if (stream) {
    (void)cudaStreamSynchronize((cudaStream_t)stream);
    (void)cudaStreamDestroy((cudaStream_t)stream);
  }
}

mr_status bcu_handoff(void *from, void *event, void *to) {
  CU_CHECK(cudaEventRecord((cudaEvent_t)event, (cudaStream_t)from), "cudaEventRecord");
  CU_CHECK(cudaStreamWaitEvent((cudaStream_t)to, (cudaEvent_t)event, 0), "cudaStreamWaitEvent");
  return MR_OK;
}

mr_status bcu_device_sync(void) {
  CU_CHECK(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return MR_OK;
}

mr_status bcu_trim_default_pool(void) {
  cudaMemPool_t pool;
  CU_CHECK(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  CU_CHECK(cudaDeviceGetDefaultMemPool(&pool, 0), "cudaDeviceGetDefaultMemPool");
  CU_CHECK(cudaMemPoolTrimTo(pool, 0), "cudaMemPoolTrimTo");
  return MR_OK;
}

mr_status bcu_mem_info(uint64_t *free_bytes, uint64_t *total_bytes) {
  size_t f = 0, t = 0;
  *free_bytes = *total_bytes = 0;
  CU_CHECK(cudaMemGetInfo(&f, &t), "cudaMemGetInfo");
  *free_bytes = f;
  *total_bytes = t;
  return MR_OK;
}

void bcu_versions(int *driver, int *runtime) {
  *driver = *runtime = 0;
  if (cudaDriverGetVersion(driver) != cudaSuccess)
    *driver = 0;
  if (cudaRuntimeGetVersion(runtime) != cudaSuccess)
    *runtime = 0;
  (void)cudaGetLastError();
}

void bcu_device_name(char *buf, size_t len) {
  struct cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    snprintf(buf, len, "none");
    return;
  }
  snprintf(buf, len, "%s (%d SMs, %.1f GiB, cc %d.%d)", prop.name, prop.multiProcessorCount,
           (double)prop.totalGlobalMem / (double)(1u << 30), prop.major, prop.minor);
}

mr_status bcu_set_device(int d) {
  CU_CHECK(cudaSetDevice(d), "cudaSetDevice");
  return MR_OK;
}

void bcu_device_name_of(int d, char *buf, size_t len) {
  struct cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) {
    (void)cudaGetLastError();
    snprintf(buf, len, "none");
    return;
  }
  snprintf(buf, len, "%s", prop.name);
}

mr_status bcu_async_init_device(int d) {
  cudaMemPool_t pool;
  uint64_t threshold = UINT64_MAX;
  CU_CHECK(cudaDeviceGetDefaultMemPool(&pool, d), "cudaDeviceGetDefaultMemPool");
  CU_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
           "cudaMemPoolSetAttribute(ReleaseThreshold)");
  return MR_OK;
}

mr_status bcu_trim_pool_of(int d) {
  cudaMemPool_t pool;
  CU_CHECK(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  CU_CHECK(cudaDeviceGetDefaultMemPool(&pool, d), "cudaDeviceGetDefaultMemPool");
  CU_CHECK(cudaMemPoolTrimTo(pool, 0), "cudaMemPoolTrimTo");
  return MR_OK;
}
