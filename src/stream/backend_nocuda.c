/* CUDA streams when memres is built without CUDA: none can be made. */
#include "internal.h"

const mr_stream_ops *const mr__cuda_stream_ops = NULL;

mr_status mr_stream_create(mr_stream **out, int device_id, int priority) {
  MR_UNUSED(priority);
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_stream_create: out is NULL");
  *out = NULL;
  return mr__error(MR_ERR_NO_DEVICE, "mr_stream_create(device %d): memres was built without CUDA",
                   device_id);
}
