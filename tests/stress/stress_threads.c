/* stress_threads: the multi-threaded paths of memres, as a plain C program (no Criterion), so
 * that it runs under ThreadSanitizer too (Criterion's runner aborts at start under TSan,
 * Snaipe/Criterion#274). Exit status 0 when every part passed; each failure is printed on stderr.
 *
 * Parts, each with 8 threads:
 *   pool_*   one caching pool over a 256-byte-aligned host allocator (stats_slack 1). Every thread
 *            has its own host stream; threads 0..3 also share a manual stream (thread 0 completes
 *            it periodically). Random alloc/free of 1 B..2 MiB, a per-thread byte pattern in each
 *            block checked before it is freed, blocks handed to other threads through a mutex
 *            protected queue and freed there on that thread's stream; thread 0 trims and reads the
 *            statistics as they go, thread 1 validates the pool while they all hold blocks
 *            (validate_point). At the end the statistics
 *            balance, the pool validates, and once it is released its upstream holds nothing.
 *            Run with the front cache (pool_front_cache) and without (pool_no_front_cache).
 *   context  guards (mr_guard_push/pop and MR_GUARD) of each thread's own streams and allocators
 *            and of shared ones; the tops of this thread's stacks are always what this thread
 *            pushed; buffers made inside, some released by other threads.
 *   fault    a caching pool over the fault adaptor (fail_every, the schedule changed as it runs):
 *            every alloc gives MR_OK or MR_ERR_OUT_OF_MEMORY, every free MR_OK, validate stays OK.
 *
 * MEMRES_STRESS_OPS: ops per thread per part (default 32000, about 5 s on 2 cores; divided by 4
 * under TSan and ASan). MEMRES_STRESS_SEED: the seed (default 1). MEMRES_STRESS_LIVE_VALIDATE=1:
 * validate while the other threads run instead of at a barrier (see validate_point). */
#include "manual_stream.h"

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

#if defined(__SANITIZE_THREAD__)
#define STRESS_DIV 4
#elif defined(__SANITIZE_ADDRESS__)
#define STRESS_DIV 4
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_DIV 4
#elif __has_feature(address_sanitizer)
#define STRESS_DIV 4
#endif
#endif
#ifndef STRESS_DIV
#define STRESS_DIV 1
#endif

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

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  int n = atomic_fetch_add(&g_part_failures, 1);
  if (n >= 20) /* enough to go on */
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "stress_threads: %s: FAIL: %s\n", g_part, msg);
}
static int failing(void) { return atomic_load_explicit(&g_part_failures, memory_order_relaxed); }

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

static unsigned long long env_ull(const char *name, unsigned long long dflt) {
  const char *v = getenv(name);
  if (!v || !*v)
    return dflt;
  char *end = NULL;
  unsigned long long x = strtoull(v, &end, 0);
  return end && *end == '\0' ? x : dflt;
}

static uint64_t g_ops;  /* per thread per part */
static uint64_t g_seed; /* of the run */

typedef struct rng {
  uint64_t s;
} rng;
static void rng_seed(rng *r, uint64_t seed) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  r->s = (z ^ (z >> 31)) | 1;
}
static uint64_t rng_next(rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ull;
}
static uint64_t below(rng *r, uint64_t n) { return n ? rng_next(r) % n : 0; }

/* 1 B..2 MiB, most of them small: 70% up to 4 KiB, 25% up to 256 KiB, 5% up to 2 MiB. */
static size_t random_size(rng *r, size_t max) {
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

static unsigned char next_pat(int id, unsigned *seq) {
  return (unsigned char)(1 + (unsigned)(id * 31 + (int)(*seq)++) % 255);
}

/* 1 if every byte of b is its pattern (memcmp against a reference chunk: sanitizers check a
 * range at once instead of every byte). */
static int pattern_ok(const blk *b, const char *when, int id) {
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

static int queue_put(queue *q, blk b) {
  pthread_mutex_lock(&q->mu);
  int ok = q->n < QCAP;
  if (ok)
    q->items[q->n++] = b;
  pthread_mutex_unlock(&q->mu);
  return ok;
}
static int queue_take(queue *q, rng *r, blk *out) {
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

static mr_stats stats_of(mr_allocator *a) {
  mr_stats s = MR_STATS_INIT;
  CHECK_OK(mr_stats_get(a, &s));
  return s;
}

static pthread_barrier_t g_start, g_quiet;
static int g_live_validate; /* MEMRES_STRESS_LIVE_VALIDATE */

static void run_threads(void *(*fn)(void *), void *args, size_t arg_size) {
  pthread_t t[NTHREADS];
  pthread_barrier_init(&g_start, NULL, NTHREADS);
  pthread_barrier_init(&g_quiet, NULL, NTHREADS);
  for (int i = 0; i < NTHREADS; i++)
    if (pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * arg_size) != 0) {
      fprintf(stderr, "stress_threads: pthread_create failed\n");
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
static void validate_point(mr_allocator *pool, int id, int who, atomic_uint_fast64_t *count) {
  if (!g_live_validate)
    pthread_barrier_wait(&g_quiet);
  if (id == who) {
    CHECK_OK(mr_caching_pool_validate(pool));
    atomic_fetch_add(count, 1);
  }
  if (!g_live_validate)
    pthread_barrier_wait(&g_quiet);
}

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
  for (int k = 0; k < n; k++) {
    pattern_ok(&held[k], "at the end", id);
    CHECK_OK(mr_free_async(sh->pool, held[k].p, held[k].size, own));
    atomic_fetch_add_explicit(&sh->frees, 1, memory_order_relaxed);
  }
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

/* ==== (b) the context: guards and buffers on 8 threads
 * ============================================ */

typedef struct sent_buf {
  mr_buffer *b;
  unsigned char pat;
  int owner;
} sent_buf;

typedef struct ctx_shared {
  mr_stream *stream;    /* shared host stream */
  mr_allocator *host;   /* shared host allocator */
  mr_allocator *under;  /* host allocator under the pool */
  mr_allocator *pool;   /* shared caching pool (unbound) */
  mr_allocator *pool_s; /* the pool bound to the shared stream */
  /* every thread's own objects, to name a foreign one when a top is wrong */
  mr_stream *t_stream[NTHREADS][2];
  mr_allocator *t_host[NTHREADS], *t_view[NTHREADS];
  pthread_mutex_t mu;
  sent_buf q[QCAP];
  int qn;
  atomic_uint_fast64_t buffers, sent, guards;
} ctx_shared;

typedef struct ctx_worker {
  ctx_shared *sh;
  int id;
} ctx_worker;

/* Whose object is it: "shared", "thread N" or "unknown". */
static const char *owner_of(ctx_shared *sh, const void *obj, char *buf, size_t len) {
  if (!obj)
    return "none";
  if (obj == sh->stream || obj == sh->host || obj == sh->pool_s || obj == sh->pool)
    return "shared";
  if (obj == mr_host_default())
    return "default host";
  for (int i = 0; i < NTHREADS; i++)
    if (obj == sh->t_stream[i][0] || obj == sh->t_stream[i][1] || obj == sh->t_host[i] ||
        obj == sh->t_view[i]) {
      snprintf(buf, len, "thread %d", i);
      return buf;
    }
  return "unknown";
}

static int expect_tops(ctx_shared *sh, int id, mr_stream *s, mr_allocator *a, const char *where) {
  mr_stream *ts = mr_context_stream();
  mr_allocator *ta = mr_context_host_alloc();
  if (ts == s && ta == a && mr_context_alloc(MR_HOST) == a)
    return 1;
  char b1[32], b2[32], b3[32], b4[32];
  fail("thread %d, %s: tops are stream %p (%s), host allocator %p (%s); expected %p (%s), %p (%s)",
       id, where, (void *)ts, owner_of(sh, ts, b1, sizeof b1), (void *)ta,
       owner_of(sh, ta, b2, sizeof b2), (void *)s, owner_of(sh, s, b3, sizeof b3), (void *)a,
       owner_of(sh, a, b4, sizeof b4));
  return 0;
}

/* A buffer from the context's host allocator, which must be `a`; filled with a pattern. */
static void make_buffer(ctx_shared *sh, int id, rng *r, mr_allocator *a, unsigned *seq,
                        sent_buf *keep, int *nkeep) {
  static const mr_dtype types[] = {MR_U8, MR_F16, MR_F32, MR_F64};
  mr_dtype dt = types[below(r, 4)];
  size_t count = 1 + (size_t)below(r, below(r, 8) ? 1024 : 64 * 1024);
  mr_buffer *b = NULL;
  mr_status st = mr_buffer_create(&b, count, dt, mr_device_host());
  if (st != MR_OK) {
    fail("thread %d: mr_buffer_create(%zu x %s): %s", id, count, mr_dtype_str(dt), mr_last_error());
    return;
  }
  atomic_fetch_add_explicit(&sh->buffers, 1, memory_order_relaxed);
  CHECK(mr_buffer_allocator(b) == a, "thread %d: buffer from allocator %p, context top is %p", id,
        (void *)mr_buffer_allocator(b), (void *)a);
  CHECK(mr_buffer_bytes(b) == count * mr_dtype_size(dt), "thread %d: buffer of %zu bytes", id,
        mr_buffer_bytes(b));
  CHECK_OK(mr_buffer_clear(b)); /* on the context stream */
  blk v = {mr_buffer_data(b), mr_buffer_bytes(b), 0, id};
  pattern_ok(&v, "after mr_buffer_clear", id);
  sent_buf sb = {b, next_pat(id, seq), id};
  memset(mr_buffer_data(b), sb.pat, mr_buffer_bytes(b));
  uint64_t c = below(r, 3);
  if (c == 0) { /* released by another thread */
    pthread_mutex_lock(&sh->mu);
    int ok = sh->qn < QCAP;
    if (ok)
      sh->q[sh->qn++] = sb;
    pthread_mutex_unlock(&sh->mu);
    if (ok) {
      atomic_fetch_add_explicit(&sh->sent, 1, memory_order_relaxed);
      return;
    }
  }
  if (c == 1 && *nkeep < HOLD) { /* kept past the guard that made it */
    keep[(*nkeep)++] = sb;
    return;
  }
  pattern_ok(&(blk){mr_buffer_data(b), mr_buffer_bytes(b), sb.pat, id}, "before release", id);
  mr_buffer_release(b);
}

static void release_sent(int id, sent_buf *sb) {
  blk v = {mr_buffer_data(sb->b), mr_buffer_bytes(sb->b), sb->pat, sb->owner};
  pattern_ok(&v, "before release", id);
  mr_buffer_release(sb->b);
}

static void *ctx_thread(void *arg) {
  ctx_worker *w = arg;
  ctx_shared *sh = w->sh;
  const int id = w->id;
  mr_stream *t1 = sh->t_stream[id][0], *t2 = sh->t_stream[id][1];
  mr_allocator *own = sh->t_host[id], *view = sh->t_view[id];
  sent_buf keep[HOLD];
  int nkeep = 0;
  unsigned seq = 0;
  rng r;
  rng_seed(&r, g_seed * 1000 + 200 + (uint64_t)id);
  char scope[16];
  snprintf(scope, sizeof scope, "t%d", id);
  pthread_barrier_wait(&g_start);

  /* Fewer iterations than pool ops: each makes up to three buffers and a dozen pushes. */
  const uint64_t iters = g_ops / 4 ? g_ops / 4 : 1;
  for (uint64_t it = 0; it < iters && !failing(); it++) {
    CHECK(mr_context_depth() == 0, "thread %d: depth %zu at the start of an iteration", id,
          mr_context_depth());
    expect_tops(sh, id, NULL, mr_host_default(), "outside every guard");
    {
      MR_SCOPE(scope);
      MR_GUARD(g, t1, view);
      CHECK_OK(g.status);
      expect_tops(sh, id, t1, view, "in MR_GUARD(t1, view)");
      if (below(&r, 2))
        make_buffer(sh, id, &r, view, &seq, keep, &nkeep);

      /* a pushed guard: shared objects, or own ones, or an empty entry and the shared pool */
      uint64_t variant = below(&r, 3);
      mr_stream *es = variant == 0 ? sh->stream : variant == 1 ? t2 : t1;
      mr_allocator *ea = variant == 0 ? sh->host : variant == 1 ? own : sh->pool_s;
      mr_guard_item items[2] = {variant == 2 ? mr_guard_stream(NULL) : mr_guard_stream(es),
                                mr_guard_alloc(ea)};
      mr_guard g2;
      CHECK_OK(mr_guard_push(&g2, items, 2));
      atomic_fetch_add_explicit(&sh->guards, 2, memory_order_relaxed);
      expect_tops(sh, id, es, ea, "in mr_guard_push");
      if (below(&r, 2))
        make_buffer(sh, id, &r, ea, &seq, keep, &nkeep);
      {
        MR_SCOPE("inner");
        char want[32];
        snprintf(want, sizeof want, "t%d/inner", id);
        CHECK(strcmp(mr_scope_path(), want) == 0, "thread %d: scope path '%s', expected '%s'", id,
              mr_scope_path(), want);
        size_t hd = mr_context_alloc_depth(MR_HOST), sd = mr_context_stream_depth();
        size_t depth = mr_context_depth();
        MR_GUARD(g3, t2, own, NULL, sh->stream, sh->host);
        CHECK_OK(g3.status);
        atomic_fetch_add_explicit(&sh->guards, 1, memory_order_relaxed);
        expect_tops(sh, id, sh->stream, sh->host, "in MR_GUARD(t2, own, NULL, shared...)");
        CHECK(mr_context_alloc_depth(MR_HOST) == hd + 2 && mr_context_stream_depth() == sd + 2 &&
                  mr_context_depth() == depth + 5,
              "thread %d: depths host %zu, streams %zu, mask %zu after pushing 5 entries on %zu, "
              "%zu, %zu",
              id, mr_context_alloc_depth(MR_HOST), mr_context_stream_depth(), mr_context_depth(),
              hd, sd, depth);
        if (below(&r, 4) == 0)
          make_buffer(sh, id, &r, sh->host, &seq, keep, &nkeep);
        /* a single push and pop in between */
        CHECK_OK(mr_context_push_alloc(own));
        expect_tops(sh, id, sh->stream, own, "after mr_context_push_alloc(own)");
        CHECK_OK(mr_context_pop());
      }
      expect_tops(sh, id, es, ea, "after MR_GUARD(g3) ended");
      /* out of order: popping g while g2 sits above it must fail and change nothing */
      if (below(&r, 8) == 0) {
        mr_status st = mr_guard_pop(&g);
        CHECK(st == MR_ERR_GUARD_ORDER, "thread %d: out-of-order pop gave %s", id,
              mr_status_str(st));
        expect_tops(sh, id, es, ea, "after a refused pop");
      }
      CHECK_OK(mr_guard_pop(&g2));
      expect_tops(sh, id, t1, view, "after mr_guard_pop");
    }
    CHECK(mr_context_depth() == 0, "thread %d: depth %zu after the guards", id, mr_context_depth());
    CHECK(strcmp(mr_scope_path(), "") == 0, "thread %d: scope path '%s' outside scopes", id,
          mr_scope_path());

    /* release one kept buffer, and one another thread made */
    if (nkeep && below(&r, 2)) {
      int k = (int)below(&r, (uint64_t)nkeep);
      release_sent(id, &keep[k]);
      keep[k] = keep[--nkeep];
    }
    sent_buf sb = {0};
    pthread_mutex_lock(&sh->mu);
    if (sh->qn) {
      int k = (int)below(&r, (uint64_t)sh->qn);
      sb = sh->q[k];
      sh->q[k] = sh->q[--sh->qn];
    }
    pthread_mutex_unlock(&sh->mu);
    if (sb.b)
      release_sent(id, &sb);
  }
  for (int k = 0; k < nkeep; k++)
    release_sent(id, &keep[k]);
  return NULL;
}

static void part_context(void) {
  static ctx_shared sh;
  memset(&sh, 0, sizeof sh);
  pthread_mutex_init(&sh.mu, NULL);
  CHECK_OK(mr_stream_create_host(&sh.stream));
  CHECK_OK(mr_host_allocator_create(&sh.host, NULL));
  CHECK_OK(mr_host_allocator_create(&sh.under, &(mr_host_options){.alignment = POOL_ALIGN}));
  CHECK_OK(
      mr_caching_pool_create(&sh.pool, sh.under, &(mr_caching_pool_options){.stats_slack = 1}));
  CHECK_OK(mr_allocator_bind(sh.pool, sh.stream, &sh.pool_s));
  for (int i = 0; i < NTHREADS; i++) {
    CHECK_OK(mr_stream_create_host(&sh.t_stream[i][0]));
    CHECK_OK(mr_stream_create_host(&sh.t_stream[i][1]));
    CHECK_OK(mr_host_allocator_create(&sh.t_host[i], NULL));
    CHECK_OK(mr_allocator_bind(sh.pool, sh.t_stream[i][0], &sh.t_view[i]));
  }
  if (failing())
    return;

  ctx_worker w[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    w[i] = (ctx_worker){&sh, i};
  /* The threads' own objects are released before the buffers made from them, which other
   * threads release later: their references keep them alive. */
  run_threads(ctx_thread, w, sizeof w[0]);
  for (int i = 0; i < NTHREADS; i++) {
    mr_stream_release(sh.t_stream[i][0]);
    mr_stream_release(sh.t_stream[i][1]);
    mr_allocator_release(sh.t_view[i]);
  }
  for (int i = 0; i < sh.qn; i++)
    release_sent(-1, &sh.q[i]);
  sh.qn = 0;

  for (int i = 0; i < NTHREADS; i++) {
    mr_stats ts = stats_of(sh.t_host[i]);
    CHECK(ts.live_blocks == 0 && ts.allocs == ts.frees,
          "thread %d's host allocator: %" PRIu64 " live blocks, %" PRIu64 " allocs, %" PRIu64
          " frees",
          i, ts.live_blocks, ts.allocs, ts.frees);
    mr_allocator_release(sh.t_host[i]);
  }
  mr_stats hs = stats_of(sh.host);
  CHECK(hs.live_blocks == 0 && hs.allocs == hs.frees,
        "shared host allocator: %" PRIu64 " live blocks, %" PRIu64 " allocs, %" PRIu64 " frees",
        hs.live_blocks, hs.allocs, hs.frees);
  mr_stats ps = stats_of(sh.pool);
  CHECK(ps.allocs == ps.frees && ps.live_blocks == 0 && ps.bytes_in_use == 0,
        "shared pool: %" PRIu64 " allocs, %" PRIu64 " frees, %" PRIu64 " live blocks, %" PRIu64
        " bytes in use",
        ps.allocs, ps.frees, ps.live_blocks, ps.bytes_in_use);
  CHECK_OK(mr_caching_pool_validate(sh.pool));
  fprintf(stderr,
          "stress_threads: %s: %" PRIu64 " buffers (%" PRIu64 " released by another thread), "
          "%" PRIu64 " guards, pool %" PRIu64 " allocs\n",
          g_part, (uint64_t)atomic_load(&sh.buffers), (uint64_t)atomic_load(&sh.sent),
          (uint64_t)atomic_load(&sh.guards), ps.allocs);
  mr_allocator_release(sh.pool_s);
  mr_allocator_release(sh.pool);
  mr_stats us = stats_of(sh.under);
  CHECK(us.live_blocks == 0, "after the pool's release its upstream holds %" PRIu64 " blocks",
        us.live_blocks);
  mr_allocator_release(sh.under);
  mr_allocator_release(sh.host);
  mr_stream_release(sh.stream);
  pthread_mutex_destroy(&sh.mu);
}

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
  for (int k = 0; k < n; k++) {
    pattern_ok(&held[k], "at the end", id);
    CHECK_OK(mr_free_async(sh->pool, held[k].p, held[k].size, own));
    atomic_fetch_add_explicit(&sh->frees, 1, memory_order_relaxed);
  }
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

/* ==== main ======================================================================================
 */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void) {
  static const struct {
    const char *name;
    void (*fn)(void);
  } parts[] = {
      {"pool_front_cache", part_pool_front_cache},
      {"pool_no_front_cache", part_pool_no_front_cache},
      {"context", part_context},
      {"fault", part_fault},
  };
  g_ops = env_ull("MEMRES_STRESS_OPS", 32000) / STRESS_DIV;
  if (g_ops < 1000)
    g_ops = 1000;
  g_seed = env_ull("MEMRES_STRESS_SEED", 1);
  g_live_validate = env_ull("MEMRES_STRESS_LIVE_VALIDATE", 0) != 0;
  fprintf(stderr, "stress_threads: %d threads x %" PRIu64 " ops per part, seed %" PRIu64 "\n",
          NTHREADS, g_ops, g_seed);
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    g_part = parts[i].name;
    atomic_store(&g_part_failures, 0);
    double t0 = now_s();
    parts[i].fn();
    int f = atomic_load(&g_part_failures);
    fprintf(stderr, "stress_threads: %s: %s (%.2f s)\n", parts[i].name, f ? "FAILED" : "passed",
            now_s() - t0);
    if (f)
      failed++;
    else
      passed++;
  }
  printf("stress_threads: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
