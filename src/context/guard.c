/* Guards: push a set of streams and allocators, pop exactly them, in LIFO order. */
#include "internal.h"

mr_status mr_guard_push(mr_guard *g, const mr_guard_item *items, size_t n) {
  if (MR_UNLIKELY(!g))
    return mr__error(MR_ERR_INVALID_ARG, "mr_guard_push: guard is NULL");
  g->active = 0;
  g->base = 0;
  g->count = 0;
  g->tag = 0;
  if (MR_UNLIKELY(!items && n))
    return g->status =
               mr__error(MR_ERR_INVALID_ARG, "mr_guard_push: items is NULL with n = %zu", n);
  mr_status st = mr__context_push_items(items, n, &g->tag, &g->base);
  g->status = st;
  if (MR_UNLIKELY(st != MR_OK))
    return st;
  g->count = n;
  g->active = 1;
  return MR_OK;
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

mr_guard mr__guard_begin(const mr_guard_item *items, size_t n) {
  mr_guard g;
  mr_guard_push(&g, items, n);
  return g;
}

void mr__guard_cleanup(mr_guard *g) {
  /* Out of order at scope exit: the error is recorded (mr_last_error, the error handler) and the
   * stacks stay as they are; nothing else can be done from a cleanup. */
  if (g && g->active)
    mr_guard_pop(g);
}
