/* Pointer -> block map of a caching pool: every block start (live or free) is in it, so the core
 * and the error paths find any block by address in O(1) (the hot paths use each stream's map of
 * its live blocks instead, livemap.c). Sharded, a spinlock per shard. */
#include "caching_internal.h"

#include <stdlib.h>

static inline uint64_t hash_addr(uintptr_t a) {
  uint64_t h = (uint64_t)a >> 8;
  h *= 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 29);
}

static inline mr__blockmap_shard *shard_of(mr__blockmap *m, uint64_t h) {
  return &m->shards[h >> 58];
}

mr_status mr__blockmap_init(mr__blockmap *m) {
  for (int i = 0; i < MR__MAP_SHARDS; i++) {
    mr__blockmap_shard *s = &m->shards[i];
    mr__spin_init(&s->lock);
    s->mask = 63;
    s->count = 0;
    s->buckets = calloc(s->mask + 1, sizeof *s->buckets);
    if (!s->buckets) {
      for (int j = 0; j < i; j++)
        free(m->shards[j].buckets);
      return mr__error(MR_ERR_OUT_OF_MEMORY, "caching pool: no host memory for its block map");
    }
  }
  return MR_OK;
}

void mr__blockmap_destroy(mr__blockmap *m) {
  for (int i = 0; i < MR__MAP_SHARDS; i++) {
    free(m->shards[i].buckets);
    m->shards[i].buckets = NULL;
  }
}

/* Doubles a shard's table; keeps the old one if there is no memory (chains just grow). */
static void grow(mr__blockmap_shard *s) {
  size_t n = (s->mask + 1) * 2;
  mr__blk **nb = calloc(n, sizeof *nb);
  if (!nb)
    return;
  for (size_t i = 0; i <= s->mask; i++) {
    mr__blk *b = s->buckets[i];
    while (b) {
      mr__blk *next = b->hash_next;
      size_t j = hash_addr(b->addr) & (n - 1);
      b->hash_next = nb[j];
      nb[j] = b;
      b = next;
    }
  }
  free(s->buckets);
  s->buckets = nb;
  s->mask = n - 1;
}

mr_status mr__blockmap_insert(mr__blockmap *m, mr__blk *b) {
  uint64_t h = hash_addr(b->addr);
  mr__blockmap_shard *s = shard_of(m, h);
  mr__spin_lock(&s->lock);
  if (s->count >= 2 * (s->mask + 1))
    grow(s);
  size_t i = h & s->mask;
  b->hash_next = s->buckets[i];
  s->buckets[i] = b;
  s->count++;
  mr__spin_unlock(&s->lock);
  return MR_OK;
}

void mr__blockmap_remove(mr__blockmap *m, mr__blk *b) {
  uint64_t h = hash_addr(b->addr);
  mr__blockmap_shard *s = shard_of(m, h);
  mr__spin_lock(&s->lock);
  for (mr__blk **pp = &s->buckets[h & s->mask]; *pp; pp = &(*pp)->hash_next) {
    if (*pp == b) {
      *pp = b->hash_next;
      s->count--;
      break;
    }
  }
  b->hash_next = NULL;
  mr__spin_unlock(&s->lock);
}

mr__blk *mr__blockmap_find(mr__blockmap *m, uintptr_t addr) {
  uint64_t h = hash_addr(addr);
  mr__blockmap_shard *s = shard_of(m, h);
  mr__spin_lock(&s->lock);
  mr__blk *b = s->buckets[h & s->mask];
  while (b && b->addr != addr)
    b = b->hash_next;
  mr__spin_unlock(&s->lock);
  return b;
}

size_t mr__blockmap_count(mr__blockmap *m) {
  size_t n = 0;
  for (int i = 0; i < MR__MAP_SHARDS; i++) {
    mr__spin_lock(&m->shards[i].lock);
    n += m->shards[i].count;
    mr__spin_unlock(&m->shards[i].lock);
  }
  return n;
}
