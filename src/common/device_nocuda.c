/* Devices when memres is built without CUDA: there are none. */
#include "internal.h"

int mr_device_count(void) { return 0; }

mr_status mr_device_check(mr_device device) {
  switch (device.kind) {
  case MR_HOST:
    if (device.id < 0)
      return mr__error(MR_ERR_INVALID_ARG, "host memory: bad device id %d", device.id);
    return MR_OK;
  case MR_PINNED:
  case MR_DEVICE:
    if (device.id < 0)
      return mr__error(MR_ERR_INVALID_ARG, "%s memory: bad device id %d", mr_kind_str(device.kind),
                       device.id);
    return mr__error(MR_ERR_NO_DEVICE, "%s memory (id %d): memres was built without CUDA",
                     mr_kind_str(device.kind), device.id);
  default:
    return mr__error(MR_ERR_INVALID_ARG, "bad device kind %d", (int)device.kind);
  }
}
