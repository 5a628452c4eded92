/* The caching pool's statistics: each stream counts under its own lock (caching.c, inline on
 * the fast paths) and publishes to the pool-wide counters past the slack; the pool's and a
 * stream's figures for mr_stats_get and mr_caching_pool_stream_stats. */
#include "caching_internal.h"

static void raise_to(atomic_ullong *peak, unsigned long long v) {
  unsigned long long cur = atomic_load_explicit(peak, memory_order_relaxed);
  while (v > cur && !atomic_compare_exchange_weak_explicit(peak, &cur, v, memory_order_relaxed,
                                                           memory_order_relaxed)) {
  }
}

void mr__pool_publish(mr__pool *p, mr__pstream *ps) {
  long long u = atomic_fetch_add_explicit(&p->g_in_use, ps->pending_in_use, memory_order_relaxed) +
                ps->pending_in_use;
  long long r =
      atomic_fetch_add_explicit(&p->g_requested, ps->pending_requested, memory_order_relaxed) +
      ps->pending_requested;
  ps->pending_in_use = ps->pending_requested = 0;
  if (u > 0)
    raise_to(&p->g_peak_in_use, (unsigned long long)u);
  if (r > 0)
    raise_to(&p->g_peak_requested, (unsigned long long)r);
}

/* ps's first allocation or free (p->mu held, ps->lock not). The first active stream goes solo;
 * the second ends that: the solo stream publishes what it kept, and the pool-wide peaks take
 * its own (they were the pool's while it was alone). */
void mr__pool_activate(mr__pool *p, mr__pstream *ps) {
  if (ps->active)
    return;
  ps->active = 1;
  if (p->nactive++ == 0) {
    mr__bias_lock(&ps->lock);
    ps->solo = 1;
    mr__bias_unlock(&ps->lock);
    p->solo = ps;
    return;
  }
  mr__pstream *o = p->solo;
  if (!o)
    return;
  p->solo = NULL;
  mr__bias_lock(&o->lock);
  o->solo = 0;
  raise_to(&p->g_peak_in_use, o->peak_in_use);
  raise_to(&p->g_peak_requested, o->peak_requested);
  mr__pool_publish(p, o);
  mr__bias_unlock(&o->lock);
}

/* Hits are the allocations that took no new segment; live blocks, allocations less frees. */
static void sum_stream(mr_stats *s, mr__pstream *ps) {
  s->allocs += ps->allocs;
  s->frees += ps->frees;
  s->cache_hits += ps->allocs - ps->grown;
  s->failed_allocs += ps->failed;
}

mr_status mr__pool_stats(mr_allocator *self, mr_stats *s) {
  mr__pool *p = self->state;
  int64_t in_use = 0, requested = 0, live = 0;
  pthread_mutex_lock(&p->mu);
  for (mr__pstream *ps = p->streams; ps; ps = ps->next) {
    mr__bias_lock(&ps->lock);
    sum_stream(s, ps);
    in_use += ps->in_use;
    requested += ps->requested;
    live += (int64_t)(ps->allocs - ps->frees);
    mr__bias_unlock(&ps->lock);
  }
  s->bytes_in_use = (uint64_t)in_use;
  s->bytes_requested = (uint64_t)requested;
  s->live_blocks = (uint64_t)live;
  s->peak_in_use = atomic_load(&p->g_peak_in_use);
  s->peak_requested = atomic_load(&p->g_peak_requested);
  if (p->solo) { /* its peaks are the pool's */
    mr__bias_lock(&p->solo->lock);
    if (s->peak_in_use < p->solo->peak_in_use)
      s->peak_in_use = p->solo->peak_in_use;
    if (s->peak_requested < p->solo->peak_requested)
      s->peak_requested = p->solo->peak_requested;
    mr__bias_unlock(&p->solo->lock);
  }
  if (s->peak_in_use < s->bytes_in_use)
    s->peak_in_use = s->bytes_in_use;
  if (s->peak_requested < s->bytes_requested)
    s->peak_requested = s->bytes_requested;
  s->bytes_reserved = p->reserved;
  s->peak_reserved = p->peak_reserved;
  s->upstream_allocs = p->upstream_allocs;
  s->upstream_frees = p->upstream_frees;
  s->splits = p->splits;
  s->merges = p->merges;
  s->oom_retries = p->oom_retries;
  s->largest_free_block = mr__core_largest_free(p);
  pthread_mutex_unlock(&p->mu);
  return MR_OK;
}

mr_status mr_caching_pool_stream_stats(mr_allocator *pool, mr_stream *stream, mr_stats *out) {
  mr__pool *p = mr__caching_pool_of(pool, "mr_caching_pool_stream_stats");
  if (!p)
    return MR_ERR_INVALID_ARG;
  if (!out || out->struct_size < 2 * sizeof(uint32_t))
    return mr__error(
        MR_ERR_INVALID_ARG,
        "mr_caching_pool_stream_stats: out is NULL or not initialised (MR_STATS_INIT)");
  mr_stats s = MR_STATS_INIT;
  pthread_mutex_lock(&p->mu);
  mr__pstream *ps = mr__pool_stream_find(p, stream);
  if (ps) {
    mr__bias_lock(&ps->lock);
    sum_stream(&s, ps);
    s.bytes_in_use = ps->in_use > 0 ? (uint64_t)ps->in_use : 0;
    s.bytes_requested = ps->requested > 0 ? (uint64_t)ps->requested : 0;
    s.live_blocks = ps->allocs > ps->frees ? ps->allocs - ps->frees : 0;
    s.peak_in_use = ps->peak_in_use;
    s.peak_requested = ps->peak_requested;
    mr__bias_unlock(&ps->lock);
    s.largest_free_block = mr__tlsf_largest(&ps->pending[0]);
    size_t l = mr__tlsf_largest(&ps->pending[1]);
    if (l > s.largest_free_block)
      s.largest_free_block = l;
  }
  pthread_mutex_unlock(&p->mu);
  mr__stats_copy_out(out, &s);
  return MR_OK;
}
