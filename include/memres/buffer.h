/* memres: a refcounted typed buffer whose bytes come from the context's allocator. */
#ifndef MEMRES_BUFFER_H
#define MEMRES_BUFFER_H

#include "allocator.h"

MR_EXTERN_C_BEGIN

typedef enum mr_dtype {
  MR_U8 = 0,
  MR_I8,
  MR_I16,
  MR_I32,
  MR_I64,
  MR_F16,
  MR_BF16,
  MR_F32,
  MR_F64,
  MR_DTYPE_COUNT_
} mr_dtype;

MR_API size_t mr_dtype_size(mr_dtype dtype); /* 0 for an invalid dtype */
MR_API const char *mr_dtype_str(mr_dtype dtype);

typedef struct mr_buffer mr_buffer;

/* count elements of dtype on `device`, from mr_context_alloc_for(device): for MR_DEVICE the
 * topmost device allocator of GPU device.id (MR_ERR_INVALID_ARG if device allocators are pushed
 * but none of that GPU, MR_ERR_EMPTY_CONTEXT if none is). Retains the allocator. count 0 is
 * MR_ERR_INVALID_ARG. */
MR_API mr_status mr_buffer_create(mr_buffer **out, size_t count, mr_dtype dtype, mr_device device);
/* Same, from an explicit allocator. */
MR_API mr_status mr_buffer_create_from(mr_buffer **out, size_t count, mr_dtype dtype,
                                       mr_allocator *alloc);
MR_API mr_buffer *mr_buffer_retain(mr_buffer *b);
/* Drops a reference; the last one frees the bytes on the allocator's bound stream and releases
 * the allocator. NULL is fine. */
MR_API void mr_buffer_release(mr_buffer *b);

MR_API void *mr_buffer_data(const mr_buffer *b);
MR_API size_t mr_buffer_count(const mr_buffer *b);
MR_API size_t mr_buffer_bytes(const mr_buffer *b);
MR_API mr_dtype mr_buffer_dtype(const mr_buffer *b);
MR_API mr_device mr_buffer_device(const mr_buffer *b);
MR_API mr_allocator *mr_buffer_allocator(const mr_buffer *b);

/* Copy all of src into dst (same byte size) / set every byte, on the context stream. Without a
 * context stream only host and pinned buffers can be copied (synchronously). */
MR_API mr_status mr_buffer_copy(mr_buffer *dst, const mr_buffer *src);
MR_API mr_status mr_buffer_clear(mr_buffer *b);

MR_EXTERN_C_END

#endif
