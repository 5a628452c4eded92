/* mr_device_default when memres is built without CUDA: there is no GPU. */
#include "internal.h"

mr_allocator *mr_device_default(int device_id) {
  if (device_id < 0)
    mr__error(MR_ERR_INVALID_ARG, "mr_device_default: bad device id %d", device_id);
  else
    mr__error(MR_ERR_NO_DEVICE, "mr_device_default(%d): memres was built without CUDA", device_id);
  return NULL;
}
