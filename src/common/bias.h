/* A lock biased towards one owner thread: the owner takes and drops it with plain stores (no
 * locked instruction), any other thread pays a membarrier(2) to take it (asymmetric Dekker, as
 * userspace RCU and folly's asymmetric fences do). For state that one thread uses all the time
 * and others touch rarely: a caching pool's per-stream front cache.
 *
 * Owner:     busy = 1; compiler fence; if (!revoked) { critical section; busy = 0 }
 *            else { busy = 0; take the spinlock like everyone }
 * Others:    spinlock; revoked = 1; membarrier (every thread of the process executes a full
 *            barrier: the owner either sees revoked, or its busy = 1 is visible here); wait for
 *            busy == 0; critical section; revoked = 0; unlock.
 * A state that others keep taking goes shared for good (the owner takes the spinlock too), so a
 * stream used by several threads costs one locked instruction, not a system call, per use. */
#ifndef MEMRES_COMMON_BIAS_H
#define MEMRES_COMMON_BIAS_H

#include "spin.h"

#include <stdatomic.h>

#if defined(__SANITIZE_THREAD__)
#define MR__BIAS_FAST 0 /* ThreadSanitizer does not model membarrier: always the spinlock */
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MR__BIAS_FAST 0
#endif
#endif
#ifndef MR__BIAS_FAST
#define MR__BIAS_FAST 1
#endif

#define MR__BIAS_SHARE_AFTER 64 /* acquisitions by other threads before going shared */

typedef struct mr__bias {
  mr__spin lock;
  atomic_int busy;             /* the owner is in its fast critical section */
  atomic_int revoked;          /* another thread holds or wants the lock */
  _Atomic(const void *) owner; /* the owning thread's token, NULL: shared */
  unsigned foreign;            /* acquisitions by other threads (under lock) */
  int fast;                    /* how the holder took it (the holder's own) */
} mr__bias;

/* This thread's token, and whether the process can use membarrier (registered once). */
extern _Thread_local char mr__bias_token __attribute__((tls_model("initial-exec")));
static inline const void *mr__bias_self(void) { return &mr__bias_token; }
int mr__bias_available(void);
void mr__bias_barrier(void);

static inline void mr__bias_init(mr__bias *b, const void *owner) {
  mr__spin_init(&b->lock);
  atomic_init(&b->busy, 0);
  atomic_init(&b->revoked, 0);
  atomic_init(&b->owner, MR__BIAS_FAST && mr__bias_available() ? owner : NULL);
  b->foreign = 0;
  b->fast = 0;
}

/* Whether this thread takes b without a membarrier: b is biased to it, or shared. */
static inline int mr__bias_cheap(const mr__bias *b) {
  const void *owner = atomic_load_explicit(&b->owner, memory_order_relaxed);
  return !owner || owner == mr__bias_self();
}

/* Everything but the owner's uncontended take, out of line (bias.c): the callers' hot paths
 * stay small. */
void mr__bias_lock_slow(mr__bias *b, const void *owner);

static inline __attribute__((always_inline)) void mr__bias_lock(mr__bias *b) {
#if MR__BIAS_FAST
  const void *owner = atomic_load_explicit(&b->owner, memory_order_relaxed);
  /* mr__bias_self() is never NULL (a thread's address): a shared lock never matches */
  if (__builtin_expect(owner == mr__bias_self(), 1)) {
    atomic_store_explicit(&b->busy, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    if (__builtin_expect(!atomic_load_explicit(&b->revoked, memory_order_acquire), 1)) {
      b->fast = 1;
      return;
    }
    atomic_store_explicit(&b->busy, 0, memory_order_release);
    owner = NULL; /* revoked: the spinlock, like everyone */
  }
  mr__bias_lock_slow(b, owner);
#else
  mr__spin_lock(&b->lock);
  b->fast = 0;
#endif
}

static inline __attribute__((always_inline)) void mr__bias_unlock(mr__bias *b) {
#if MR__BIAS_FAST
  if (b->fast) {
    atomic_store_explicit(&b->busy, 0, memory_order_release);
    return;
  }
  if (atomic_load_explicit(&b->revoked, memory_order_relaxed))
    atomic_store_explicit(&b->revoked, 0, memory_order_release);
#endif
  mr__spin_unlock(&b->lock);
}

#endif
