/* The out-of-line half of the biased reference count (refcount.h). */
#include "refcount.h"

bool mr__rc_claim(mr__rc *r) {
  return atomic_exchange_explicit(&r->dead, 1, memory_order_acq_rel) == 0;
}

bool mr__rc_release_other(mr__rc *r, const void *owner) {
  long s = atomic_fetch_sub_explicit(&r->shared, 1, memory_order_acq_rel) - 1;
  if (s > 0)
    return false;
  if (owner)
    mr__bias_barrier(); /* the owner's last store to local is visible after this */
  if (atomic_load_explicit(&r->local, memory_order_acquire) +
          atomic_load_explicit(&r->shared, memory_order_acquire) !=
      0)
    return false;
  return mr__rc_claim(r);
}
