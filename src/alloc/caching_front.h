/* A caching-pool stream's front cache (caching_front.c): per size class, a stack of entries
 * (address, size, record) of blocks freed on the stream, reusable by it at once; the blocks that
 * found no bin room (the spill list); the filing of its hot block; eviction past its budget. The
 * push and the pop are inline here, for the pool's alloc and free fast paths. All under ps->lock
 * unless said otherwise. */
#ifndef MEMRES_ALLOC_CACHING_FRONT_H
#define MEMRES_ALLOC_CACHING_FRONT_H

#include "caching_internal.h"

static inline __attribute__((always_inline)) int mr__cache_entry_push(mr__pool *p, mr__pstream *ps,
                                                                      unsigned cls, uintptr_t addr,
                                                                      size_t bsize, mr__blk *b,
                                                                      size_t slot) {
  mr__cbin *bn = &ps->bins[cls];
  bn->v[bn->n++] = (mr__centry){addr, bsize, b, slot};
  ps->parked += slot != MR__NO_SLOT;
  ps->bin_map[cls / 64] |= 1ull << (cls % 64);
  ps->cache_bytes += bsize;
  ps->cache_blocks++;
  return ps->cache_bytes > p->cache_cap;
}

/* mr__cache_push with a full bin (out of line, so that the push itself calls nothing). */
int mr__cache_push_grow(mr__pool *p, mr__pstream *ps, unsigned cls, uintptr_t addr, size_t bsize,
                        mr__blk *b, size_t slot);

/* Files block b (at addr, `bsize` bytes; out of every list) in ps's front cache, under ps->lock,
 * without touching its record unless its bin cannot grow (then it waits on the spill list for
 * the next eviction, its slot removed). `slot`: its slot in ps's live map, marked freed, which it
 * keeps (parked), or MR__NO_SLOT. Returns 1 if the cache went over its budget. */
static inline __attribute__((always_inline)) int mr__cache_push(mr__pool *p, mr__pstream *ps,
                                                                uintptr_t addr, size_t bsize,
                                                                mr__blk *b, size_t slot) {
  unsigned cls = mr__tlsf_class(bsize);
  const mr__cbin *bn = &ps->bins[cls];
  if (MR_UNLIKELY(bn->n == bn->cap))
    return mr__cache_push_grow(p, ps, cls, addr, bsize, b, slot);
  return mr__cache_entry_push(p, ps, cls, addr, bsize, b, slot);
}

/* Entry e has left ps's front cache other than to be handed out from its slot: its slot, if it
 * kept one, goes (under ps->lock). */
static inline void mr__cache_unpark(mr__pstream *ps, const mr__centry *e) {
  if (e->slot != MR__NO_SLOT) {
    mr__livemap_remove_at(&ps->lives, e->slot);
    ps->parked--;
  }
}

/* After a rehash of ps's live map (which moves every slot): the hot block and each parked block
 * find their slots again (under ps->lock). */
void mr__cache_refind(mr__pstream *ps);

/* Takes the top entry of ps's bin `cls` (not empty) out of the front cache, under ps->lock: the
 * caller hands it out from its slot or unparks it (mr__cache_unpark). */
static inline __attribute__((always_inline)) mr__centry mr__cache_pop(mr__pstream *ps,
                                                                      unsigned cls) {
  mr__cbin *bn = &ps->bins[cls];
  mr__centry e = bn->v[--bn->n];
  if (!bn->n)
    ps->bin_map[cls / 64] &= ~(1ull << (cls % 64));
  ps->cache_bytes -= e.size;
  ps->cache_blocks--;
  return e;
}

/* The class whose top entry an allocation of rsize bytes (class cls) takes, under ps->lock: cls
 * when one of its 4 newest entries fits (that one swapped to the top), else cls + 1 (every block
 * of a higher class fits; the top class's bin is always empty). A class spans 1/16 of a power of
 * two, so its top entry is smaller than the request about half the time: looking at the top
 * alone sent 7.5% of random's allocations to the core at 1e3 live blocks and 12% at 1e5, against
 * 3.7% and 9% looking at four (1.5 million steps, sizes up to 1 MiB, CPU machine). */
static inline __attribute__((always_inline)) unsigned
mr__cache_class_for(mr__pstream *ps, unsigned cls, size_t rsize) {
  mr__cbin *bn = &ps->bins[cls];
  if (!bn->n)
    return cls + 1;
  uint32_t k = bn->n; /* entries k - 1, k - 2, ...: the newest first */
  const uint32_t lo = k > 4 ? k - 4 : 0;
  while (k > lo && bn->v[k - 1].size < rsize)
    k--;
  if (k == lo)
    return cls + 1;
  if (k != bn->n) {
    const mr__centry t = bn->v[k - 1];
    bn->v[k - 1] = bn->v[bn->n - 1];
    bn->v[bn->n - 1] = t;
  }
  return cls;
}

/* Takes the newest entry of ps's front cache whose block holds rsize bytes, from rsize's class
 * or the lowest class above it that holds any (under ps->lock), unparked; blk NULL if none. For
 * the slow path: it scans the class, where an allocation looks at its 4 newest entries. */
mr__centry mr__cache_take_fit(mr__pstream *ps, size_t rsize);

/* Files ps's hot block in its front cache, parked in its slot; 1 if that left the cache over its
 * budget. */
int mr__hot_file(mr__pool *p, mr__pstream *ps);
/* Empties ps's front cache into a list of its blocks through free_next (writes their records;
 * unparks them). */
mr__blk *mr__cache_take_all(mr__pstream *ps);
/* Frees ps's front-cache bins (the pool is being destroyed; the cache is empty). */
void mr__cache_destroy(mr__pstream *ps);
/* What an eviction takes out of ps's front cache, as a list through free_next (takes ps->lock):
 * the oldest half of each of its bins and any spilled blocks, then its largest cached blocks
 * while the cache is over half its budget. */
mr__blk *mr__cache_take_evicted(mr__pool *p, mr__pstream *ps);
/* Sends what mr__cache_take_evicted takes to the core (takes ps->lock, then the pool mutex). */
void mr__cache_evict(mr__pool *p, mr__pstream *ps);

#endif
