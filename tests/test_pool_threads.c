/* 8 threads on one caching pool, each on its own stream (manual streams completed periodically
 * for even threads, host streams for odd ones). Each thread fills every block it holds with its
 * own pattern and checks it before freeing; some blocks are handed to other threads through a
 * mailbox. At the end the statistics balance and the pool validates.
 * MEMRES_TEST_OPS sets the ops per thread (default 10^6); divided by MEMRES_TEST_OPS_SCALE or
 * under sanitizers (tsan 20, asan 4). */
#include "manual_stream.h"
#include "pool_util.h"

#include <criterion/criterion.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

#define NTHREADS 8
#define HOLD 32
#define MAILBOX 16
#define KiB ((size_t)1024)

typedef struct held {
  unsigned char *p;
  size_t size;
  unsigned char pat;
  int stream; /* thread index whose stream allocated it */
} held;

typedef struct shared {
  mr_allocator *pool;
  mr_stream *streams[NTHREADS];
  pthread_mutex_t mu;
  held mailbox[MAILBOX];
  int mail_n;
  atomic_int errors;
  char first_error[512];
  atomic_uint_fast64_t allocs, frees, handoffs;
} shared;

typedef struct worker {
  shared *sh;
  int id;
  uint64_t ops;
  uint64_t seed;
} worker;

static void report(shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(shared *sh, const char *fmt, ...) {
  if (atomic_fetch_add(&sh->errors, 1) == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sh->first_error, sizeof sh->first_error, fmt, ap);
    va_end(ap);
  }
}

static int check_block(shared *sh, int id, const held *h, const char *when) {
  if (bytes_are(h->p, h->pat, h->size))
    return 1;
  size_t i = 0;
  while (h->p[i] == h->pat)
    i++;
  report(sh, "thread %d: block %p (%zu bytes, pattern %#x) overwritten at +%zu (%#x) %s", id,
         (void *)h->p, h->size, h->pat, i, h->p[i], when);
  return 0;
}

static void *run_worker(void *arg) {
  worker *w = arg;
  shared *sh = w->sh;
  mr_stream *s = sh->streams[w->id];
  const int manual = manual_stream_is(s);
  held mine[HOLD];
  int n = 0;
  pool_rng r;
  pool_rng_seed(&r, w->seed);
  unsigned seq = 0;
  for (uint64_t op = 0; op < w->ops && atomic_load(&sh->errors) == 0; op++) {
    uint64_t c = pool_rng_below(&r, 100);
    if (c < 46 && n < HOLD) {
      size_t size = pool_rng_below(&r, 100) ? 1 + pool_rng_below(&r, 4 * KiB)
                                            : 4 * KiB + pool_rng_below(&r, 256 * KiB);
      void *p = NULL;
      mr_status st = mr_alloc_async(sh->pool, size, s, &p);
      if (st != MR_OK) {
        report(sh, "thread %d: alloc(%zu): %s", w->id, size, mr_last_error());
        break;
      }
      held h = {p, size, (unsigned char)(1 + (w->id * 31 + seq++) % 255), w->id};
      memset(h.p, h.pat, h.size);
      mine[n++] = h;
      atomic_fetch_add_explicit(&sh->allocs, 1, memory_order_relaxed);
    } else if (c < 90 && n) {
      int k = (int)pool_rng_below(&r, (uint64_t)n);
      check_block(sh, w->id, &mine[k], "before free");
      if (manual)
        manual_stream_submit(s); /* the block's last use is work in flight */
      mr_status st = mr_free_async(sh->pool, mine[k].p, mine[k].size, s);
      if (st != MR_OK) {
        report(sh, "thread %d: free: %s", w->id, mr_last_error());
        break;
      }
      mine[k] = mine[--n];
      atomic_fetch_add_explicit(&sh->frees, 1, memory_order_relaxed);
    } else if (c < 94 && n) { /* hand a block to whoever takes it */
      int k = (int)pool_rng_below(&r, (uint64_t)n);
      check_block(sh, w->id, &mine[k], "before hand-off");
      pthread_mutex_lock(&sh->mu);
      if (sh->mail_n < MAILBOX) {
        sh->mailbox[sh->mail_n++] = mine[k];
        mine[k] = mine[--n];
      }
      pthread_mutex_unlock(&sh->mu);
    } else if (c < 98 && n < HOLD) { /* take one */
      held h = {0};
      pthread_mutex_lock(&sh->mu);
      if (sh->mail_n)
        h = sh->mailbox[--sh->mail_n];
      pthread_mutex_unlock(&sh->mu);
      if (h.p) {
        check_block(sh, w->id, &h, "after hand-off");
        h.pat = (unsigned char)(1 + (w->id * 31 + seq++) % 255);
        memset(h.p, h.pat, h.size);
        mine[n++] = h;
        atomic_fetch_add_explicit(&sh->handoffs, 1, memory_order_relaxed);
      }
    }
    if (manual && op % 64 == 63)
      manual_stream_complete(s);
  }
  for (int k = 0; k < n; k++) {
    check_block(sh, w->id, &mine[k], "at the end");
    if (mr_free_async(sh->pool, mine[k].p, mine[k].size, s) != MR_OK)
      report(sh, "thread %d: final free: %s", w->id, mr_last_error());
    atomic_fetch_add_explicit(&sh->frees, 1, memory_order_relaxed);
  }
  return NULL;
}

static void run_threads(mr_cross_stream_policy policy, size_t front_cache, uint64_t ops) {
  mr_allocator *host, *up;
  recorder *rec = NULL;
  cr_assert_eq(mr_host_allocator_create(&host, NULL), MR_OK);
  cr_assert_eq(recorder_create(&up, &rec, host, 0, 0), MR_OK);
  static shared sh; /* one test per process */
  memset(&sh, 0, sizeof sh);
  pthread_mutex_init(&sh.mu, NULL);
  cr_assert_eq(mr_caching_pool_create(&sh.pool, up,
                                      &(mr_caching_pool_options){
                                          .cross_stream = policy,
                                          .front_cache_bytes = front_cache,
                                      }),
               MR_OK, "%s", mr_last_error());
  for (int i = 0; i < NTHREADS; i++)
    cr_assert_eq(i % 2 ? mr_stream_create_host(&sh.streams[i])
                       : manual_stream_create(&sh.streams[i]),
                 MR_OK);
  uint64_t seed = pool_test_seed(12345);
  fprintf(stderr, "pool_threads: policy %d, %d threads x %" PRIu64 " ops, seed %" PRIu64 "\n",
          (int)policy, NTHREADS, ops, seed);
  worker w[NTHREADS];
  pthread_t t[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    w[i] = (worker){&sh, i, ops, seed * 1000 + (uint64_t)i};
    cr_assert_eq(pthread_create(&t[i], NULL, run_worker, &w[i]), 0);
  }
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(t[i], NULL);
  cr_assert_eq(atomic_load(&sh.errors), 0, "%d errors, first: %s", atomic_load(&sh.errors),
               sh.first_error);
  for (int i = 0; i < sh.mail_n; i++) { /* blocks left in the mailbox */
    held *h = &sh.mailbox[i];
    cr_assert(bytes_are(h->p, h->pat, h->size), "mailbox block overwritten");
    cr_assert_eq(mr_free_async(sh.pool, h->p, h->size, NULL), MR_OK, "%s", mr_last_error());
    atomic_fetch_add(&sh.frees, 1);
  }
  for (int i = 0; i < NTHREADS; i += 2)
    manual_stream_complete(sh.streams[i]);
  mr_stats s = pool_stats(sh.pool);
  fprintf(stderr,
          "pool_threads: %" PRIu64 " allocs, %" PRIu64 " hand-offs, %" PRIu64
          " cache hits, %" PRIu64 " upstream allocs, peak reserved %" PRIu64 "\n",
          s.allocs, (uint64_t)atomic_load(&sh.handoffs), s.cache_hits, s.upstream_allocs,
          s.peak_reserved);
  cr_expect_eq(s.allocs, atomic_load(&sh.allocs));
  cr_expect_eq(s.frees, atomic_load(&sh.frees));
  cr_expect_eq(s.allocs, s.frees);
  cr_expect_eq(s.bytes_in_use, 0);
  cr_expect_eq(s.bytes_requested, 0);
  cr_expect_eq(s.live_blocks, 0);
  cr_expect_eq(s.failed_allocs, 0);
  cr_expect_eq(s.bytes_reserved, recorder_live_bytes(rec));
  uint64_t per_stream_allocs = 0;
  for (int i = 0; i < NTHREADS; i++) {
    mr_stats ss = MR_STATS_INIT;
    cr_expect_eq(mr_caching_pool_stream_stats(sh.pool, sh.streams[i], &ss), MR_OK);
    per_stream_allocs += ss.allocs;
  }
  cr_expect_eq(per_stream_allocs, s.allocs, "per-stream allocs add up");
  cr_expect_eq(mr_caching_pool_validate(sh.pool), MR_OK, "%s", mr_last_error());
  cr_expect_eq(mr_trim(sh.pool, 0), MR_OK);
  cr_expect_eq(pool_stats(sh.pool).bytes_reserved, 0);
  mr_allocator_release(sh.pool);
  cr_expect_eq(recorder_live_segments(rec), 0);
  cr_expect_eq(rec->bad_frees, 0);
  for (int i = 0; i < NTHREADS; i++)
    mr_stream_release(sh.streams[i]);
  mr_allocator_release(up);
  mr_allocator_release(host);
  pthread_mutex_destroy(&sh.mu);
}

Test(pool_threads, events_8_threads, .timeout = 1000) {
  run_threads(MR_CROSS_STREAM_EVENTS, 0, pool_test_ops(1000000));
}

Test(pool_threads, wait_no_front_cache, .timeout = 1000) {
  run_threads(MR_CROSS_STREAM_WAIT, SIZE_MAX, pool_test_ops(250000));
}
