/* The caching pool's own state, for the shared scenarios (tests/support/pool_*.h) that check what
 * the API does not show. Read it only while no other thread uses the pool. */
#ifndef MEMRES_TEST_POOL_STATE_H
#define MEMRES_TEST_POOL_STATE_H

#include "../../src/alloc/caching_internal.h"

#include <memres/memres.h>

#include <criterion/criterion.h>

#include <pthread.h>

/* The pool's state for stream s, found as the pool finds it; the test fails if there is none. */
static inline const mr__pstream *pool_stream_state(mr_allocator *pool, mr_stream *s) {
  mr__pool *p = pool->state;
  pthread_mutex_lock(&p->mu);
  const mr__pstream *ps = mr__pool_stream_find(p, s);
  pthread_mutex_unlock(&p->mu);
  cr_assert_not_null(ps, "the pool has no state for the stream");
  return ps;
}

#endif
