/* Devices through the CUDA runtime: how many GPUs, whether one is usable, and the helpers that
 * make a device current for one call and restore the caller's afterwards.
 *
 * mr_device_check: a bad kind or a negative id is MR_ERR_INVALID_ARG; for MR_PINNED/MR_DEVICE,
 * no usable GPU (cudaGetDeviceCount failed or found none) and an id >= the number of GPUs are
 * both MR_ERR_NO_DEVICE ("no such device", as status.h puts it). MR_HOST needs no GPU. */
#include "cuda_internal.h"

#include <stdarg.h>
#include <stdio.h>

mr_status mr__cuda_fail(mr_status status, cudaError_t err, const char *fmt, ...) {
  char context[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(context, sizeof context, fmt, ap);
  va_end(ap);
  (void)cudaGetLastError(); /* a non-sticky error must not surface in the next CUDA call */
  return mr__error(status, "%s: %s: %s", context, cudaGetErrorName(err), cudaGetErrorString(err));
}

int mr_device_count(void) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n < 0 ? 0 : n;
}

mr_status mr_device_check(mr_device device) {
  if ((unsigned)device.kind >= MR_KIND_COUNT_)
    return mr__error(MR_ERR_INVALID_ARG, "bad device kind %d", (int)device.kind);
  if (device.id < 0)
    return mr__error(MR_ERR_INVALID_ARG, "%s memory: bad device id %d", mr_kind_str(device.kind),
                     device.id);
  if (device.kind == MR_HOST)
    return MR_OK;
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess)
    return mr__cuda_fail(MR_ERR_NO_DEVICE, err, "%s memory (device %d): no usable GPU",
                         mr_kind_str(device.kind), device.id);
  if (n <= 0)
    return mr__error(MR_ERR_NO_DEVICE, "%s memory (device %d): no GPU (cudaGetDeviceCount found 0)",
                     mr_kind_str(device.kind), device.id);
  if (device.id >= n)
    return mr__error(MR_ERR_NO_DEVICE, "%s memory: no device %d (%d GPU%s visible)",
                     mr_kind_str(device.kind), device.id, n, n == 1 ? "" : "s");
  return MR_OK;
}

mr_status mr__device_enter(int device, int *prev) {
  cudaError_t err = cudaGetDevice(prev);
  if (err != cudaSuccess)
    return mr__cuda_fail(err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver
                             ? MR_ERR_NO_DEVICE
                             : MR_ERR_CUDA,
                         err, "cudaGetDevice");
  if (*prev == device)
    return MR_OK;
  err = cudaSetDevice(device);
  if (err != cudaSuccess)
    return mr__cuda_fail(
        err == cudaErrorInvalidDevice || err == cudaErrorNoDevice ? MR_ERR_NO_DEVICE : MR_ERR_CUDA,
        err, "cudaSetDevice(%d)", device);
  return MR_OK;
}

void mr__device_leave(int device, int prev) {
  if (prev != device)
    (void)cudaSetDevice(prev);
}
