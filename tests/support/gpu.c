#include "gpu.h"

#include <criterion/criterion.h>

void require_gpus(int n) {
  int count = mr_device_count();
  if (count >= n)
    return;
  mr_status st = mr_device_check(mr_device_gpu(0));
  const char *why = st == MR_OK ? "" : mr_last_error();
  cr_skip_test("needs %d GPU(s), found %d%s%s", n, count, *why ? ": " : "", why);
}

void require_gpu(void) { require_gpus(1); }
