/* Guards: push a set of streams and allocators, pop exactly them, in LIFO order. Each entry point
 * does its whole push or pop in one call, on the thread's context (ctx.h). */
#include "ctx.h"

/* Item i of a push from depth b is bad: undo items 0..i-1 (mask entries b..b+i-1). */
static __attribute__((noinline)) mr_status bad_item(ctx *c, size_t b, const mr_guard_item *items,
                                                    size_t i) {
  c->depth = b + i;
  while (c->depth > b)
    pop_raw(c);
  return mr__error(MR_ERR_INVALID_ARG,
                   "mr_guard_push: item %zu has a bad type %d (or an allocator of a bad kind)", i,
                   (int)items[i].type);
}

/* Push `n` items, one mask entry each, all tagged with a fresh tag of this thread (in *tag, with
 * the depth before the push in *base). All or nothing: on a bad item (MR_ERR_INVALID_ARG) or no
 * memory (MR_ERR_OUT_OF_MEMORY) nothing stays pushed. Inlined in each entry point below: one call
 * a guard push. */
static inline __attribute__((always_inline)) mr_status
push_items(const mr_guard_item *items, size_t n, uint64_t *tag, size_t *base) {
  ctx *c = ctx_get();
  if (MR_UNLIKELY(!items && n))
    return mr__error(MR_ERR_INVALID_ARG, "mr_guard_push: items is NULL with n = %zu", n);
  /* Room in the mask is room in every stack (see reserve). Reserving up front means the loop
   * below cannot fail half-way for lack of memory. */
  if (MR_UNLIKELY(n > c->mask_cap - c->depth) && !mr__ctx_reserve(c, n))
    return mr__ctx_no_memory("mr_guard_push", c->depth);
  const size_t b = c->depth;
  uint64_t t = c->next_tag++;
  if (MR_UNLIKELY(t > TAG_LIMIT)) /* tags start at 1 and never pass this: never 0 */
    t = c->next_tag = 1;
  /* Item i is mask entry b + i. A local: stores to the mask (uint64_t) could alias c->depth
   * (size_t). */
  uint64_t *m = c->mask + b;
  const uint64_t te = t << TAG_SHIFT;
  for (size_t i = 0; i < n; i++) {
    void *p = items[i].ptr;
    unsigned type = (unsigned)items[i].type;
    unsigned slot;
    if (MR_LIKELY(p && type == MR_GUARD_ITEM_ALLOC)) {
      slot = (unsigned)((const mr_allocator *)p)->device.kind;
      if (MR_UNLIKELY(slot >= MR_KIND_COUNT_))
        return bad_item(c, b, items, i);
    } else if (p && type == MR_GUARD_ITEM_STREAM) {
      slot = SLOT_STREAM;
    } else if (type <= MR_GUARD_ITEM_ALLOC) {
      m[i] = te | SLOT_NONE;
      continue;
    } else {
      return bad_item(c, b, items, i);
    }
    m[i] = stack_push(c, (int)slot, p, te | slot);
  }
  c->depth = b + n;
  *tag = t;
  *base = b;
  return MR_OK;
}

static __attribute__((noinline)) mr_status order_error(size_t base, size_t n, size_t depth) {
  return mr__error(MR_ERR_GUARD_ORDER,
                   "guard pushed %zu entr%s at depth %zu popped at depth %zu%s: pop the guards "
                   "and pushes above it first (stacks left as they were)",
                   n, n == 1 ? "y" : "ies", base, depth,
                   depth == base + n ? " over entries not its own (another thread's guard, "
                                       "or its entries were popped)"
                                     : "");
}

/* Pop the `n` entries tagged `tag` that sit exactly on top of depth `base`. If the top of this
 * thread's mask is anything else: MR_ERR_GUARD_ORDER, with nothing popped. */
static inline __attribute__((always_inline)) mr_status pop_items(size_t base, size_t n,
                                                                 uint64_t tag) {
  ctx *c = ctx_get();
  const size_t d = c->depth;
  const uint64_t *mask = c->mask;
  /* The guard's entries are on top, and the topmost is its own: tags are unique to a push and
   * an entry never moves, so the ones below it are the guard's too. */
  if (MR_UNLIKELY(d < base || d - base != n || (n && (mask[d - 1] >> TAG_SHIFT) != tag)))
    return order_error(base, n, d);
  for (size_t i = d; i-- > base;) {
    uint64_t e = mask[i];
    int slot = (int)(e & SLOT_MASK);
    if (slot == SLOT_NONE)
      continue;
    void **top = c->top[slot];
    c->top[slot] = top - 1;
    if (!(e & BORROWED)) { /* a borrowed entry holds no reference: nothing to read */
      c->depth = i;        /* consistent before a release that may re-enter */
      release_slot(slot, *top);
    }
  }
  c->depth = base;
  return MR_OK;
}

/* A guard for the push of `n` items (active if it worked). */
static inline __attribute__((always_inline)) mr_guard begin(const mr_guard_item *items, size_t n) {
  size_t base = 0;
  uint64_t tag = 0;
  mr_status st = push_items(items, n, &tag, &base);
  int ok = st == MR_OK;
  return (mr_guard){.base = base, .count = ok ? n : 0, .active = ok, .status = st, .tag = tag};
}

/* Pops an active guard; out of order, it stays active and records the status. */
static inline __attribute__((always_inline)) mr_status end(mr_guard *g) {
  if (!g->active)
    return MR_OK;
  mr_status st = pop_items(g->base, g->count, g->tag);
  if (MR_UNLIKELY(st != MR_OK))
    return g->status = st;
  g->active = 0;
  return MR_OK;
}

mr_status mr_guard_push(mr_guard *g, const mr_guard_item *items, size_t n) {
  if (MR_UNLIKELY(!g))
    return mr__error(MR_ERR_INVALID_ARG, "mr_guard_push: guard is NULL");
  /* built whole: a guard written field by field and then copied stalls on store forwarding */
  mr_guard r = begin(items, n);
  *g = r;
  return r.status;
}

mr_guard mr__guard_begin(const mr_guard_item *items, size_t n) { return begin(items, n); }

mr_status mr_guard_pop(mr_guard *g) {
  if (MR_UNLIKELY(!g))
    return mr__error(MR_ERR_INVALID_ARG, "mr_guard_pop: guard is NULL");
  return end(g);
}

void mr__guard_cleanup(mr_guard *g) {
  /* Out of order at scope exit: the error is recorded (mr_last_error, the error handler) and the
   * stacks stay as they are; nothing else can be done from a cleanup. */
  if (g)
    (void)end(g);
}
