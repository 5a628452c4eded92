/* Test helpers for suites that need a GPU. */
#ifndef MEMRES_TEST_GPU_H
#define MEMRES_TEST_GPU_H

#include <memres/memres.h>

/* Criterion .init for GPU suites: cr_skip_test with the reason when no GPU can be used
 * (none present, or the library was built without CUDA). */
void require_gpu(void);
/* Same, when fewer than n GPUs are present. */
void require_gpus(int n);

#endif
