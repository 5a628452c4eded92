/* A user allocator for tests: malloc/free behind the vtable, counting what it sees. The state
 * belongs to the test (destroy only sets a flag), so it can be read after the allocator is gone. */
#ifndef MEMRES_TEST_COUNTING_ALLOC_H
#define MEMRES_TEST_COUNTING_ALLOC_H

#include <memres/memres.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct counting_state {
  atomic_int allocs, frees, destroyed;
  atomic_long live_bytes;
  mr_stream *_Atomic last_alloc_stream;
  mr_stream *_Atomic last_free_stream;
  atomic_int fail; /* nonzero: alloc fails with MR_ERR_OUT_OF_MEMORY */
} counting_state;

static inline mr_status counting_alloc(mr_allocator *self, size_t size, mr_stream *stream,
                                       void **out) {
  counting_state *c = mr_allocator_state(self);
  if (atomic_load(&c->fail))
    return mr_report_error(MR_ERR_OUT_OF_MEMORY, "counting: told to fail (%zu bytes)", size);
  void *p = malloc(size);
  if (!p)
    return mr_report_error(MR_ERR_OUT_OF_MEMORY, "counting: malloc(%zu) failed", size);
  atomic_fetch_add(&c->allocs, 1);
  atomic_fetch_add(&c->live_bytes, (long)size);
  atomic_store(&c->last_alloc_stream, stream);
  *out = p;
  return MR_OK;
}

static inline mr_status counting_free(mr_allocator *self, void *ptr, size_t size,
                                      mr_stream *stream) {
  counting_state *c = mr_allocator_state(self);
  atomic_fetch_add(&c->frees, 1);
  atomic_fetch_sub(&c->live_bytes, (long)size);
  atomic_store(&c->last_free_stream, stream);
  free(ptr);
  return MR_OK;
}

static inline void counting_destroy(mr_allocator *self) {
  counting_state *c = mr_allocator_state(self);
  atomic_store(&c->destroyed, 1);
}

/* A counting allocator on `device` (its kind picks the context stack), bound to `stream`. */
static inline mr_status counting_create(mr_allocator **out, counting_state *state, mr_device device,
                                        mr_stream *stream) {
  static const mr_allocator_ops ops = {
      .version = MR_ALLOCATOR_OPS_VERSION,
      .alloc = counting_alloc,
      .free = counting_free,
      .destroy = counting_destroy,
  };
  return mr_allocator_create(out, &ops, state, device, "counting", stream);
}

/* A host-like stream whose destroy sets `destroyed` in its state, to observe its last release;
 * it counts the copies and fills run on it. */
typedef struct flag_stream_state {
  atomic_int destroyed;
  atomic_int copies, fills;
} flag_stream_state;

static inline mr_status flag_ev_create(mr_stream *self, void **event) {
  static int token;
  (void)self;
  *event = &token;
  return MR_OK;
}
static inline void flag_ev_destroy(mr_stream *self, void *event) {
  (void)self;
  (void)event;
}
static inline mr_status flag_ev_record(mr_stream *self, void *event) {
  (void)self;
  (void)event;
  return MR_OK;
}
static inline mr_status flag_ev_query(mr_stream *self, void *event, bool *done) {
  (void)self;
  (void)event;
  *done = true;
  return MR_OK;
}
static inline mr_status flag_copy(mr_stream *self, void *dst, const void *src, size_t bytes) {
  flag_stream_state *f = mr_stream_state(self);
  atomic_fetch_add(&f->copies, 1);
  memmove(dst, src, bytes);
  return MR_OK;
}
static inline mr_status flag_fill(mr_stream *self, void *dst, int value, size_t bytes) {
  flag_stream_state *f = mr_stream_state(self);
  atomic_fetch_add(&f->fills, 1);
  memset(dst, value, bytes);
  return MR_OK;
}
static inline void flag_destroy(mr_stream *self) {
  flag_stream_state *f = mr_stream_state(self);
  atomic_store(&f->destroyed, 1);
}

static inline mr_status flag_stream_create(mr_stream **out, flag_stream_state *state) {
  static const mr_stream_ops ops = {
      .version = MR_STREAM_OPS_VERSION,
      .backend = "flag",
      .event_create = flag_ev_create,
      .event_destroy = flag_ev_destroy,
      .event_record = flag_ev_record,
      .event_query = flag_ev_query,
      .copy = flag_copy,
      .fill = flag_fill,
      .destroy = flag_destroy,
  };
  return mr_stream_create_custom(out, &ops, state, mr_device_host());
}

#endif
