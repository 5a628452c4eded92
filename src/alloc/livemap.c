/* A stream's map of the blocks it handed out (address -> block): open addressing over groups of
 * 8 slots with a control byte a slot (see caching_internal.h). Each caching-pool stream keeps its
 * own, under its own spinlock, so a free on the stream that allocated the block touches nothing
 * another thread writes: that is what lets threads on different streams scale. */
#include "caching_internal.h"

#include <stdio.h>
#include <stdlib.h>

/* Frees a table of mr__livemap_rehash (what calloc returned is stored just before it). */
static void table_free(mr__live_slot *slots) {
  if (slots)
    free(((void **)slots)[-1]);
}

/* The slots a table of `cap` may fill (full or DELETED): 7/8, or 15/16 when it could not grow. */
static size_t usable(size_t cap, int fuller) { return cap - cap / 8 + (fuller ? cap / 16 : 0); }

int mr__livemap_rehash(mr__livemap *m, size_t cap) {
  /* slots then control bytes, in one allocation; the slots aligned to a cache line, so that no
   * slot straddles two: a lookup reads one slot line */
  if (cap > (SIZE_MAX - 64) / (sizeof(mr__live_slot) + 1))
    return 0;
  void *mem = calloc(cap * (sizeof(mr__live_slot) + 1) + 64, 1); /* all EMPTY */
  if (!mem)
    return 0;
  mr__live_slot *slots = (mr__live_slot *)(((uintptr_t)mem + 64) & ~(uintptr_t)63);
  ((void **)slots)[-1] = mem; /* the 64 bytes before the table hold what to free */
  mr__livemap n = {
      .slots = slots, .ctrl = (uint8_t *)(slots + cap), .mask = cap - 1, .shift = m->shift};
  n.left = usable(cap, 0);
  for (size_t i = 0; m->slots && i <= m->mask; i++) {
    const mr__live_slot *sl = &m->slots[i];
    if (m->ctrl[i] & 0x80) /* full: moved as it is */
      *mr__livemap_claim(&n, mr__livemap_hash(mr__ls_addr(sl))) = *sl;
  }
  table_free(m->slots);
  *m = n;
  return 1;
}

int mr__livemap_grow(mr__livemap *m) {
  size_t cap = m->slots ? m->mask + 1 : 64;
  /* full or DELETED at 7/8: twice as big when the blocks alone fill 25/32 of it or more (as
   * Abseil's tables), else the same size without the DELETED slots (which leaves at least 3/32 of
   * it to fill before the next rehash). A map holds its blocks at up to 25/32, not 7/16: at 1e5
   * live blocks (random's walk holds about 5e4) that is 2^16 slots, 1 MiB, not 2 MiB, beside the
   * rest of the pool's state in a 2 MiB L2. Inserts reuse DELETED slots in their home group, so at
   * that load they seldom pile up: random at 5e4 live rehashed once in 3 million operations. */
  if (m->slots && m->count >= cap / 32 * 25)
    cap *= 2;
  if (mr__livemap_rehash(m, cap))
    return 1;
  /* without memory to grow, a table fills on to 15/16 (longer probes), then no further */
  if (!m->slots || m->fuller)
    return 0;
  m->fuller = 1;
  m->left += (m->mask + 1) / 16;
  return 1;
}

const mr__live_slot *mr__livemap_slot_of(const mr__livemap *m, const mr__blk *b) {
  size_t i = mr__livemap_find(m, b->addr);
  return i != SIZE_MAX && mr__ls_blk(&m->slots[i]) == b ? &m->slots[i] : NULL;
}

void mr__livemap_destroy(mr__livemap *m) {
  table_free(m->slots);
  *m = (mr__livemap){.shift = m->shift};
}

int mr__livemap_check(const mr__livemap *m, char *why, size_t len) {
  if (!m->slots) {
    snprintf(why, len, "a live map without a table counts %zu blocks", m->count);
    return m->count == 0;
  }
  const size_t cap = m->mask + 1;
  size_t full = 0, deleted = 0;
  for (size_t i = 0; i < cap; i++) {
    const uint8_t c = m->ctrl[i];
    const uintptr_t a = mr__ls_addr(&m->slots[i]);
    if (c & 0x80) {
      const uint64_t h = mr__livemap_hash(a);
      if (!a || c != mr__livemap_tag(h)) {
        snprintf(why, len, "live map slot %zu (%p) has control byte %#x", i, (void *)a, c);
        return 0;
      }
      if (mr__livemap_find_h(m, a, h) != i) {
        snprintf(why, len, "live map slot %zu (%p) is not found by a lookup", i, (void *)a);
        return 0;
      }
      full++;
    } else if (m->slots[i].key || (c != MR__LM_EMPTY && c != MR__LM_DELETED)) {
      snprintf(why, len, "live map slot %zu (%p) has control byte %#x", i, (void *)a, c);
      return 0;
    } else {
      deleted += c == MR__LM_DELETED;
    }
  }
  const size_t room = usable(cap, m->fuller);
  if (full != m->count || m->left + full + deleted != room) {
    snprintf(why, len,
             "live map counts %zu blocks and room for %zu more, holds %zu (%zu slots deleted, "
             "%zu of %zu usable)",
             m->count, m->left, full, deleted, room, cap);
    return 0;
  }
  return 1;
}
