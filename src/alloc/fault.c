/* The fault-injection adaptor: passes every call through to its upstream, but fails the Nth
 * alloc (1-based), or every Nth, with a status of the user's choice. Tests use it to drive the
 * out-of-memory paths of pools; users can put it under anything. Lock-free: the schedule and
 * the counters are atomics, so threads may allocate through it concurrently. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct fault_state {
  mr_allocator *upstream; /* retained */
  atomic_uint_fast64_t fail_nth;
  atomic_uint_fast64_t fail_every;
  atomic_int status;
  atomic_uint_fast64_t calls;    /* allocs seen since the last schedule change */
  atomic_uint_fast64_t failures; /* of which injected failures */
  mr__counters counters;         /* our own view, used when upstream keeps no statistics */
} fault_state;

static mr_alloc_fn fault_alloc;
static mr_free_fn fault_free;
static mr_trim_fn fault_trim;
static mr_stats_fn fault_stats;
static mr_destroy_fn fault_destroy;
static mr_grant_access_fn fault_grant_access;

static const mr_allocator_ops k_fault_ops = {
    .version = MR_ALLOCATOR_OPS_VERSION,
    .alloc = fault_alloc,
    .free = fault_free,
    .trim = fault_trim,
    .stats = fault_stats,
    .destroy = fault_destroy,
    .grant_access = fault_grant_access,
};

static fault_state *state_of(const mr_allocator *a) { return a->state; }

static mr_status fault_alloc(mr_allocator *self, size_t size, mr_stream *stream, void **out) {
  fault_state *f = state_of(self);
  uint_fast64_t n = atomic_fetch_add_explicit(&f->calls, 1, memory_order_relaxed) + 1;
  uint_fast64_t nth = atomic_load_explicit(&f->fail_nth, memory_order_relaxed);
  uint_fast64_t every = atomic_load_explicit(&f->fail_every, memory_order_relaxed);
  if ((nth && n == nth) || (every && n % every == 0)) {
    atomic_fetch_add_explicit(&f->failures, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&f->counters.failed, 1, memory_order_relaxed);
    *out = NULL;
    mr_status st = (mr_status)atomic_load_explicit(&f->status, memory_order_relaxed);
    return mr__error(st,
                     "'%s': injected failure of alloc call %llu (%zu bytes; fail_nth %llu, "
                     "fail_every %llu)",
                     self->name, (unsigned long long)n, size, (unsigned long long)nth,
                     (unsigned long long)every);
  }
  mr_status st = mr_alloc_async(f->upstream, size, stream, out);
  if (st == MR_OK)
    mr__counters_alloc(&f->counters, size);
  else
    atomic_fetch_add_explicit(&f->counters.failed, 1, memory_order_relaxed);
  return st;
}

static mr_status fault_free(mr_allocator *self, void *ptr, size_t size, mr_stream *stream) {
  fault_state *f = state_of(self);
  mr_status st = mr_free_async(f->upstream, ptr, size, stream);
  if (st == MR_OK)
    mr__counters_free(&f->counters, size);
  return st;
}

static mr_status fault_trim(mr_allocator *self, size_t keep_bytes) {
  return mr_trim(state_of(self)->upstream, keep_bytes);
}

static mr_status fault_grant_access(mr_allocator *self, int peer_device) {
  return mr_allocator_grant_access(state_of(self)->upstream, peer_device);
}

static mr_status fault_stats(mr_allocator *self, mr_stats *out) {
  fault_state *f = state_of(self);
  const mr_allocator_ops *up = mr_allocator_ops_of(f->upstream);
  if (up->stats) {
    mr_status st = mr_stats_get(f->upstream, out);
    if (st == MR_OK)
      out->failed_allocs += atomic_load(&f->failures);
    return st;
  }
  mr__counters_fill(&f->counters, out);
  return MR_OK;
}

static void fault_destroy(mr_allocator *self) {
  fault_state *f = state_of(self);
  mr_allocator_release(f->upstream);
  free(f);
}

static mr_status check_options(const char *fn, const mr_fault_options *opts) {
  if (opts && (unsigned)opts->status >= MR_STATUS_COUNT_)
    return mr__error(MR_ERR_INVALID_ARG, "%s: status %d is not an mr_status", fn,
                     (int)opts->status);
  return MR_OK;
}

static void apply_options(fault_state *f, const mr_fault_options *opts) {
  mr_status st = opts && opts->status != MR_OK ? opts->status : MR_ERR_OUT_OF_MEMORY;
  atomic_store(&f->status, (int)st);
  atomic_store(&f->fail_nth, opts ? opts->fail_nth : 0);
  atomic_store(&f->fail_every, opts ? opts->fail_every : 0);
  atomic_store(&f->calls, 0);
  atomic_store(&f->failures, 0);
}

mr_status mr_fault_allocator_create(mr_allocator **out, mr_allocator *upstream,
                                    const mr_fault_options *opts) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_fault_allocator_create: out is NULL");
  *out = NULL;
  if (!upstream)
    return mr__error(MR_ERR_INVALID_ARG, "mr_fault_allocator_create: upstream is NULL");
  mr_status st = check_options("mr_fault_allocator_create", opts);
  if (st != MR_OK)
    return st;
  fault_state *f = calloc(1, sizeof *f);
  if (!f)
    return mr__error(MR_ERR_OUT_OF_MEMORY, "mr_fault_allocator_create: malloc(%zu) failed",
                     sizeof *f);
  apply_options(f, opts);
  char name[MR_NAME_MAX];
  snprintf(name, sizeof name, "fault(%.38s)", mr_allocator_name(upstream));
  st = mr_allocator_create(out, &k_fault_ops, f, mr_allocator_device(upstream), name,
                           mr_allocator_stream(upstream));
  if (st != MR_OK) {
    free(f);
    return st;
  }
  f->upstream = mr_allocator_retain(upstream);
  return MR_OK;
}

static fault_state *fault_of(const mr_allocator *a) {
  return a && a->ops == &k_fault_ops ? a->state : NULL;
}

mr_status mr_fault_allocator_set(mr_allocator *fault, const mr_fault_options *opts) {
  fault_state *f = fault_of(fault);
  if (!f)
    return mr__error(MR_ERR_INVALID_ARG, "mr_fault_allocator_set: '%s' is not a fault adaptor",
                     mr_allocator_name(fault));
  mr_status st = check_options("mr_fault_allocator_set", opts);
  if (st != MR_OK)
    return st;
  apply_options(f, opts);
  return MR_OK;
}

uint64_t mr_fault_allocator_calls(const mr_allocator *fault) {
  fault_state *f = fault_of(fault);
  return f ? atomic_load(&f->calls) : 0;
}

uint64_t mr_fault_allocator_failures(const mr_allocator *fault) {
  fault_state *f = fault_of(fault);
  return f ? atomic_load(&f->failures) : 0;
}
