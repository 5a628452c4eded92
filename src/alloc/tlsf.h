/* Two-level segregated fit index over free blocks (as TLSF): O(1) insert, remove and search
 * through a first-level bitmap (power of two) and second-level bitmaps (16 linear steps each). */
#ifndef MEMRES_ALLOC_TLSF_H
#define MEMRES_ALLOC_TLSF_H

#include <stddef.h>
#include <stdint.h>

#define MR_TLSF_SL_LOG2 4
#define MR_TLSF_SL (1u << MR_TLSF_SL_LOG2)
#define MR_TLSF_FL 64
#define MR_TLSF_CLASSES (MR_TLSF_FL * MR_TLSF_SL)

struct mr__blk;

typedef struct mr__tlsf {
  uint64_t fl_map;
  uint16_t sl_map[MR_TLSF_FL];
  struct mr__blk *heads[MR_TLSF_CLASSES];
  size_t count; /* blocks indexed */
  size_t bytes; /* their total size */
} mr__tlsf;

/* The class a block of `size` (>= 16) is filed under: fl * 16 + sl. */
static inline unsigned mr__tlsf_class(size_t size) {
  unsigned fl = 63u - (unsigned)__builtin_clzll((unsigned long long)size);
  unsigned sl = (unsigned)(size >> (fl - MR_TLSF_SL_LOG2)) & (MR_TLSF_SL - 1);
  return fl * MR_TLSF_SL + sl;
}

/* Smallest size of the class after `cls`: every block filed there is at least that big. */
static inline size_t mr__tlsf_class_floor(unsigned cls) {
  unsigned fl = cls / MR_TLSF_SL, sl = cls % MR_TLSF_SL;
  return ((size_t)1 << fl) + ((size_t)sl << (fl - MR_TLSF_SL_LOG2));
}

void mr__tlsf_init(mr__tlsf *t);
void mr__tlsf_insert(mr__tlsf *t, struct mr__blk *b);
void mr__tlsf_remove(mr__tlsf *t, struct mr__blk *b);
/* A block of at least `size`: first a few of the request's own class (the best fit found
 * there), else the head of the first non-empty larger class. NULL if none. Not removed. */
struct mr__blk *mr__tlsf_find(const mr__tlsf *t, size_t size);
/* The largest size indexed (walks one class list). */
size_t mr__tlsf_largest(const mr__tlsf *t);

#endif
