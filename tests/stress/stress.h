/* The stress programs' common part (header-only, one per program): failures, options, PRNG,
 * byte patterns, the hand-off queue, running 8 threads, validation points, and the driver that
 * runs a program's parts. Plain C (no Criterion), so that they run under ThreadSanitizer too
 * (Criterion's runner aborts at start under TSan, Snaipe/Criterion#274).
 *
 * MEMRES_STRESS_OPS: ops per thread per part (default 32000; divided by 4 under TSan and ASan).
 * MEMRES_STRESS_SEED: the seed (default 1). MEMRES_STRESS_LIVE_VALIDATE=1: validate while the
 * other threads run instead of at a barrier (see validate_point). */
#ifndef MEMRES_STRESS_H
#define MEMRES_STRESS_H

#include "manual_stream.h"
#include "pool_util.h"

#include <memres/memres.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Under a sanitizer (pool_util.h detects which), a quarter of the ops. */
#define STRESS_DIV (POOL_TEST_SANITIZER_DIV > 1 ? 4 : 1)

#define NTHREADS 8
#define NSHARERS 4 /* threads 0..NSHARERS-1 also use the shared manual stream */
#define HOLD 24    /* blocks a thread holds at most */
#define QCAP 64    /* hand-off queue */
#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define POOL_ALIGN 256

/* ---- failures -------------------------------------------------------------------------------- */

static atomic_int g_part_failures; /* failures of the part running now */
static const char *g_part = "";
static const char *g_prog = "stress";

static inline void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void fail(const char *fmt, ...) {
  int n = atomic_fetch_add(&g_part_failures, 1);
  if (n >= 20) /* enough to go on */
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s: %s: FAIL: %s\n", g_prog, g_part, msg);
}
static inline int failing(void) {
  return atomic_load_explicit(&g_part_failures, memory_order_relaxed);
}

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      fail(__VA_ARGS__);                                                                           \
  } while (0)
#define CHECK_OK(call)                                                                             \
  do {                                                                                             \
    mr_status st_ = (call);                                                                        \
    if (st_ != MR_OK)                                                                              \
      fail("%s:%d: %s: %s (%s)", __FILE__, __LINE__, #call, mr_status_str(st_), mr_last_error());  \
  } while (0)

/* ---- options, PRNG -----------------------------------------------------------------------------
 */

#define env_ull pool_env_ull

static uint64_t g_ops;  /* per thread per part */
static uint64_t g_seed; /* of the run */

/* The suites' PRNG (pool_util.h). */
typedef pool_rng rng;
#define rng_seed pool_rng_seed
#define rng_next pool_rng_next
#define below pool_rng_below

/* 1 B..2 MiB, most of them small: 70% up to 4 KiB, 25% up to 256 KiB, 5% up to 2 MiB. */
static inline size_t random_size(rng *r, size_t max) {
  uint64_t c = below(r, 100);
  size_t hi = c < 70 ? 4 * KiB : c < 95 ? 256 * KiB : 2 * MiB;
  if (hi > max)
    hi = max;
  return 1 + (size_t)below(r, hi);
}

/* ---- patterns
 * ------------------------------------------------------------------------------------ */

typedef struct blk {
  unsigned char *p;
  size_t size;
  unsigned char pat;
  int owner; /* thread that wrote the pattern */
} blk;

static inline unsigned char next_pat(int id, unsigned *seq) {
  return (unsigned char)(1 + (unsigned)(id * 31 + (int)(*seq)++) % 255);
}

/* 1 if every byte of b is its pattern (memcmp against a reference chunk: sanitizers check a
 * range at once instead of every byte). */
static inline int pattern_ok(const blk *b, const char *when, int id) {
  unsigned char ref[4096];
  memset(ref, b->pat, sizeof ref);
  for (size_t at = 0; at < b->size; at += sizeof ref) {
    size_t n = b->size - at < sizeof ref ? b->size - at : sizeof ref;
    if (memcmp(b->p + at, ref, n) != 0) {
      size_t i = at;
      while (b->p[i] == b->pat)
        i++;
      fail("thread %d: block %p (%zu bytes, pattern %#x of thread %d) overwritten at +%zu "
           "(%#x) %s",
           id, (void *)b->p, b->size, b->pat, b->owner, i, b->p[i], when);
      return 0;
    }
  }
  return 1;
}

/* ---- hand-off queue
 * ------------------------------------------------------------------------------ */

typedef struct queue {
  pthread_mutex_t mu;
  blk items[QCAP];
  int n;
} queue;

static inline int queue_put(queue *q, blk b) {
  pthread_mutex_lock(&q->mu);
  int ok = q->n < QCAP;
  if (ok)
    q->items[q->n++] = b;
  pthread_mutex_unlock(&q->mu);
  return ok;
}
static inline int queue_take(queue *q, rng *r, blk *out) {
  pthread_mutex_lock(&q->mu);
  int ok = q->n > 0;
  if (ok) {
    int k = (int)below(r, (uint64_t)q->n);
    *out = q->items[k];
    q->items[k] = q->items[--q->n];
  }
  pthread_mutex_unlock(&q->mu);
  return ok;
}

/* A worker's last step: check and free the blocks it still holds, on its own stream. */
static inline void free_held(mr_allocator *pool, blk *held, int n, int id, mr_stream *own,
                             atomic_uint_fast64_t *frees) {
  for (int k = 0; k < n; k++) {
    pattern_ok(&held[k], "at the end", id);
    CHECK_OK(mr_free_async(pool, held[k].p, held[k].size, own));
    atomic_fetch_add_explicit(frees, 1, memory_order_relaxed);
  }
}

static inline mr_stats stats_of(mr_allocator *a) {
  mr_stats s = MR_STATS_INIT;
  CHECK_OK(mr_stats_get(a, &s));
  return s;
}

static pthread_barrier_t g_start, g_quiet;
static int g_live_validate; /* MEMRES_STRESS_LIVE_VALIDATE */

static inline void run_threads(void *(*fn)(void *), void *args, size_t arg_size) {
  pthread_t t[NTHREADS];
  pthread_barrier_init(&g_start, NULL, NTHREADS);
  pthread_barrier_init(&g_quiet, NULL, NTHREADS);
  for (int i = 0; i < NTHREADS; i++)
    if (pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * arg_size) != 0) {
      fprintf(stderr, "%s: pthread_create failed\n", g_prog);
      exit(2);
    }
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&g_start);
  pthread_barrier_destroy(&g_quiet);
}

/* A validation of a pool in use, reached by every thread at the same ops. By default the threads
 * stop at a barrier, thread `who` validates while they all hold blocks, cached and pending, and
 * they go on. With MEMRES_STRESS_LIVE_VALIDATE=1 thread `who` validates while the others run:
 * the pool's alloc and free pass through states that mr_caching_pool_validate reports as
 * inconsistent (a block being freed, or counted only once the operation finishes). */
static inline void validate_point(mr_allocator *pool, int id, int who,
                                  atomic_uint_fast64_t *count) {
  if (!g_live_validate)
    pthread_barrier_wait(&g_quiet);
  if (id == who) {
    CHECK_OK(mr_caching_pool_validate(pool));
    atomic_fetch_add(count, 1);
  }
  if (!g_live_validate)
    pthread_barrier_wait(&g_quiet);
}

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct stress_part {
  const char *name;
  void (*fn)(void);
} stress_part;

/* Runs the parts; the exit status: 0 when every part passed. */
static inline int stress_main(const char *prog, const stress_part *parts, size_t n) {
  g_prog = prog;
  g_ops = env_ull("MEMRES_STRESS_OPS", 32000) / STRESS_DIV;
  if (g_ops < 1000)
    g_ops = 1000;
  g_seed = env_ull("MEMRES_STRESS_SEED", 1);
  g_live_validate = env_ull("MEMRES_STRESS_LIVE_VALIDATE", 0) != 0;
  fprintf(stderr, "%s: %d threads x %" PRIu64 " ops per part, seed %" PRIu64 "\n", prog, NTHREADS,
          g_ops, g_seed);
  int passed = 0, failed = 0;
  for (size_t i = 0; i < n; i++) {
    g_part = parts[i].name;
    atomic_store(&g_part_failures, 0);
    double t0 = now_s();
    parts[i].fn();
    int f = atomic_load(&g_part_failures);
    fprintf(stderr, "%s: %s: %s (%.2f s)\n", prog, parts[i].name, f ? "FAILED" : "passed",
            now_s() - t0);
    if (f)
      failed++;
    else
      passed++;
  }
  printf("%s: %d passed, %d failed\n", prog, passed, failed);
  return failed ? 1 : 0;
}

#endif
