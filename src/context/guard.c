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

/* Item i of a push from depth b is bad: undo items 0..i-1 (mask entries b..b+i-1). */
static __attribute__((noinline)) mr_status bad_item(mr_guard *g, ctx *c, size_t b,
                                                    const mr_guard_item *items, size_t i) {
  c->depth = b + i;
  while (c->depth > b)
    pop_raw(c);
  mr_status st =
      mr__error(MR_ERR_INVALID_ARG,
                "mr_guard_push: item %zu has a bad type %d (or an allocator of a bad kind)", i,
                (int)items[i].type);
  set_failed(g, st);
  return st;
}

/* Push `n` items, one mask entry each, all tagged with a fresh tag of this thread, and write the
 * active guard to *g. The context is live and has room for n entries (room in the mask is room in
 * every stack, see mr__ctx_reserve), so the loop cannot fail half-way for lack of memory. All or
 * nothing: on a bad item (MR_ERR_INVALID_ARG) nothing stays pushed. */
static inline __attribute__((always_inline)) mr_status
push_body(mr_guard *g, ctx *c, const mr_guard_item *items, size_t n) {
  const size_t b = c->depth;
  uint64_t t = c->next_tag++;
  if (MR_UNLIKELY(t > TAG_LIMIT)) { /* tags start at 1 and never pass this: never 0 */
    t = 1;
    c->next_tag = 2;
  }
  /* Item i is mask entry b + i. A local: stores to the mask (uint64_t) could alias c->depth
   * (size_t). */
  uint64_t *m = c->mask + b;
  const uint64_t te = t << TAG_SHIFT;
  const void *self = mr__bias_self();
  __asm__("" : "+r"(self)); /* kept in a register: without this it is recomputed per item */
  for (size_t i = 0; i < n; i++) {
    void *p = items[i].ptr;
    const mr_guard_item_type type = items[i].type;
    size_t slot;
    if (MR_LIKELY(p != NULL)) {
      if (type == MR_GUARD_ITEM_ALLOC) {
        slot = (unsigned)((const mr_allocator *)p)->device.kind;
        if (MR_UNLIKELY(slot >= MR_KIND_COUNT_))
          return bad_item(g, c, b, items, i);
      } else if (MR_LIKELY(type == MR_GUARD_ITEM_STREAM)) {
        slot = SLOT_STREAM;
      } else if (type == MR_GUARD_ITEM_NONE) {
        m[i] = te | SLOT_NONE;
        continue;
      } else {
        return bad_item(g, c, b, items, i);
      }
    } else if ((unsigned)type <= MR_GUARD_ITEM_ALLOC) {
      m[i] = te | SLOT_NONE;
      continue;
    } else {
      return bad_item(g, c, b, items, i);
    }
    m[i] = stack_push(c, slot, p, te | slot, self);
  }
  c->depth = b + n;
  /* built whole: a guard written field by field and then read stalls on store forwarding */
  *g = (mr_guard){.base = b, .count = n, .active = 1, .status = MR_OK, .tag = t};
  return MR_OK;
}

/* The push when the fast path's checks did not hold: starts the context, checks the items and
 * grows the stacks, then pushes. */
static __attribute__((noinline)) mr_status push_slow(mr_guard *g, const mr_guard_item *items,
                                                     size_t n) {
  ctx *c = ctx_get();
  mr_status st;
  if (!items && n)
    st = mr__error(MR_ERR_INVALID_ARG, "mr_guard_push: items is NULL with n = %zu", n);
  else if (n > c->mask_cap - c->depth && !mr__ctx_reserve(c, n))
    st = mr__ctx_no_memory("mr_guard_push", c->depth);
  else
    return push_body(g, c, items, n);
  set_failed(g, st);
  return st;
}

static inline __attribute__((always_inline)) mr_status push(mr_guard *g, const mr_guard_item *items,
                                                            size_t n) {
  ctx *c = &mr__tl_ctx;
  /* A context not started yet (or torn down at thread exit) has no room: mask_cap is 0. */
  if (MR_UNLIKELY(!items || n >= c->mask_cap - c->depth))
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
 * before each release, which may destroy an object whose destroy may use the context. */
static __attribute__((noinline)) mr_status pop_rest(mr_guard *g, ctx *c, size_t i) {
  c->depth = i;
  while (c->depth > g->base)
    pop_raw(c);
  g->active = 0;
  return MR_OK;
}

/* The fast loop dropped the last reference of entry i's object (its count is done, its item still
 * on top of stack `slot`): pop the item, destroy the object if this thread is the one to, and go
 * on with the rest. */
static __attribute__((noinline)) mr_status pop_last_ref(mr_guard *g, ctx *c, size_t i, int slot) {
  void *p = *c->top[slot]--;
  c->depth = i;
  if (mr__rc_claim((mr__rc *)p))
    destroy_slot(slot, p);
  return pop_rest(g, c, i);
}

/* Pop the guard's entries, which must sit exactly on top of its base depth with its tag. If the
 * top of this thread's mask is anything else: MR_ERR_GUARD_ORDER, with nothing popped. */
static inline __attribute__((always_inline)) mr_status pop(mr_guard *g) {
  if (!g->active)
    return MR_OK;
  ctx *c = &mr__tl_ctx; /* not live (another thread's guard): depth 0, so only n = 0 passes */
  const size_t base = g->base, n = g->count, d = c->depth;
  const uint64_t *mask = c->mask;
  /* The guard's entries are on top, and the topmost is its own: tags are unique to a push and
   * an entry never moves, so the ones below it are the guard's too. */
  if (MR_UNLIKELY(d < base || d - base != n || (n && (mask[d - 1] >> TAG_SHIFT) != g->tag)))
    return order_error(g, d);
  const void *self = mr__bias_self();
  __asm__("" : "+r"(self)); /* as in push_body */
  for (const uint64_t *at = mask + d, *stop = mask + base; at != stop;) {
    uint64_t e = *--at;
    size_t slot = e & SLOT_MASK;
    if (slot == SLOT_NONE)
      continue;
    void **top = c->top[slot];
    if (!(e & BORROWED)) { /* a borrowed entry holds no reference: nothing to read */
      mr__rc *r = (mr__rc *)*top;
      if (MR_UNLIKELY(!mr__rc_owned_by(r, self)))
        return pop_rest(g, c, (size_t)(at - mask) + 1);
      if (MR_UNLIKELY(mr__rc_release_owned(r))) /* the last reference: pop_last_ref claims it */
        return pop_last_ref(g, c, (size_t)(at - mask), (int)slot);
    }
    c->top[slot] = top - 1;
  }
  c->depth = base;
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
