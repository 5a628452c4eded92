/* memres: where memory lives. */
#ifndef MEMRES_DEVICE_H
#define MEMRES_DEVICE_H

#include "status.h"

#include <stdbool.h>

MR_EXTERN_C_BEGIN

typedef enum mr_kind {
  MR_HOST = 0, /* pageable host memory (TurboMind kCPU) */
  MR_PINNED,   /* page-locked host memory (kCPUpinned) */
  MR_DEVICE,   /* GPU memory (kDEVICE) */
  MR_KIND_COUNT_
} mr_kind;

typedef struct mr_device {
  mr_kind kind;
  int id; /* GPU ordinal for MR_DEVICE (and the GPU a pinned allocation is made from); 0 for host */
} mr_device;

static inline mr_device mr_device_host(void) { return (mr_device){MR_HOST, 0}; }
static inline mr_device mr_device_pinned(void) { return (mr_device){MR_PINNED, 0}; }
static inline mr_device mr_device_gpu(int id) { return (mr_device){MR_DEVICE, id}; }

/* "host", "pinned", "device", or "invalid". */
MR_API const char *mr_kind_str(mr_kind kind);

/* Number of GPUs visible (0 without a GPU, or when built without CUDA); never fails. */
MR_API int mr_device_count(void);

/* MR_OK if the device is usable: a valid kind, and for MR_DEVICE an existing GPU id. */
MR_API mr_status mr_device_check(mr_device device);

MR_EXTERN_C_END

#endif
