/* stress_fault: the multi-threaded paths of memres, as a plain C program (see stress.h). Exit
 * status 0 when every part passed; each failure is printed on stderr. Parts, each with 8 threads:
 *   fault    a caching pool over the fault adaptor (fail_every, the schedule changed as it runs):
 *            every alloc gives MR_OK or MR_ERR_OUT_OF_MEMORY, every free MR_OK, validate stays OK.
 */
#include "stress.h"

/* ==== (c) fault injection under a shared caching pool ============================================
 */

typedef struct fault_shared {
  mr_allocator *host, *fault, *pool;
  mr_stream *own[NTHREADS];
  queue q;
  atomic_uint_fast64_t allocs, frees, ooms, validates, schedules;
} fault_shared;

typedef struct fault_worker {
  fault_shared *sh;
  int id;
} fault_worker;

static void *fault_thread(void *arg) {
  fault_worker *w = arg;
  fault_shared *sh = w->sh;
  const int id = w->id;
  mr_stream *own = sh->own[id];
  blk held[HOLD];
  int n = 0;
  unsigned seq = 0;
  rng r;
  rng_seed(&r, g_seed * 1000 + 300 + (uint64_t)id);
  pthread_barrier_wait(&g_start);
  static const uint64_t every[] = {1, 2, 3, 7, 0};

  for (uint64_t op = 0; op < g_ops; op++) {
    uint64_t c = failing() ? 100 : below(&r, 100); /* after a failure: only the barriers */
    if (c < 50 && n < HOLD) {
      /* up to 4 MiB: small and large segments both come from the failing upstream */
      size_t size = below(&r, 10) ? random_size(&r, 2 * MiB) : 1 + (size_t)below(&r, 4 * MiB);
      void *p = (void *)&held; /* must be set to NULL on failure */
      mr_status st = mr_alloc_async(sh->pool, size, own, &p);
      if (st == MR_OK) {
        blk b = {p, size, next_pat(id, &seq), id};
        memset(b.p, b.pat, b.size);
        held[n++] = b;
        atomic_fetch_add_explicit(&sh->allocs, 1, memory_order_relaxed);
      } else if (st == MR_ERR_OUT_OF_MEMORY) {
        CHECK(p == NULL, "thread %d: failed alloc left *out = %p", id, p);
        CHECK(mr_last_status() == MR_ERR_OUT_OF_MEMORY, "thread %d: last status %s", id,
              mr_status_str(mr_last_status()));
        atomic_fetch_add_explicit(&sh->ooms, 1, memory_order_relaxed);
      } else {
        fail("thread %d: alloc(%zu) gave %s: %s", id, size, mr_status_str(st), mr_last_error());
      }
    } else if (c < 90 && n) {
      int k = (int)below(&r, (uint64_t)n);
      pattern_ok(&held[k], "before free", id);
      CHECK_OK(mr_free_async(sh->pool, held[k].p, held[k].size, own));
      held[k] = held[--n];
      atomic_fetch_add_explicit(&sh->frees, 1, memory_order_relaxed);
    } else if (c < 95 && n) {
      int k = (int)below(&r, (uint64_t)n);
      if (queue_put(&sh->q, held[k]))
        held[k] = held[--n];
    } else if (c < 100) {
      blk b;
      if (queue_take(&sh->q, &r, &b)) {
        pattern_ok(&b, "after hand-off", id);
        CHECK_OK(mr_free_async(sh->pool, b.p, b.size, own));
        atomic_fetch_add_explicit(&sh->frees, 1, memory_order_relaxed);
      }
    }
    if (id == 0 && op % 256 == 255)
      CHECK_OK(mr_trim(sh->pool, below(&r, 2) ? 0 : 16 * MiB));
    if (id == 2 && op % 400 == 399) { /* a new schedule as the others allocate */
      mr_fault_options fo = {.fail_every = every[below(&r, 5)]};
      CHECK_OK(mr_fault_allocator_set(sh->fault, &fo));
      atomic_fetch_add(&sh->schedules, 1);
    }
    if (op % 300 == 299)
      validate_point(sh->pool, id, 1, &sh->validates);
  }
  free_held(sh->pool, held, n, id, own, &sh->frees);
  return NULL;
}

static void part_fault(void) {
  static fault_shared sh;
  memset(&sh, 0, sizeof sh);
  pthread_mutex_init(&sh.q.mu, NULL);
  CHECK_OK(mr_host_allocator_create(&sh.host, &(mr_host_options){.alignment = POOL_ALIGN}));
  CHECK_OK(mr_fault_allocator_create(&sh.fault, sh.host, &(mr_fault_options){.fail_every = 3}));
  /* segments go back upstream soon after they empty, so that the upstream keeps being asked */
  CHECK_OK(mr_caching_pool_create(&sh.pool, sh.fault,
                                  &(mr_caching_pool_options){.stats_slack = 1,
                                                             .release_threshold = 8 * MiB,
                                                             .large_segment_min = 4 * MiB}));
  for (int i = 0; i < NTHREADS; i++)
    CHECK_OK(mr_stream_create_host(&sh.own[i]));
  if (failing())
    return;

  fault_worker w[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    w[i] = (fault_worker){&sh, i};
  run_threads(fault_thread, w, sizeof w[0]);
  for (int i = 0; i < sh.q.n; i++) {
    pattern_ok(&sh.q.items[i], "left in the queue", -1);
    CHECK_OK(mr_free_async(sh.pool, sh.q.items[i].p, sh.q.items[i].size, sh.own[0]));
    atomic_fetch_add(&sh.frees, 1);
  }
  sh.q.n = 0;

  mr_stats s = stats_of(sh.pool);
  uint64_t allocs = atomic_load(&sh.allocs), frees = atomic_load(&sh.frees);
  uint64_t ooms = atomic_load(&sh.ooms);
  CHECK(s.allocs == allocs && s.frees == frees && allocs == frees,
        "pool counts %" PRIu64 " allocs, %" PRIu64 " frees; threads made %" PRIu64 " and %" PRIu64,
        s.allocs, s.frees, allocs, frees);
  CHECK(s.bytes_in_use == 0 && s.live_blocks == 0,
        "at the end: %" PRIu64 " bytes in use in %" PRIu64 " live blocks", s.bytes_in_use,
        s.live_blocks);
  CHECK(s.failed_allocs == ooms, "pool counts %" PRIu64 " failed allocs, threads saw %" PRIu64,
        s.failed_allocs, ooms);
  uint64_t calls = mr_fault_allocator_calls(sh.fault);
  uint64_t injected = mr_fault_allocator_failures(sh.fault);
  CHECK_OK(mr_caching_pool_validate(sh.pool));
  fprintf(stderr,
          "stress_threads: %s: %" PRIu64 " allocs, %" PRIu64 " out of memory, %" PRIu64
          " upstream allocs, %" PRIu64 " OOM retries, %" PRIu64 " schedules (last: %" PRIu64
          " calls, %" PRIu64 " injected), %" PRIu64 " validates\n",
          g_part, allocs, ooms, s.upstream_allocs, s.oom_retries,
          (uint64_t)atomic_load(&sh.schedules), calls, injected,
          (uint64_t)atomic_load(&sh.validates));
  CHECK(s.oom_retries > 0, "no upstream failure was injected");
  CHECK_OK(mr_fault_allocator_set(sh.fault, NULL));
  CHECK_OK(mr_trim(sh.pool, 0));
  CHECK(stats_of(sh.pool).bytes_reserved == 0, "trim(0) left bytes reserved");
  mr_allocator_release(sh.pool);
  mr_stats hs = stats_of(sh.host);
  CHECK(hs.live_blocks == 0 && hs.allocs == hs.frees,
        "after the pool's release the host allocator holds %" PRIu64 " blocks", hs.live_blocks);
  mr_allocator_release(sh.fault);
  mr_allocator_release(sh.host);
  for (int i = 0; i < NTHREADS; i++)
    mr_stream_release(sh.own[i]);
  pthread_mutex_destroy(&sh.q.mu);
}

int main(void) {
  static const stress_part parts[] = {
      {"fault", part_fault},
  };
  return stress_main("stress_fault", parts, sizeof parts / sizeof parts[0]);
}
