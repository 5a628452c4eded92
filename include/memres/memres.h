/* memres: pluggable memory resources for CUDA programs. Includes every public header but
 * cuda.h (include that one for cudaStream_t interop). */
#ifndef MEMRES_MEMRES_H
#define MEMRES_MEMRES_H

#include "allocator.h"
#include "allocators.h"
#include "buffer.h"
#include "context.h"
#include "device.h"
#include "export.h"
#include "status.h"
#include "stream.h"

#endif
