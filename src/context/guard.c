/* Guards: push a set of streams and allocators, pop exactly them, in LIFO order. Each entry point
 * does its whole push or pop in one call, on the thread's context (ctx.h).
 *
 * The fast paths (push and pop below) call nothing but the slow paths, and those only in tail
 * position: a guard's state then stays in scratch registers, with no frame to set up. Whatever is
 * rare goes to the slow paths: a first use on the thread, growing the stacks, a bad item, an
 * object another thread owns or whose last reference a pop drops, a pop out of order. */
#include "ctx.h"

static inline void set_failed(mr_guard *g, mr_status st) { *g = (mr_guard){.status = st}; }

/* ---- push ------------------------------------------------------------------------------------ */

/* The item at `it` of a push is bad: undo the items before it (mask entries depth..m-1, the depth
 * not yet moved), report its index, and fail the guard. */
static __attribute__((noinline)) mr_status bad_item(mr_guard *g, const mr_guard_item *it,
                                                    const uint64_t *m) {
  ctx *c = &mr__tl_ctx;
  const size_t b = c->depth, i = (size_t)(m - (c->mask + b));
  c->depth = b + i;
  while (c->depth > b)
    pop_raw(c);
  mr_status st =
      mr__error(MR_ERR_INVALID_ARG,
                "mr_guard_push: item %zu has a bad type %d (or an allocator of a bad kind)", i,
                (int)it->type);
  set_failed(g, st);
  return st;
}

/* A fresh tag of this thread, shifted as the mask keeps it: tags wrap to 1 when they would pass
 * the mask's bits (never 0). */
static inline uint64_t new_tag(ctx *c) {
  uint64_t te = c->last_tag + ((uint64_t)1 << TAG_SHIFT);
  if (MR_UNLIKELY(te == 0)) {
    te = (uint64_t)1 << TAG_SHIFT;
    __asm__("" : "+r"(te)); /* a branch never taken, not a conditional move on every push */
  }
  c->last_tag = te;
  return te;
}

/* Push `n` >= 1 items, one mask entry each, and write the active guard to *g. The last entry
 * carries a fresh tag of this thread (the others carry none: a pop checks only its topmost entry,
 * see pop). The context is live and has room for n entries (room in the mask is room in every
 * stack, see mr__ctx_reserve), so the loop cannot fail half-way for lack of memory. All or
 * nothing: on a bad item (MR_ERR_INVALID_ARG) nothing stays pushed. */
static inline __attribute__((always_inline)) mr_status
push_body(mr_guard *g, ctx *c, const mr_guard_item *items, size_t n) {
  const size_t b = c->depth;
  /* A local: stores to the mask (uint64_t) could alias c->depth (size_t). */
  uint64_t *m = c->mask + b;
  const void *self = mr__bias_self();
  __asm__("" : "+r"(self)); /* kept in a register: without this it is recomputed per item */
  const mr_guard_item *it = items;
  uint64_t *const m_end = m + n;
  do {
    void *p = it->ptr;
    const mr_guard_item_type type = it->type;
    size_t slot;
    if (MR_LIKELY(p != NULL)) {
      if (type == MR_GUARD_ITEM_ALLOC) {
        slot = (unsigned)((const mr_allocator *)p)->device.kind;
        if (MR_UNLIKELY(slot >= MR_KIND_COUNT_))
          return bad_item(g, it, m);
      } else if (MR_LIKELY(type == MR_GUARD_ITEM_STREAM)) {
        slot = SLOT_STREAM;
      } else if (type == MR_GUARD_ITEM_NONE) {
        *m = ENTRY_NONE;
        continue;
      } else {
        return bad_item(g, it, m);
      }
    } else if ((unsigned)type <= MR_GUARD_ITEM_ALLOC) {
      *m = ENTRY_NONE;
      continue;
    } else {
      return bad_item(g, it, m);
    }
    *m = stack_push(c, slot, p, slot, self);
  } while (it++, ++m != m_end);
  /* The depth read again rather than kept in a register over the loop (stores to the mask could
   * alias it: a load, which does not wait on the loop), and the tag taken now. */
  const size_t base = c->depth;
  const uint64_t te = new_tag(c);
  m[-1] |= te;
  c->depth = base + n;
  *g = (mr_guard){.base = base, .count = n, .active = 1, .status = MR_OK, .tag = te};
  return MR_OK;
}

/* The push when the fast path's checks did not hold: starts the context, checks the items and
 * grows the stacks, then pushes. An empty guard (n = 0) comes here too: it pushes nothing. */
static __attribute__((noinline)) mr_status push_slow(mr_guard *g, const mr_guard_item *items,
                                                     size_t n) {
  ctx *c = ctx_get();
  mr_status st;
  if (!items && n) {
    st = mr__error(MR_ERR_INVALID_ARG, "mr_guard_push: items is NULL with n = %zu", n);
  } else if (n == 0) {
    *g = (mr_guard){.base = c->depth, .count = 0, .active = 1, .status = MR_OK, .tag = new_tag(c)};
    return MR_OK;
  } else if (n > c->mask_cap - c->depth && !mr__ctx_reserve(c, n)) {
    st = mr__ctx_no_memory("mr_guard_push", c->depth);
  } else {
    return push_body(g, c, items, n);
  }
  set_failed(g, st);
  return st;
}

static inline __attribute__((always_inline)) mr_status push(mr_guard *g, const mr_guard_item *items,
                                                            size_t n) {
  ctx *c = &mr__tl_ctx;
  /* A context not started yet (or torn down at thread exit) has no room: mask_cap is 0. */
  if (MR_UNLIKELY(!items || n == 0 || n >= c->mask_cap - c->depth))
    return push_slow(g, items, n);
  return push_body(g, c, items, n);
}

/* ---- pop ------------------------------------------------------------------------------------- */

static __attribute__((noinline)) mr_status order_error(mr_guard *g, size_t depth) {
  const size_t base = g->base, n = g->count;
  return g->status = mr__error(
             MR_ERR_GUARD_ORDER,
             "guard pushed %zu entr%s at depth %zu popped at depth %zu%s: pop the guards and "
             "pushes above it first (stacks left as they were)",
             n, n == 1 ? "y" : "ies", base, depth,
             depth == base + n ? " over entries not its own (another thread's guard, or its "
                                 "entries were popped)"
                               : "");
}

/* The rest of a pop, one entry at a time: mask entries base..i-1 are left. The depth is right
 * before each release, which may destroy an object whose destroy may use the context (and grow
 * it: the mask may move, so this goes by index). */
static inline mr_status pop_rest_from(mr_guard *g, ctx *c, size_t i) {
  c->depth = i;
  while (c->depth > g->base)
    pop_raw(c);
  g->active = 0;
  return MR_OK;
}

/* The fast loop met an object another thread owns: the mask entries below `end` are left. */
static __attribute__((noinline)) mr_status pop_rest(mr_guard *g, const uint64_t *end) {
  ctx *c = &mr__tl_ctx;
  return pop_rest_from(g, c, (size_t)(end - c->mask));
}

/* The fast loop dropped the last reference of the object of the entry at `at` (its count is done,
 * its item still on top of stack `slot`): pop the item, destroy the object if this thread is the
 * one to, and go on with the rest. */
static __attribute__((noinline)) mr_status pop_last_ref(mr_guard *g, const uint64_t *at,
                                                        size_t slot) {
  ctx *c = &mr__tl_ctx;
  const size_t i = (size_t)(at - c->mask); /* before the destroy, which may move the mask */
  void *p = *c->top[slot]--;
  c->depth = i;
  if (mr__rc_claim((mr__rc *)p))
    destroy_slot((int)slot, p);
  return pop_rest_from(g, c, i);
}

/* Pop the guard's entries, which must sit exactly on top of its base depth, the topmost with its
 * tag. If the top of this thread's mask is anything else: MR_ERR_GUARD_ORDER, with nothing popped.
 */
static inline __attribute__((always_inline)) mr_status pop(mr_guard *g) {
  if (!g->active)
    return MR_OK;
  ctx *c = &mr__tl_ctx; /* not live (another thread's guard): depth 0, so only n = 0 passes */
  const size_t base = g->base, n = g->count, d = c->depth;
  const uint64_t *mask = c->mask;
  /* The guard's entries are on top: its count above its base (a push leaves base + n far below
   * SIZE_MAX, so no depth below the base passes), and the topmost is its own: tags are unique to a
   * push and an entry never moves, so the ones below it are the guard's too. Only a guard's topmost
   * entry carries its tag, in the high bits, shifted as the guard keeps it. */
  if (MR_UNLIKELY(base + n != d))
    return order_error(g, d);
  if (MR_LIKELY(n != 0)) {
    const uint64_t *at = mask + d, *const stop = mask + base;
    if (MR_UNLIKELY((at[-1] & ~(uint64_t)TAG_LOW) != g->tag))
      return order_error(g, d);
    const void *self = mr__bias_self();
    __asm__("" : "+r"(self)); /* as in push_body */
    do {
      const uint64_t e = at[-1];
      const size_t slot = e & SLOT_MASK;
      if (e & BORROWED) { /* no reference of its own (nor an item, for an empty entry) */
        if (slot != SLOT_NONE)
          c->top[slot]--;
        continue;
      }
      void **top = c->top[slot];
      mr__rc *r = (mr__rc *)*top;
      if (MR_UNLIKELY(!mr__rc_owned_by(r, self)))
        return pop_rest(g, at);
      if (MR_UNLIKELY(mr__rc_release_owned(r))) /* the last reference: pop_last_ref claims it */
        return pop_last_ref(g, at - 1, slot);
      c->top[slot] = top - 1;
    } while (--at != stop);
  }
  c->depth = g->base;
  g->active = 0;
  return MR_OK;
}

/* ---- entry points ---------------------------------------------------------------------------- */

mr_status mr_guard_push(mr_guard *g, const mr_guard_item *items, size_t n) {
  if (MR_UNLIKELY(!g))
    return mr__error(MR_ERR_INVALID_ARG, "mr_guard_push: guard is NULL");
  return push(g, items, n);
}

mr_guard mr__guard_begin(const mr_guard_item *items, size_t n) {
  mr_guard g;
  (void)push(&g, items, n);
  return g;
}

mr_status mr_guard_pop(mr_guard *g) {
  if (MR_UNLIKELY(!g))
    return mr__error(MR_ERR_INVALID_ARG, "mr_guard_pop: guard is NULL");
  return pop(g);
}

void mr__guard_cleanup(mr_guard *g) {
  /* Out of order at scope exit: the error is recorded (mr_last_error, the error handler) and the
   * stacks stay as they are; nothing else can be done from a cleanup. */
  if (g)
    (void)pop(g);
}
