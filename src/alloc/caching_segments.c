/* The caching pool's segments: the block records that tile them, taking segments from upstream
 * (growth policy, maximum reserve, less-aligned upstreams) and giving wholly free ones back
 * (trim, release threshold, out of memory). All with the pool mutex held, except that mr__grow
 * drops it around the upstream call. */
#include "caching_internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* ---- block structs --------------------------------------------------------------------------- */

/* Record slabs: 256 records (32 KiB) each, then, past 64 of them (16,384 records: a pool with
 * many blocks), 2 MiB each, aligned and advised as huge pages where Linux offers them. A core
 * operation reads or writes 4 to 6 records at random: at 1e5 live blocks those lie on 3,400
 * pages of 4 KiB, more than the processor's TLB holds, and each touch was a page walk besides a
 * cache miss. Random at 1e5 on the host harness: 57.5 -> 56.4 ns (6 alternated runs). */
enum { MR__SLAB_RECORDS = 256, MR__SMALL_SLABS = 64, MR__HUGE_SLAB = 2 << 20 };

static mr__blk *slab_new(size_t nslabs, size_t *n) {
  if (nslabs < MR__SMALL_SLABS) {
    *n = MR__SLAB_RECORDS;
    return mr__calloc_aligned(MR__SLAB_RECORDS * sizeof(mr__blk));
  }
  void *m = aligned_alloc(MR__HUGE_SLAB, MR__HUGE_SLAB);
  if (!m)
    return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  (void)madvise(m, MR__HUGE_SLAB, MADV_HUGEPAGE); /* advice only: 4 KiB pages work too */
#endif
  memset(m, 0, MR__HUGE_SLAB);
  *n = MR__HUGE_SLAB / sizeof(mr__blk);
  return m;
}

mr__blk *mr__blk_new(mr__pool *p) {
  if (!p->spare) {
    size_t n;
    if (p->nslabs == p->cap_slabs) {
      size_t cap = p->cap_slabs ? p->cap_slabs * 2 : 16;
      void **s = realloc(p->slabs, cap * sizeof *s);
      if (!s)
        return NULL;
      p->slabs = s;
      p->cap_slabs = cap;
    }
    mr__blk *slab = slab_new(p->nslabs, &n);
    if (slab && (uintptr_t)(slab + n) > MR__LS_LIMIT) { /* a live-map slot keeps 48 bits of it */
      free(slab);
      slab = NULL;
    }
    if (!slab)
      return NULL;
    p->slabs[p->nslabs++] = slab;
    for (size_t i = 0; i < n; i++) {
      atomic_init(&slab[i].state, MR__SPARE);
      slab[i].free_next = p->spare;
      p->spare = &slab[i];
    }
  }
  mr__blk *b = p->spare;
  p->spare = b->free_next;
  /* The second line is zero already: a record leaves its batch before it is spare. Not writing
     it saves a cache miss a split. */
  memset(b, 0, offsetof(mr__blk, batch));
  atomic_init(&b->state, MR__SPARE);
  return b;
}

void mr__blk_free(mr__pool *p, mr__blk *b) {
  atomic_store_explicit(&b->state, MR__SPARE, memory_order_relaxed);
  b->free_next = p->spare;
  p->spare = b;
}

/* ---- segments -------------------------------------------------------------------------------- */

mr_status mr__segment_release(mr__pool *p, mr__seg *s) {
  mr__blk *b = s->first;
  mr__tlsf_remove(&p->settled[s->small ? MR__SMALL : MR__LARGE], b);
  mr__blk_free(p, b);
  mr_status st = mr_free_async(p->upstream, s->up_ptr, s->up_size, NULL);
  if (s->prev)
    s->prev->next = s->next;
  else
    p->segs = s->next;
  if (s->next)
    s->next->prev = s->prev;
  p->nsegs--;
  p->reserved -= s->up_size;
  p->upstream_frees++;
  free(s);
  return st;
}

int mr__segment_is_free(const mr__seg *s) {
  return !s->first->phys_next && state_of(s->first) == MR__FREE;
}

/* Returns wholly free settled segments upstream while more than `keep` bytes are reserved. */
size_t mr__release_free_segments(mr__pool *p, size_t keep) {
  size_t released = 0;
  mr__seg *s = p->segs;
  while (s && p->reserved > keep) {
    mr__seg *next = s->next;
    if (mr__segment_is_free(s)) {
      released += s->up_size;
      mr__segment_release(p, s);
    }
    s = next;
  }
  return released;
}

static size_t settled_bytes(const mr__pool *p) {
  return p->settled[MR__SMALL].bytes + p->settled[MR__LARGE].bytes;
}

/* The release threshold: free settled segments beyond it go back upstream. */
void mr__apply_threshold(mr__pool *p) {
  size_t thr = p->opt.release_threshold;
  if (!thr || settled_bytes(p) <= thr)
    return;
  for (mr__seg *s = p->segs, *next; s && settled_bytes(p) > thr; s = next) {
    next = s->next;
    if (mr__segment_is_free(s))
      mr__segment_release(p, s);
  }
}

/* A small segment is opt.small_segment while the pool is small. Under the FIXED and DOUBLE
 * policies it doubles while it stays at most 1/128 of what the pool reserves, up to 32 MiB (or
 * small_segment, if larger): the newest segment's unused tail is then at most 0.8% of the
 * reserve, while a pool of GiBs grows 16 times less often. Each growth cost random at 1e5 live
 * blocks (25 GiB) 50-70 us on an H100: repetitions of 10 ms that grew by 2 MiB segments 44-86
 * times took 62-85 ns an operation against 50-56 without growth. The upstream call is the small
 * part of that as a fresh process sees it (cudaMallocAsync growing the default mempool: 5 us for
 * 2 MiB, 41 us for 32 MiB); the rest is the mempool's growth beside 25 GiB already mapped, or the
 * pool's own work around a growth (a solo stream flushes its front cache first), not separated.
 * With segments up to 32 MiB the same bench's repetitions grew 0-8 times. */
#define MR__SMALL_SEGMENT_MAX (32 * MR__MIB)

static size_t small_segment_size(const mr__pool *p) {
  size_t seg = p->opt.small_segment;
  if (p->opt.growth == MR_GROWTH_EXACT)
    return seg;
  while (seg <= MR__SMALL_SEGMENT_MAX / 2 && seg <= p->reserved / 256)
    seg *= 2;
  return seg;
}

size_t mr__segment_size(mr__pool *p, int kind, size_t rsize) {
  if (kind == MR__SMALL)
    return small_segment_size(p);
  size_t need = mr__align_up(rsize, 2 * MR__MIB);
  if (!need)
    return 0;
  size_t seg;
  switch (p->opt.growth) {
  case MR_GROWTH_EXACT:
    seg = need;
    break;
  case MR_GROWTH_DOUBLE: {
    size_t next = p->last_large ? p->last_large * 2 : p->opt.large_segment_min;
    if (next > ((size_t)1 << 30))
      next = (size_t)1 << 30;
    seg = next > need ? next : need;
    break;
  }
  default: /* FIXED */
    /* Above the minimum, room for another request as large (up to 4 minimums more): random
       sizes up to 64 MiB then fill segments instead of leaving one hole each (reserved over
       in use 1.112 -> 1.077 on random 1e3/64 MiB). */
    if (rsize <= p->opt.large_segment_min)
      seg = p->opt.large_segment_min;
    else {
      size_t extra = need < 4 * p->opt.large_segment_min ? need : 4 * p->opt.large_segment_min;
      seg = need + mr__align_up(extra, 2 * MR__MIB);
      if (seg < need) /* overflow */
        seg = need;
    }
  }
  return seg;
}

/* A new segment holding at least rsize, as one block out of every index; NULL with *st. */
mr__blk *mr__grow(mr__pool *p, mr__pstream *ps, int kind, size_t rsize, size_t seg_size,
                  mr_status *st) {
  size_t align = p->opt.alignment;
  if (!seg_size) {
    *st = MR_ERR_OUT_OF_MEMORY;
    return NULL;
  }
  if (p->opt.maximum_reserve && p->reserved + seg_size > p->opt.maximum_reserve) {
    size_t least = kind == MR__SMALL ? seg_size : mr__align_up(rsize, align);
    if (!least || p->reserved + least > p->opt.maximum_reserve) {
      *st = mr__error(MR_ERR_OUT_OF_MEMORY,
                      "a new segment of %zu bytes would pass the maximum reserve", least);
      return NULL;
    }
    seg_size = least;
  }
  mr__seg *s = calloc(1, sizeof *s);
  mr__blk *b = mr__blk_new(p);
  if (!s || !b) {
    free(s);
    if (b)
      mr__blk_free(p, b);
    *st = mr__error(MR_ERR_OUT_OF_MEMORY, "caching pool '%s': no host memory for bookkeeping",
                    p->name);
    return NULL;
  }
  void *ptr = NULL;
  size_t ask = seg_size, usable = seg_size;
  /* Upstream may take long (cudaHostAlloc: a millisecond): other streams go on meanwhile. */
  pthread_mutex_unlock(&p->mu);
  *st = mr_alloc_async(p->upstream, ask, ps->stream, &ptr);
  pthread_mutex_lock(&p->mu);
  if (*st == MR_OK && !ptr) /* a broken upstream: address 0 would be no block at all */
    *st = mr__error(MR_ERR_INVALID_ARG, "upstream '%s' returned NULL with MR_OK for %zu bytes",
                    p->upstream->name, ask);
  if (*st == MR_OK && p->opt.maximum_reserve && p->reserved + ask > p->opt.maximum_reserve) {
    mr_free_async(p->upstream, ptr, ask, ps->stream); /* another thread grew meanwhile */
    p->upstream_allocs++;
    p->upstream_frees++;
    ptr = NULL;
    *st = mr__error(MR_ERR_OUT_OF_MEMORY,
                    "a new segment of %zu bytes would pass the maximum reserve", ask);
  }
  if (*st == MR_OK && ((uintptr_t)ptr & (align - 1))) {
    /* upstream aligns less than the pool: use the aligned part, or ask again with room */
    uintptr_t base = ((uintptr_t)ptr + align - 1) & ~(uintptr_t)(align - 1);
    usable = (seg_size - (size_t)(base - (uintptr_t)ptr)) & ~(align - 1);
    if (usable < rsize) {
      mr_free_async(p->upstream, ptr, ask, ps->stream);
      p->upstream_allocs++;
      p->upstream_frees++;
      ptr = NULL;
      ask = seg_size + align;
      usable = seg_size;
      if (ask < seg_size || (p->opt.maximum_reserve && p->reserved + ask > p->opt.maximum_reserve))
        *st = mr__error(MR_ERR_OUT_OF_MEMORY,
                        "upstream memory is less aligned than %zu and %zu more bytes would pass "
                        "the maximum reserve",
                        align, ask);
      else
        *st = mr_alloc_async(p->upstream, ask, ps->stream, &ptr);
    }
  }
  if (*st == MR_OK && (ask > MR__LS_LIMIT || (uint64_t)(uintptr_t)ptr > MR__LS_LIMIT - ask)) {
    /* a live-map slot keeps 48 bits of a block's address (x86-64 and arm64 user space) */
    mr_free_async(p->upstream, ptr, ask, ps->stream);
    p->upstream_allocs++;
    p->upstream_frees++;
    *st = mr__error(MR_ERR_UNSUPPORTED,
                    "caching pool '%s': upstream '%s' returned %p (%zu bytes), above the 2^48 "
                    "bytes of address space the pool can keep",
                    p->name, p->upstream->name, ptr, ask);
  }
  if (*st != MR_OK) {
    free(s);
    mr__blk_free(p, b);
    return NULL;
  }
  s->up_ptr = ptr;
  s->up_size = ask;
  s->base = ((uintptr_t)ptr + align - 1) & ~(uintptr_t)(align - 1);
  s->size = usable;
  seg_size = usable;
  s->small = kind == MR__SMALL;
  s->first = b;
  s->next = p->segs;
  if (p->segs)
    p->segs->prev = s;
  p->segs = s;
  p->nsegs++;
  b->addr = s->base;
  b->size = seg_size;
  b->small = (unsigned char)s->small;
  p->reserved += ask;
  if (p->reserved > p->peak_reserved)
    p->peak_reserved = p->reserved;
  p->upstream_allocs++;
  if (kind == MR__LARGE)
    p->last_large = seg_size;
  return b;
}
