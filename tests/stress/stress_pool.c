/* stress_pool: the multi-threaded paths of memres, as a plain C program (see stress.h). Exit
 * status 0 when every part passed; each failure is printed on stderr. Parts, each with 8 threads:
 *   pool_*   one caching pool over a 256-byte-aligned host allocator (stats_slack 1). Every thread
 *            has its own host stream; threads 0..3 also share a manual stream (thread 0 completes
 *            it periodically). Random alloc/free of 1 B..2 MiB, a per-thread byte pattern in each
 *            block checked before it is freed, blocks handed to other threads through a mutex
 *            protected queue and freed there on that thread's stream; thread 0 trims and reads the
 *            statistics as they go, thread 1 validates the pool while they all hold blocks
 *            (validate_point). At the end the statistics
 *            balance, the pool validates, and once it is released its upstream holds nothing.
 *            Run with the front cache (pool_front_cache) and without (pool_no_front_cache). */
#include "stress.h"

/* ==== (a) one caching pool, 8 threads ============================================================
 */

typedef struct pool_shared {
  mr_allocator *host, *pool;
  mr_stream *own[NTHREADS];
  mr_stream *manual;
  queue q;
  atomic_uint_fast64_t allocs, frees, handoffs, trims, validates, stats_reads;
} pool_shared;

typedef struct pool_worker {
  pool_shared *sh;
  int id;
} pool_worker;

static void *pool_thread(void *arg) {
  pool_worker *w = arg;
  pool_shared *sh = w->sh;
  const int id = w->id;
  mr_stream *own = sh->own[id];
  const int sharer = id < NSHARERS;
  blk held[HOLD];
  int n = 0;
  unsigned seq = 0;
  rng r;
  rng_seed(&r, g_seed * 1000 + 100 + (uint64_t)id);
  uint64_t last_allocs = 0, last_frees = 0;
  pthread_barrier_wait(&g_start);

  for (uint64_t op = 0; op < g_ops; op++) {
    uint64_t c = failing() ? 100 : below(&r, 100); /* after a failure: only the barriers */
    mr_stream *s = sharer && below(&r, 2) ? sh->manual : own;
    if (c < 45 && n < HOLD) {
      size_t size = random_size(&r, 2 * MiB);
      void *p = NULL;
      mr_status st = mr_alloc_async(sh->pool, size, s, &p);
      if (st != MR_OK) {
        fail("thread %d: alloc(%zu): %s", id, size, mr_last_error());
      } else {
        CHECK((uintptr_t)p % POOL_ALIGN == 0, "thread %d: block %p not %d-aligned", id, p,
              POOL_ALIGN);
        blk b = {p, size, next_pat(id, &seq), id};
        memset(b.p, b.pat, b.size);
        held[n++] = b;
        atomic_fetch_add_explicit(&sh->allocs, 1, memory_order_relaxed);
      }
    } else if (c < 85 && n) {
      int k = (int)below(&r, (uint64_t)n);
      pattern_ok(&held[k], "before free", id);
      if (s == sh->manual)
        manual_stream_submit(s); /* the block's last use is work in flight on it */
      CHECK_OK(mr_free_async(sh->pool, held[k].p, held[k].size, s));
      held[k] = held[--n];
      atomic_fetch_add_explicit(&sh->frees, 1, memory_order_relaxed);
    } else if (c < 92 && n) { /* hand one to another thread */
      int k = (int)below(&r, (uint64_t)n);
      pattern_ok(&held[k], "before hand-off", id);
      if (queue_put(&sh->q, held[k]))
        held[k] = held[--n];
    } else if (c < 99) { /* take one and free it here, on this thread's stream */
      blk b;
      if (queue_take(&sh->q, &r, &b)) {
        pattern_ok(&b, "after hand-off", id);
        CHECK_OK(mr_free_async(sh->pool, b.p, b.size, own));
        atomic_fetch_add_explicit(&sh->frees, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&sh->handoffs, 1, memory_order_relaxed);
      }
    }
    if (id == 0 && op % 64 == 63)
      manual_stream_complete(sh->manual);
    if (id == 0 && op % 512 == 511) {
      CHECK_OK(mr_trim(sh->pool, below(&r, 2) ? 0 : 8 * MiB));
      mr_stats st = stats_of(sh->pool);
      CHECK(st.allocs >= last_allocs && st.frees >= last_frees,
            "statistics went back: allocs %" PRIu64 " after %" PRIu64 ", frees %" PRIu64
            " after %" PRIu64,
            st.allocs, last_allocs, st.frees, last_frees);
      last_allocs = st.allocs;
      last_frees = st.frees;
      atomic_fetch_add(&sh->trims, 1);
      atomic_fetch_add(&sh->stats_reads, 1);
    }
    if (op % 700 == 699)
      validate_point(sh->pool, id, 1, &sh->validates);
  }
  free_held(sh->pool, held, n, id, own, &sh->frees);
  return NULL;
}

static void part_pool(size_t front_cache_bytes) {
  static pool_shared sh;
  memset(&sh, 0, sizeof sh);
  pthread_mutex_init(&sh.q.mu, NULL);
  CHECK_OK(mr_host_allocator_create(&sh.host, &(mr_host_options){.alignment = POOL_ALIGN}));
  CHECK_OK(mr_caching_pool_create(
      &sh.pool, sh.host,
      &(mr_caching_pool_options){.stats_slack = 1, .front_cache_bytes = front_cache_bytes}));
  for (int i = 0; i < NTHREADS; i++)
    CHECK_OK(mr_stream_create_host(&sh.own[i]));
  CHECK_OK(manual_stream_create(&sh.manual));
  if (failing())
    return;

  pool_worker w[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    w[i] = (pool_worker){&sh, i};
  run_threads(pool_thread, w, sizeof w[0]);

  for (int i = 0; i < sh.q.n; i++) { /* blocks left in the queue */
    pattern_ok(&sh.q.items[i], "left in the queue", -1);
    CHECK_OK(mr_free_async(sh.pool, sh.q.items[i].p, sh.q.items[i].size, sh.own[0]));
    atomic_fetch_add(&sh.frees, 1);
  }
  sh.q.n = 0;
  manual_stream_complete(sh.manual);

  mr_stats s = stats_of(sh.pool);
  uint64_t allocs = atomic_load(&sh.allocs), frees = atomic_load(&sh.frees);
  CHECK(s.allocs == allocs && s.frees == frees,
        "pool counts %" PRIu64 " allocs, %" PRIu64 " frees; threads made %" PRIu64 " and %" PRIu64,
        s.allocs, s.frees, allocs, frees);
  CHECK(s.allocs == s.frees, "allocs %" PRIu64 " != frees %" PRIu64, s.allocs, s.frees);
  CHECK(s.bytes_in_use == 0 && s.bytes_requested == 0 && s.live_blocks == 0,
        "at the end: %" PRIu64 " bytes in use (%" PRIu64 " requested) in %" PRIu64 " live blocks",
        s.bytes_in_use, s.bytes_requested, s.live_blocks);
  CHECK(s.failed_allocs == 0, "%" PRIu64 " failed allocs", s.failed_allocs);
  CHECK(s.peak_in_use >= POOL_ALIGN && s.peak_in_use <= s.peak_reserved,
        "peak in use %" PRIu64 ", peak reserved %" PRIu64, s.peak_in_use, s.peak_reserved);
  uint64_t per_stream = 0;
  for (int i = 0; i <= NTHREADS; i++) {
    mr_stats ss = MR_STATS_INIT;
    CHECK_OK(mr_caching_pool_stream_stats(sh.pool, i < NTHREADS ? sh.own[i] : sh.manual, &ss));
    per_stream += ss.allocs;
  }
  CHECK(per_stream == s.allocs, "per-stream allocs add up to %" PRIu64 ", pool says %" PRIu64,
        per_stream, s.allocs);
  CHECK_OK(mr_caching_pool_validate(sh.pool));
  mr_stats hs = stats_of(sh.host);
  CHECK(s.bytes_reserved == hs.bytes_in_use,
        "pool reserves %" PRIu64 " bytes, the host allocator has %" PRIu64 " in use",
        s.bytes_reserved, hs.bytes_in_use);
  CHECK_OK(mr_trim(sh.pool, 0));
  CHECK(stats_of(sh.pool).bytes_reserved == 0, "trim(0) left %" PRIu64 " bytes reserved",
        stats_of(sh.pool).bytes_reserved);
  fprintf(stderr,
          "stress_threads: %s: %" PRIu64 " allocs, %" PRIu64 " hand-offs, %" PRIu64
          " cache hits, %" PRIu64 " upstream allocs, peak reserved %" PRIu64 " MiB, %" PRIu64
          " trims, %" PRIu64 " validates\n",
          g_part, s.allocs, (uint64_t)atomic_load(&sh.handoffs), s.cache_hits, s.upstream_allocs,
          s.peak_reserved >> 20, (uint64_t)atomic_load(&sh.trims),
          (uint64_t)atomic_load(&sh.validates));

  mr_allocator_release(sh.pool);
  hs = stats_of(sh.host);
  CHECK(hs.live_blocks == 0 && hs.bytes_in_use == 0 && hs.allocs == hs.frees,
        "after the pool's release the host allocator holds %" PRIu64 " blocks (%" PRIu64
        " bytes), %" PRIu64 " allocs, %" PRIu64 " frees",
        hs.live_blocks, hs.bytes_in_use, hs.allocs, hs.frees);
  mr_allocator_release(sh.host);
  for (int i = 0; i < NTHREADS; i++)
    mr_stream_release(sh.own[i]);
  mr_stream_release(sh.manual);
  pthread_mutex_destroy(&sh.q.mu);
}

static void part_pool_front_cache(void) { part_pool(0); }
static void part_pool_no_front_cache(void) { part_pool(SIZE_MAX); }

int main(void) {
  static const stress_part parts[] = {
      {"pool_front_cache", part_pool_front_cache},
      {"pool_no_front_cache", part_pool_no_front_cache},
  };
  return stress_main("stress_pool", parts, sizeof parts / sizeof parts[0]);
}
