/* The caching pool's per-stream front caches: see caching_front.h. */
#include "caching_front.h"

#include <stdlib.h>
#include <string.h>

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

/* mr__cache_push with a full bin (out of line, so that the push itself calls nothing). */
__attribute__((noinline)) int mr__cache_push_grow(mr__pool *p, mr__pstream *ps, unsigned cls,
                                                  uintptr_t addr, size_t bsize, mr__blk *b,
                                                  size_t slot) {
  if (!bin_grow(&ps->bins[cls])) { /* no host memory: the spill list, which keeps no slot */
    if (slot != MR__NO_SLOT)
      mr__livemap_remove_at(&ps->lives, slot);
    b->free_next = ps->spill;
    ps->spill = b;
    ps->cache_bytes += bsize;
    ps->cache_blocks++;
    return 1;
  }
  return mr__cache_entry_push(p, ps, cls, addr, bsize, b, slot);
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
        mr__cache_unpark(ps, &bn->v[k]);
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
  return mr__cache_push(p, ps, ps->hot_addr, ps->hot_size, b, ps->hot_slot);
}

void mr__cache_refind(mr__pstream *ps) {
  if (ps->hot)
    ps->hot_slot = mr__livemap_find(&ps->lives, ps->hot_addr);
  for (unsigned w = 0; w < MR__CACHE_BIN_WORDS && ps->parked; w++)
    for (uint64_t bits = ps->bin_map[w]; bits; bits &= bits - 1) {
      mr__cbin *bn = &ps->bins[w * 64 + (unsigned)__builtin_ctzll(bits)];
      for (uint32_t k = 0; k < bn->n; k++)
        if (bn->v[k].slot != MR__NO_SLOT)
          bn->v[k].slot = mr__livemap_find(&ps->lives, bn->v[k].addr);
    }
}

/* The top entry of ps's bin `cls` (not empty), out of the front cache and unparked. */
static mr__centry pop_unparked(mr__pstream *ps, unsigned cls) {
  mr__centry e = mr__cache_pop(ps, cls);
  mr__cache_unpark(ps, &e);
  return e;
}

mr__centry mr__cache_take_fit(mr__pstream *ps, size_t rsize) {
  unsigned cls = mr__tlsf_class(rsize);
  mr__cbin *bn = &ps->bins[cls];
  for (uint32_t k = bn->n; k-- > 0;) {
    if (bn->v[k].size < rsize)
      continue;
    mr__centry e = bn->v[k];
    memmove(bn->v + k, bn->v + k + 1, (size_t)(bn->n - k - 1) * sizeof *bn->v);
    bn->v[bn->n - 1] = e; /* now on top */
    return pop_unparked(ps, cls);
  }
  /* every block of a higher class fits: the lowest non-empty one, by the bin map */
  for (unsigned c = cls + 1, w = c / 64; w < MR__CACHE_BIN_WORDS; w++, c = w * 64) {
    const uint64_t bits = ps->bin_map[w] & (~0ull << (c % 64));
    if (bits)
      return pop_unparked(ps, w * 64 + (unsigned)__builtin_ctzll(bits));
  }
  return (mr__centry){0, 0, NULL, MR__NO_SLOT};
}

/* Takes the oldest half (rounded up) of every bin out of ps's front cache, onto `list`. */
static mr__blk *take_oldest_halves(mr__pstream *ps, mr__blk *list) {
  for (unsigned w = 0; w < MR__CACHE_BIN_WORDS; w++) {
    for (uint64_t bits = ps->bin_map[w]; bits; bits &= bits - 1) {
      const unsigned cls = w * 64 + (unsigned)__builtin_ctzll(bits);
      mr__cbin *bn = &ps->bins[cls];
      const uint32_t k = (bn->n + 1) / 2; /* a bin's oldest entries are at its bottom */
      for (uint32_t j = 0; j < k; j++) {
        mr__blk *b = bn->v[j].blk;
        mr__cache_unpark(ps, &bn->v[j]);
        ps->cache_bytes -= bn->v[j].size;
        b->free_next = list;
        list = b;
      }
      memmove(bn->v, bn->v + k, (size_t)(bn->n - k) * sizeof *bn->v);
      bn->n -= k;
      ps->cache_blocks -= k;
      if (!bn->n)
        ps->bin_map[w] &= ~(1ull << (cls % 64));
    }
  }
  return list;
}

/* The oldest half of every bin goes, so that what stays keeps the mix of sizes the stream frees
 * and allocates: taking the largest blocks first emptied the top classes, whose next allocations
 * then missed the cache and went to the core, whose blocks in turn came back to be evicted (random
 * at 1e5 live, 1 MiB: 82,000 core allocations and as many evicted blocks in 1.5 million
 * operations, against 57,000 this way). Then, if the cache is still over half its budget, its
 * largest blocks. */
mr__blk *mr__cache_take_evicted(mr__pool *p, mr__pstream *ps) {
  size_t target = p->cache_cap / 2;
  mr__bias_lock(&ps->lock);
  mr__blk *list = take_oldest_halves(ps, take_spill(ps));
  for (int w = MR__CACHE_BIN_WORDS - 1; w >= 0 && ps->cache_bytes > target; w--) {
    while (ps->bin_map[w] && ps->cache_bytes > target) {
      unsigned cls = (unsigned)w * 64 + 63u - (unsigned)__builtin_clzll(ps->bin_map[w]);
      mr__blk *b = pop_unparked(ps, cls).blk;
      b->free_next = list;
      list = b;
    }
  }
  mr__bias_unlock(&ps->lock);
  return list;
}

__attribute__((noinline)) void mr__cache_evict(mr__pool *p, mr__pstream *ps) {
  mr__blk *list = mr__cache_take_evicted(p, ps);
  if (!list)
    return;
  pthread_mutex_lock(&p->mu);
  mr__core_put(p, ps, list);
  pthread_mutex_unlock(&p->mu);
}
