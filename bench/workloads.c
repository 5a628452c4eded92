/* memres-bench: the workloads. Each replays the same seeded sequence for every allocator.
 *
 * pair     alloc + free of one size (256 B, 64 KiB, 4 MiB); one op = one pair.
 * random   RMM's random_allocations: up to N live blocks, sizes uniform in [1, max], alloc or
 *          free with equal odds (alloc when empty, free when full, a random live block freed).
 *          Setup fills N/2 blocks, then walks 10 N steps of the sequence (neither timed): right
 *          after the fill the blocks lie packed in address order and an allocator is still
 *          settling (a caching pool at 1e5 splits and merges 2.5 times as often as later, and
 *          still grows). The walk stops at 250 ms (an allocator that slow is cut short, and the
 *          table says so). The timed repetitions then walk around N/2 live in the steady state,
 *          so the cost is that of an allocator holding about N/2 blocks. Each step prefetches
 *          the entry of the bench's own array that the next step frees (see random_rep).
 * phases   an engine iteration: 32 buffers of 1-8 MiB allocated, then freed in reverse.
 * streams  4 streams, 32 blocks of 4 KiB-1 MiB: freed on one stream, an event recorded there,
 *          the next stream waits on it, the blocks are allocated on that next stream.
 * threads, context: workloads_mt.c. This file holds the table of all of them. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mr_status bench_fail(bench_run *r, mr_status st, const char *what) {
  if (!r->note[0])
    snprintf(r->note, sizeof r->note, "%s: %s", what, mr_last_error());
  return st;
}

static inline void req_add(bench_run *r, size_t bytes) {
  r->req += bytes;
  if (r->req > r->req_peak)
    r->req_peak = r->req;
}

static inline void req_sub(bench_run *r, size_t bytes) { r->req -= bytes; }

uint64_t bench_case_seed(uint64_t seed, int wl, size_t p1, size_t p2) {
  uint64_t x = seed ^ ((uint64_t)wl << 56) ^ ((uint64_t)p1 * 0x9e3779b97f4a7c15u) ^ (p2 << 1);
  return bench_splitmix(&x);
}

/* Records a failed alloc or free of `size` bytes (off the timed path). */
static __attribute__((noinline)) mr_status op_fail(bench_run *r, mr_status st, const char *op,
                                                   size_t size) {
  char what[64];
  snprintf(what, sizeof what, "%s(%zu)", op, size);
  return bench_fail(r, st, what);
}

static mr_status b_alloc(bench_run *r, bstream *s, size_t size, void **p) {
  mr_status st = r->a->d->alloc(r->a, size, s, p);
  if (st != MR_OK) {
    *p = NULL;
    return op_fail(r, st, "alloc", size);
  }
  req_add(r, size);
  return MR_OK;
}

static mr_status b_free(bench_run *r, bstream *s, void *p, size_t size) {
  mr_status st = r->a->d->free(r->a, p, size, s);
  if (st != MR_OK)
    return op_fail(r, st, "free", size);
  req_sub(r, size);
  return MR_OK;
}

void bench_put_case(bench_case *out, size_t cap, size_t *n, int wl, size_t p1, size_t p2,
                    uint64_t peak, uint64_t max_iters, const char *params) {
  if (*n >= cap)
    return;
  bench_case *c = &out[(*n)++];
  memset(c, 0, sizeof *c);
  c->wl = wl;
  c->p1 = p1;
  c->p2 = p2;
  c->peak = peak;
  c->max_iters = max_iters;
  snprintf(c->params, sizeof c->params, "%s", params);
}

/* ---- pair ------------------------------------------------------------------------------------ */
typedef struct one_stream_state {
  bstream s;
  bool open;
} one_stream_state;

static size_t pair_cases(const bench_opts *o, int wl, bench_case *out, size_t cap) {
  static const size_t sizes[] = {256, 64 * BENCH_KIB, 4 * BENCH_MIB};
  size_t n = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char p[32];
    bench_fmt_bytes(p, sizeof p, sizes[i]);
    bench_put_case(out, cap, &n, wl, sizes[i], 0, sizes[i], o->quick ? 200000 : 2000000, p);
  }
  return n;
}

/* A zeroed state of `size` bytes that starts with a one_stream_state, its stream open. */
static mr_status open_state(bench_run *r, size_t size) {
  one_stream_state *st = calloc(1, size);
  if (!st)
    return bench_fail(r, MR_ERR_OUT_OF_MEMORY, "bench state");
  r->st = st;
  mr_status s = r->a->d->stream_open(r->a, &st->s);
  if (s != MR_OK)
    return bench_fail(r, s, "stream");
  st->open = true;
  return MR_OK;
}

static mr_status one_stream_setup(bench_run *r) { return open_state(r, sizeof(one_stream_state)); }

static void one_stream_teardown(bench_run *r) {
  one_stream_state *st = r->st;
  if (!st)
    return;
  if (st->open)
    r->a->d->stream_close(r->a, &st->s);
  free(st);
  r->st = NULL;
}

static mr_status pair_rep(bench_run *r, uint64_t iters, uint64_t *ops) {
  one_stream_state *st = r->st;
  size_t size = r->c->p1;
  *ops = 0;
  for (uint64_t i = 0; i < iters; i++) {
    void *p;
    mr_status s = b_alloc(r, &st->s, size, &p);
    if (s != MR_OK)
      return s;
    s = b_free(r, &st->s, p, size);
    if (s != MR_OK)
      return s;
  }
  *ops = iters;
  return MR_OK;
}

/* ---- random ---------------------------------------------------------------------------------- */
typedef struct rblock {
  void *p;
  size_t size;
} rblock;

/* A step's two draws: every step takes both, whatever it decides. */
typedef struct rdraw {
  uint64_t u, v;
} rdraw;

static inline rdraw random_draw(bench_rng *rng) {
  rdraw d;
  d.u = bench_rng_next(rng);
  d.v = bench_rng_next(rng);
  return d;
}

typedef struct random_state {
  bstream s;
  bool open;
  bench_rng rng;
  rdraw next; /* the draws of the next step (taken one step ahead: see random_rep) */
  rblock *live;
  size_t n_live;
} random_state;

/* One step of the sequence from its draws: the same draws whatever is decided, so every allocator
 * (and the dry run below) sees the same sizes and choices. Returns 1 for alloc (size in *size),
 * 0 for free (index in *idx). */
static inline int random_step(rdraw d, size_t n_live, size_t n_max, size_t max, size_t *size,
                              size_t *idx) {
  uint64_t u = d.u, v = d.v;
  *size = 1 + (size_t)((u >> 1) % max);
  int alloc = (int)(u & 1);
  if (n_live == 0)
    alloc = 1;
  else if (n_live >= n_max)
    alloc = 0;
  if (!alloc)
    *idx = (size_t)(v % n_live);
  return alloc;
}

static inline size_t random_fill_size(bench_rng *rng, size_t max) {
  return 1 + (size_t)((bench_rng_next(rng) >> 1) % max);
}

/* The peak of requested bytes over the fill and `ops` steps of the seeded sequence. */
static uint64_t random_dry_peak(uint64_t seed, size_t n_max, size_t max, uint64_t ops) {
  size_t *sizes = malloc(n_max * sizeof *sizes);
  if (!sizes)
    return (uint64_t)n_max * max;
  bench_rng rng;
  bench_rng_seed(&rng, seed);
  uint64_t cur = 0, peak = 0;
  size_t n = 0;
  for (; n < n_max / 2; n++) {
    sizes[n] = random_fill_size(&rng, max);
    cur += sizes[n];
  }
  peak = cur;
  for (uint64_t i = 0; i < ops; i++) {
    size_t size, idx = 0;
    if (random_step(random_draw(&rng), n, n_max, max, &size, &idx)) {
      sizes[n++] = size;
      cur += size;
      if (cur > peak)
        peak = cur;
    } else {
      cur -= sizes[idx];
      sizes[idx] = sizes[--n];
    }
  }
  free(sizes);
  return peak;
}

static size_t random_cases(const bench_opts *o, int wl, bench_case *out, size_t cap) {
  static const size_t ns[] = {1000, 10000, 100000};
  static const size_t maxes[] = {1 * BENCH_MIB, 4 * BENCH_MIB, 64 * BENCH_MIB};
  static const char *const nnames[] = {"1e3", "1e4", "1e5"};
  size_t n = 0;
  uint64_t max_iters = o->quick ? 20000 : 1000000;
  for (size_t i = 0; i < 3; i++) {
    if (o->quick && i > 0)
      break;
    for (size_t j = 0; j < 3; j++) {
      if (o->quick && j > 1)
        break;
      char p[48], m[16];
      bench_fmt_bytes(m, sizeof m, maxes[j]);
      snprintf(p, sizeof p, "N=%s max=%s", nnames[i], m);
      /* the walk after the fill, then calibration (< 2 x max_iters), the warm-up repetitions
       * (at most 2) and the timed ones, at most */
      uint64_t bound = (uint64_t)(o->reps + 4) * max_iters + BENCH_WARM_STEPS_PER_BLOCK * ns[i];
      uint64_t seed = bench_case_seed(o->seed, wl, ns[i], maxes[j]);
      bench_put_case(out, cap, &n, wl, ns[i], maxes[j],
                     random_dry_peak(seed, ns[i], maxes[j], bound), max_iters, p);
    }
  }
  return n;
}

static mr_status random_rep(bench_run *r, uint64_t iters, uint64_t *ops);

/* The untimed walk after the fill (see the top of the file), in chunks, until its steps are done
 * or its time is up. */
static mr_status random_warm_up(bench_run *r) {
  const uint64_t steps = BENCH_WARM_STEPS_PER_BLOCK * (uint64_t)r->c->p1;
  const uint64_t end = bench_now_ns() + (uint64_t)BENCH_WARM_LIMIT_MS * 1000000u;
  while (r->warm_steps < steps) {
    uint64_t chunk = steps - r->warm_steps, done = 0;
    if (chunk > 4096)
      chunk = 4096;
    mr_status s = random_rep(r, chunk, &done);
    r->warm_steps += done;
    if (s != MR_OK)
      return s;
    if (r->warm_steps < steps && bench_now_ns() > end) {
      r->warm_cut = true;
      break;
    }
  }
  return MR_OK;
}

static mr_status random_setup(bench_run *r) {
  random_state *st = calloc(1, sizeof *st);
  if (!st)
    return bench_fail(r, MR_ERR_OUT_OF_MEMORY, "bench state");
  r->st = st;
  size_t n_max = r->c->p1, max = r->c->p2;
  st->live = malloc(n_max * sizeof *st->live);
  if (!st->live)
    return bench_fail(r, MR_ERR_OUT_OF_MEMORY, "bench state");
  mr_status s = r->a->d->stream_open(r->a, &st->s);
  if (s != MR_OK)
    return bench_fail(r, s, "stream");
  st->open = true;
  bench_rng_seed(&st->rng, bench_case_seed(r->seed, r->c->wl, n_max, max));
  for (size_t i = 0; i < n_max / 2; i++) {
    size_t size = random_fill_size(&st->rng, max);
    s = b_alloc(r, &st->s, size, &st->live[st->n_live].p);
    if (s != MR_OK)
      return s;
    st->live[st->n_live++].size = size;
    /* give up past the limit, or early when the fill, at the rate so far, would take one and a
     * half times that: an allocator that slow (cudaHostAlloc of GiBs) spends as long again
     * freeing it. (At twice, on a slow VM three pinned cases of 1e4/4 MiB each filled for 3 s
     * before giving up, and the whole run took 62 s.) */
    size_t done = i + 1;
    if ((done & (done - 1)) == 0 || (done & 255) == 0) {
      uint64_t now = bench_now_ns(), limit = (uint64_t)BENCH_SETUP_LIMIT_MS * 1000000u;
      double projected = (double)(now - r->start_ns) * (double)(n_max / 2) / (double)done;
      if ((done >= 32 && projected > 1.5 * (double)limit) || now > r->start_ns + limit) {
        r->skipped = true;
        snprintf(r->note, sizeof r->note,
                 "skipped: filling %zu blocks would take %.1f s (over %d s; %zu done)", n_max / 2,
                 projected / 1e9, BENCH_SETUP_LIMIT_MS / 1000, done);
        return MR_OK;
      }
    }
  }
  st->next = random_draw(&st->rng);
  if ((s = random_warm_up(r)) != MR_OK)
    return s;
  if (r->a->d->sync) {
    s = r->a->d->sync(r->a);
    if (s != MR_OK)
      return bench_fail(r, s, "sync");
  }
  return MR_OK;
}

/* The harness's own cost must not grow with N: its array of live blocks (16 bytes a block, 1.6 MB
 * at 1e5) is out of cache like any allocator's state, and a free would wait on the array before
 * the allocator could even start. So each step draws the next one's numbers first and prefetches
 * the entry that step will free (the allocator's call then overlaps that load). The sequence is
 * the same: the draws are only taken one step earlier. */
static mr_status random_rep(bench_run *r, uint64_t iters, uint64_t *ops) {
  random_state *st = r->st;
  size_t n_max = r->c->p1, max = r->c->p2;
  *ops = 0;
  for (uint64_t i = 0; i < iters; i++) {
    size_t size, idx = 0, nsize, nidx = 0;
    mr_status s;
    const rdraw d = st->next;
    st->next = random_draw(&st->rng);
    const int alloc = random_step(d, st->n_live, n_max, max, &size, &idx);
    const size_t n_after = alloc ? st->n_live + 1 : st->n_live - 1;
    if (!random_step(st->next, n_after, n_max, max, &nsize, &nidx))
      __builtin_prefetch(&st->live[nidx]);
    if (alloc) {
      s = b_alloc(r, &st->s, size, &st->live[st->n_live].p);
      if (s != MR_OK)
        return s;
      st->live[st->n_live++].size = size;
    } else {
      rblock b = st->live[idx];
      st->live[idx] = st->live[--st->n_live];
      s = b_free(r, &st->s, b.p, b.size);
      if (s != MR_OK)
        return s;
    }
    ++*ops;
  }
  return MR_OK;
}

static void random_teardown(bench_run *r) {
  random_state *st = r->st;
  if (!st)
    return;
  while (st->n_live) {
    rblock b = st->live[--st->n_live];
    (void)b_free(r, &st->s, b.p, b.size);
  }
  if (st->open)
    r->a->d->stream_close(r->a, &st->s);
  free(st->live);
  free(st);
  r->st = NULL;
}

/* ---- phases ---------------------------------------------------------------------------------- */
#define PHASE_BUFS 32

typedef struct phases_state {
  one_stream_state one; /* first: one_stream_teardown closes and frees it */
  size_t size[PHASE_BUFS];
  void *p[PHASE_BUFS];
} phases_state;

static void phases_sizes(uint64_t seed, size_t *size) {
  bench_rng rng;
  bench_rng_seed(&rng, seed);
  for (int i = 0; i < PHASE_BUFS; i++)
    size[i] = (size_t)bench_rng_range(&rng, BENCH_MIB, 8 * BENCH_MIB);
}

static size_t phases_cases(const bench_opts *o, int wl, bench_case *out, size_t cap) {
  size_t size[PHASE_BUFS], n = 0;
  uint64_t peak = 0;
  phases_sizes(bench_case_seed(o->seed, wl, 0, 0), size);
  for (int i = 0; i < PHASE_BUFS; i++)
    peak += size[i];
  bench_put_case(out, cap, &n, wl, 0, 0, peak, o->quick ? 5000 : 100000, "32 x 1-8MiB");
  return n;
}

static mr_status phases_setup(bench_run *r) {
  mr_status s = open_state(r, sizeof(phases_state));
  if (s == MR_OK) {
    phases_state *st = r->st;
    phases_sizes(bench_case_seed(r->seed, r->c->wl, 0, 0), st->size);
  }
  return s;
}

static mr_status phases_rep(bench_run *r, uint64_t iters, uint64_t *ops) {
  phases_state *st = r->st;
  *ops = 0;
  for (uint64_t it = 0; it < iters; it++) {
    mr_status s = MR_OK;
    int i = 0;
    for (; i < PHASE_BUFS; i++)
      if ((s = b_alloc(r, &st->one.s, st->size[i], &st->p[i])) != MR_OK)
        break;
    while (i-- > 0) { /* free what was allocated, even after a failure */
      mr_status f = b_free(r, &st->one.s, st->p[i], st->size[i]);
      if (s == MR_OK)
        s = f;
    }
    if (s != MR_OK)
      return s;
    *ops += 2 * PHASE_BUFS;
  }
  return MR_OK;
}

/* ---- streams --------------------------------------------------------------------------------- */
#define XS_STREAMS 4
#define XS_BLOCKS 32

typedef struct xstreams_state {
  bstream s[XS_STREAMS];
  int n_open;
  size_t size[XS_BLOCKS];
  void *p[XS_BLOCKS];
  bool live;
  unsigned cur; /* the stream the live blocks were allocated on */
} xstreams_state;

static void xstreams_sizes(uint64_t seed, size_t *size) {
  bench_rng rng;
  bench_rng_seed(&rng, seed);
  for (int i = 0; i < XS_BLOCKS; i++)
    size[i] = (size_t)bench_rng_range(&rng, 4 * BENCH_KIB, BENCH_MIB);
}

static size_t xstreams_cases(const bench_opts *o, int wl, bench_case *out, size_t cap) {
  size_t size[XS_BLOCKS], n = 0;
  uint64_t peak = 0;
  xstreams_sizes(bench_case_seed(o->seed, wl, 0, 0), size);
  for (int i = 0; i < XS_BLOCKS; i++)
    peak += size[i];
  bench_put_case(out, cap, &n, wl, XS_STREAMS, XS_BLOCKS, peak, o->quick ? 5000 : 100000,
                 "4 streams x 32 blocks");
  return n;
}

static mr_status xstreams_setup(bench_run *r) {
  xstreams_state *st = calloc(1, sizeof *st);
  if (!st)
    return bench_fail(r, MR_ERR_OUT_OF_MEMORY, "bench state");
  r->st = st;
  xstreams_sizes(bench_case_seed(r->seed, r->c->wl, 0, 0), st->size);
  for (; st->n_open < XS_STREAMS; st->n_open++) {
    mr_status s = r->a->d->stream_open(r->a, &st->s[st->n_open]);
    if (s != MR_OK)
      return bench_fail(r, s, "stream");
  }
  for (int i = 0; i < XS_BLOCKS; i++) {
    mr_status s = b_alloc(r, &st->s[0], st->size[i], &st->p[i]);
    if (s != MR_OK) {
      while (i-- > 0)
        (void)b_free(r, &st->s[0], st->p[i], st->size[i]);
      return s;
    }
  }
  st->live = true;
  return MR_OK;
}

static mr_status xstreams_rep(bench_run *r, uint64_t iters, uint64_t *ops) {
  xstreams_state *st = r->st;
  *ops = 0;
  for (uint64_t it = 0; it < iters; it++) {
    bstream *from = &st->s[st->cur], *to = &st->s[(st->cur + 1) % XS_STREAMS];
    mr_status s;
    for (int i = 0; i < XS_BLOCKS; i++)
      if ((s = b_free(r, from, st->p[i], st->size[i])) != MR_OK)
        return s; /* the blocks not freed leak; the allocator is closed after an error */
    st->live = false;
    if ((s = r->a->d->handoff(r->a, from, to)) != MR_OK)
      return bench_fail(r, s, "event record / stream wait");
    for (int i = 0; i < XS_BLOCKS; i++) {
      if ((s = b_alloc(r, to, st->size[i], &st->p[i])) != MR_OK) {
        while (i-- > 0)
          (void)b_free(r, to, st->p[i], st->size[i]);
        return s;
      }
    }
    st->live = true;
    st->cur = (st->cur + 1) % XS_STREAMS;
    *ops += 2 * XS_BLOCKS;
  }
  return MR_OK;
}

static void xstreams_teardown(bench_run *r) {
  xstreams_state *st = r->st;
  if (!st)
    return;
  if (st->live)
    for (int i = 0; i < XS_BLOCKS; i++)
      (void)b_free(r, &st->s[st->cur], st->p[i], st->size[i]);
  while (st->n_open > 0)
    r->a->d->stream_close(r->a, &st->s[--st->n_open]);
  free(st);
  r->st = NULL;
}

/* ---- the table ------------------------------------------------------------------------------- */
static const bench_workload k_workloads[] = {
    {"pair", "pair", "alloc + free of one size: 256B, 64KiB, 4MiB", true, pair_cases,
     one_stream_setup, pair_rep, one_stream_teardown},
    {"random", "op", "RMM random_allocations: N live blocks (1e3-1e5), sizes in [1, max]", true,
     random_cases, random_setup, random_rep, random_teardown},
    {"phases", "op", "32 buffers of 1-8 MiB allocated, then freed in reverse", true, phases_cases,
     phases_setup, phases_rep, one_stream_teardown},
    {"streams", "op", "4 streams: blocks freed on one, allocated on the next (event + wait)", true,
     xstreams_cases, xstreams_setup, xstreams_rep, xstreams_teardown},
    {"threads", "op", "1..cores threads, own streams, one shared allocator, 16 live blocks each",
     true, bench_threads_cases, bench_threads_setup, bench_threads_rep, bench_threads_teardown},
    {"context", "op", "guard push + pop of a stream and two allocators; each accessor", false,
     bench_context_cases, bench_context_setup, bench_context_rep, bench_context_teardown},
};

size_t bench_workload_count(void) { return sizeof k_workloads / sizeof k_workloads[0]; }

const bench_workload *bench_workload_at(size_t i) {
  return i < bench_workload_count() ? &k_workloads[i] : NULL;
}

int bench_workload_find(const char *name) {
  for (size_t i = 0; i < bench_workload_count(); i++)
    if (strcmp(k_workloads[i].name, name) == 0)
      return (int)i;
  return -1;
}
