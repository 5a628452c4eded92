/* memres internals for the files that call the CUDA runtime (*_cuda.c only). Never installed. */
#ifndef MEMRES_COMMON_CUDA_INTERNAL_H
#define MEMRES_COMMON_CUDA_INTERNAL_H

#include "internal.h"

#include <cuda_runtime.h>

/* Record a failed CUDA call: clears the runtime's last error (cudaGetLastError), then records
 * "<status>: <context>: <cudaGetErrorName>: <cudaGetErrorString>" and returns status. */
mr_status mr__cuda_fail(mr_status status, cudaError_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Make `device` current, remembering the caller's current device in *prev. On failure nothing
 * changed and the error is recorded (MR_ERR_CUDA, or MR_ERR_NO_DEVICE without a usable GPU). */
mr_status mr__device_enter(int device, int *prev);
/* Restore the device mr__device_enter found current. */
void mr__device_leave(int device, int prev);

#endif
