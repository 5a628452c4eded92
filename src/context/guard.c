/* Guards: push a set of streams and allocators, pop exactly them, in LIFO order. */
#include "internal.h"

/* The push, with its results in locals: callers build the guard with whole stores (a guard
 * written field by field and then copied out as a whole stalls on store forwarding). */
static inline mr_status push(const mr_guard_item *items, size_t n, size_t *base, uint64_t *tag) {
  if (MR_UNLIKELY(!items && n))
    return mr__error(MR_ERR_INVALID_ARG, "mr_guard_push: items is NULL with n = %zu", n);
  return mr__context_push_items(items, n, tag, base);
}

mr_status mr_guard_push(mr_guard *g, const mr_guard_item *items, size_t n) {
  if (MR_UNLIKELY(!g))
    return mr__error(MR_ERR_INVALID_ARG, "mr_guard_push: guard is NULL");
  size_t base = 0;
  uint64_t tag = 0;
  mr_status st = push(items, n, &base, &tag);
  int ok = st == MR_OK;
  *g = (mr_guard){.base = base, .count = ok ? n : 0, .active = ok, .status = st, .tag = tag};
  return st;
}

mr_guard mr__guard_begin(const mr_guard_item *items, size_t n) {
  size_t base = 0;
  uint64_t tag = 0;
  mr_status st = push(items, n, &base, &tag);
  int ok = st == MR_OK;
  return (mr_guard){.base = base, .count = ok ? n : 0, .active = ok, .status = st, .tag = tag};
}

mr_status mr_guard_pop(mr_guard *g) {
  if (MR_UNLIKELY(!g))
    return mr__error(MR_ERR_INVALID_ARG, "mr_guard_pop: guard is NULL");
  if (!g->active)
    return MR_OK;
  mr_status st = mr__context_pop_items(g->base, g->count, g->tag);
  if (MR_UNLIKELY(st != MR_OK))
    return g->status = st;
  g->active = 0;
  return MR_OK;
}

void mr__guard_cleanup(mr_guard *g) {
  /* Out of order at scope exit: the error is recorded (mr_last_error, the error handler) and the
   * stacks stay as they are; nothing else can be done from a cleanup. */
  if (g && g->active)
    mr_guard_pop(g);
}
