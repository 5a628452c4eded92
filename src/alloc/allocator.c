/* mr_allocator: refcounting, views bound to other streams, dispatch through the vtable. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mr_status mr_allocator_create(mr_allocator **out, const mr_allocator_ops *ops, void *state,
                              mr_device device, const char *name, mr_stream *stream) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_allocator_create: out is NULL");
  *out = NULL;
  if (!ops || !ops->alloc || !ops->free)
    return mr__error(MR_ERR_INVALID_ARG,
                     "mr_allocator_create: ops is NULL or lacks alloc/free (name '%s')",
                     name ? name : "");
  if (ops->version < 1 || ops->version > MR_ALLOCATOR_OPS_VERSION)
    return mr__error(MR_ERR_INVALID_ARG, "mr_allocator_create: ops version %u, expected 1..%u",
                     ops->version, MR_ALLOCATOR_OPS_VERSION);
  if ((unsigned)device.kind >= MR_KIND_COUNT_ || device.id < 0)
    return mr__error(MR_ERR_INVALID_ARG, "mr_allocator_create: bad device {kind %d, id %d}",
                     (int)device.kind, device.id);
  mr_allocator *a = calloc(1, sizeof *a);
  if (!a)
    return mr__error(MR_ERR_OUT_OF_MEMORY, "mr_allocator_create: malloc(%zu) failed", sizeof *a);
  a->ops = ops;
  a->state = state;
  a->device = device;
  a->stream = mr_stream_retain(stream);
  mr__rc_init(&a->rc);
  snprintf(a->name, sizeof a->name, "%s", name ? name : "allocator");
  *out = a;
  return MR_OK;
}

mr_allocator *mr_allocator_retain(mr_allocator *a) {
  if (a)
    mr__rc_retain(&a->rc);
  return a;
}

void mr__allocator_destroy(mr_allocator *a) {
  if (a->parent)
    mr_allocator_release(a->parent);
  else if (a->ops->destroy)
    a->ops->destroy(a);
  mr_stream_release(a->stream);
  free(a);
}

void mr_allocator_release(mr_allocator *a) {
  if (a && mr__rc_release(&a->rc))
    mr__allocator_destroy(a);
}

mr_status mr_allocator_bind(mr_allocator *a, mr_stream *stream, mr_allocator **view) {
  if (!view)
    return mr__error(MR_ERR_INVALID_ARG, "mr_allocator_bind: view is NULL");
  *view = NULL;
  if (!a)
    return mr__error(MR_ERR_INVALID_ARG, "mr_allocator_bind: allocator is NULL");
  mr_allocator *root = a->parent ? a->parent : a;
  mr_allocator *v;
  mr_status st = mr_allocator_create(&v, root->ops, root->state, root->device, root->name, stream);
  if (st != MR_OK)
    return st;
  v->parent = mr_allocator_retain(root);
  *view = v;
  return MR_OK;
}

void *mr_allocator_state(const mr_allocator *a) { return a ? a->state : NULL; }
const mr_allocator_ops *mr_allocator_ops_of(const mr_allocator *a) { return a ? a->ops : NULL; }
mr_device mr_allocator_device(const mr_allocator *a) {
  return a ? a->device : (mr_device){MR_KIND_COUNT_, -1};
}
const char *mr_allocator_name(const mr_allocator *a) { return a ? a->name : ""; }
mr_stream *mr_allocator_stream(const mr_allocator *a) { return a ? a->stream : NULL; }

mr_status mr_alloc_async(mr_allocator *a, size_t size, mr_stream *stream, void **out) {
  if (MR_UNLIKELY(!out))
    return mr__error(MR_ERR_INVALID_ARG, "mr_alloc: out is NULL");
  *out = NULL;
  if (MR_UNLIKELY(!a))
    return mr__error(MR_ERR_INVALID_ARG, "mr_alloc: allocator is NULL");
  if (MR_UNLIKELY(size == 0))
    return mr__error(MR_ERR_INVALID_ARG, "mr_alloc: size 0 from '%s'", a->name);
  return a->ops->alloc(a, size, stream, out);
}

mr_status mr_free_async(mr_allocator *a, void *ptr, size_t size, mr_stream *stream) {
  if (MR_UNLIKELY(!a))
    return mr__error(MR_ERR_INVALID_ARG, "mr_free: allocator is NULL");
  if (!ptr)
    return MR_OK;
  return a->ops->free(a, ptr, size, stream);
}

mr_status mr_alloc(mr_allocator *a, size_t size, void **out) {
  return mr_alloc_async(a, size, a ? a->stream : NULL, out);
}

mr_status mr_free(mr_allocator *a, void *ptr, size_t size) {
  return mr_free_async(a, ptr, size, a ? a->stream : NULL);
}

mr_status mr_trim(mr_allocator *a, size_t keep_bytes) {
  if (!a)
    return mr__error(MR_ERR_INVALID_ARG, "mr_trim: allocator is NULL");
  return a->ops->trim ? a->ops->trim(a, keep_bytes) : MR_OK;
}

mr_status mr_allocator_grant_access(mr_allocator *a, int peer_device) {
  if (!a)
    return mr__error(MR_ERR_INVALID_ARG, "mr_allocator_grant_access: allocator is NULL");
  if (peer_device < 0)
    return mr__error(MR_ERR_INVALID_ARG, "mr_allocator_grant_access: '%s': bad peer device %d",
                     a->name, peer_device);
  /* A version-1 table ends before grant_access: never read past it. */
  mr_grant_access_fn *fn = a->ops->version >= 2 ? a->ops->grant_access : NULL;
  if (!fn)
    return mr__error(MR_ERR_UNSUPPORTED,
                     "mr_allocator_grant_access: '%s' (%s memory) cannot grant device %d access "
                     "(its vtable has no grant_access)",
                     a->name, mr_kind_str(a->device.kind), peer_device);
  return fn(a, peer_device);
}

void mr__stats_copy_out(mr_stats *out, const mr_stats *src) {
  size_t n = out->struct_size < sizeof *src ? out->struct_size : sizeof *src;
  uint32_t size = out->struct_size;
  memcpy(out, src, n);
  out->struct_size = size;
  out->version = MR_STATS_VERSION;
}

mr_status mr_stats_get(mr_allocator *a, mr_stats *out) {
  if (!a || !out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_stats_get: NULL allocator or out-pointer");
  if (out->struct_size < 2 * sizeof(uint32_t))
    return mr__error(MR_ERR_INVALID_ARG,
                     "mr_stats_get: out->struct_size is %u (initialise with MR_STATS_INIT)",
                     out->struct_size);
  if (!a->ops->stats)
    return mr__error(MR_ERR_UNSUPPORTED, "mr_stats_get: '%s' keeps no statistics", a->name);
  mr_stats full = MR_STATS_INIT;
  mr_status st = a->ops->stats(a, &full);
  if (st == MR_OK)
    mr__stats_copy_out(out, &full);
  return st;
}

size_t mr_stats_json(const mr_stats *s, char *buf, size_t len) {
  if (!s || (!buf && len))
    return 0;
  int n =
      snprintf(buf, len,
               "{\"bytes_in_use\":%llu,\"peak_in_use\":%llu,\"bytes_requested\":%llu,"
               "\"peak_requested\":%llu,\"bytes_reserved\":%llu,\"peak_reserved\":%llu,"
               "\"live_blocks\":%llu,\"allocs\":%llu,\"frees\":%llu,\"cache_hits\":%llu,"
               "\"upstream_allocs\":%llu,\"upstream_frees\":%llu,\"splits\":%llu,\"merges\":%llu,"
               "\"oom_retries\":%llu,\"largest_free_block\":%llu,\"failed_allocs\":%llu}",
               (unsigned long long)s->bytes_in_use, (unsigned long long)s->peak_in_use,
               (unsigned long long)s->bytes_requested, (unsigned long long)s->peak_requested,
               (unsigned long long)s->bytes_reserved, (unsigned long long)s->peak_reserved,
               (unsigned long long)s->live_blocks, (unsigned long long)s->allocs,
               (unsigned long long)s->frees, (unsigned long long)s->cache_hits,
               (unsigned long long)s->upstream_allocs, (unsigned long long)s->upstream_frees,
               (unsigned long long)s->splits, (unsigned long long)s->merges,
               (unsigned long long)s->oom_retries, (unsigned long long)s->largest_free_block,
               (unsigned long long)s->failed_allocs);
  return n < 0 ? 0 : (size_t)n;
}

/* ---- counters for plain allocators ----------------------------------------------------------- */

void mr__counters_alloc(mr__counters *c, size_t bytes) {
  uint_fast64_t now = atomic_fetch_add_explicit(&c->in_use, bytes, memory_order_relaxed) + bytes;
  uint_fast64_t peak = atomic_load_explicit(&c->peak, memory_order_relaxed);
  while (now > peak && !atomic_compare_exchange_weak_explicit(
                           &c->peak, &peak, now, memory_order_relaxed, memory_order_relaxed)) {
  }
  atomic_fetch_add_explicit(&c->live, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->allocs, 1, memory_order_relaxed);
}

void mr__counters_free(mr__counters *c, size_t bytes) {
  atomic_fetch_sub_explicit(&c->in_use, bytes, memory_order_relaxed);
  atomic_fetch_sub_explicit(&c->live, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->frees, 1, memory_order_relaxed);
}

void mr__counters_fill(mr__counters *c, mr_stats *s) {
  s->bytes_in_use = s->bytes_requested = s->bytes_reserved = atomic_load(&c->in_use);
  s->peak_in_use = s->peak_requested = s->peak_reserved = atomic_load(&c->peak);
  s->live_blocks = atomic_load(&c->live);
  s->allocs = atomic_load(&c->allocs);
  s->frees = atomic_load(&c->frees);
  s->failed_allocs = atomic_load(&c->failed);
}
