/* memres: pluggable memory resources for CUDA programs. Includes every public header but
 * cuda.h (include that one for cudaStream_t interop). */
#ifndef MEMRES_MEMRES_H
#define MEMRES_MEMRES_H

#include "export.h"
#include "status.h"
#include "device.h"
#include "stream.h"
#include "allocator.h"
#include "allocators.h"
#include "context.h"
#include "buffer.h"

#endif
