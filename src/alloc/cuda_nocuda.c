/* Pinned and device allocators when memres is built without CUDA: MR_ERR_NO_DEVICE. */
#include "internal.h"

mr_status mr_pinned_allocator_create(mr_allocator **out, int device_id,
                                     const mr_pinned_options *opts) {
  MR_UNUSED(opts);
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_pinned_allocator_create: out is NULL");
  *out = NULL;
  return mr__error(MR_ERR_NO_DEVICE, "pinned allocator (device %d): memres was built without CUDA",
                   device_id);
}

mr_status mr_device_allocator_create(mr_allocator **out, int device_id,
                                     const mr_device_options *opts) {
  MR_UNUSED(opts);
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_device_allocator_create: out is NULL");
  *out = NULL;
  return mr__error(MR_ERR_NO_DEVICE, "device allocator (device %d): memres was built without CUDA",
                   device_id);
}

mr_device_backend mr_device_allocator_backend(const mr_allocator *a) {
  MR_UNUSED(a);
  return MR_DEVICE_BACKEND_COUNT_;
}
