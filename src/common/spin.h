/* A small test-and-test-and-set spinlock for short critical sections (a free-list push or pop).
 * One locked instruction to take it uncontended; yields after a while under contention. */
#ifndef MEMRES_COMMON_SPIN_H
#define MEMRES_COMMON_SPIN_H

#include <sched.h>
#include <stdatomic.h>

typedef struct mr__spin {
  atomic_int held;
} mr__spin;

static inline void mr__spin_init(mr__spin *s) { atomic_init(&s->held, 0); }

static inline void mr__spin_lock(mr__spin *s) {
  for (;;) {
    if (!atomic_exchange_explicit(&s->held, 1, memory_order_acquire))
      return;
    for (int i = 0; atomic_load_explicit(&s->held, memory_order_relaxed); i++) {
      if (i > 64)
        sched_yield();
#if defined(__x86_64__) || defined(__i386__)
      else
        __builtin_ia32_pause();
#endif
    }
  }
}

static inline void mr__spin_unlock(mr__spin *s) {
  atomic_store_explicit(&s->held, 0, memory_order_release);
}

#endif
