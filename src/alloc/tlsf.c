/* Two-level segregated fit index: see tlsf.h. The lists are doubly linked through the block's
 * free links; the block records its class. */
#include "tlsf.h"

#include "caching_internal.h"

#include <string.h>

void mr__tlsf_init(mr__tlsf *t) { memset(t, 0, sizeof *t); }

void mr__tlsf_insert(mr__tlsf *t, mr__blk *b) {
  unsigned cls = mr__tlsf_class(b->size);
  mr__blk *head = t->heads[cls];
  b->cls = cls;
  b->free_prev = NULL;
  b->free_next = head;
  if (head)
    head->free_prev = b;
  t->heads[cls] = b;
  t->fl_map |= 1ull << (cls / MR_TLSF_SL);
  t->sl_map[cls / MR_TLSF_SL] |= (uint16_t)(1u << (cls % MR_TLSF_SL));
  t->count++;
  t->bytes += b->size;
}

void mr__tlsf_remove(mr__tlsf *t, mr__blk *b) {
  unsigned cls = b->cls;
  if (b->free_prev)
    b->free_prev->free_next = b->free_next;
  else
    t->heads[cls] = b->free_next;
  if (b->free_next)
    b->free_next->free_prev = b->free_prev;
  b->free_prev = b->free_next = NULL;
  if (!t->heads[cls]) {
    unsigned fl = cls / MR_TLSF_SL;
    t->sl_map[fl] &= (uint16_t) ~(1u << (cls % MR_TLSF_SL));
    if (!t->sl_map[fl])
      t->fl_map &= ~(1ull << fl);
  }
  t->count--;
  t->bytes -= b->size;
}

mr__blk *mr__tlsf_find(const mr__tlsf *t, size_t size) {
  if (!t->count)
    return NULL;
  unsigned cls = mr__tlsf_class(size);
  /* Best fit among the first few of the request's own class (bounded: each is a cache miss). */
  mr__blk *best = NULL;
  int seen = 0;
  for (mr__blk *b = t->heads[cls]; b && seen < 4; b = b->free_next, seen++) {
    if (b->size >= size && (!best || b->size < best->size)) {
      best = b;
      if (b->size == size)
        break;
    }
  }
  if (best)
    return best;
  /* Every block of a larger class fits. */
  cls++;
  unsigned fl = cls / MR_TLSF_SL, sl = cls % MR_TLSF_SL;
  if (fl >= MR_TLSF_FL)
    return NULL;
  uint32_t sl_bits = (uint32_t)t->sl_map[fl] & (~0u << sl);
  if (!sl_bits) {
    uint64_t fl_bits = fl + 1 < 64 ? t->fl_map & (~0ull << (fl + 1)) : 0;
    if (!fl_bits)
      return NULL;
    fl = (unsigned)__builtin_ctzll(fl_bits);
    sl_bits = t->sl_map[fl];
  }
  sl = (unsigned)__builtin_ctz(sl_bits);
  /* every block there fits (at most 1/16 larger than the class floor): take the head, one
     memory access, so the cost stays flat however many blocks are free */
  return t->heads[fl * MR_TLSF_SL + sl];
}

size_t mr__tlsf_largest(const mr__tlsf *t) {
  if (!t->fl_map)
    return 0;
  unsigned fl = 63u - (unsigned)__builtin_clzll(t->fl_map);
  unsigned sl = 31u - (unsigned)__builtin_clz((unsigned)t->sl_map[fl]);
  size_t best = 0;
  for (mr__blk *b = t->heads[fl * MR_TLSF_SL + sl]; b; b = b->free_next)
    if (b->size > best)
      best = b->size;
  return best;
}
