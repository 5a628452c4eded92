/* The thread's context (context stacks and their mask) as guard.c and context.c share it: the
 * layout, and the inline operations of the hot paths. See context.c for how it works. */
#ifndef MEMRES_CONTEXT_CTX_H
#define MEMRES_CONTEXT_CTX_H

#include "internal.h"

#include <stddef.h>

/* The context is read on every accessor: initial-exec TLS avoids __tls_get_addr in a shared
 * library. It is small (about 140 bytes), well within glibc's static TLS surplus for dlopen. */
#if defined(__GNUC__) && defined(__ELF__)
#define MR__TLS_FAST __attribute__((tls_model("initial-exec")))
#else
#define MR__TLS_FAST
#endif

enum {
  SLOT_STREAM = MR_KIND_COUNT_, /* slots 0..2 are the allocator kinds */
  SLOT_COUNT,
  SLOT_NONE = SLOT_COUNT, /* a mask entry that pushed nothing */
  SLOT_MASK = 7,
  BORROWED = 8, /* the entry holds no reference of its own */
  TAG_SHIFT = 4,
  TAG_LOW = (1 << TAG_SHIFT) - 1,    /* the bits under the tag */
  ENTRY_NONE = SLOT_NONE | BORROWED, /* an entry that pushed nothing (and holds nothing) */
};

#define INITIAL_CAP 16

/* A stack is a pointer to its top item. items[s][0] is a NULL sentinel, so an empty stack's top
 * reads NULL and a push compares with the top without testing for empty; a stack with no memory
 * yet points at mr__ctx_none. */
typedef struct ctx {
  void **top[SLOT_COUNT];
  void **items[SLOT_COUNT];
  size_t cap[SLOT_COUNT]; /* slots of items[s], the sentinel included */
  uint64_t *mask;
  size_t depth, mask_cap;
  uint64_t last_tag; /* the last guard's tag (shifted by TAG_SHIFT): the next is one more */
  int live;
} ctx;

extern void *mr__ctx_none[1];

static inline size_t stack_len(const ctx *c, int slot) {
  return c->items[slot] ? (size_t)(c->top[slot] - c->items[slot]) : 0;
}

/* This thread's context (context.c). */
extern _Thread_local ctx mr__tl_ctx MR__TLS_FAST;

/* Starts this thread's context (noinline: once a thread). */
ctx *mr__ctx_init(void);
/* Room for n more entries in the mask and every stack; 0 without memory. */
int mr__ctx_reserve(ctx *c, size_t n);
mr_status mr__ctx_no_memory(const char *who, size_t depth);

static inline ctx *ctx_get(void) {
  ctx *c = &mr__tl_ctx;
  if (MR_UNLIKELY(!c->live))
    return mr__ctx_init();
  return c;
}

/* Reference counting inlined on the hot path (biased to the objects' creating thread: a guard's
 * retains and releases of objects its thread made cost no locked instruction). A stream and an
 * allocator both start with their count, so a stack item is its count. `self` is this thread's
 * token (mr__bias_self()), read once per guard. */
_Static_assert(offsetof(mr_stream, rc) == 0 && offsetof(mr_allocator, rc) == 0,
               "a context stack item is its reference count");

static inline void destroy_slot(int slot, void *p) {
  if (slot == SLOT_STREAM)
    mr__stream_destroy(p);
  else
    mr__allocator_destroy(p);
}

static inline void release_slot(int slot, void *p) {
  if (MR_UNLIKELY(mr__rc_release((mr__rc *)p)))
    destroy_slot(slot, p);
}

/* Capacity is there: puts p on stack `slot`, retaining it unless it is already on top. Returns
 * the mask entry e to record, marked BORROWED in that case. The reference is taken last: fewer
 * values live at once in a guard's push loop. */
static inline __attribute__((always_inline)) uint64_t stack_push(ctx *c, size_t slot, void *p,
                                                                 uint64_t e, const void *self) {
  void **top = c->top[slot];
  if (*top == p) /* the sentinel below an empty stack is NULL */
    e |= BORROWED;
  top[1] = p;
  c->top[slot] = top + 1;
  if (!(e & BORROWED))
    mr__rc_retain_as((mr__rc *)p, self);
  return e;
}

/* Capacity is there: push one entry. */
static inline void push_raw(ctx *c, int slot, void *p) {
  uint64_t e = ENTRY_NONE;
  if (slot != SLOT_NONE)
    e = stack_push(c, (size_t)slot, p, (uint64_t)slot, mr__bias_self());
  c->mask[c->depth++] = e;
}

static inline void pop_raw(ctx *c) {
  uint64_t e = c->mask[--c->depth];
  int slot = (int)(e & SLOT_MASK);
  if (slot != SLOT_NONE) {
    void *p = *c->top[slot]--;
    if (!(e & BORROWED))
      release_slot(slot, p); /* last: the stacks are consistent if this re-enters */
  }
}

#endif
