/* Model-based test of the caching pool: random alloc/free/trim/complete sequences across four
 * manual streams and the NULL stream, checked after every op against a reference model.
 *
 * Checked after every op: no two live blocks overlap; every live block lies inside a segment the
 * pool holds from upstream (a recording upstream tracks them); alignment; no block freed on a
 * stream whose work is pending reaches another stream (unless WAIT made that stream wait on an
 * event recorded after the free);
 * allocs, frees, live blocks, bytes in use/requested and their peaks, bytes reserved and its
 * peak, upstream allocs/frees agree with the model and the upstream. mr_caching_pool_validate
 * runs after each of the first 2000 ops, then every 1000.
 *
 * MEMRES_TEST_SEED fixes the seed (each test logs its own to stderr); MEMRES_TEST_OPS sets the
 * ops per test (default 10^6, five tests: 5 x 10^6 per run), divided under sanitizers. */
#include "manual_stream.h"
#include "pool_util.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <inttypes.h>
#include <string.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)
#define NMANUAL 4
#define NSTREAMS (NMANUAL + 1) /* index NMANUAL is the NULL stream */
#define MAX_LIVE 256

typedef struct blk {
  uintptr_t p;
  size_t size;
  uint64_t charged; /* what bytes_in_use grew by at its alloc */
  int stream;
} blk;

typedef struct range {
  uintptr_t a, b;
  unsigned long long seq; /* events recorded on the freeing stream before the free */
} range;

typedef struct rangeset {
  range *v;
  size_t n, cap;
} rangeset;

typedef struct model {
  /* live blocks, sorted by address */
  blk live[MAX_LIVE];
  size_t nlive;
  rangeset pending[NMANUAL]; /* freed on manual stream i, not yet completed */
  uint64_t allocs, frees, failed, in_use, requested, peak_in_use, peak_requested;
  uint64_t stream_allocs[NSTREAMS];
} model;

typedef struct config {
  const char *name;
  uint64_t default_seed;
  mr_caching_pool_options opts;
} config;

/* The run's state (one test per process). */
static model g_m;
static mr_allocator *g_pool, *g_up;
static recorder *g_rec;
static mr_stream *g_streams[NSTREAMS];
static uint64_t g_seed, g_op;
static size_t g_align;
static mr_cross_stream_policy g_policy;
static size_t g_max_reserve;
static int g_trace; /* MEMRES_TEST_TRACE=1: print every op to stderr */

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      char msg_[512];                                                                              \
      snprintf(msg_, sizeof msg_, __VA_ARGS__);                                                    \
      cr_assert_fail("[seed %" PRIu64 " op %" PRIu64 "] %s (last error: %s)", g_seed, g_op, msg_,  \
                     mr_last_error());                                                             \
    }                                                                                              \
  } while (0)

static void rs_add(rangeset *s, uintptr_t a, uintptr_t b, unsigned long long seq) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 64;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    cr_assert_not_null(s->v);
  }
  s->v[s->n++] = (range){a, b, seq};
}

/* Removes [a, b) from every range of s; returns 1 if anything overlapped. */
static int rs_subtract(rangeset *s, uintptr_t a, uintptr_t b) {
  int hit = 0;
  size_t n = s->n;
  for (size_t i = 0; i < n;) {
    range r = s->v[i];
    if (r.a >= b || a >= r.b) {
      i++;
      continue;
    }
    hit = 1;
    s->v[i] = s->v[--n];
    s->n = n;
    if (r.a < a)
      rs_add(s, r.a, a, r.seq);
    if (b < r.b)
      rs_add(s, b, r.b, r.seq);
    n = s->n;
  }
  return hit;
}

/* Whether [a, b) overlaps a range of s that a wait on the freeing stream's event of sequence
 * number `seq` does not cover (0: no wait, none covered). */
static int rs_overlaps(const rangeset *s, uintptr_t a, uintptr_t b, unsigned long long seq) {
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i].a < b && a < s->v[i].b && (!seq || s->v[i].seq >= seq))
      return 1;
  return 0;
}

/* Index of the first live block with p >= x. */
static size_t live_lower(uintptr_t x) {
  size_t lo = 0, hi = g_m.nlive;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (g_m.live[mid].p < x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static mr_stream *stream_at(int i) { return g_streams[i]; }

static void check_stats(void) {
  mr_stats s = MR_STATS_INIT;
  CHECK(mr_stats_get(g_pool, &s) == MR_OK, "mr_stats_get failed");
  CHECK(s.allocs == g_m.allocs, "allocs %" PRIu64 ", model %" PRIu64, s.allocs, g_m.allocs);
  CHECK(s.frees == g_m.frees, "frees %" PRIu64 ", model %" PRIu64, s.frees, g_m.frees);
  CHECK(s.failed_allocs == g_m.failed, "failed_allocs %" PRIu64 ", model %" PRIu64, s.failed_allocs,
        g_m.failed);
  CHECK(s.live_blocks == g_m.nlive, "live_blocks %" PRIu64 ", model %zu", s.live_blocks, g_m.nlive);
  CHECK(s.bytes_in_use == g_m.in_use, "bytes_in_use %" PRIu64 ", model %" PRIu64, s.bytes_in_use,
        g_m.in_use);
  CHECK(s.bytes_requested == g_m.requested, "bytes_requested %" PRIu64 ", model %" PRIu64,
        s.bytes_requested, g_m.requested);
  CHECK(s.peak_in_use == g_m.peak_in_use, "peak_in_use %" PRIu64 ", model %" PRIu64, s.peak_in_use,
        g_m.peak_in_use);
  CHECK(s.peak_requested == g_m.peak_requested, "peak_requested %" PRIu64 ", model %" PRIu64,
        s.peak_requested, g_m.peak_requested);
  CHECK(s.bytes_reserved == g_rec->live_bytes, "bytes_reserved %" PRIu64 ", upstream %" PRIu64,
        s.bytes_reserved, g_rec->live_bytes);
  CHECK(s.peak_reserved == g_rec->peak_bytes, "peak_reserved %" PRIu64 ", upstream %" PRIu64,
        s.peak_reserved, g_rec->peak_bytes);
  CHECK(s.upstream_allocs == g_rec->allocs, "upstream_allocs %" PRIu64 ", upstream saw %" PRIu64,
        s.upstream_allocs, g_rec->allocs);
  CHECK(s.upstream_frees == g_rec->frees, "upstream_frees %" PRIu64 ", upstream saw %" PRIu64,
        s.upstream_frees, g_rec->frees);
  CHECK(s.bytes_in_use <= s.bytes_reserved, "in use %" PRIu64 " > reserved %" PRIu64,
        s.bytes_in_use, s.bytes_reserved);
  CHECK(g_rec->bad_frees == 0, "the pool freed upstream what it did not get");
  if (g_max_reserve)
    CHECK(s.bytes_reserved <= g_max_reserve, "reserved %" PRIu64 " above maximum_reserve %zu",
          s.bytes_reserved, g_max_reserve);
}

static void check_all_inside(void) {
  for (size_t i = 0; i < g_m.nlive; i++)
    CHECK(recorder_contains(g_rec, (void *)g_m.live[i].p, g_m.live[i].size),
          "live block %#" PRIxPTR " (%zu) outside every upstream segment", g_m.live[i].p,
          g_m.live[i].size);
}

static void check_stream_stats(void) {
  for (int i = 0; i < NMANUAL; i++) {
    mr_stats s = MR_STATS_INIT;
    CHECK(mr_caching_pool_stream_stats(g_pool, g_streams[i], &s) == MR_OK, "stream stats %d", i);
    CHECK(s.allocs == g_m.stream_allocs[i], "stream %d: allocs %" PRIu64 ", model %" PRIu64, i,
          s.allocs, g_m.stream_allocs[i]);
  }
}

static size_t pick_size(pool_rng *r) {
  uint64_t c = pool_rng_below(r, 100);
  if (c < 70)
    return 1 + pool_rng_below(r, 4096);
  if (c < 90)
    return 4096 + pool_rng_below(r, 256 * KiB);
  if (c < 98)
    return 256 * KiB + pool_rng_below(r, 2 * MiB);
  return 2 * MiB + pool_rng_below(r, 10 * MiB);
}

static void do_alloc(pool_rng *r) {
  size_t size = pick_size(r);
  int si = (int)pool_rng_below(r, NSTREAMS);
  mr_stream *s = stream_at(si);
  void *p = NULL;
  mr_status st = mr_alloc_async(g_pool, size, s, &p);
  if (st == MR_ERR_OUT_OF_MEMORY && g_max_reserve) {
    CHECK(p == NULL, "failed alloc left *out set");
    g_m.failed++;
    return;
  }
  CHECK(st == MR_OK, "alloc(%zu) on stream %d: %s", size, si, mr_status_str(st));
  if (g_trace)
    fprintf(stderr, "op %" PRIu64 ": alloc %zu on %d -> %p\n", g_op, size, si, p);
  CHECK(p != NULL, "alloc returned NULL");
  uintptr_t a = (uintptr_t)p, b = a + size;
  CHECK(a % g_align == 0, "%p not aligned to %zu", p, g_align);
  size_t k = live_lower(a);
  CHECK(k == g_m.nlive || g_m.live[k].p >= b,
        "new block %#" PRIxPTR "+%zu overlaps live %#" PRIxPTR "+%zu", a, size, g_m.live[k].p,
        g_m.live[k].size);
  CHECK(k == 0 || g_m.live[k - 1].p + g_m.live[k - 1].size <= a,
        "new block %#" PRIxPTR "+%zu overlaps live %#" PRIxPTR "+%zu", a, size, g_m.live[k - 1].p,
        g_m.live[k - 1].size);
  CHECK(recorder_contains(g_rec, p, size), "new block %p+%zu outside every upstream segment", p,
        size);
  /* stream order: memory freed on t while t's work is pending reaches si only if si was made
   * to wait (WAIT) on an event recorded on t after that free, in this call or an earlier one */
  for (int t = 0; t < NMANUAL; t++) {
    if (t == si)
      continue;
    unsigned long long waited = g_policy == MR_CROSS_STREAM_WAIT && si < NMANUAL
                                    ? manual_stream_waited_seq(s, g_streams[t])
                                    : 0;
    /* a range freed when n events had been recorded is covered by a wait on seq > n */
    CHECK(!rs_overlaps(&g_m.pending[t], a, b, waited),
          "stream %d got %p+%zu, memory freed on stream %d whose work is pending (policy %d)", si,
          p, size, t, (int)g_policy);
  }
  /* stats: what in use grew by is this block's charge */
  mr_stats st2 = MR_STATS_INIT;
  CHECK(mr_stats_get(g_pool, &st2) == MR_OK, "stats");
  CHECK(st2.bytes_in_use >= g_m.in_use + size,
        "bytes_in_use grew by %" PRIu64 " for a %zu-byte block", st2.bytes_in_use - g_m.in_use,
        size);
  uint64_t charged = st2.bytes_in_use - g_m.in_use;
  /* The whole block (rounding slack included) now belongs to this allocation: what was pending
   * there is this stream's business from now on. */
  for (int t = 0; t < NMANUAL; t++)
    rs_subtract(&g_m.pending[t], a, a + charged);
  memmove(&g_m.live[k + 1], &g_m.live[k], (g_m.nlive - k) * sizeof g_m.live[0]);
  g_m.live[k] = (blk){a, size, charged, si};
  g_m.nlive++;
  g_m.allocs++;
  g_m.stream_allocs[si]++;
  g_m.in_use += charged;
  g_m.requested += size;
  if (g_m.in_use > g_m.peak_in_use)
    g_m.peak_in_use = g_m.in_use;
  if (g_m.requested > g_m.peak_requested)
    g_m.peak_requested = g_m.requested;
  /* touch the ends (asan: the memory is really there) */
  ((volatile unsigned char *)p)[0] = 1;
  ((volatile unsigned char *)p)[size - 1] = 2;
}

static void do_free(pool_rng *r) {
  if (!g_m.nlive)
    return;
  size_t k = pool_rng_below(r, g_m.nlive);
  blk bl = g_m.live[k];
  int si = pool_rng_below(r, 5) ? bl.stream : (int)pool_rng_below(r, NSTREAMS);
  if (g_trace)
    fprintf(stderr, "op %" PRIu64 ": free %#" PRIxPTR " %zu (from %d) on %d\n", g_op, bl.p, bl.size,
            bl.stream, si);
  unsigned long long recorded = 0; /* an event recorded by this free on si covers the block */
  if (si < NMANUAL) {              /* the block's last use is work in flight on that stream */
    manual_stream_submit(g_streams[si]);
    recorded = manual_stream_recorded(g_streams[si]);
  }
  mr_status st = mr_free_async(g_pool, (void *)bl.p, bl.size, stream_at(si));
  CHECK(st == MR_OK, "free(%#" PRIxPTR ", %zu) on stream %d: %s", bl.p, bl.size, si,
        mr_status_str(st));
  memmove(&g_m.live[k], &g_m.live[k + 1], (g_m.nlive - k - 1) * sizeof g_m.live[0]);
  g_m.nlive--;
  g_m.frees++;
  g_m.in_use -= bl.charged;
  g_m.requested -= bl.size;
  if (si < NMANUAL)
    rs_add(&g_m.pending[si], bl.p, bl.p + bl.size, recorded);
}

static void run_model(const config *c) {
  unsigned long long ops = pool_test_ops(1000000);
  g_seed = pool_test_seed(c->default_seed);
  g_trace = (int)pool_env_ull("MEMRES_TEST_TRACE", 0);
  fprintf(stderr,
          "pool_model/%s: seed %" PRIu64 " ops %llu (MEMRES_TEST_SEED=%" PRIu64 " reproduces)\n",
          c->name, g_seed, ops, g_seed);
  cr_log_info("pool_model/%s: seed %" PRIu64 " ops %llu", c->name, g_seed, ops);
  pool_rng r;
  pool_rng_seed(&r, g_seed);

  for (int i = 0; i < NMANUAL; i++)
    cr_assert_eq(manual_stream_create(&g_streams[i]), MR_OK);
  g_streams[NMANUAL] = NULL;
  mr_caching_pool_options o = c->opts;
  o.stats_slack = 1;
  g_align = o.alignment ? o.alignment : 256;
  /* Upstream aligned like the pool, so upstream counters compare exactly (the less-aligned case
   * is covered by test_pool_streams less_aligned_upstream_counts_and_maximum). */
  cr_assert_eq(recorder_create(&g_up, &g_rec, NULL, g_align, 0), MR_OK);
  g_policy = o.cross_stream;
  g_max_reserve = o.maximum_reserve;
  cr_assert_eq(mr_caching_pool_create(&g_pool, g_up, &o), MR_OK, "%s", mr_last_error());

  uint64_t rec_frees = g_rec->frees;
  for (g_op = 0; g_op < ops; g_op++) {
    uint64_t c100 = pool_rng_below(&r, 1000);
    if (c100 < 480 && g_m.nlive < MAX_LIVE)
      do_alloc(&r);
    else if (c100 < 950)
      do_free(&r);
    else if (c100 < 990) {
      int t = (int)pool_rng_below(&r, NMANUAL);
      manual_stream_complete(g_streams[t]);
      g_m.pending[t].n = 0;
      if (g_trace)
        fprintf(stderr, "op %" PRIu64 ": complete %d\n", g_op, t);
    } else {
      size_t keep = pool_rng_below(&r, 2) ? 0 : pool_rng_below(&r, 32 * MiB);
      CHECK(mr_trim(g_pool, keep) == MR_OK, "trim(%zu)", keep);
      if (g_trace)
        fprintf(stderr, "op %" PRIu64 ": trim %zu\n", g_op, keep);
    }
    check_stats();
    if (g_rec->frees != rec_frees) { /* segments went back: every live block still inside? */
      check_all_inside();
      rec_frees = g_rec->frees;
    }
    if (g_op < 2000 || g_op % 1000 == 0) {
      CHECK(mr_caching_pool_validate(g_pool) == MR_OK, "validate");
      if (g_op % 1000 == 0)
        check_stream_stats();
    }
  }
  /* drain: free everything, complete every stream, trim: nothing left anywhere */
  while (g_m.nlive)
    do_free(&r);
  for (int i = 0; i < NMANUAL; i++)
    manual_stream_complete(g_streams[i]);
  check_stats();
  CHECK(mr_trim(g_pool, 0) == MR_OK, "final trim");
  CHECK(mr_caching_pool_validate(g_pool) == MR_OK, "final validate");
  mr_stats s = MR_STATS_INIT;
  CHECK(mr_stats_get(g_pool, &s) == MR_OK, "stats");
  CHECK(s.bytes_reserved == 0, "after trim(0) with nothing live: reserved %" PRIu64,
        s.bytes_reserved);
  mr_allocator_release(g_pool);
  CHECK(recorder_live_segments(g_rec) == 0, "segments left upstream after destroy");
  CHECK(g_rec->bad_frees == 0, "bad upstream frees");
  mr_allocator_release(g_up);
  for (int i = 0; i < NMANUAL; i++) {
    mr_stream_release(g_streams[i]);
    free(g_m.pending[i].v);
  }
  fprintf(stderr,
          "pool_model/%s: %" PRIu64 " allocs (%" PRIu64 " failed), %" PRIu64 " frees, %" PRIu64
          " upstream allocs, peak reserved %" PRIu64 "\n",
          c->name, g_m.allocs, g_m.failed, g_m.frees, s.upstream_allocs, s.peak_reserved);
}

Test(pool_model, events_defaults) {
  run_model(&(config){"events_defaults", 1, {.cross_stream = MR_CROSS_STREAM_EVENTS}});
}

Test(pool_model, wait_tight_segments) {
  run_model(&(config){"wait_tight_segments",
                      2,
                      {.cross_stream = MR_CROSS_STREAM_WAIT,
                       .small_limit = 64 * KiB,
                       .small_segment = 256 * KiB,
                       .large_segment_min = 1 * MiB,
                       .growth = MR_GROWTH_EXACT,
                       .release_threshold = 8 * MiB,
                       .front_cache_bytes = 1 * MiB,
                       .alignment = 512}});
}

Test(pool_model, none_double_nofront) {
  run_model(&(config){"none_double_nofront",
                      3,
                      {.cross_stream = MR_CROSS_STREAM_NONE,
                       .growth = MR_GROWTH_DOUBLE,
                       .front_cache_bytes = 1 /* none in effect */,
                       .alignment = 4096}});
}

Test(pool_model, events_maximum_reserve) {
  run_model(&(config){"events_maximum_reserve",
                      4,
                      {.cross_stream = MR_CROSS_STREAM_EVENTS,
                       .maximum_reserve = 96 * MiB,
                       .large_segment_min = 4 * MiB,
                       .growth = MR_GROWTH_FIXED}});
}

/* Alignment 16: a block of 1 MiB or more has more units than a live-map slot keeps, so about a
 * tenth of the blocks take the escaped path (their sizes in the record) through every operation
 * of the model: frees on other streams, hot blocks taken back, trims. */
Test(pool_model, events_align16_escapes) {
  run_model(&(config){
      "events_align16_escapes", 5, {.cross_stream = MR_CROSS_STREAM_EVENTS, .alignment = 16}});
}
