/* stress_context: the multi-threaded paths of memres, as a plain C program (see stress.h). Exit
 * status 0 when every part passed; each failure is printed on stderr. Parts, each with 8 threads:
 *   context  guards (mr_guard_push/pop and MR_GUARD) of each thread's own streams and allocators
 *            and of shared ones; the tops of this thread's stacks are always what this thread
 *            pushed; buffers made inside, some released by other threads. */
#include "stress.h"

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

int main(void) {
  static const stress_part parts[] = {
      {"context", part_context},
  };
  return stress_main("stress_context", parts, sizeof parts / sizeof parts[0]);
}
