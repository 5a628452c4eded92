/* A reference count biased to the thread that created the object (as bias.h biases a lock): that
 * thread counts with plain loads and stores, any other thread with atomic read-modify-writes,
 * and the one that may have dropped the last reference checks both halves, paying a membarrier
 * when it is not the owner. A context guard pushes and pops objects its own thread created, so
 * its retains and releases cost no locked instruction.
 *
 * The count is local + shared: local is the owner's (non-negative), shared the others' (may go
 * negative when another thread releases a reference the owner took). Zero total = dead; the
 * `dead` flag makes sure one thread destroys, if both halves see zero at once. */
#ifndef MEMRES_COMMON_REFCOUNT_H
#define MEMRES_COMMON_REFCOUNT_H

#include "bias.h"

#include <stdbool.h>

typedef struct mr__rc {
  atomic_long local;  /* written by the owner only */
  atomic_long shared; /* every other thread */
  const void *owner;  /* NULL: no owner, everyone counts in shared. Set by mr__rc_init and never
                       * changed: every thread that reaches the object reads it plainly */
  atomic_int dead;
} mr__rc;

/* Starts at one reference, held by the calling thread. */
static inline void mr__rc_init(mr__rc *r) {
  const void *owner = MR__BIAS_FAST && mr__bias_available() ? mr__bias_self() : NULL;
  atomic_init(&r->local, owner ? 1 : 0);
  atomic_init(&r->shared, owner ? 0 : 1);
  r->owner = owner;
  atomic_init(&r->dead, 0);
}

/* Whether the thread with token `self` owns r's count. */
static inline __attribute__((always_inline)) bool mr__rc_owned_by(mr__rc *r, const void *self) {
  return r->owner == self;
}

/* The operations with this thread's token (mr__bias_self()) passed in: a caller that counts
 * several objects reads it once. */
static inline __attribute__((always_inline)) void mr__rc_retain_as(mr__rc *r, const void *self) {
  if (__builtin_expect(mr__rc_owned_by(r, self), 1)) {
    long l = atomic_load_explicit(&r->local, memory_order_relaxed);
    atomic_store_explicit(&r->local, l + 1, memory_order_relaxed);
  } else {
    atomic_fetch_add_explicit(&r->shared, 1, memory_order_relaxed);
  }
}

static inline __attribute__((always_inline)) void mr__rc_retain(mr__rc *r) {
  mr__rc_retain_as(r, mr__bias_self());
}

/* Out of line (refcount.c): a release by a thread that is not the owner, and the flag that makes
 * one thread the destroyer. */
bool mr__rc_release_other(mr__rc *r, const void *owner);
bool mr__rc_claim(mr__rc *r);

/* The owner's release: true when no reference is left anywhere (the caller then claims the
 * destroy with mr__rc_claim). */
static inline __attribute__((always_inline)) bool mr__rc_release_owned(mr__rc *r) {
  long l = atomic_load_explicit(&r->local, memory_order_relaxed) - 1;
  atomic_store_explicit(&r->local, l, memory_order_release);
  atomic_signal_fence(memory_order_seq_cst); /* the others' membarrier orders this store */
  return __builtin_expect(l + atomic_load_explicit(&r->shared, memory_order_acquire) == 0, 0);
}

/* True when the caller dropped the last reference and must destroy the object. */
static inline __attribute__((always_inline)) bool mr__rc_release_as(mr__rc *r, const void *self) {
  const void *owner = r->owner;
  if (__builtin_expect(owner != self, 0))
    return mr__rc_release_other(r, owner);
  return mr__rc_release_owned(r) && mr__rc_claim(r);
}

static inline __attribute__((always_inline)) bool mr__rc_release(mr__rc *r) {
  return mr__rc_release_as(r, mr__bias_self());
}

#endif
