/* The stream-ordered caching pool: its front (per-stream state under a lock biased to the
 * stream's thread, so threads on different streams never meet on the hot path), its statistics
 * and its API. The shared structure behind the front is caching_core.c.
 *
 * Alloc: round to the alignment, find the stream's state (a thread-local memo makes that a
 * compare); take the stream's hot block if it fits, else pop a block of the request's size class
 * (or the next class up) from the stream's front cache and enter it in the stream's live map ->
 * done. Otherwise the core, under the pool mutex.
 * Free: the freeing stream's live map (or, for a block freed on another stream, its owner's)
 * finds the block and checks it is live and of that size. The block becomes the stream's hot
 * block, still in its slot (the previous hot block goes to the front cache), reusable by that
 * stream at once. Past the cache's byte budget, the largest cached blocks go to the core as
 * pending on that stream: other streams get them only once an event recorded on it has completed
 * (or, under the wait policy, after waiting on that event).
 * Neither path reads or writes a block record: the live map's slot and the front cache's entry
 * hold the address, the sizes and the record's pointer, and only the core (under the mutex)
 * changes a record. */
#include "caching_internal.h"

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
  mr__pstream *ps = p->streams;
  while (ps && !(ps->stream && ps->id == s->id))
    ps = ps->next;
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

static void raise_to(atomic_ullong *peak, unsigned long long v) {
  unsigned long long cur = atomic_load_explicit(peak, memory_order_relaxed);
  while (v > cur && !atomic_compare_exchange_weak_explicit(peak, &cur, v, memory_order_relaxed,
                                                           memory_order_relaxed)) {
  }
}

static void publish(mr__pool *p, mr__pstream *ps) {
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

/* Past the slack, a stream adds what it kept to the pool-wide counters (a solo stream's own
 * counters are the pool's: it never needs to). */
static inline __attribute__((always_inline)) void maybe_publish(mr__pool *p, mr__pstream *ps) {
  if (!ps->solo && (uint64_t)(ps->pending_in_use < 0 ? -ps->pending_in_use : ps->pending_in_use) >=
                       p->opt.stats_slack)
    publish(p, ps);
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

/* ps's first allocation or free (p->mu held, ps->lock not). The first active stream goes solo;
 * the second ends that: the solo stream publishes what it kept, and the pool-wide peaks take
 * its own (they were the pool's while it was alone). */
static void activate(mr__pool *p, mr__pstream *ps) {
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
  publish(p, o);
  mr__bias_unlock(&o->lock);
}

/* ---- alloc and free -------------------------------------------------------------------------- */

/* A bin that is full gets twice the room; without host memory for it, 0. */
static int bin_grow(mr__cbin *bn) {
  uint32_t cap = bn->cap ? 2 * bn->cap : 8;
  if (cap < bn->cap)
    return 0;
  mr__centry *v = realloc(bn->v, (size_t)cap * sizeof *v);
  if (!v)
    return 0;
  bn->v = v;
  bn->cap = cap;
  return 1;
}

static inline __attribute__((always_inline)) int
entry_push(mr__pool *p, mr__pstream *ps, unsigned cls, uintptr_t addr, size_t bsize, mr__blk *b) {
  mr__cbin *bn = &ps->bins[cls];
  bn->v[bn->n++] = (mr__centry){addr, bsize, b};
  ps->bin_map[cls / 64] |= 1ull << (cls % 64);
  ps->cache_bytes += bsize;
  ps->cache_blocks++;
  return ps->cache_bytes > p->cache_cap;
}

/* cache_push with a full bin (out of line, so that the push itself calls nothing). */
static __attribute__((noinline)) int cache_push_grow(mr__pool *p, mr__pstream *ps, unsigned cls,
                                                     uintptr_t addr, size_t bsize, mr__blk *b) {
  if (!bin_grow(&ps->bins[cls])) { /* no host memory: the spill list */
    b->free_next = ps->spill;
    ps->spill = b;
    ps->cache_bytes += bsize;
    ps->cache_blocks++;
    return 1;
  }
  return entry_push(p, ps, cls, addr, bsize, b);
}

/* Files block b (at addr, `bsize` bytes; out of every list) in ps's front cache, under ps->lock,
 * without touching its record unless its bin cannot grow (then it waits on the spill list for
 * the next eviction). Returns 1 if the cache went over its budget. */
static inline __attribute__((always_inline)) int
cache_push(mr__pool *p, mr__pstream *ps, uintptr_t addr, size_t bsize, mr__blk *b) {
  unsigned cls = mr__tlsf_class(bsize);
  const mr__cbin *bn = &ps->bins[cls];
  if (MR_UNLIKELY(bn->n == bn->cap))
    return cache_push_grow(p, ps, cls, addr, bsize, b);
  return entry_push(p, ps, cls, addr, bsize, b);
}

/* Takes the top entry of ps's bin `cls` (not empty) out of the front cache, under ps->lock. */
static inline __attribute__((always_inline)) mr__centry bin_pop(mr__pstream *ps, unsigned cls) {
  mr__cbin *bn = &ps->bins[cls];
  mr__centry e = bn->v[--bn->n];
  if (!bn->n)
    ps->bin_map[cls / 64] &= ~(1ull << (cls % 64));
  ps->cache_bytes -= e.size;
  ps->cache_blocks--;
  return e;
}

/* Takes the spill list out of ps's front cache, under ps->lock. */
static mr__blk *take_spill(mr__pstream *ps) {
  mr__blk *list = ps->spill;
  ps->spill = NULL;
  for (mr__blk *b = list; b; b = b->free_next) {
    ps->cache_bytes -= b->size; /* a spilled block is the stream's: the core alone changes it */
    ps->cache_blocks--;
  }
  return list;
}

mr__blk *mr__cache_take_all(mr__pstream *ps) {
  mr__blk *list = take_spill(ps);
  for (unsigned w = 0; w < MR__CACHE_BIN_WORDS; w++) {
    while (ps->bin_map[w]) {
      unsigned cls = w * 64 + (unsigned)__builtin_ctzll(ps->bin_map[w]);
      mr__cbin *bn = &ps->bins[cls];
      for (uint32_t k = 0; k < bn->n; k++) {
        bn->v[k].blk->free_next = list;
        list = bn->v[k].blk;
      }
      bn->n = 0;
      ps->bin_map[w] &= ps->bin_map[w] - 1;
    }
  }
  ps->cache_bytes = 0;
  ps->cache_blocks = 0;
  return list;
}

void mr__cache_destroy(mr__pstream *ps) {
  for (unsigned c = 0; c < MR_TLSF_CLASSES; c++) {
    free(ps->bins[c].v);
    ps->bins[c] = (mr__cbin){0};
  }
}

int mr__hot_file(mr__pool *p, mr__pstream *ps) {
  mr__blk *b = ps->hot;
  if (!b)
    return 0;
  ps->hot = NULL;
  mr__livemap_remove_at(&ps->lives, ps->hot_slot);
  return cache_push(p, ps, ps->hot_addr, ps->hot_size, b);
}

/* Tracks block b (at addr, `bsize` bytes) as live on ps for `size` bytes. The hot block's slot
 * must not move: a grow rehashes, so the hot block is filed first. 0 when there is no host memory
 * for it. */
static inline __attribute__((always_inline)) int track(mr__pool *p, mr__pstream *ps, uintptr_t addr,
                                                       size_t bsize, mr__blk *b, size_t size) {
  if (MR_UNLIKELY(ps->lives.count >= ps->lives.limit))
    mr__hot_file(p, ps);
  return mr__livemap_insert(&ps->lives, addr, bsize, b, size);
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
  (void)cache_push(p, ps, addr, bsize, b); /* over budget: the next free evicts */
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
  activate(p, ps);
  mr_status st = mr__core_alloc(p, ps, size, rsize, &b, &from_upstream);
  pthread_mutex_unlock(&p->mu);
  mr__bias_lock(&ps->lock);
  if (st != MR_OK) {
    ps->failed++;
    mr__bias_unlock(&ps->lock);
    return st;
  }
  /* the core has just written the record: reading it costs nothing */
  if (MR_UNLIKELY(!track(p, ps, b->addr, b->size, b, size)))
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
    ps->lives.slots[ps->hot_slot].requested = size;
    return handed_out(p, ps, ps->hot_addr, hs, size, out);
  }
  unsigned cls = mr__tlsf_class(rsize);
  const mr__cbin *bn = &ps->bins[cls];
  if (!bn->n || bn->v[bn->n - 1].size < rsize)
    bn = &ps->bins[++cls]; /* every block of the next class fits (the top one is always empty) */
  if (MR_UNLIKELY(!bn->n)) {
    mr__bias_unlock(&ps->lock);
    return alloc_slow(p, ps, size, rsize, out);
  }
  mr__centry e = bin_pop(ps, cls); /* a block in ps's front cache is ps's already */
  if (MR_UNLIKELY(!track(p, ps, e.addr, e.size, e.blk, size)))
    return untracked(p, ps, e.addr, e.size, e.blk);
  return handed_out(p, ps, e.addr, e.size, size, out);
}

/* Whether LIVE block x is handed out (in a stream's map, not freed) rather than in a front cache
 * (p->mu held). */
static int handed_out_now(mr__pool *p, const mr__blk *x) {
  for (mr__pstream *o = p->streams; o; o = o->next) {
    mr__bias_lock(&o->lock);
    const mr__live_slot *sl = mr__livemap_slot_of(&o->lives, x);
    int held = sl && sl->requested;
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

/* Sends the largest cached blocks of ps (and any spilled ones) to the core until its cache is at
 * half its budget. */
static __attribute__((noinline)) void evict(mr__pool *p, mr__pstream *ps) {
  size_t target = p->cache_cap / 2;
  mr__bias_lock(&ps->lock);
  mr__blk *list = take_spill(ps);
  for (int w = MR__CACHE_BIN_WORDS - 1; w >= 0 && ps->cache_bytes > target; w--) {
    while (ps->bin_map[w] && ps->cache_bytes > target) {
      unsigned cls = (unsigned)w * 64 + 63u - (unsigned)__builtin_clzll(ps->bin_map[w]);
      mr__blk *b = bin_pop(ps, cls).blk;
      b->free_next = list;
      list = b;
    }
  }
  mr__bias_unlock(&ps->lock);
  if (!list)
    return;
  pthread_mutex_lock(&p->mu);
  mr__core_put(p, ps, list);
  pthread_mutex_unlock(&p->mu);
}

/* A block freed on another stream than the one that allocated it: found in (and taken out of)
 * its owner's map. With the pool mutex, then each stream's lock. */
static mr__blk *take_from_owner(mr__pool *p, mr__pstream *ps, uintptr_t addr, size_t size,
                                mr_status *st, size_t *bsize, size_t *asked) {
  mr__blk *b = NULL;
  *st = MR_ERR_UNKNOWN_POINTER;
  pthread_mutex_lock(&p->mu);
  activate(p, ps);
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
  int over = cache_push(p, ps, addr, bsize, b);
  mr__bias_unlock(&ps->lock);
  if (MR_UNLIKELY(over))
    evict(p, ps);
  return MR_OK;
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
  size_t i;
  if (ps->hot) { /* before the probe: filing it may move slots */
    /* the probe's line is likely out of cache: start loading it while the hot block is filed */
    size_t h = mr__livemap_slot((uintptr_t)ptr, ps->lives.mask);
    __builtin_prefetch(&ps->lives.slots[h], 1);
    over = mr__hot_file(p, ps);
    i = mr__livemap_find_from(&ps->lives, (uintptr_t)ptr, h);
  } else {
    i = mr__livemap_find(&ps->lives, (uintptr_t)ptr);
  }
  if (MR_UNLIKELY(i == SIZE_MAX)) {
    mr__bias_unlock(&ps->lock);
    return free_slow(p, ps, ptr, size, MR_ERR_UNKNOWN_POINTER, 0);
  }
  mr__live_slot *sl = &ps->lives.slots[i];
  if (MR_UNLIKELY(sl->requested != size)) {
    size_t asked = sl->requested;
    mr__bias_unlock(&ps->lock);
    return free_slow(p, ps, ptr, size, MR_ERR_INVALID_ARG, asked);
  }
  mr__blk *b = sl->blk;
  size_t bsize = sl->size;
  if (MR_UNLIKELY(bsize > p->cache_cap)) { /* larger than the whole front cache: the core */
    mr__livemap_remove_at(&ps->lives, i);
    (void)file_freed(p, ps, (uintptr_t)ptr, b, size, bsize);
    if (over)
      evict(p, ps);
    return MR_OK;
  }
  sl->requested = 0;
  ps->hot = b;
  ps->hot_addr = (uintptr_t)ptr;
  ps->hot_slot = i;
  ps->hot_size = bsize;
  count_free(p, ps, size, bsize);
  mr__bias_unlock(&ps->lock);
  if (MR_UNLIKELY(over))
    evict(p, ps);
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

/* Hits are the allocations that took no new segment; live blocks, allocations less frees. */
static void sum_stream(mr_stats *s, mr__pstream *ps) {
  s->allocs += ps->allocs;
  s->frees += ps->frees;
  s->cache_hits += ps->allocs - ps->grown;
  s->failed_allocs += ps->failed;
}

static mr_status pool_stats(mr_allocator *self, mr_stats *s) {
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
    .stats = pool_stats,
    .destroy = pool_destroy,
    .grant_access = pool_grant_access,
};

/* ---- public API ------------------------------------------------------------------------------ */

static mr__pool *pool_of(mr_allocator *a, const char *what) {
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

mr_status mr_caching_pool_stream_stats(mr_allocator *pool, mr_stream *stream, mr_stats *out) {
  mr__pool *p = pool_of(pool, "mr_caching_pool_stream_stats");
  if (!p)
    return MR_ERR_INVALID_ARG;
  if (!out || out->struct_size < 2 * sizeof(uint32_t))
    return mr__error(
        MR_ERR_INVALID_ARG,
        "mr_caching_pool_stream_stats: out is NULL or not initialised (MR_STATS_INIT)");
  mr_stats s = MR_STATS_INIT;
  pthread_mutex_lock(&p->mu);
  mr__pstream *ps = p->streams;
  while (ps && !(stream ? ps->stream && ps->id == stream->id : !ps->stream))
    ps = ps->next;
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

mr_status mr_caching_pool_validate(mr_allocator *pool) {
  mr__pool *p = pool_of(pool, "mr_caching_pool_validate");
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
