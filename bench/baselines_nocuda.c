/* memres-bench without CUDA: the raw baselines report "built without CUDA". */
#include "bench.h"

#include <stdio.h>

static mr_status none(const char *what) {
  return mr_report_error(MR_ERR_NO_DEVICE, "%s: memres-bench was built without CUDA", what);
}

bool bcu_built(void) { return false; }

mr_status bcu_malloc(size_t size, void **p) {
  (void)size;
  *p = NULL;
  return none("cudaMalloc");
}

mr_status bcu_free(void *p) {
  (void)p;
  return none("cudaFree");
}

mr_status bcu_host_alloc(size_t size, void **p) {
  (void)size;
  *p = NULL;
  return none("cudaHostAlloc");
}

mr_status bcu_free_host(void *p) {
  (void)p;
  return none("cudaFreeHost");
}

mr_status bcu_async_init(void) { return none("cudaMallocAsync"); }

mr_status bcu_malloc_async(size_t size, void *stream, void **p) {
  (void)size;
  (void)stream;
  *p = NULL;
  return none("cudaMallocAsync");
}

mr_status bcu_free_async(void *p, void *stream) {
  (void)p;
  (void)stream;
  return none("cudaFreeAsync");
}

mr_status bcu_stream_create(void **stream, void **event) {
  *stream = *event = NULL;
  return none("cudaStreamCreate");
}

void bcu_stream_destroy(void *stream, void *event) {
  (void)stream;
  (void)event;
}

mr_status bcu_handoff(void *from, void *event, void *to) {
  (void)from;
  (void)event;
  (void)to;
  return none("cudaEventRecord");
}

mr_status bcu_device_sync(void) { return MR_OK; }

mr_status bcu_trim_default_pool(void) { return MR_OK; }

mr_status bcu_mem_info(uint64_t *free_bytes, uint64_t *total_bytes) {
  *free_bytes = *total_bytes = 0;
  return none("cudaMemGetInfo");
}

void bcu_versions(int *driver, int *runtime) { *driver = *runtime = 0; }

void bcu_device_name(char *buf, size_t len) { snprintf(buf, len, "none (built without CUDA)"); }

mr_status bcu_set_device(int d) {
  (void)d;
  return none("cudaSetDevice");
}

void bcu_device_name_of(int d, char *buf, size_t len) {
  (void)d;
  snprintf(buf, len, "none (built without CUDA)");
}

mr_status bcu_async_init_device(int d) {
  (void)d;
  return none("cudaMallocAsync");
}

mr_status bcu_trim_pool_of(int d) {
  (void)d;
  return MR_OK;
}
