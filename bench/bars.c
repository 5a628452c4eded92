/* memres-bench --bars: the bars of the benchmark's issue, measured so that a ratio compares its
 * two sides under the same conditions.
 *
 * In the table's run a ratio's two sides are measured seconds apart (random 1e3 and 1e5 minutes
 * apart), and on a shared machine (a VM) the speed of the memory and of a vCPU changes in that
 * time: a ratio then compares two moments as much as two allocators. Here both sides of a bar are
 * set up, calibrated and warmed up first, then their timed repetitions alternate (A B, B A, A B,
 * ...), each pair's ratio is taken, and the bar is judged on the median of those ratios. Each
 * timed repetition follows an untimed quarter of one of the same side (bench_meas_rewarm): timed
 * right after the other side, a side would pay for bringing its state back into the caches,
 * which the table's back-to-back repetitions do not (at random 1e5 that is a 1 MiB live map and
 * 1e5 block records against 1e3's few hundred KiB). The bars
 * with one side (the guard's ns) take the median of their repetitions. Peak reserved over peak in
 * use comes from the random bars' pools at the end of their measurements. Two rows are no bars
 * but references, measured the same way: glibc malloc's own speedup on 8 threads, and the guard's
 * time over a malloc + free pair's: what this machine gives, to read the bars above them by.
 *
 * Repetitions: 11 pairs unless --reps says otherwise; --rep-ms and --seed as in the table's run.
 * Without a GPU the GPU bars say so and the host ones run. Bars not met do not change the exit
 * status: this is a measurement, not a test. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#define BARS_DEFAULT_PAIRS 11

typedef struct bar_side {
  const char *workload; /* NULL: the bar has no second side */
  size_t p1, p2;        /* the case, as the workload's cases list it (bench_case.p1, p2) */
  const char *alloc;    /* NULL: the workload uses no allocator (context) */
} bar_side;

typedef struct bar_def {
  const char *what;  /* what the figure is */
  bar_side a, b;     /* the figure: a's ns/op over b's (a's ns/op when b has no workload) */
  double limit;      /* the bar */
  bool at_least;     /* met when figure >= limit (else figure <= limit) */
  const char *shown; /* the bar as printed */
  bool ref;          /* no bar: the machine's own figure, to read the bar above it by */
} bar_def;

/* The context workload's guard case (workloads_mt.c lists it first). */
#define CX_GUARD_CASE 0

static const bar_def k_bars[] = {
    {"pair 256B: pool-device / cudaMallocAsync",
     {"pair", 256, 0, "pool-device"},
     {"pair", 256, 0, "cudaMallocAsync"},
     1.0 / 30,
     false,
     "<= 1/30",
     false},
    {"random 1e3 4MiB: pool-device / cudaMallocAsync",
     {"random", 1000, 4 * BENCH_MIB, "pool-device"},
     {"random", 1000, 4 * BENCH_MIB, "cudaMallocAsync"},
     1.0 / 10,
     false,
     "<= 1/10",
     false},
    {"random 1MiB, pool-device: 1e5 / 1e3",
     {"random", 100000, BENCH_MIB, "pool-device"},
     {"random", 1000, BENCH_MIB, "pool-device"},
     1.5,
     false,
     "<= 1.5",
     false},
    {"phases: pool-device / cudaMallocAsync",
     {"phases", 0, 0, "pool-device"},
     {"phases", 0, 0, "cudaMallocAsync"},
     1.0 / 20,
     false,
     "<= 1/20",
     false},
    {"pair 256B: pool-pinned / cudaHostAlloc",
     {"pair", 256, 0, "pool-pinned"},
     {"pair", 256, 0, "pinned"},
     1e-4,
     false,
     "<= 1/10000",
     false},
    {"pair 64KiB: pool-pinned / cudaHostAlloc",
     {"pair", 64 * BENCH_KIB, 0, "pool-pinned"},
     {"pair", 64 * BENCH_KIB, 0, "pinned"},
     1e-4,
     false,
     "<= 1/10000",
     false},
    {"pair 4MiB: pool-pinned / cudaHostAlloc",
     {"pair", 4 * BENCH_MIB, 0, "pool-pinned"},
     {"pair", 4 * BENCH_MIB, 0, "pinned"},
     1e-4,
     false,
     "<= 1/10000",
     false},
    {"threads, pool-device: 8 threads' ops/s / 1's",
     {"threads", 1, 0, "pool-device"},
     {"threads", 8, 0, "pool-device"},
     6,
     true,
     ">= 6",
     false},
    {"threads, pool-pinned: 8 threads' ops/s / 1's",
     {"threads", 1, 0, "pool-pinned"},
     {"threads", 8, 0, "pool-pinned"},
     6,
     true,
     ">= 6",
     false},
    {"threads, pool-host: 8 threads' ops/s / 1's",
     {"threads", 1, 0, "pool-host"},
     {"threads", 8, 0, "pool-host"},
     6,
     true,
     ">= 6",
     false},
    /* glibc malloc's own speedup (per-thread caches, nothing shared on its fast path): what the
     * machine gives 8 threads against 1 at all. On the H100 VMs it was 5.6-7.4 in table runs. */
    {"threads, malloc: 8 threads' ops/s / 1's",
     {"threads", 1, 0, "malloc"},
     {"threads", 8, 0, "malloc"},
     0,
     true,
     "reference",
     true},
    {"context: guard push + pop of 3 items, ns",
     {"context", CX_GUARD_CASE, 0, NULL},
     {NULL, 0, 0, NULL},
     15,
     false,
     "<= 15 ns",
     false},
    /* The guard in a yardstick of the same CPU, alternated with it: the same code took 11-18 ns
     * on the CPU machine and 14-35 ns on the H100 VMs, and a malloc + free pair moved with it. */
    {"guard ns / malloc's 256B pair ns",
     {"context", CX_GUARD_CASE, 0, NULL},
     {"pair", 256, 0, "malloc"},
     0,
     false,
     "reference",
     true},
};
#define N_BARS (sizeof k_bars / sizeof k_bars[0])
#define RSV_BAR 1.10

/* Every workload's cases, as the full run lists them (whatever --quick says; random's peaks
 * bounded for this run's repetitions), listed once: random's dry runs take a while. */
typedef struct case_table {
  bench_case c[64];
  size_t n;
} case_table;

static void list_cases(case_table *t, const bench_opts *o, int pairs) {
  bench_opts full = *o;
  full.quick = false;
  full.reps = pairs;
  t->n = 0;
  for (size_t w = 0; w < bench_workload_count(); w++)
    t->n += bench_workload_at(w)->cases(&full, (int)w, t->c + t->n, 64 - t->n);
}

static const bench_case *find_case(const case_table *t, const bar_side *s) {
  int wl = bench_workload_find(s->workload);
  for (size_t i = 0; wl >= 0 && i < t->n; i++)
    if (t->c[i].wl == wl && t->c[i].p1 == s->p1 && t->c[i].p2 == s->p2)
      return &t->c[i];
  return NULL;
}

typedef struct bar_out {
  const bar_def *def;
  bool ran;
  char why[300];              /* not run: why; or a side's error */
  bench_result ra, rb;        /* each side's figures (rb unused for one-sided bars); their c
                               * points into the case table, which outlives them */
  double fig[BENCH_MAX_REPS]; /* each pair's figure */
  double med, min, max;       /* of fig */
  int n;                      /* pairs done */
  bool met;
} bar_out;

static void side_name(char *buf, size_t len, const bar_side *s, const bench_case *c) {
  snprintf(buf, len, "%s %s %s", s->workload, c->params, s->alloc ? s->alloc : "memres");
}

/* Starts side s (its case in c): false with out->why when it cannot run. */
static bool start_side(bar_out *out, bench_meas *m, const bar_side *s, const bench_case *c,
                       const bench_opts *o, bench_result *res, bool gpu) {
  const balloc_desc *d = s->alloc ? bench_allocator_find(s->alloc) : NULL;
  char name[120];
  side_name(name, sizeof name, s, c);
  if (s->alloc && !d) {
    snprintf(out->why, sizeof out->why, "%s: no such allocator in this build", name);
    return false;
  }
  if (d && (d->flags & BA_GPU) && !gpu) {
    snprintf(out->why, sizeof out->why, "needs a GPU");
    return false;
  }
  uint64_t slow_peak = 0;
  if (!bench_meas_start(m, c, d, o, res, &slow_peak)) {
    snprintf(out->why, sizeof out->why, "%s: %.160s", name,
             res->note[0] ? res->note : mr_status_str(res->status));
    return false;
  }
  return true;
}

/* A timed repetition of one side; after the other side's (two), an untimed quarter of one first:
 * each side is timed in its own steady state, as in the table's run, not just after the other
 * side has taken the caches (which costs the side with the larger working set the most). */
static bool rep_side(bar_out *out, bench_meas *m, bench_result *res, int i, const bar_side *s,
                     bool two) {
  uint64_t ops = 0;
  mr_status st = two ? bench_meas_rewarm(m) : MR_OK;
  if (st == MR_OK)
    st = bench_meas_rep(m, &res->rep_ns[i], &ops, &res->rep_upstream[i]);
  if (st == MR_OK)
    return true;
  res->outcome = BENCH_ERROR;
  res->status = st;
  snprintf(out->why, sizeof out->why, "%s %s: %s: %.160s", s->workload, res->c->params,
           mr_status_str(st), m->r.note[0] ? m->r.note : mr_last_error());
  return false;
}

static void run_bar(bar_out *out, const bar_def *b, const case_table *t, const bench_opts *o,
                    int pairs, bool gpu) {
  memset(out, 0, sizeof *out);
  out->def = b;
  const bench_case *ca = find_case(t, &b->a), *cb = b->b.workload ? find_case(t, &b->b) : NULL;
  if (!ca || (b->b.workload && !cb)) {
    snprintf(out->why, sizeof out->why, "its case is not in this build's workloads");
    return;
  }
  bench_meas ma = {0}, mb = {0}; /* not started: bench_meas_end does nothing */
  bool two = b->b.workload != NULL;
  bool ok = start_side(out, &ma, &b->a, ca, o, &out->ra, gpu);
  if (ok && two)
    ok = start_side(out, &mb, &b->b, cb, o, &out->rb, gpu);
  for (int i = 0; ok && i < pairs; i++) {
    /* A B, then B A: neither side always comes right after the other's repetition */
    if (two && i % 2) {
      ok = rep_side(out, &mb, &out->rb, i, &b->b, two) &&
           rep_side(out, &ma, &out->ra, i, &b->a, two);
    } else {
      ok = rep_side(out, &ma, &out->ra, i, &b->a, two) &&
           (!two || rep_side(out, &mb, &out->rb, i, &b->b, two));
    }
    if (ok) {
      double x = out->ra.rep_ns[i];
      out->fig[i] = two ? (out->rb.rep_ns[i] > 0 ? x / out->rb.rep_ns[i] : 0) : x;
      out->n = i + 1;
    }
  }
  if (ok && out->n == pairs) {
    out->ran = true;
    bench_result_summarize(&out->ra, pairs);
    if (two)
      bench_result_summarize(&out->rb, pairs);
    bench_stat3(out->fig, pairs, &out->med, &out->min, &out->max);
    out->met = !b->ref && (b->at_least ? out->med >= b->limit : out->med <= b->limit);
  }
  if (two)
    bench_meas_end(&mb, &out->rb);
  bench_meas_end(&ma, &out->ra);
}

/* A figure as printed: "1/31.9" for a bar below 1 (a fraction of the baseline), "1.52" for one
 * from 1 up, a one-sided bar's ns as they are. */
static void fmt_fig(char *buf, size_t len, double v, const bar_def *b) {
  if (b->b.workload && b->limit < 1 && !b->ref && v > 0)
    snprintf(buf, len, "1/%.*f", 1 / v >= 1000 ? 0 : 1, 1 / v);
  else if (b->b.workload)
    snprintf(buf, len, "%.2f", v);
  else
    snprintf(buf, len, "%.1f", v);
}

/* One bar: the figure (the median), its range over the pairs, whether it is met; then each
 * side's ns/op. A threads bar's figure is 1 thread's ns/op over 8 threads' (wall time per op of
 * all of them): the aggregate's speedup. */
static void print_bar(const bar_out *x) {
  const bar_def *b = x->def;
  if (!x->ran) {
    printf("%-46s %-11s not run: %s\n", b->what, b->shown, x->why[0] ? x->why : "unknown");
    return;
  }
  bool two = b->b.workload != NULL;
  char med[32], lo[32], hi[32], range[80];
  fmt_fig(med, sizeof med, x->med, b);
  fmt_fig(lo, sizeof lo, x->min, b);
  fmt_fig(hi, sizeof hi, x->max, b);
  snprintf(range, sizeof range, "(%s .. %s)", lo, hi);
  printf("%-46s %-11s %-9s %-21s %s\n", b->what, b->shown, med, range,
         b->ref   ? "-"
         : x->met ? "yes"
                  : "no");
  printf("%-46s   A %.4g ns/op (%.4g-%.4g)", "", x->ra.med, x->ra.min, x->ra.max);
  if (two)
    printf(", B %.4g ns/op (%.4g-%.4g)", x->rb.med, x->rb.min, x->rb.max);
  printf("\n");
}

static void json_side(FILE *f, const char *key, const bar_side *s, const bench_result *r) {
  fprintf(f, "\"%s\": {\"workload\": ", key);
  bench_json_str(f, s->workload);
  fprintf(f, ", \"params\": ");
  bench_json_str(f, r->c ? r->c->params : "");
  fprintf(f, ", \"alloc\": ");
  bench_json_str(f, s->alloc ? s->alloc : "memres");
  fprintf(f, ", \"iters_per_rep\": %llu, \"ns_per_op\": [", (unsigned long long)r->iters);
  bench_json_nums(f, r->rep_ns, r->reps);
  fprintf(f, "], \"upstream_calls_per_rep\": [");
  bench_json_ints(f, r->rep_upstream, r->reps);
  fprintf(f, "]");
  if (r->has_pool) {
    fprintf(f, ", \"pool\": {\"peak_reserved\": %llu, \"peak_in_use\": %llu}",
            (unsigned long long)r->stats.peak_reserved, (unsigned long long)r->stats.peak_in_use);
  }
  fprintf(f, "}");
}

static int write_json(const char *path, const bar_out *out, size_t n, const bench_machine *m,
                      const bench_opts *o, int pairs, int argc, char **argv) {
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  bench_json_head(f, "memres_bench_bars", m, argc, argv);
  fprintf(f,
          "],\n    \"pairs\": %d,\n    \"rep_ms\": %g,\n    \"seed\": %llu\n  },\n  \"bars\": [\n",
          pairs, o->rep_ms, (unsigned long long)o->seed);
  for (size_t i = 0; i < n; i++) {
    const bar_out *x = &out[i];
    fprintf(f, "    {\"what\": ");
    bench_json_str(f, x->def->what);
    fprintf(f, ", \"bar\": ");
    bench_json_str(f, x->def->shown);
    if (!x->ran) {
      fprintf(f, ", \"ran\": false, \"why\": ");
      bench_json_str(f, x->why);
    } else {
      if (x->def->ref)
        fprintf(f, ", \"ran\": true, \"reference\": true, \"median\": ");
      else
        fprintf(f, ", \"ran\": true, \"met\": %s, \"median\": ", x->met ? "true" : "false");
      bench_json_num(f, x->med);
      fprintf(f, ", \"per_pair\": [");
      bench_json_nums(f, x->fig, x->n);
      fprintf(f, "],\n     ");
      json_side(f, "a", &x->def->a, &x->ra);
      if (x->def->b.workload) {
        fprintf(f, ",\n     ");
        json_side(f, "b", &x->def->b, &x->rb);
      }
    }
    fprintf(f, "}%s\n", i + 1 < n ? "," : "");
  }
  fprintf(f, "  ]\n}\n");
  return fclose(f) == 0 ? 0 : -1;
}

/* Peak reserved over peak in use of a random bar's pool side (0: none). */
static double rsv_of(const bench_result *r) {
  if (!r->has_pool || !r->stats.peak_in_use || strcmp(r->workload, "random") != 0)
    return 0;
  return (double)r->stats.peak_reserved / (double)r->stats.peak_in_use;
}

int bench_bars_run(const bench_opts *o, const bench_machine *m, int argc, char **argv) {
  bench_machine mm = *m;
  int pairs = o->reps_set ? o->reps : BARS_DEFAULT_PAIRS;
  bool gpu = m->gpus > 0;
  static bar_out out[N_BARS];
  static case_table cases;
  list_cases(&cases, o, pairs);
  printf("bars: each ratio's two sides set up and warmed up, then their repetitions alternate "
         "(%d pairs of about %g ms each, each after an untimed quarter of one of its own); the "
         "figure is the median of the pairs' ratios, with their range\n",
         pairs, o->rep_ms);
  if (!gpu)
    printf("no GPU: the GPU bars are not run (%s)\n", m->no_gpu);
  printf("%-46s %-11s %-9s %-21s %s\n", "bar", "must be", "figure", "(range)", "met");
  fflush(stdout);
  uint64_t t0 = bench_now_ns();
  for (size_t i = 0; i < N_BARS; i++) {
    fprintf(stderr, "[%2zu/%zu] %s ...\n", i + 1, N_BARS, k_bars[i].what);
    run_bar(&out[i], &k_bars[i], &cases, o, pairs, gpu);
    print_bar(&out[i]);
    fflush(stdout);
  }
  /* peak reserved over peak in use of every random pool side that ran */
  for (size_t i = 0; i < N_BARS; i++) {
    const bar_out *x = &out[i];
    if (!x->ran)
      continue;
    const bench_result *sides[2] = {&x->ra, x->def->b.workload ? &x->rb : NULL};
    for (int k = 0; k < 2; k++) {
      double v = sides[k] ? rsv_of(sides[k]) : 0;
      if (v == 0)
        continue;
      char what[96];
      snprintf(what, sizeof what, "rsv/use random %s %s", sides[k]->c->params, sides[k]->alloc);
      printf("%-46s <= %-8.2f %-9.3f %-21s %s\n", what, RSV_BAR, v, "",
             v <= RSV_BAR ? "yes" : "no");
    }
  }
  mm.elapsed_s = (double)(bench_now_ns() - t0) / 1e9;
  fprintf(stderr, "memres-bench: %zu rows (bars and references) in %.2f s\n", N_BARS, mm.elapsed_s);
  if (o->json && write_json(o->json, out, N_BARS, &mm, o, pairs, argc, argv) != 0) {
    fprintf(stderr, "memres-bench: cannot write %s\n", o->json);
    return 1;
  }
  return 0;
}
