/* A stream's map of the blocks it handed out (address -> block), open addressing with linear
 * probing and backward-shift deletion. Each caching-pool stream keeps its own, under its own
 * spinlock, so a free on the stream that allocated the block touches nothing another thread
 * writes: that is what lets threads on different streams scale. */
#include "caching_internal.h"

#include <stdlib.h>

/* Frees a slot table of mr__livemap_rehash (what calloc returned is stored just before it). */
static void table_free(mr__live_slot *slots) {
  if (slots)
    free(((void **)slots)[-1]);
}

int mr__livemap_rehash(mr__livemap *m, size_t cap) {
  /* aligned to a cache line, so that no slot straddles two: a probe is one miss, not two */
  if (cap > SIZE_MAX / sizeof(mr__live_slot))
    return 0;
  void *mem = calloc(cap * sizeof(mr__live_slot) + 64, 1);
  if (!mem)
    return 0;
  mr__live_slot *slots = (mr__live_slot *)(((uintptr_t)mem + 64) & ~(uintptr_t)63);
  ((void **)slots)[-1] = mem; /* the 64 bytes before the table hold what to free */
  size_t mask = cap - 1;
  for (size_t i = 0; m->slots && i <= m->mask; i++) {
    if (!m->slots[i].addr)
      continue;
    size_t j = mr__livemap_slot(m->slots[i].addr, mask);
    while (slots[j].addr)
      j = (j + 1) & mask;
    slots[j] = m->slots[i];
  }
  table_free(m->slots);
  m->slots = slots;
  m->mask = mask;
  m->limit = cap / 2;
  return 1;
}

int mr__livemap_grow(mr__livemap *m) {
  size_t cap = m->slots ? 2 * (m->mask + 1) : 64;
  /* without memory to grow, a fuller table still works up to 7/8 */
  if (mr__livemap_rehash(m, cap))
    return 1;
  if (!m->slots || 8 * (m->count + 1) > 7 * (m->mask + 1))
    return 0;
  m->limit = m->count + 1;
  return 1;
}

const mr__live_slot *mr__livemap_slot_of(const mr__livemap *m, const mr__blk *b) {
  if (!m->count)
    return NULL;
  for (size_t i = mr__livemap_slot(b->addr, m->mask); m->slots[i].addr; i = (i + 1) & m->mask)
    if (m->slots[i].blk == b)
      return &m->slots[i];
  return NULL;
}

void mr__livemap_destroy(mr__livemap *m) {
  table_free(m->slots);
  m->slots = NULL;
  m->count = 0;
  m->mask = 0;
  m->limit = 0;
}
