/* memres: interop with the CUDA runtime. The only public header that includes it. */
#ifndef MEMRES_CUDA_H
#define MEMRES_CUDA_H

#include "stream.h"

#include <cuda_runtime.h>

MR_EXTERN_C_BEGIN

/* Wrap a stream the application owns, without taking it over (releasing the wrapper never
 * destroys it). Identity is cudaStreamGetId. */
MR_API mr_status mr_stream_from_cuda(mr_stream **out, cudaStream_t stream, int device_id);
/* The cudaStream_t of a CUDA-backed stream; 0 (the legacy default stream) for NULL or a stream
 * of another backend. */
MR_API cudaStream_t mr_stream_cuda(const mr_stream *s);

MR_EXTERN_C_END

#endif
