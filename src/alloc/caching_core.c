/* The caching pool's shared structure, under the pool's mutex: segments from upstream, blocks
 * that tile them, the settled index (free blocks any stream may take), each stream's pending
 * index (blocks freed on that stream whose free event is not known complete: the stream itself
 * may reuse them at once), the settling of batches of pending blocks that share one event
 * (the batches and events themselves: caching_batch.c), and the way back to upstream (growth,
 * out-of-memory release, trim).
 *
 * Lock order: pool mutex -> a stream's lock (its front cache and live map). */
#include "caching_front.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_BYTES (16 * MR__MIB)

/* How many blocks ahead of the one being filed core_put and settle_batch start loading the
 * records of its physical neighbours. */
#define MR__NEIGHBOURS_AHEAD 6

/* Starts loading the records of b's physical neighbours, which a merge reads and writes: with
 * many blocks live each is likely out of cache, and a list of blocks filed one after the other
 * would otherwise wait on them one at a time. */
static inline void prefetch_neighbours(const mr__blk *b) {
  if (b->phys_prev)
    __builtin_prefetch(b->phys_prev, 1);
  if (b->phys_next)
    __builtin_prefetch(b->phys_next, 1);
}

/* ---- indexes --------------------------------------------------------------------------------- */

static mr__tlsf *index_of(mr__pool *p, mr__blk *b) {
  return state_of(b) == MR__FREE ? &p->settled[b->small ? MR__SMALL : MR__LARGE]
                                 : &b->owner->pending[b->small ? MR__SMALL : MR__LARGE];
}

/* Takes a FREE or PENDING block out of its index (and batch). */
static void unindex(mr__pool *p, mr__blk *b) {
  mr__tlsf_remove(index_of(p, b), b);
  if (state_of(b) == MR__PENDING && b->batch) /* only a pending block reads its second line */
    mr__batch_unlink(b);
}

/* left absorbs its physical neighbour right (both out of every index). */
static mr__blk *absorb(mr__pool *p, mr__blk *left, mr__blk *right) {
  left->size += right->size;
  left->phys_next = right->phys_next;
  if (right->phys_next)
    right->phys_next->phys_prev = left;
  mr__blk_free(p, right);
  p->merges++;
  return left;
}

static void insert_settled(mr__pool *p, mr__blk *b) {
  mr__blk *n = b->phys_prev;
  if (n && state_of(n) == MR__FREE) {
    unindex(p, n);
    b = absorb(p, n, b);
  }
  n = b->phys_next;
  if (n && state_of(n) == MR__FREE) {
    unindex(p, n);
    b = absorb(p, b, n);
  }
  set_state(b, MR__FREE);
  b->owner = NULL;
  mr__tlsf_insert(&p->settled[b->small ? MR__SMALL : MR__LARGE], b);
}

/* Files b (out of every index) as freed on ps, in batch bt (ps's open batch when NULL). It merges
 * with settled neighbours and with ps's own pending ones; the merged block joins the newest of
 * the batches involved (its event covers the others: same stream, recorded later). */
static void insert_pending(mr__pool *p, mr__pstream *ps, mr__blk *b, mr__batch *bt) {
  if (!ps->stream) {
    insert_settled(p, b);
    return;
  }
  if (!bt)
    bt = mr__batch_open(p, ps);
  if (!bt) { /* no host memory for a batch: keep the block as the stream's own, unmerged */
    insert_settled(p, b);
    return;
  }
  for (int side = 0; side < 2; side++) {
    mr__blk *n = side == 0 ? b->phys_prev : b->phys_next;
    if (!n)
      continue;
    unsigned s = state_of(n);
    if (s == MR__FREE || (s == MR__PENDING && n->owner == ps)) {
      if (s == MR__PENDING && n->batch != bt && (bt->event && n->batch->seq > bt->seq))
        bt = n->batch;
      unindex(p, n);
      b = side == 0 ? absorb(p, n, b) : absorb(p, b, n);
    }
  }
  set_state(b, MR__PENDING);
  b->owner = ps;
  mr__batch_link(bt, b);
  mr__tlsf_insert(&ps->pending[b->small ? MR__SMALL : MR__LARGE], b);
}

/* Moves every block of a completed batch to the settled index. */
static void settle_batch(mr__pool *p, mr__pstream *ps, mr__batch *bt) {
  /* The batch's blocks are PENDING until settled, so settling one never merges one still in it. */
  mr__blk *ahead = bt->head;
  for (int k = 0; k < MR__NEIGHBOURS_AHEAD && ahead; k++, ahead = ahead->batch_next)
    prefetch_neighbours(ahead);
  while (bt->head) {
    mr__blk *b = bt->head;
    if (ahead) {
      prefetch_neighbours(ahead);
      ahead = ahead->batch_next;
    }
    mr__batch_unlink(b);
    mr__tlsf_remove(&ps->pending[b->small ? MR__SMALL : MR__LARGE], b);
    insert_settled(p, b);
  }
  mr__event_put(p, bt->event);
  free(bt);
}

/* Settles ps's sealed batches in order while their events are complete (wait: synchronizes on
 * them; an event that cannot be waited on stops there). */
static void settle_stream(mr__pool *p, mr__pstream *ps, int wait) {
  mr__batch *bt;
  while ((bt = ps->sealed_head)) {
    if (bt->count) {
      bool done = false;
      if (wait)
        done = mr_event_synchronize(bt->event) == MR_OK;
      else if (mr_event_query(bt->event, &done) != MR_OK)
        done = false;
      if (!done)
        break;
    }
    ps->sealed_head = bt->next;
    if (!ps->sealed_head)
      ps->sealed_tail = NULL;
    settle_batch(p, ps, bt);
  }
}

static void settle_all(mr__pool *p, int wait) {
  for (mr__pstream *ps = p->streams; ps; ps = ps->next)
    settle_stream(p, ps, wait);
}

/* ---- front caches ---------------------------------------------------------------------------- */

void mr__core_put(mr__pool *p, mr__pstream *ps, mr__blk *list) {
  /* The blocks are LIVE until filed, so filing one never merges one still on the list. */
  mr__blk *ahead = list;
  for (int k = 0; k < MR__NEIGHBOURS_AHEAD && ahead; k++, ahead = ahead->free_next)
    prefetch_neighbours(ahead);
  while (list) {
    mr__blk *b = list;
    list = b->free_next;
    if (ahead) {
      prefetch_neighbours(ahead);
      ahead = ahead->free_next;
    }
    b->free_next = NULL;
    insert_pending(p, ps, b, NULL);
  }
  /* The owner closes a batch once it is worth another stream's while: one event per 16 MiB of
     frees, recorded by the thread that freed them. */
  if (ps->open && ps->open->bytes >= SEAL_BYTES)
    mr__seal(p, ps);
  mr__apply_threshold(p);
}

void mr__core_flush_cache(mr__pool *p, mr__pstream *ps) {
  mr__bias_lock(&ps->lock);
  mr__hot_file(p, ps);
  mr__blk *list = ps->cache_blocks ? mr__cache_take_all(ps) : NULL;
  mr__bias_unlock(&ps->lock);
  mr__core_put(p, ps, list);
}

/* ---- allocation ------------------------------------------------------------------------------ */

static mr__blk *find_fit(mr__pool *p, mr__pstream *ps, int kind, size_t rsize) {
  mr__blk *a = mr__tlsf_find(&p->settled[kind], rsize);
  mr__blk *b = ps->stream ? mr__tlsf_find(&ps->pending[kind], rsize) : NULL;
  if (a && b)
    return b->size <= a->size ? b : a;
  return a ? a : b;
}

/* Under the wait policy: a block pending on another stream of the same backend, after making
 * ps's stream wait on its batch's event. */
static mr__blk *take_waiting(mr__pool *p, mr__pstream *ps, int kind, size_t rsize) {
  for (mr__pstream *o = p->streams; o; o = o->next) {
    if (o == ps || !o->stream || o->stream->ops != ps->stream->ops)
      continue;
    mr__blk *b = mr__tlsf_find(&o->pending[kind], rsize);
    if (!b)
      continue;
    if (!b->batch->event && mr__seal(p, o) != MR_OK)
      continue;
    if (mr_stream_wait_event(ps->stream, b->batch->event) != MR_OK)
      continue;
    return b;
  }
  return NULL;
}

/* Gives b (FREE, PENDING, or fresh from upstream: out of every index) to ps for rsize bytes,
 * splitting off what it does not need. */
static void carve(mr__pool *p, mr__pstream *ps, mr__blk *b, size_t rsize) {
  unsigned from = state_of(b);
  mr__pstream *from_owner = b->owner;
  mr__batch *from_batch = from == MR__PENDING ? b->batch : NULL;
  if (from == MR__FREE || from == MR__PENDING)
    unindex(p, b); /* a pending block leaves its batch there: b->batch is NULL after */
  b->owner = ps;
  set_state(b, MR__LIVE); /* before the rest is filed, so the rest does not merge back into it */
  if (b->size - rsize >= p->opt.alignment) {
    mr__blk *r = mr__blk_new(p);
    if (r) {
      r->addr = b->addr + rsize;
      r->size = b->size - rsize;
      r->small = b->small;
      r->phys_prev = b;
      r->phys_next = b->phys_next;
      if (b->phys_next)
        b->phys_next->phys_prev = r;
      b->phys_next = r;
      b->size = rsize;
      p->splits++;
      if (from == MR__FREE)
        insert_settled(p, r);
      else if (from == MR__PENDING)
        insert_pending(p, from_owner, r, from_batch && from_batch->head ? from_batch : NULL);
      else /* a new segment: its rest is the requesting stream's until an event says otherwise */
        insert_pending(p, ps, r, NULL);
    }
  }
}

/* Closes the open batches of other streams that could serve rsize bytes, so their events can be
 * queried. Their front caches are left alone: taking those would make every stream's miss cost
 * every other stream its cache (and an event each); they come back on out-of-memory. */
static void seal_others(mr__pool *p, mr__pstream *ps, size_t rsize) {
  for (mr__pstream *o = p->streams; o; o = o->next)
    if (o != ps && o->open && o->open->bytes >= rsize)
      mr__seal(p, o);
}

/* The bytes o keeps in its front cache, its hot block included. */
static size_t cached_bytes(mr__pstream *o) {
  mr__bias_lock(&o->lock);
  size_t n = o->cache_bytes + (o->hot ? o->hot_size : 0);
  mr__bias_unlock(&o->lock);
  return n;
}

/* Whether ps may take what was freed on o so far: o's work is done (an event recorded on o now
 * has completed, no wait), or, under the wait policy, ps's stream was made to wait on that
 * event. When not, *recorded is that event if it was recorded (the caller's), else NULL. */
static int may_take(mr__pool *p, mr__pstream *ps, mr__pstream *o, mr_event **recorded) {
  *recorded = NULL;
  if (!o->stream)
    return 1;
  mr_event *e = mr__event_take(p, o->stream);
  if (!e)
    return 0;
  if (mr_event_record(e, o->stream) != MR_OK) {
    mr__event_put(p, e);
    return 0;
  }
  bool done = false;
  if (mr_event_query(e, &done) != MR_OK)
    done = false;
  if (!done && p->opt.cross_stream == MR_CROSS_STREAM_WAIT && ps->stream &&
      ps->stream->ops == o->stream->ops)
    done = mr_stream_wait_event(ps->stream, e) == MR_OK;
  if (done)
    mr__event_put(p, e);
  else
    *recorded = e;
  return done;
}

/* Takes o's whole front cache. If ps may take it (see may_take), the blocks go to ps's front
 * cache (ps's from now on, as if freed on it) and one that holds rsize bytes comes back, out of
 * every list; else they go to the core, pending on o, their batch sealed with may_take's event
 * and settled if it can be. */
static mr__blk *take_cache(mr__pool *p, mr__pstream *ps, mr__pstream *o, size_t rsize) {
  mr__bias_lock(&o->lock);
  mr__hot_file(p, o);
  mr__blk *list = mr__cache_take_all(o);
  mr__bias_unlock(&o->lock);
  if (!list)
    return NULL;
  mr_event *recorded;
  if (!may_take(p, ps, o, &recorded)) {
    mr__core_put(p, o, list);
    mr__seal_with(p, o, recorded);
    settle_stream(p, o, 0);
    return NULL;
  }
  mr__bias_lock(&ps->lock);
  int over = 0;
  while (list) {
    mr__blk *b = list;
    list = b->free_next;
    b->free_next = NULL;
    b->owner = ps;
    over |= mr__cache_push(p, ps, b->addr, b->size, b, MR__NO_SLOT);
  }
  mr__blk *b = mr__cache_take_fit(ps, rsize).blk;
  mr__bias_unlock(&ps->lock);
  if (over) /* an eviction (mr__cache_evict would take the pool mutex: held here) */
    mr__core_put(p, ps, mr__cache_take_evicted(p, ps));
  return b;
}

/* Before the pool grows, the front caches of the other streams this thread drives (their locks
 * are biased to it, or shared) are taken, the largest first, until one yields a block that fits
 * (see take_cache) or none is left. A thread that frees on one stream and allocates on another
 * so reuses the blocks, as RMM's pool does with another stream's free list, where each stream
 * would otherwise keep its own copy of the working set (4 streams in turn: 7-9 times the bytes
 * in use, and growing). */
static mr__blk *reclaim(mr__pool *p, mr__pstream *ps, int kind, size_t rsize) {
  for (;;) {
    mr__pstream *donor = NULL;
    size_t most = 0;
    for (mr__pstream *o = p->streams; o; o = o->next) {
      if (o == ps || !mr__bias_cheap(&o->lock))
        continue;
      size_t n = cached_bytes(o);
      if (n > most) {
        most = n;
        donor = o;
      }
    }
    if (!donor)
      return NULL;
    mr__blk *b = take_cache(p, ps, donor, rsize);
    if (!b)
      b = find_fit(p, ps, kind, rsize);
    if (b)
      return b;
  }
}

/* Whether the pool holds much more than is in use: reserved at least twice the bytes in use,
 * and a quarter of a stream's front-cache budget more. A stream that only frees (a consumer
 * thread's: blocks allocated on one thread's stream, freed on another's) would otherwise keep up
 * to its whole budget (256 MiB by default) while the other stream grows the pool: 284 MiB
 * reserved for 17 MiB in use. */
static int hoarding(mr__pool *p) {
  const long long u = atomic_load_explicit(&p->g_in_use, memory_order_relaxed);
  const uint64_t in_use = u > 0 ? (uint64_t)u : 0;
  return p->cache_cap && p->reserved >= 2 * in_use && p->reserved - in_use >= p->cache_cap / 4;
}

/* Everything cached goes back: caches flushed, batches sealed and settled (waiting on their
 * events if `wait`), wholly free segments returned upstream. */
static void release_cached(mr__pool *p, int wait) {
  for (mr__pstream *o = p->streams; o; o = o->next) {
    mr__core_flush_cache(p, o);
    mr__seal(p, o);
  }
  settle_all(p, wait);
  mr__release_free_segments(p, 0);
}

static mr__blk *try_grow(mr__pool *p, mr__pstream *ps, int kind, size_t rsize, mr_status *st) {
  const size_t seg = mr__segment_size(p, kind, rsize);
  mr__blk *b = mr__grow(p, ps, kind, rsize, seg, st);
  if (!b && *st == MR_ERR_OUT_OF_MEMORY) { /* a smaller segment may still fit */
    const size_t least =
        kind == MR__SMALL ? p->opt.small_segment : mr__align_up(rsize, 2 * MR__MIB);
    if (least && least < seg)
      b = mr__grow(p, ps, kind, rsize, least, st);
  }
  return b;
}

mr_status mr__core_alloc(mr__pool *p, mr__pstream *ps, size_t size, size_t rsize, mr__blk **out,
                         int *from_upstream) {
  int kind = rsize > p->opt.small_limit ? MR__LARGE : MR__SMALL;
  mr_status st = MR_OK;
  *from_upstream = 0;
  mr__blk *b = find_fit(p, ps, kind, rsize);
  if (!b) {
    settle_all(p, 0);
    b = find_fit(p, ps, kind, rsize);
  }
  if (!b) /* reserved memory that fits, before a flush of the stream's cache (see below) */
    b = find_fit(p, ps, !kind, rsize);
  /* The stream's own cache may hold neighbours that merge into a fit. While other streams
     allocate too, it is flushed only when it holds at least what growing would add: a smaller
     cache is a small part of the pool's free memory, and a stream whose cache was flushed misses
     it on its next allocations, each a core allocation. Threads with small working sets (16
     blocks of 256 B to 64 KiB each) otherwise flushed their few cached blocks at such misses
     over and over: up to 37 times the core allocations of a run where they grew once (2
     threads, 2 million steps each). A stream alone holds all the pool's free memory: its cache
     is flushed at every such miss, which keeps reserved over in use at about 1.08 on random. */
  if (!b && (p->solo == ps || cached_bytes(ps) >= mr__segment_size(p, kind, rsize))) {
    mr__core_flush_cache(p, ps);
    b = find_fit(p, ps, kind, rsize);
  }
  if (!b && p->opt.cross_stream != MR_CROSS_STREAM_NONE) {
    /* Every 4th time it would grow, a stream also takes back what other threads' streams keep
       in their front caches (as pending on them); at every time while the pool hoards (see
       hoarding). Rarely otherwise: taking another thread's lock costs a membarrier, and 64 of
       them make that lock shared for good (a locked instruction on every operation of that
       thread); and a busy thread's cache is its working set: taking it at every miss made two
       threads on one pool run half as fast as one. */
    if (p->cross_misses++ % 4 == 0 || hoarding(p))
      for (mr__pstream *o = p->streams; o; o = o->next)
        if (o != ps && !mr__bias_cheap(&o->lock))
          mr__core_flush_cache(p, o);
    seal_others(p, ps, rsize);
    settle_all(p, 0);
    b = find_fit(p, ps, kind, rsize);
    if (!b)
      b = reclaim(p, ps, kind, rsize);
    if (!b && p->opt.cross_stream == MR_CROSS_STREAM_WAIT && ps->stream)
      b = take_waiting(p, ps, kind, rsize);
  }
  if (!b) /* Before growing, a free block of the other kind's segments: a small block in a large
              segment, a large one in a free small segment. Tried before the flush too: a stream
              whose kind has no room would otherwise flush its cache on every miss. */
    b = find_fit(p, ps, !kind, rsize);
  if (!b) {
    b = try_grow(p, ps, kind, rsize, &st);
    if (b)
      *from_upstream = 1;
  }
  if (!b) { /* out of memory upstream: give back what is cached, then what must be waited for */
    for (int wait = 0; wait < 2 && !b; wait++) {
      release_cached(p, wait);
      p->oom_retries++;
      b = find_fit(p, ps, kind, rsize);
      if (!b) {
        b = try_grow(p, ps, kind, rsize, &st);
        if (b)
          *from_upstream = 1;
      }
    }
  }
  if (!b) {
    char why[200];
    snprintf(why, sizeof why, "%s", mr_last_error());
    p->core_failed++;
    size_t in_use = 0;
    for (mr__seg *s = p->segs; s; s = s->next)
      for (mr__blk *x = s->first; x; x = x->phys_next)
        if (state_of(x) == MR__LIVE)
          in_use += x->size;
    return mr__error(st == MR_OK ? MR_ERR_OUT_OF_MEMORY : st,
                     "caching pool '%s': cannot allocate %zu bytes: reserved %" PRIu64
                     " bytes, in use %zu, free in pool %zu, largest free block %zu, maximum "
                     "reserve %zu (0: none); upstream '%s': %s",
                     p->name, size, p->reserved, in_use, (size_t)(p->reserved - in_use),
                     mr__core_largest_free(p), p->opt.maximum_reserve,
                     mr_allocator_name(p->upstream), why);
  }
  carve(p, ps, b, rsize);
  mr__apply_threshold(p);
  *out = b;
  return MR_OK;
}

mr_status mr__core_reserve(mr__pool *p, size_t bytes) {
  mr_status st = MR_OK;
  size_t size = mr__align_up(bytes, p->opt.alignment);
  int kind = size > p->opt.small_limit ? MR__LARGE : MR__SMALL;
  mr__blk *b = size ? mr__grow(p, p->host_ps, kind, size, size, &st) : NULL;
  if (!b) {
    char why[200];
    snprintf(why, sizeof why, "%s", mr_last_error());
    return mr__error(st == MR_OK ? MR_ERR_OUT_OF_MEMORY : st,
                     "caching pool '%s': initial reserve of %zu bytes failed: %s", p->name, bytes,
                     why);
  }
  insert_settled(p, b);
  return MR_OK;
}

/* ---- trim, statistics, destroy, validate ----------------------------------------------------- */

mr_status mr__core_trim(mr__pool *p, size_t keep) {
  for (mr__pstream *o = p->streams; o; o = o->next) {
    mr__core_flush_cache(p, o);
    mr__seal(p, o);
  }
  settle_all(p, 0);
  for (mr__seg *s = p->segs, *next; s && p->reserved > keep; s = next) {
    next = s->next;
    if (mr__segment_is_free(s)) {
      mr_status st = mr__segment_release(p, s);
      if (st != MR_OK)
        return st;
    }
  }
  return MR_OK;
}

size_t mr__core_largest_free(mr__pool *p) {
  size_t best = 0;
  for (int k = 0; k < 2; k++) {
    size_t l = mr__tlsf_largest(&p->settled[k]);
    if (l > best)
      best = l;
    for (mr__pstream *o = p->streams; o; o = o->next) {
      l = mr__tlsf_largest(&o->pending[k]);
      if (l > best)
        best = l;
    }
  }
  return best;
}

void mr__core_destroy(mr__pool *p) {
  for (mr__pstream *o = p->streams; o; o = o->next) {
    mr__core_flush_cache(p, o);
    mr__seal(p, o);
  }
  /* what is LIVE now was handed out and never freed */
  uint64_t live = 0, live_bytes = 0;
  for (mr__seg *s = p->segs; s; s = s->next)
    for (mr__blk *b = s->first; b; b = b->phys_next)
      if (state_of(b) == MR__LIVE) {
        live++;
        live_bytes += b->size;
      }
  settle_all(p, 1); /* wait for the work on every block before giving it back */
  mr_status first_err = MR_OK;
  while (p->segs) {
    mr__seg *s = p->segs;
    p->segs = s->next;
    mr_status st = mr_free_async(p->upstream, s->up_ptr, s->up_size, NULL);
    if (st != MR_OK && first_err == MR_OK)
      first_err = st;
    p->upstream_frees++;
    free(s);
  }
  p->reserved = 0;
  mr__pstream *o = p->streams;
  while (o) {
    mr__pstream *next = o->next;
    for (mr__batch *bt = o->sealed_head, *nb; bt; bt = nb) {
      nb = bt->next;
      mr__event_put(p, bt->event);
      free(bt);
    }
    free(o->open);
    mr__livemap_destroy(&o->lives);
    mr__cache_destroy(o);
    mr_stream_release(o->stream);
    free(o);
    o = next;
  }
  p->streams = NULL;
  for (size_t i = 0; i < p->nevents; i++)
    mr_event_destroy(p->events[i]);
  free(p->events);
  for (size_t i = 0; i < p->nslabs; i++)
    free(p->slabs[i]);
  free(p->slabs);
  if (live)
    mr__error(MR_ERR_LIVE_ALLOCATIONS,
              "caching pool '%s' destroyed with %" PRIu64 " live blocks (%" PRIu64
              " bytes); every segment was returned to '%s' anyway",
              p->name, live, live_bytes, mr_allocator_name(p->upstream));
  else if (first_err != MR_OK)
    mr__error(first_err, "caching pool '%s': returning a segment to '%s' failed on destroy",
              p->name, mr_allocator_name(p->upstream));
}

mr__pstream *mr__pool_stream_find(mr__pool *p, mr_stream *s) {
  if (!s)
    return p->host_ps;
  mr__pstream *ps = p->streams;
  while (ps && !(ps->stream && ps->id == s->id))
    ps = ps->next;
  return ps;
}

mr__pstream *mr__pool_stream_new(mr__pool *p, mr_stream *s) {
  mr__pstream *ps = mr__calloc_aligned(sizeof *ps);
  if (!ps)
    return NULL;
  mr__bias_init(&ps->lock, mr__bias_self());
  ps->stream = mr_stream_retain(s);
  ps->id = s ? s->id : 0;
  mr__tlsf_init(&ps->pending[0]);
  mr__tlsf_init(&ps->pending[1]);
  ps->lives.shift = (unsigned)__builtin_ctzll(p->opt.alignment); /* a power of two */
  ps->recent_addr = UINTPTR_MAX;                                 /* no block is there */
  ps->next = p->streams;
  p->streams = ps;
  return ps;
}
