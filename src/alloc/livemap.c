/* A stream's map of the blocks it handed out (address -> block), open addressing with linear
 * probing and backward-shift deletion. Each caching-pool stream keeps its own, under its own
 * spinlock, so a free on the stream that allocated the block touches nothing another thread
 * writes: that is what lets threads on different streams scale. */
#include "caching_internal.h"

#include <stdlib.h>

static inline size_t slot_of(uintptr_t addr, size_t mask) {
  uint64_t h = (uint64_t)addr >> 8;
  h *= 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 32) & mask;
}

static int rehash(mr__livemap *m, size_t cap) {
  mr__blk **slots = calloc(cap, sizeof *slots);
  if (!slots)
    return 0;
  size_t mask = cap - 1;
  for (size_t i = 0; m->slots && i <= m->mask; i++) {
    mr__blk *b = m->slots[i];
    if (!b)
      continue;
    size_t j = slot_of(b->addr, mask);
    while (slots[j])
      j = (j + 1) & mask;
    slots[j] = b;
  }
  free(m->slots);
  m->slots = slots;
  m->mask = mask;
  return 1;
}

int mr__livemap_insert(mr__livemap *m, mr__blk *b) {
  if (!m->slots || 2 * (m->count + 1) > m->mask + 1) {
    size_t cap = m->slots ? 2 * (m->mask + 1) : 64;
    /* without memory to grow, a fuller table still works up to 7/8 */
    if (!rehash(m, cap) && (!m->slots || 8 * (m->count + 1) > 7 * (m->mask + 1)))
      return 0;
  }
  size_t j = slot_of(b->addr, m->mask);
  while (m->slots[j])
    j = (j + 1) & m->mask;
  m->slots[j] = b;
  m->count++;
  return 1;
}

mr__blk *mr__livemap_take(mr__livemap *m, uintptr_t addr, size_t size, mr_status *st) {
  if (!m->count) {
    *st = MR_ERR_UNKNOWN_POINTER;
    return NULL;
  }
  size_t mask = m->mask, i = slot_of(addr, mask);
  mr__blk *b;
  while ((b = m->slots[i]) && b->addr != addr)
    i = (i + 1) & mask;
  if (!b) {
    *st = MR_ERR_UNKNOWN_POINTER;
    return NULL;
  }
  if (b->requested != size) {
    *st = MR_ERR_INVALID_ARG;
    return b;
  }
  /* backward-shift deletion keeps every probe chain unbroken */
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    mr__blk *n = m->slots[j];
    if (!n)
      break;
    size_t k = slot_of(n->addr, mask);
    if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
      m->slots[i] = n;
      i = j;
    }
  }
  m->slots[i] = NULL;
  m->count--;
  *st = MR_OK;
  return b;
}

int mr__livemap_contains(const mr__livemap *m, const mr__blk *b) {
  if (!m->count)
    return 0;
  for (size_t i = slot_of(b->addr, m->mask); m->slots[i]; i = (i + 1) & m->mask)
    if (m->slots[i] == b)
      return 1;
  return 0;
}

void mr__livemap_destroy(mr__livemap *m) {
  free(m->slots);
  m->slots = NULL;
  m->count = 0;
  m->mask = 0;
}
