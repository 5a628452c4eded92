/* mr_stream and mr_event: refcounting and dispatch through the backend's vtable. */
#include "internal.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* Identities of non-CUDA streams count down from the top so they never meet CUDA's ids. */
static atomic_uint_fast64_t g_next_id = UINT64_MAX;

uint64_t mr__stream_next_id(void) { return atomic_fetch_sub(&g_next_id, 1); }

mr_status mr__stream_create_with_id(mr_stream **out, const mr_stream_ops *ops, void *state,
                                    mr_device device, uint64_t id) {
  mr_stream *s = malloc(sizeof *s);
  if (!s)
    return mr__error(MR_ERR_OUT_OF_MEMORY, "stream: malloc(%zu) failed", sizeof *s);
  s->ops = ops;
  s->state = state;
  s->device = device;
  s->id = id;
  mr__rc_init(&s->rc);
  *out = s;
  return MR_OK;
}

mr_status mr_stream_create_custom(mr_stream **out, const mr_stream_ops *ops, void *state,
                                  mr_device device) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_stream_create_custom: out is NULL");
  *out = NULL;
  if (!ops || !ops->event_create || !ops->event_destroy || !ops->event_record || !ops->event_query)
    return mr__error(MR_ERR_INVALID_ARG,
                     "mr_stream_create_custom: ops is NULL or lacks a required event op");
  if (ops->version != MR_STREAM_OPS_VERSION)
    return mr__error(MR_ERR_INVALID_ARG, "mr_stream_create_custom: ops version %u, expected %u",
                     ops->version, MR_STREAM_OPS_VERSION);
  if ((unsigned)device.kind >= MR_KIND_COUNT_)
    return mr__error(MR_ERR_INVALID_ARG, "mr_stream_create_custom: bad device kind %d",
                     (int)device.kind);
  return mr__stream_create_with_id(out, ops, state, device, mr__stream_next_id());
}

mr_stream *mr_stream_retain(mr_stream *s) {
  if (s)
    mr__rc_retain(&s->rc);
  return s;
}

void mr__stream_destroy(mr_stream *s) {
  if (s->ops->destroy)
    s->ops->destroy(s);
  free(s);
}

void mr_stream_release(mr_stream *s) {
  if (s && mr__rc_release(&s->rc))
    mr__stream_destroy(s);
}

void *mr_stream_state(const mr_stream *s) { return s ? s->state : NULL; }
const mr_stream_ops *mr_stream_ops_of(const mr_stream *s) { return s ? s->ops : NULL; }
mr_device mr_stream_device(const mr_stream *s) { return s ? s->device : mr_device_host(); }
uint64_t mr_stream_id(const mr_stream *s) { return s ? s->id : 0; }
const char *mr_stream_backend(const mr_stream *s) {
  return s && s->ops->backend ? s->ops->backend : "";
}
bool mr_stream_is_cuda(const mr_stream *s) {
  return s && mr__cuda_stream_ops && s->ops == mr__cuda_stream_ops;
}
void *mr_stream_native(const mr_stream *s) {
  return s && s->ops->native ? s->ops->native((mr_stream *)s) : NULL;
}

mr_status mr_stream_synchronize(mr_stream *s) {
  if (!s)
    return mr__error(MR_ERR_INVALID_ARG, "mr_stream_synchronize: stream is NULL");
  if (s->ops->synchronize)
    return s->ops->synchronize(s);
  mr_event *e;
  mr_status st = mr_event_create(&e, s);
  if (st != MR_OK)
    return st;
  st = mr_event_record(e, s);
  if (st == MR_OK)
    st = mr_event_synchronize(e);
  mr_event_destroy(e);
  return st;
}

mr_status mr_stream_copy(mr_stream *s, void *dst, const void *src, size_t bytes) {
  if (!s || ((!dst || !src) && bytes))
    return mr__error(MR_ERR_INVALID_ARG, "mr_stream_copy: NULL stream or pointer");
  if (bytes == 0)
    return MR_OK;
  if (s->ops->copy)
    return s->ops->copy(s, dst, src, bytes);
  memmove(dst, src, bytes);
  return MR_OK;
}

mr_status mr_stream_fill(mr_stream *s, void *dst, int value, size_t bytes) {
  if (!s || (!dst && bytes))
    return mr__error(MR_ERR_INVALID_ARG, "mr_stream_fill: NULL stream or pointer");
  if (bytes == 0)
    return MR_OK;
  if (s->ops->fill)
    return s->ops->fill(s, dst, value, bytes);
  memset(dst, value, bytes);
  return MR_OK;
}

/* ---- events ---------------------------------------------------------------------------------- */

mr_status mr_event_create(mr_event **out, mr_stream *backend_of) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_event_create: out is NULL");
  *out = NULL;
  if (!backend_of)
    return mr__error(MR_ERR_INVALID_ARG, "mr_event_create: stream is NULL");
  mr_event *e = malloc(sizeof *e);
  if (!e)
    return mr__error(MR_ERR_OUT_OF_MEMORY, "mr_event_create: malloc(%zu) failed", sizeof *e);
  mr_status st = backend_of->ops->event_create(backend_of, &e->handle);
  if (st != MR_OK) {
    free(e);
    return st;
  }
  e->backend = mr_stream_retain(backend_of);
  e->recorded_on = NULL;
  *out = e;
  return MR_OK;
}

void mr_event_destroy(mr_event *e) {
  if (!e)
    return;
  e->backend->ops->event_destroy(e->backend, e->handle);
  mr_stream_release(e->backend);
  free(e);
}

mr_status mr_event_record(mr_event *e, mr_stream *s) {
  if (!e || !s)
    return mr__error(MR_ERR_INVALID_ARG, "mr_event_record: NULL event or stream");
  if (s->ops != e->backend->ops)
    return mr__error(MR_ERR_INVALID_ARG,
                     "mr_event_record: event of backend '%s' recorded on a '%s' stream",
                     mr_stream_backend(e->backend), mr_stream_backend(s));
  mr_status st = s->ops->event_record(s, e->handle);
  if (st == MR_OK)
    e->recorded_on = s;
  return st;
}

mr_status mr_event_query(mr_event *e, bool *done) {
  if (!e || !done)
    return mr__error(MR_ERR_INVALID_ARG, "mr_event_query: NULL event or out-pointer");
  return e->backend->ops->event_query(e->backend, e->handle, done);
}

mr_status mr_event_synchronize(mr_event *e) {
  if (!e)
    return mr__error(MR_ERR_INVALID_ARG, "mr_event_synchronize: event is NULL");
  if (e->backend->ops->event_synchronize)
    return e->backend->ops->event_synchronize(e->backend, e->handle);
  for (;;) {
    bool done = false;
    mr_status st = e->backend->ops->event_query(e->backend, e->handle, &done);
    if (st != MR_OK || done)
      return st;
    sched_yield();
  }
}

mr_status mr_stream_wait_event(mr_stream *s, mr_event *e) {
  if (!s || !e)
    return mr__error(MR_ERR_INVALID_ARG, "mr_stream_wait_event: NULL stream or event");
  if (s->ops == e->backend->ops && s->ops->wait_event)
    return s->ops->wait_event(s, e->recorded_on ? e->recorded_on : e->backend, e->handle);
  return mr_event_synchronize(e);
}

mr_stream *mr_event_stream(const mr_event *e) { return e ? e->recorded_on : NULL; }

/* ---- the host backend: everything is complete when the call returns ------------------------- */

static int g_host_event_token;

static mr_status host_event_create(mr_stream *self, void **event) {
  MR_UNUSED(self);
  *event = &g_host_event_token;
  return MR_OK;
}
static void host_event_destroy(mr_stream *self, void *event) {
  MR_UNUSED(self);
  MR_UNUSED(event);
}
static mr_status host_event_record(mr_stream *self, void *event) {
  MR_UNUSED(self);
  MR_UNUSED(event);
  return MR_OK;
}
static mr_status host_event_query(mr_stream *self, void *event, bool *done) {
  MR_UNUSED(self);
  MR_UNUSED(event);
  *done = true;
  return MR_OK;
}
static mr_status host_wait_event(mr_stream *self, mr_stream *owner, void *event) {
  MR_UNUSED(self);
  MR_UNUSED(owner);
  MR_UNUSED(event);
  return MR_OK;
}
static mr_status host_synchronize(mr_stream *self) {
  MR_UNUSED(self);
  return MR_OK;
}

static const mr_stream_ops k_host_ops = {
    .version = MR_STREAM_OPS_VERSION,
    .backend = "host",
    .event_create = host_event_create,
    .event_destroy = host_event_destroy,
    .event_record = host_event_record,
    .event_query = host_event_query,
    .wait_event = host_wait_event,
    .synchronize = host_synchronize,
};

mr_status mr_stream_create_host(mr_stream **out) {
  return mr_stream_create_custom(out, &k_host_ops, NULL, mr_device_host());
}
