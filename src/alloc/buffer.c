/* mr_buffer: a refcounted typed buffer whose bytes come from the context's allocator. */
#include "../context/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mr_buffer {
  atomic_long refs;
  void *data;
  size_t count;
  size_t bytes;
  mr_dtype dtype;
  mr_allocator *alloc; /* retained; its device is the buffer's */
};

static const struct {
  size_t size;
  const char *name;
} k_dtypes[MR_DTYPE_COUNT_] = {
    [MR_U8] = {1, "u8"},     [MR_I8] = {1, "i8"},   [MR_I16] = {2, "i16"},
    [MR_I32] = {4, "i32"},   [MR_I64] = {8, "i64"}, [MR_F16] = {2, "f16"},
    [MR_BF16] = {2, "bf16"}, [MR_F32] = {4, "f32"}, [MR_F64] = {8, "f64"},
};

size_t mr_dtype_size(mr_dtype dtype) {
  return (unsigned)dtype < MR_DTYPE_COUNT_ ? k_dtypes[dtype].size : 0;
}

const char *mr_dtype_str(mr_dtype dtype) {
  return (unsigned)dtype < MR_DTYPE_COUNT_ ? k_dtypes[dtype].name : "invalid";
}

/* Checks count and dtype; the byte size in *bytes. */
static mr_status check_shape(const char *who, size_t count, mr_dtype dtype, size_t *bytes) {
  size_t size = mr_dtype_size(dtype);
  if (size == 0)
    return mr__error(MR_ERR_INVALID_ARG, "%s: bad dtype %d", who, (int)dtype);
  if (count == 0)
    return mr__error(MR_ERR_INVALID_ARG, "%s: count is 0", who);
  if (count > SIZE_MAX / size)
    return mr__error(MR_ERR_INVALID_ARG, "%s: %zu elements of %s (%zu bytes each) overflow size_t",
                     who, count, mr_dtype_str(dtype), size);
  *bytes = count * size;
  return MR_OK;
}

static mr_status make(mr_buffer **out, size_t count, mr_dtype dtype, size_t bytes,
                      mr_allocator *alloc) {
  mr_buffer *b = malloc(sizeof *b);
  if (!b)
    return mr__error(MR_ERR_OUT_OF_MEMORY, "mr_buffer_create: malloc(%zu) failed", sizeof *b);
  mr_status st = mr_alloc(alloc, bytes, &b->data);
  if (st != MR_OK) { /* the allocator recorded why */
    free(b);
    return st;
  }
  atomic_init(&b->refs, 1);
  b->count = count;
  b->bytes = bytes;
  b->dtype = dtype;
  b->alloc = mr_allocator_retain(alloc);
  *out = b;
  return MR_OK;
}

mr_status mr_buffer_create(mr_buffer **out, size_t count, mr_dtype dtype, mr_device device) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_buffer_create: out is NULL");
  *out = NULL;
  size_t bytes = 0;
  mr_status st = check_shape("mr_buffer_create", count, dtype, &bytes);
  if (st != MR_OK)
    return st;
  if ((unsigned)device.kind >= MR_KIND_COUNT_)
    return mr__error(MR_ERR_INVALID_ARG, "mr_buffer_create: bad device kind %d", (int)device.kind);
  mr_allocator *a = mr_context_alloc_for(device);
  if (!a) {
    if (device.kind == MR_DEVICE && mr_context_alloc_depth(MR_DEVICE) > 0) {
      /* Device allocators are pushed, none of them on that GPU: a wrong argument rather than an
       * empty context. The context's message names the top one and its GPU. */
      char why[400];
      snprintf(why, sizeof why, "%s", mr_last_error());
      return mr__error(MR_ERR_INVALID_ARG, "mr_buffer_create: %zu x %s on device %d: %s", count,
                       mr_dtype_str(dtype), device.id, why);
    }
    return mr__error(MR_ERR_EMPTY_CONTEXT,
                     "mr_buffer_create: no %s allocator in this thread's context for %zu x %s",
                     mr_kind_str(device.kind), count, mr_dtype_str(dtype));
  }
  return make(out, count, dtype, bytes, a);
}

mr_status mr_buffer_create_from(mr_buffer **out, size_t count, mr_dtype dtype,
                                mr_allocator *alloc) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_buffer_create_from: out is NULL");
  *out = NULL;
  if (!alloc)
    return mr__error(MR_ERR_INVALID_ARG, "mr_buffer_create_from: allocator is NULL");
  size_t bytes = 0;
  mr_status st = check_shape("mr_buffer_create_from", count, dtype, &bytes);
  if (st != MR_OK)
    return st;
  return make(out, count, dtype, bytes, alloc);
}

mr_buffer *mr_buffer_retain(mr_buffer *b) {
  if (b)
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
  return b;
}

void mr_buffer_release(mr_buffer *b) {
  if (!b)
    return;
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
    return;
  /* On the allocator's bound stream; a failure is recorded by the allocator and there is
   * nothing more a release can do about it. */
  mr_free(b->alloc, b->data, b->bytes);
  mr_allocator_release(b->alloc);
  free(b);
}

void *mr_buffer_data(const mr_buffer *b) { return b ? b->data : NULL; }
size_t mr_buffer_count(const mr_buffer *b) { return b ? b->count : 0; }
size_t mr_buffer_bytes(const mr_buffer *b) { return b ? b->bytes : 0; }
mr_dtype mr_buffer_dtype(const mr_buffer *b) { return b ? b->dtype : MR_DTYPE_COUNT_; }
mr_device mr_buffer_device(const mr_buffer *b) {
  return b ? b->alloc->device : (mr_device){MR_KIND_COUNT_, -1};
}
mr_allocator *mr_buffer_allocator(const mr_buffer *b) { return b ? b->alloc : NULL; }

/* The stream to run a copy/fill touching these buffers on, or NULL for a synchronous host
 * operation; an error when neither works. */
static mr_status pick_stream(const char *who, const mr_buffer *a, const mr_buffer *b,
                             mr_stream **out) {
  int on_device = a->alloc->device.kind == MR_DEVICE || (b && b->alloc->device.kind == MR_DEVICE);
  mr_stream *s = mr__context_stream_peek();
  *out = s;
  if (!s) {
    if (on_device)
      return mr__error(MR_ERR_EMPTY_CONTEXT,
                       "%s: device buffers need a stream in this thread's context", who);
    return MR_OK;
  }
  /* The default copy/fill of a backend is memcpy/memset on the host: no use for GPU memory. */
  const mr_stream_ops *ops = mr_stream_ops_of(s);
  if (on_device && !mr_stream_is_cuda(s) && !ops->copy)
    return mr__error(MR_ERR_INVALID_ARG,
                     "%s: device buffers on a '%s' stream, which cannot reach GPU memory", who,
                     mr_stream_backend(s));
  return MR_OK;
}

mr_status mr_buffer_copy(mr_buffer *dst, const mr_buffer *src) {
  if (!dst || !src)
    return mr__error(MR_ERR_INVALID_ARG, "mr_buffer_copy: NULL buffer");
  if (dst->bytes != src->bytes)
    return mr__error(MR_ERR_INVALID_ARG, "mr_buffer_copy: %zu bytes into %zu bytes", src->bytes,
                     dst->bytes);
  if (dst == src)
    return MR_OK;
  mr_stream *s;
  mr_status st = pick_stream("mr_buffer_copy", dst, src, &s);
  if (st != MR_OK)
    return st;
  if (s)
    return mr_stream_copy(s, dst->data, src->data, dst->bytes);
  memmove(dst->data, src->data, dst->bytes);
  return MR_OK;
}

mr_status mr_buffer_clear(mr_buffer *b) {
  if (!b)
    return mr__error(MR_ERR_INVALID_ARG, "mr_buffer_clear: NULL buffer");
  mr_stream *s;
  mr_status st = pick_stream("mr_buffer_clear", b, NULL, &s);
  if (st != MR_OK)
    return st;
  if (s && b->alloc->device.kind != MR_DEVICE && mr_stream_is_cuda(s)) {
    /* cudaMemsetAsync cannot reach pageable (or pinned) host memory: wait for the stream's work
     * before it, then clear on the host. */
    st = mr_stream_synchronize(s);
    s = NULL;
    if (st != MR_OK)
      return st;
  }
  if (s)
    return mr_stream_fill(s, b->data, 0, b->bytes);
  memset(b->data, 0, b->bytes);
  return MR_OK;
}
