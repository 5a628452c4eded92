/* A scenario shared by the pool suites over host memory (test_pool_streams.c) and over a GPU
 * (test_cuda_pool.c): streams that take turns with one working set, as a host thread that drives
 * several streams does. 32 blocks of 4 KiB-1 MiB are freed on one stream, an event is recorded
 * there and the next stream waits on it, and the next stream allocates the same sizes again;
 * round after round over 4 streams.
 *
 * Each stream's front cache keeps what the stream freed until its next turn: with every stream
 * keeping its own copy of the working set, the pool held 7-9 times the bytes in use and kept
 * growing (the benchmark's `streams` workload). Before it grows, the pool takes back the oldest
 * half of the front caches of the other streams this thread drives, so the working set moves
 * from stream to stream. Checked: the peak reserved stays under twice the bytes in use, every
 * block is handed back, and the pool is consistent. */
#ifndef MEMRES_TEST_POOL_TURNS_H
#define MEMRES_TEST_POOL_TURNS_H

#include "pool_util.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

enum { TURNS_STREAMS = 4, TURNS_BLOCKS = 32 };

/* The hand-off between two turns: after the frees on `from`, `to` must not start before them
 * (turns_order), and each suite says when from's work is done. */
typedef void (*turns_handoff)(mr_stream *from, mr_stream *to);

/* An event recorded on from, to made to wait on it. */
static inline void turns_order(mr_stream *from, mr_stream *to) {
  mr_event *e = NULL;
  cr_assert_eq(mr_event_create(&e, from), MR_OK, "%s", mr_last_error());
  cr_assert_eq(mr_event_record(e, from), MR_OK, "%s", mr_last_error());
  cr_assert_eq(mr_stream_wait_event(to, e), MR_OK, "%s", mr_last_error());
  mr_event_destroy(e);
}

/* The working set's sizes (seeded: MEMRES_TEST_SEED, else 7), 4 KiB to 1 MiB; returns the bytes
 * they take in blocks of the pool's alignment (256), and their sum in *requested if not NULL. */
static inline size_t turns_sizes(size_t *size, size_t *requested) {
  pool_rng rng;
  pool_rng_seed(&rng, pool_test_seed(7));
  size_t in_use = 0, asked = 0;
  for (int i = 0; i < TURNS_BLOCKS; i++) {
    size[i] = 4096 + (size_t)pool_rng_below(&rng, 1024 * 1024 - 4096 + 1);
    asked += size[i];
    in_use += (size[i] + 255) & ~(size_t)255;
  }
  if (requested)
    *requested = asked;
  return in_use;
}

/* What a stream does with a block it was given (writes it, in stream order). */
typedef void (*turns_use)(void *p, size_t size, mr_stream *s);

/* Runs `rounds` turns on `pool` (new, default front cache, alignment 256) over streams s[0..3],
 * each block used at each allocation, frees what it allocated, and checks the peak reserved
 * against the bytes in use. */
static inline void turns_share_one_working_set(mr_allocator *pool, mr_stream *const *s,
                                               turns_handoff handoff, turns_use use, int rounds) {
  size_t size[TURNS_BLOCKS], requested;
  const size_t in_use = turns_sizes(size, &requested);
  void *p[TURNS_BLOCKS];
  for (int i = 0; i < TURNS_BLOCKS; i++)
    p[i] = alloc_ok(pool, size[i], s[0]);
  int cur = 0;
  for (int r = 0; r < rounds; r++) {
    const int next = (cur + 1) % TURNS_STREAMS;
    for (int i = 0; i < TURNS_BLOCKS; i++)
      free_ok(pool, p[i], size[i], s[cur]);
    handoff(s[cur], s[next]);
    for (int i = 0; i < TURNS_BLOCKS; i++) {
      p[i] = alloc_ok(pool, size[i], s[next]);
      use(p[i], size[i], s[next]);
    }
    cur = next;
  }
  const mr_stats st = pool_stats(pool);
  cr_expect_eq(st.bytes_requested, requested, "the working set is what is asked for");
  cr_expect_leq(st.peak_reserved, 2 * in_use,
                "after %d turns over %d streams the pool reserved %llu bytes at its peak for %zu "
                "in use: the streams kept copies of the working set",
                rounds, TURNS_STREAMS, (unsigned long long)st.peak_reserved, in_use);
  validate_ok(pool);
  for (int i = 0; i < TURNS_BLOCKS; i++)
    free_ok(pool, p[i], size[i], s[cur]);
  validate_ok(pool);
}

/* ---- across threads ------------------------------------------------------------------------ */

/* The second scenario: a producer thread allocates the 32 blocks on its stream and hands them to
 * a consumer thread, which frees them on its own stream; round after round, in lockstep. The
 * consumer's stream only frees, so its front cache would keep up to its whole budget while the
 * producer's stream grew the pool (another thread's cache is taken back only at every 4th
 * would-be growth: its lock costs a membarrier); while the pool holds twice what is in use and a
 * quarter of a budget more, every would-be growth takes the other threads' caches back. Checked:
 * the peak reserved stays within twice the bytes in use plus that quarter (before: 284 MiB for
 * 17 MiB in use with the default budget of 256 MiB). */
typedef struct turns_pc {
  mr_allocator *pool;
  mr_stream *consumer;
  void (*consumed)(mr_stream *s); /* the consumer's work on its frees is done */
  size_t size[TURNS_BLOCKS];
  void *p[TURNS_BLOCKS];
  int rounds;
  atomic_int turn; /* 0: the producer's, 1: the consumer's */
  atomic_int failed;
} turns_pc;

static inline void *turns_consume(void *arg) {
  turns_pc *pc = arg;
  for (int r = 0; r < pc->rounds; r++) {
    while (atomic_load(&pc->turn) != 1)
      sched_yield();
    for (int i = 0; i < TURNS_BLOCKS; i++)
      if (mr_free_async(pc->pool, pc->p[i], pc->size[i], pc->consumer) != MR_OK)
        atomic_store(&pc->failed, 1);
    pc->consumed(pc->consumer);
    atomic_store(&pc->turn, 0);
  }
  return NULL;
}

/* Runs `rounds` rounds on `pool` (new, alignment 256, front_cache_bytes `budget`): allocations on
 * `producer` from this thread, frees on `consumer` from another. */
static inline void turns_across_threads(mr_allocator *pool, size_t budget, mr_stream *producer,
                                        mr_stream *consumer, void (*consumed)(mr_stream *s),
                                        int rounds) {
  turns_pc pc = {.pool = pool, .consumer = consumer, .consumed = consumed, .rounds = rounds};
  const size_t in_use = turns_sizes(pc.size, NULL);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, turns_consume, &pc), 0);
  for (int r = 0; r < rounds; r++) {
    while (atomic_load(&pc.turn) != 0)
      sched_yield();
    for (int i = 0; i < TURNS_BLOCKS; i++)
      if (mr_alloc_async(pool, pc.size[i], producer, &pc.p[i]) != MR_OK)
        atomic_store(&pc.failed, 1);
    atomic_store(&pc.turn, 1);
  }
  pthread_join(t, NULL);
  cr_assert_not(atomic_load(&pc.failed), "an allocation or a free failed: %s", mr_last_error());
  const mr_stats st = pool_stats(pool);
  cr_expect_eq(st.bytes_in_use, 0, "every block was freed");
  cr_expect_leq(st.peak_reserved, 2 * in_use + budget / 4,
                "after %d rounds from one thread's stream to another's the pool reserved %llu "
                "bytes at its peak for %zu in use: the consumer's stream kept what it freed",
                rounds, (unsigned long long)st.peak_reserved, in_use);
  validate_ok(pool);
}

#endif
