/* The stream-ordered caching pool: its front (per-stream state under a lock biased to the
 * stream's thread, so threads on different streams never meet on the hot path) and its API. The
 * front cache's bins are caching_front.c, the statistics caching_stats.c (their fast-path
 * counting is inline here), the shared structure behind the front caching_core.c.
 *
 * Alloc: round to the alignment, find the stream's state (a thread-local memo makes that a
 * compare); take the stream's hot block if it fits, else pop a block of the request's size class
 * (or the next class up) from the stream's front cache and enter it in the stream's live map ->
 * done. Otherwise the core, under the pool mutex.
 * Free: the freeing stream's live map (or, for a block freed on another stream, its owner's)
 * finds the block and checks it is live and of that size. The block becomes the stream's hot
 * block, still in its slot (the previous hot block goes to the front cache), reusable by that
 * stream at once. Past the cache's byte budget, the oldest half of each size class goes to the
 * core as pending on that stream: other streams get them only once an event recorded on it has
 * completed (or, under the wait policy, after waiting on that event). Neither path reads or writes
 * a block record: the live map's slot and the front cache's entry hold the address, the sizes and
 * the record's pointer, and only the core (under the mutex) changes a record. */
#include "caching_front.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t g_pool_uid = 1;

/* ---- finding a stream's state ---------------------------------------------------------------- */

typedef struct memo {
  uint64_t uid, sid;
  mr__pstream *ps;
} memo;
static _Thread_local memo tl_memo[8] __attribute__((tls_model("initial-exec")));

static mr__pstream *pstream_slow(mr__pool *p, mr_stream *s) {
  pthread_mutex_lock(&p->mu);
  mr__pstream *ps = mr__pool_stream_find(p, s);
  if (!ps)
    ps = mr__pool_stream_new(p, s);
  pthread_mutex_unlock(&p->mu);
  if (ps) {
    memo *m = &tl_memo[(p->uid ^ s->id) & 7];
    m->uid = p->uid;
    m->sid = s->id;
    m->ps = ps;
  }
  return ps;
}

static inline mr__pstream *pstream_of(mr__pool *p, mr_stream *s) {
  if (!s)
    return p->host_ps;
  memo *m = &tl_memo[(p->uid ^ s->id) & 7];
  if (MR_LIKELY(m->uid == p->uid && m->sid == s->id))
    return m->ps;
  return pstream_slow(p, s);
}

/* ---- statistics (under ps->lock) ------------------------------------------------------------- */

/* Past the slack, a stream adds what it kept to the pool-wide counters (a solo stream's own
 * counters are the pool's: it never needs to). */
static inline __attribute__((always_inline)) void maybe_publish(mr__pool *p, mr__pstream *ps) {
  if (!ps->solo && (uint64_t)(ps->pending_in_use < 0 ? -ps->pending_in_use : ps->pending_in_use) >=
                       p->opt.stats_slack)
    mr__pool_publish(p, ps);
}

static inline __attribute__((always_inline)) void account(mr__pool *p, mr__pstream *ps,
                                                          int64_t bytes, int64_t requested) {
  ps->in_use += bytes;
  ps->requested += requested;
  if (ps->in_use > 0 && (uint64_t)ps->in_use > ps->peak_in_use)
    ps->peak_in_use = (uint64_t)ps->in_use;
  if (ps->requested > 0 && (uint64_t)ps->requested > ps->peak_requested)
    ps->peak_requested = (uint64_t)ps->requested;
  ps->pending_in_use += bytes;
  ps->pending_requested += requested;
  maybe_publish(p, ps);
}

/* A free: no peak can move. */
static inline __attribute__((always_inline)) void account_free(mr__pool *p, mr__pstream *ps,
                                                               int64_t bytes, int64_t requested) {
  ps->in_use -= bytes;
  ps->requested -= requested;
  ps->pending_in_use -= bytes;
  ps->pending_requested -= requested;
  maybe_publish(p, ps);
}

/* ---- alloc and free -------------------------------------------------------------------------- */

/* Tracks block b (at addr, `bsize` bytes) as live on ps for `size` bytes. 0 when there is no host
 * memory for it. */
static inline __attribute__((always_inline)) int track(mr__pstream *ps, uintptr_t addr,
                                                       size_t bsize, mr__blk *b, size_t size) {
  const mr__live_slot *const table = ps->lives.slots;
  const mr__live_slot *sl = mr__livemap_insert(&ps->lives, addr, bsize, b, size);
  if (MR_UNLIKELY(!sl))
    return 0;
  /* A grow rehashed (the map was full): every slot moved, the hot block's and the parked blocks'
     too, which find theirs again. They stay where they are, so when the map grows changes
     nothing of which block an allocation takes. */
  if (MR_UNLIKELY(ps->lives.slots != table))
    mr__cache_refind(ps);
  ps->recent_addr = addr;
  ps->recent_slot = (size_t)(sl - ps->lives.slots);
  return 1;
}

/* The tail of every successful allocation: the block at addr (`bsize` bytes) is the caller's for
 * `size` (ps->lock held, dropped here). */
static inline __attribute__((always_inline)) mr_status
handed_out(mr__pool *p, mr__pstream *ps, uintptr_t addr, size_t bsize, size_t size, void **out) {
  ps->allocs++;
  account(p, ps, (int64_t)bsize, (int64_t)size);
  mr__bias_unlock(&ps->lock);
  *out = (void *)addr;
  return MR_OK;
}

/* Hands out again block b (at addr, `bsize` bytes) from its slot in ps's live map, where it is
 * marked freed: the hot block, or a parked one (ps->lock held, dropped here). Only the slot is
 * written, with no hash and no probe. */
static inline __attribute__((always_inline)) mr_status
handed_out_from_slot(mr__pool *p, mr__pstream *ps, size_t slot, uintptr_t addr, size_t bsize,
                     mr__blk *b, size_t size, void **out) {
  mr__ls_reuse(&ps->lives.slots[slot], ps->lives.shift, addr, bsize, b, size);
  ps->recent_addr = addr;
  ps->recent_slot = slot;
  return handed_out(p, ps, addr, bsize, size, out);
}

static __attribute__((noinline, cold)) mr_status too_big(mr__pool *p, size_t size) {
  return mr__error(MR_ERR_OUT_OF_MEMORY,
                   "caching pool '%s': %zu bytes is more than any upstream can give", p->name,
                   size);
}

static __attribute__((noinline, cold)) mr_status no_stream_state(mr__pool *p) {
  return mr__error(MR_ERR_OUT_OF_MEMORY, "caching pool '%s': no host memory for a stream's state",
                   p->name);
}

/* The live map could not grow: the block goes back to the cache (ps->lock held; dropped here). */
static __attribute__((noinline, cold)) mr_status
untracked(mr__pool *p, mr__pstream *ps, uintptr_t addr, size_t bsize, mr__blk *b) {
  (void)mr__cache_push(p, ps, addr, bsize, b, MR__NO_SLOT); /* over budget: the next free evicts */
  ps->failed++;
  mr__bias_unlock(&ps->lock);
  return mr__error(MR_ERR_OUT_OF_MEMORY, "caching pool '%s': no host memory to track a live block",
                   p->name);
}

/* Nothing in the front cache fits: the core, under the pool mutex. */
static __attribute__((noinline)) mr_status alloc_slow(mr__pool *p, mr__pstream *ps, size_t size,
                                                      size_t rsize, void **out) {
  int from_upstream = 0;
  mr__blk *b;
  pthread_mutex_lock(&p->mu);
  mr__pool_activate(p, ps);
  mr_status st = mr__core_alloc(p, ps, size, rsize, &b, &from_upstream);
  pthread_mutex_unlock(&p->mu);
  mr__bias_lock(&ps->lock);
  if (st != MR_OK) {
    ps->failed++;
    mr__bias_unlock(&ps->lock);
    return st;
  }
  /* the core has just written the record: reading it costs nothing */
  if (MR_UNLIKELY(!track(ps, b->addr, b->size, b, size)))
    return untracked(p, ps, b->addr, b->size, b);
  ps->grown += (uint64_t)from_upstream;
  return handed_out(p, ps, b->addr, b->size, size, out);
}

/* The hot path keeps to the stream's own state: a bin pop and a live-map insert under a lock
 * biased to this thread (no locked instruction), and no block record; everything else is out of
 * line. */
static mr_status pool_alloc(mr_allocator *self, size_t size, mr_stream *stream, void **out) {
  mr__pool *p = self->state;
  size_t align = p->opt.alignment;
  if (MR_UNLIKELY(size > SIZE_MAX / 2))
    return too_big(p, size);
  size_t rsize = (size + align - 1) & ~(align - 1);
  mr__pstream *ps = pstream_of(p, stream);
  if (MR_UNLIKELY(!ps))
    return no_stream_state(p);
  mr__bias_lock(&ps->lock);
  mr__blk *b = ps->hot;
  size_t hs = ps->hot_size;
  /* the hot block, if at most an eighth of it would go unused: no class, no bin, no hash */
  if (b && rsize <= hs && hs - rsize <= hs / 8) {
    ps->hot = NULL;
    return handed_out_from_slot(p, ps, ps->hot_slot, ps->hot_addr, hs, b, size, out);
  }
  const unsigned cls = mr__cache_class_for(ps, mr__tlsf_class(rsize), rsize);
  const mr__cbin *bn = &ps->bins[cls];
  if (MR_UNLIKELY(!bn->n)) {
    mr__bias_unlock(&ps->lock);
    return alloc_slow(p, ps, size, rsize, out);
  }
  mr__centry e = mr__cache_pop(ps, cls);  /* a block in ps's front cache is ps's already */
  if (MR_LIKELY(e.slot != MR__NO_SLOT)) { /* parked: its slot, as the hot block's */
    ps->parked--;
    return handed_out_from_slot(p, ps, e.slot, e.addr, e.size, e.blk, size, out);
  }
  if (MR_UNLIKELY(!track(ps, e.addr, e.size, e.blk, size)))
    return untracked(p, ps, e.addr, e.size, e.blk);
  return handed_out(p, ps, e.addr, e.size, size, out);
}

/* Whether LIVE block x is handed out (in a stream's map, not freed) rather than in a front cache
 * (p->mu held). */
static int handed_out_now(mr__pool *p, const mr__blk *x) {
  for (mr__pstream *o = p->streams; o; o = o->next) {
    mr__bias_lock(&o->lock);
    const mr__live_slot *sl = mr__livemap_slot_of(&o->lives, x);
    int held = sl && !mr__ls_freed(sl);
    mr__bias_unlock(&o->lock);
    if (sl)
      return held;
  }
  return 0;
}

/* Names what is wrong with a pointer no live map took (asked: the size a block at ptr was
 * allocated with, for MR_ERR_INVALID_ARG). */
static mr_status free_error(mr__pool *p, void *ptr, size_t size, mr_status st, size_t asked) {
  if (st == MR_ERR_INVALID_ARG)
    return mr__error(st, "caching pool '%s': free(%p) of %zu bytes, but it was allocated with %zu",
                     p->name, ptr, size, asked);
  /* No stream has it live. A block starting there, or free memory of a segment around it,
   * means it was freed already (and maybe merged). */
  uintptr_t a = (uintptr_t)ptr;
  int in_segment = 0, in_free = 0, at_free = 0;
  pthread_mutex_lock(&p->mu);
  for (mr__seg *s = p->segs; s && !in_segment; s = s->next) {
    if (a < s->base || a >= s->base + s->size)
      continue;
    in_segment = 1;
    for (mr__blk *x = s->first; x; x = x->phys_next)
      if (a >= x->addr && a < x->addr + x->size) {
        /* a LIVE block is free too when it waits in a front cache */
        in_free = state_of(x) != MR__LIVE || !handed_out_now(p, x);
        at_free = in_free && x->addr == a;
        break;
      }
  }
  pthread_mutex_unlock(&p->mu);
  if (at_free)
    return mr__error(MR_ERR_DOUBLE_FREE,
                     "caching pool '%s': double free of %p (%zu bytes): the block is free", p->name,
                     ptr, size);
  if (in_free)
    return mr__error(MR_ERR_DOUBLE_FREE,
                     "caching pool '%s': double free of %p (%zu bytes): it lies in free memory",
                     p->name, ptr, size);
  return mr__error(MR_ERR_UNKNOWN_POINTER,
                   "caching pool '%s': free(%p, %zu): not a block this pool gave out%s", p->name,
                   ptr, size, in_segment ? " (it points inside one)" : "");
}

/* A block freed on another stream than the one that allocated it: found in (and taken out of)
 * its owner's map. With the pool mutex, then each stream's lock. */
static mr__blk *take_from_owner(mr__pool *p, mr__pstream *ps, uintptr_t addr, size_t size,
                                mr_status *st, size_t *bsize, size_t *asked) {
  mr__blk *b = NULL;
  *st = MR_ERR_UNKNOWN_POINTER;
  pthread_mutex_lock(&p->mu);
  mr__pool_activate(p, ps);
  for (mr__pstream *o = p->streams; o && *st == MR_ERR_UNKNOWN_POINTER; o = o->next) {
    if (o == ps)
      continue;
    mr__bias_lock(&o->lock);
    mr__hot_file(p, o);
    b = mr__livemap_take(&o->lives, addr, size, st, bsize, asked);
    mr__bias_unlock(&o->lock);
  }
  if (*st == MR_OK)
    b->owner = ps; /* it goes to ps's front cache */
  pthread_mutex_unlock(&p->mu);
  return b;
}

/* The free's tail once the block (ps's, at addr) is out of every live map (ps->lock held,
 * dropped here). */
static inline __attribute__((always_inline)) mr_status
file_freed(mr__pool *p, mr__pstream *ps, uintptr_t addr, mr__blk *b, size_t size, size_t bsize);

/* Not live on this stream: freed on another stream than its own, or a bad free (asked: for
 * MR_ERR_INVALID_ARG, the size it was allocated with). */
static __attribute__((noinline)) mr_status free_slow(mr__pool *p, mr__pstream *ps, void *ptr,
                                                     size_t size, mr_status st, size_t asked) {
  size_t bsize = 0;
  mr__blk *b = NULL;
  if (st == MR_ERR_UNKNOWN_POINTER)
    b = take_from_owner(p, ps, (uintptr_t)ptr, size, &st, &bsize, &asked);
  if (st != MR_OK)
    return free_error(p, ptr, size, st, asked);
  mr__bias_lock(&ps->lock);
  return file_freed(p, ps, (uintptr_t)ptr, b, size, bsize);
}

/* Larger than the whole front cache: straight to the core. */
static __attribute__((noinline)) void free_direct(mr__pool *p, mr__pstream *ps, mr__blk *b) {
  b->free_next = NULL;
  pthread_mutex_lock(&p->mu);
  mr__core_put(p, ps, b);
  pthread_mutex_unlock(&p->mu);
}

/* Counts a free on ps of a block of `bsize` bytes, asked `size`. */
static inline __attribute__((always_inline)) void count_free(mr__pool *p, mr__pstream *ps,
                                                             size_t size, size_t bsize) {
  ps->frees++;
  account_free(p, ps, (int64_t)bsize, (int64_t)size);
}

static inline __attribute__((always_inline)) mr_status
file_freed(mr__pool *p, mr__pstream *ps, uintptr_t addr, mr__blk *b, size_t size, size_t bsize) {
  count_free(p, ps, size, bsize);
  if (MR_UNLIKELY(bsize > p->cache_cap)) {
    mr__bias_unlock(&ps->lock);
    free_direct(p, ps, b);
    return MR_OK;
  }
  int over = mr__cache_push(p, ps, addr, bsize, b, MR__NO_SLOT);
  mr__bias_unlock(&ps->lock);
  if (MR_UNLIKELY(over))
    mr__cache_evict(p, ps);
  return MR_OK;
}

/* Whether ptr is the block handed out last on ps, still in the slot it was given (ps->lock
 * held). */
static inline __attribute__((always_inline)) int is_recent(const mr__pstream *ps, void *ptr) {
  return (uintptr_t)ptr == ps->recent_addr &&
         mr__ls_addr(&ps->lives.slots[ps->recent_slot]) == (uintptr_t)ptr;
}

/* The block stays in its live-map slot, marked freed, as the stream's hot block (see
 * mr__pstream): a free then an allocation of about the same size on one stream, the commonest
 * pattern, costs one hash probe between them. Its record is not touched: it stays LIVE, the
 * stream's (a block in a stream's map was allocated on it, or taken over by it). */
static mr_status pool_free(mr_allocator *self, void *ptr, size_t size, mr_stream *stream) {
  mr__pool *p = self->state;
  mr__pstream *ps = pstream_of(p, stream);
  if (MR_UNLIKELY(!ps))
    return no_stream_state(p);
  mr__bias_lock(&ps->lock);
  int over = 0; /* filing the last hot block left the cache over its budget */
  /* With many blocks live the slot's line is likely out of cache (at 1e5, half of pool_free's
     time waited on it): start loading both lines of its home group at once, where waiting for
     the control bytes to tell which would cost a load more, and file the hot block meanwhile.
     Random at 1e5 on the host harness: 59.0 -> 56.9 ns (1e3: 45.8 -> 46.3, within the spread). */
  const uint64_t h = mr__livemap_hash((uintptr_t)ptr);
  if (MR_LIKELY(ps->lives.slots))
    mr__livemap_prefetch_home(&ps->lives, h);
  if (ps->hot) /* parked in the cache, in its slot */
    over = mr__hot_file(p, ps);
  const size_t i =
      is_recent(ps, ptr) ? ps->recent_slot : mr__livemap_find_hashed(&ps->lives, (uintptr_t)ptr, h);
  /* absent, or freed already: a slot marked freed is a parked block's (free_slow finds it in the
     cache and reports the double free) */
  if (MR_UNLIKELY(i == SIZE_MAX || mr__ls_freed(&ps->lives.slots[i]))) {
    mr__bias_unlock(&ps->lock);
    return free_slow(p, ps, ptr, size, MR_ERR_UNKNOWN_POINTER, 0);
  }
  mr__live_slot *sl = &ps->lives.slots[i];
  const mr__live v = mr__ls_get(sl, ps->lives.shift);
  if (MR_UNLIKELY(v.requested != size)) {
    mr__bias_unlock(&ps->lock);
    return free_slow(p, ps, ptr, size, MR_ERR_INVALID_ARG, v.requested);
  }
  mr__blk *b = v.blk;
  size_t bsize = v.bsize;
  mr__ls_free(sl, &v);
  if (MR_UNLIKELY(bsize > p->cache_cap)) { /* larger than the whole front cache: the core */
    mr__livemap_remove_at(&ps->lives, i);
    (void)file_freed(p, ps, (uintptr_t)ptr, b, size, bsize);
    if (over)
      mr__cache_evict(p, ps);
    return MR_OK;
  }
  ps->hot = b;
  ps->hot_addr = (uintptr_t)ptr;
  ps->hot_slot = i;
  ps->hot_size = bsize;
  count_free(p, ps, size, bsize);
  mr__bias_unlock(&ps->lock);
  if (MR_UNLIKELY(over))
    mr__cache_evict(p, ps);
  return MR_OK;
}

/* ---- trim, stats, destroy -------------------------------------------------------------------- */

static mr_status pool_trim(mr_allocator *self, size_t keep) {
  mr__pool *p = self->state;
  pthread_mutex_lock(&p->mu);
  mr_status st = mr__core_trim(p, keep);
  pthread_mutex_unlock(&p->mu);
  return st;
}

/* Gives every segment back and frees the pool's state (reports live blocks, see core_destroy). */
static void pool_teardown(mr__pool *p) {
  pthread_mutex_lock(&p->mu);
  mr__core_destroy(p);
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_destroy(&p->mu);
  mr_allocator_release(p->upstream);
  free(p);
}

static void pool_destroy(mr_allocator *self) { pool_teardown(self->state); }

/* Blocks are carved from upstream segments: granting the upstream covers them all. */
static mr_status pool_grant_access(mr_allocator *self, int peer_device) {
  mr__pool *p = self->state;
  return mr_allocator_grant_access(p->upstream, peer_device);
}

static const mr_allocator_ops k_pool_ops = {
    .version = MR_ALLOCATOR_OPS_VERSION,
    .alloc = pool_alloc,
    .free = pool_free,
    .trim = pool_trim,
    .stats = mr__pool_stats,
    .destroy = pool_destroy,
    .grant_access = pool_grant_access,
};

/* ---- public API ------------------------------------------------------------------------------ */

mr__pool *mr__caching_pool_of(mr_allocator *a, const char *what) {
  if (!a || a->ops != &k_pool_ops) {
    mr__error(MR_ERR_INVALID_ARG, "%s: '%s' is not a caching pool", what, a ? a->name : "(null)");
    return NULL;
  }
  return a->state;
}

static mr_status resolve_options(mr_caching_pool_options *o, const mr_caching_pool_options *in,
                                 mr_allocator *upstream) {
  if (in)
    *o = *in;
  else
    memset(o, 0, sizeof *o);
  if (!o->alignment)
    o->alignment = 256;
  if (!o->small_limit)
    o->small_limit = MR__MIB;
  if (!o->small_segment)
    o->small_segment = 2 * MR__MIB;
  if (!o->large_segment_min)
    o->large_segment_min = 20 * MR__MIB;
  if (!o->front_cache_bytes)
    o->front_cache_bytes = 256 * MR__MIB;
  if (!o->stats_slack)
    o->stats_slack = MR__MIB;
  if (!mr__is_pow2(o->alignment) || o->alignment < 16 || o->alignment > 2 * MR__MIB)
    return mr__error(MR_ERR_INVALID_ARG,
                     "caching pool: alignment %zu must be a power of two in [16, 2 MiB]",
                     o->alignment);
  if (o->small_limit > o->small_segment || o->small_segment % o->alignment)
    return mr__error(MR_ERR_INVALID_ARG,
                     "caching pool: small_limit %zu must be <= small_segment %zu, a multiple of "
                     "the alignment %zu",
                     o->small_limit, o->small_segment, o->alignment);
  if ((unsigned)o->cross_stream >= MR_CROSS_STREAM_POLICY_COUNT_ ||
      (unsigned)o->growth >= MR_GROWTH_COUNT_)
    return mr__error(MR_ERR_INVALID_ARG, "caching pool: bad cross_stream (%d) or growth (%d)",
                     (int)o->cross_stream, (int)o->growth);
  if (o->maximum_reserve && o->initial_reserve > o->maximum_reserve)
    return mr__error(MR_ERR_INVALID_ARG,
                     "caching pool: initial_reserve %zu is above maximum_reserve %zu",
                     o->initial_reserve, o->maximum_reserve);
  (void)upstream;
  return MR_OK;
}

mr_status mr_caching_pool_create(mr_allocator **out, mr_allocator *upstream,
                                 const mr_caching_pool_options *opts) {
  if (!out)
    return mr__error(MR_ERR_INVALID_ARG, "mr_caching_pool_create: out is NULL");
  *out = NULL;
  if (!upstream)
    return mr__error(MR_ERR_INVALID_ARG, "mr_caching_pool_create: upstream is NULL");
  mr__pool *p = mr__calloc_aligned(sizeof *p);
  if (!p)
    return mr__error(MR_ERR_OUT_OF_MEMORY, "mr_caching_pool_create: no host memory");
  mr_status st = resolve_options(&p->opt, opts, upstream);
  if (st != MR_OK) {
    free(p);
    return st;
  }
  pthread_mutex_init(&p->mu, NULL);
  p->cache_cap = p->opt.front_cache_bytes == SIZE_MAX ? 0 : p->opt.front_cache_bytes;
  p->uid = atomic_fetch_add(&g_pool_uid, 1);
  p->upstream = mr_allocator_retain(upstream);
  mr__tlsf_init(&p->settled[0]);
  mr__tlsf_init(&p->settled[1]);
  snprintf(p->name, sizeof p->name, "%s", "");
  if (p->opt.name)
    snprintf(p->name, sizeof p->name, "%s", p->opt.name);
  else
    snprintf(p->name, sizeof p->name, "caching(%.38s)", upstream->name);
  p->opt.name = NULL;
  p->host_ps = mr__pool_stream_new(p, NULL);
  mr_allocator *a = NULL;
  if (!p->host_ps)
    st = mr__error(MR_ERR_OUT_OF_MEMORY, "mr_caching_pool_create: no host memory");
  else
    st = mr_allocator_create(&a, &k_pool_ops, p, upstream->device, p->name, NULL);
  if (st == MR_OK && p->opt.initial_reserve) {
    pthread_mutex_lock(&p->mu);
    st = mr__core_reserve(p, p->opt.initial_reserve);
    pthread_mutex_unlock(&p->mu);
  }
  if (st != MR_OK) {
    if (a)
      mr_allocator_release(a);
    else
      pool_teardown(p);
    return st;
  }
  *out = a;
  return MR_OK;
}

mr_status mr_caching_pool_validate(mr_allocator *pool) {
  mr__pool *p = mr__caching_pool_of(pool, "mr_caching_pool_validate");
  if (!p)
    return MR_ERR_INVALID_ARG;
  pthread_mutex_lock(&p->mu);
  for (mr__pstream *ps = p->streams; ps; ps = ps->next) {
    mr__bias_lock(&ps->lock);
    mr__hot_file(p, ps);
  }
  mr_status st = mr__core_validate(p);
  for (mr__pstream *ps = p->streams; ps; ps = ps->next)
    mr__bias_unlock(&ps->lock);
  pthread_mutex_unlock(&p->mu);
  return st;
}
