/* memres-bench: options, the driver (calibration, warm-up, timed repetitions), progress line.
 *
 * Every measurement is one (workload case, allocator): a fresh allocator is opened, the
 * workload sets up, the iteration count is calibrated so one repetition takes about --rep-ms,
 * one warm-up repetition runs uncounted, then --reps repetitions are timed with
 * clock_gettime(CLOCK_MONOTONIC). Stream-ordered GPU allocators synchronize the device at the
 * end of each repetition, inside the timing, so deferred work is counted. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CASES 64

static void usage(FILE *f) {
  fprintf(f, "usage: memres-bench [options]\n"
             "  --all                   every allocator (the default)\n"
             "  --alloc NAME[,NAME]     only these allocators (see --list)\n"
             "  --workload NAME[,NAME]  only these workloads: pair, random, phases, streams,\n"
             "                          threads, context (default: all)\n"
             "  --reps R                timed repetitions per measurement, median reported (5)\n"
             "  --rep-ms MS             target duration of one repetition (10; --quick: 2)\n"
             "  --seed S                seed of every workload's sequence (1)\n"
             "  --quick                 a very short run (CI smoke test)\n"
             "  --no-pin                threads: do not pin workers (default: one per physical\n"
             "                          core, then the cores' other hyperthreads)\n"
             "  --json FILE             write every figure, the machine and the options as JSON\n"
             "  --plot FILE.svg         write an SVG plot of ns/op (log scale)\n"
             "  --devices all|ID[,ID]   instead of the usual run: pair and threads on these GPUs\n"
             "                          at once, one thread per GPU (pool-device over each GPU's\n"
             "                          default allocator, and cudaMallocAsync), rows per GPU and\n"
             "                          for all together\n"
             "  --bars                  instead of the usual run: the benchmark's bars, each\n"
             "                          ratio's two sides measured in alternation (--reps\n"
             "                          pairs, 11 by default), the median ratio judged\n"
             "  --list                  list the allocators and workloads\n"
             "  --help                  this text\n"
             "Without a GPU only the host allocators run. Exit status 0 on success, 2 for bad\n"
             "options, 1 if an output file could not be written; an allocator's error during a\n"
             "workload is reported in the table.\n");
}

static void list(void) {
  printf("allocators:\n");
  for (size_t i = 0; i < bench_allocator_count(); i++) {
    const balloc_desc *d = bench_allocator_at(i);
    printf("  %-18s %-7s %s\n", d->name, mr_kind_str(d->kind), d->what);
  }
  printf("workloads:\n");
  for (size_t i = 0; i < bench_workload_count(); i++) {
    const bench_workload *w = bench_workload_at(i);
    printf("  %-18s %s\n", w->name, w->what);
  }
}

/* Comma-separated names into a selection; returns 0 or prints the unknown name. */
static int select_names(const char *arg, bool *sel, size_t n, int (*find)(const char *)) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", arg);
  memset(sel, 0, n * sizeof *sel);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (strcmp(tok, "all") == 0) {
      for (size_t i = 0; i < n; i++)
        sel[i] = true;
      continue;
    }
    int i = find(tok);
    if (i < 0) {
      fprintf(stderr, "memres-bench: unknown name '%s' (see --list)\n", tok);
      return -1;
    }
    sel[i] = true;
  }
  return 0;
}

static int find_alloc(const char *name) {
  for (size_t i = 0; i < bench_allocator_count(); i++)
    if (strcmp(bench_allocator_at(i)->name, name) == 0)
      return (int)i;
  return -1;
}

/* --opt VALUE or --opt=VALUE */
static const char *opt_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0)
    return NULL;
  if (argv[*i][n] == '=')
    return argv[*i] + n + 1;
  if (argv[*i][n] != 0)
    return NULL;
  if (*i + 1 >= argc) {
    fprintf(stderr, "memres-bench: %s needs a value\n", name);
    exit(2);
  }
  return argv[++*i];
}

static int parse(int argc, char **argv, bench_opts *o) {
  memset(o, 0, sizeof *o);
  o->reps = 5;
  o->seed = 1;
  o->rep_ms = 0;
  for (int i = 1; i < argc; i++) {
    const char *v;
    char *end;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(argv[i], "--list") == 0) {
      list();
      exit(0);
    } else if (strcmp(argv[i], "--all") == 0) {
      o->alloc_arg = NULL;
    } else if (strcmp(argv[i], "--quick") == 0) {
      o->quick = true;
    } else if (strcmp(argv[i], "--bars") == 0) {
      o->bars = true;
    } else if (strcmp(argv[i], "--no-pin") == 0) {
      o->no_pin = true;
    } else if ((v = opt_value(argc, argv, &i, "--alloc"))) {
      o->alloc_arg = v;
    } else if ((v = opt_value(argc, argv, &i, "--workload"))) {
      o->workload_arg = v;
    } else if ((v = opt_value(argc, argv, &i, "--reps"))) {
      long r = strtol(v, &end, 10);
      if (*end || r < 1 || r > BENCH_MAX_REPS) {
        fprintf(stderr, "memres-bench: --reps takes 1..%d\n", BENCH_MAX_REPS);
        return -1;
      }
      o->reps = (int)r;
      o->reps_set = true;
    } else if ((v = opt_value(argc, argv, &i, "--rep-ms"))) {
      double ms = strtod(v, &end);
      if (*end || !(ms > 0) || ms > 10000) {
        fprintf(stderr, "memres-bench: --rep-ms takes a duration in (0, 10000]\n");
        return -1;
      }
      o->rep_ms = ms;
    } else if ((v = opt_value(argc, argv, &i, "--seed"))) {
      o->seed = strtoull(v, &end, 0);
      if (*end) {
        fprintf(stderr, "memres-bench: --seed takes an integer\n");
        return -1;
      }
    } else if ((v = opt_value(argc, argv, &i, "--json"))) {
      o->json = v;
    } else if ((v = opt_value(argc, argv, &i, "--plot"))) {
      o->plot = v;
    } else if ((v = opt_value(argc, argv, &i, "--devices"))) {
      o->devices_arg = v;
    } else {
      fprintf(stderr, "memres-bench: unknown option '%s'\n", argv[i]);
      usage(stderr);
      return -1;
    }
  }
  if (o->rep_ms == 0)
    o->rep_ms = o->quick ? 2 : 10;
  if (o->quick && o->reps > 3) {
    o->reps = 3;
    o->reps_set = true;
  }
  if (select_names(o->alloc_arg ? o->alloc_arg : "all", o->sel_alloc, bench_allocator_count(),
                   find_alloc) != 0)
    return -1;
  if (select_names(o->workload_arg ? o->workload_arg : "all", o->sel_workload,
                   bench_workload_count(), bench_workload_find) != 0)
    return -1;
  return 0;
}

/* --devices: "all" (every GPU, up to 64) or a comma-separated list of distinct GPU ids. */
static int parse_devices(const char *arg, int gpus, int *ids, int *n) {
  *n = 0;
  if (strcmp(arg, "all") == 0) {
    for (int d = 0; d < gpus && d < 64; d++)
      ids[(*n)++] = d;
    return 0;
  }
  const char *p = arg;
  while (*p) {
    char *end;
    long d = strtol(p, &end, 10);
    if (end == p || (*end && *end != ',') || d < 0 || d >= gpus || *n >= 64) {
      fprintf(stderr, "memres-bench: --devices takes 'all' or GPU ids below %d, as 0,1\n", gpus);
      return -1;
    }
    for (int i = 0; i < *n; i++)
      if (ids[i] == (int)d) {
        fprintf(stderr, "memres-bench: --devices: GPU %ld twice\n", d);
        return -1;
      }
    ids[(*n)++] = (int)d;
    p = *end ? end + 1 : end;
  }
  if (*n == 0) {
    fprintf(stderr, "memres-bench: --devices: no GPU named\n");
    return -1;
  }
  return 0;
}

/* ---- progress ------------------------------------------------------------------------------- */
static bool g_progress_tty;

/* On a terminal one line rewritten in place; into a log, one line per case. */
static void progress(size_t i, size_t n, const char *wl, const char *params, const char *alloc) {
  static const char *last_params;
  if (g_progress_tty) {
    char line[160];
    snprintf(line, sizeof line, "[%3zu/%zu] %s %s %s ...", i, n, wl, params, alloc);
    fprintf(stderr, "\r%-79s", line);
  } else if (params != last_params) {
    fprintf(stderr, "[%3zu/%zu] %s %s ...\n", i, n, wl, params);
  }
  last_params = params;
  fflush(stderr);
}

static void progress_done(double seconds, size_t n) {
  if (g_progress_tty)
    fprintf(stderr, "\r%-79s\r", "");
  fprintf(stderr, "memres-bench: %zu measurements in %.1f s\n", n, seconds);
}

/* ---- measuring ------------------------------------------------------------------------------ */
static mr_status timed(bench_run *r, const bench_workload *w, uint64_t iters, uint64_t *ns,
                       uint64_t *ops) {
  uint64_t t0 = bench_now_ns();
  mr_status st = w->rep(r, iters, ops);
  if (st == MR_OK && r->a && r->a->d->sync) {
    st = r->a->d->sync(r->a);
    if (st != MR_OK)
      bench_fail(r, st, "sync");
  }
  *ns = bench_now_ns() - t0;
  return st;
}

/* A pool's upstream allocations and frees so far (read between repetitions, not timed); -1 for
 * other allocators. */
static int64_t upstream_calls(const bench_run *r) {
  mr_stats s = MR_STATS_INIT;
  if (!r->a || !(r->a->d->flags & BA_POOL) || !r->a->mr || mr_stats_get(r->a->mr, &s) != MR_OK)
    return -1;
  return (int64_t)(s.upstream_allocs + s.upstream_frees);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The cold repetition, the calibration and the warm-up: the count of a timed repetition. */
static mr_status calibrate(bench_run *r, const bench_workload *w, const bench_opts *o,
                           uint64_t *out_iters) {
  const double target = o->rep_ms * 1e6;
  const uint64_t max_iters = r->c->max_iters ? r->c->max_iters : 1000000;
  uint64_t iters = 1, ns = 0, ops = 0;
  mr_status st;
  /* a cold repetition first (first touches, thread start-up), then calibration: grow the count
   * until a repetition takes a quarter of the target */
  if ((st = timed(r, w, 1, &ns, &ops)) != MR_OK)
    return st;
  for (;;) {
    if ((st = timed(r, w, iters, &ns, &ops)) != MR_OK)
      return st;
    if ((double)ns >= target / 4 || iters >= max_iters)
      break;
    iters = bench_calib_next(iters, ns, target, max_iters);
  }
  iters = bench_iters_for(iters, ns, target, max_iters);
  /* warm-up, not counted */
  if ((st = timed(r, w, iters, &ns, &ops)) != MR_OK)
    return st;
  if (bench_warm_again(&iters, ns, target, max_iters) &&
      (st = timed(r, w, iters, &ns, &ops)) != MR_OK)
    return st;
  *out_iters = iters;
  return MR_OK;
}

/* The bytes a case may hold on this allocator's memory: 60% of what the GPU has free for
 * device allocators, 60% of MemAvailable for host and pinned ones. */
static uint64_t memory_cap(const balloc_desc *d, char *where, size_t len) {
  if (d->kind == MR_DEVICE) {
    uint64_t f = 0, t = 0;
    if (bcu_mem_info(&f, &t) != MR_OK)
      return UINT64_MAX;
    snprintf(where, len, "GPU free");
    return f / 10 * 6;
  }
  snprintf(where, len, "MemAvailable");
  uint64_t avail = bench_mem_available();
  return avail ? avail / 10 * 6 : UINT64_MAX;
}

bool bench_meas_start(bench_meas *m, const bench_case *c, const balloc_desc *d, const bench_opts *o,
                      bench_result *res, uint64_t *slow_peak) {
  const bench_workload *w = bench_workload_at((size_t)c->wl);
  memset(m, 0, sizeof *m);
  memset(res, 0, sizeof *res);
  m->w = w;
  m->t0 = bench_now_ns();
  res->c = c;
  res->workload = w->name;
  res->unit = w->unit;
  res->alloc = d ? d->name : "memres";
  res->kind = d ? d->kind : MR_HOST;
  res->flags = d ? d->flags : 0;
  res->threads = strcmp(w->name, "threads") == 0 ? (int)c->p1 : 0;
  res->outcome = BENCH_OK;
  mr_clear_error();

  if (d && c->peak) {
    char where[32], pk[32], cp[32];
    uint64_t cap = memory_cap(d, where, sizeof where);
    if (c->peak > cap) {
      bench_fmt_bytes(pk, sizeof pk, c->peak);
      bench_fmt_bytes(cp, sizeof cp, cap);
      res->outcome = BENCH_SKIPPED;
      snprintf(res->note, sizeof res->note, "skipped: peak %s > 60%% of %s (%s)", pk, where, cp);
      return false;
    }
    if (*slow_peak && c->peak >= *slow_peak) {
      bench_fmt_bytes(pk, sizeof pk, *slow_peak);
      res->outcome = BENCH_SKIPPED;
      snprintf(res->note, sizeof res->note,
               "skipped: a setup of peak %s was already too slow (over %d s)", pk,
               BENCH_SETUP_LIMIT_MS / 1000);
      return false;
    }
  }

  bench_run *r = &m->r;
  r->c = c;
  r->a = d ? &m->a : NULL;
  r->seed = o->seed;
  r->pin = !o->no_pin;
  mr_status st = MR_OK;
  if (d) {
    m->a.d = d;
    if ((st = d->open(&m->a)) != MR_OK) {
      res->outcome = BENCH_ERROR;
      res->status = st;
      snprintf(res->note, sizeof res->note, "open: %s", mr_last_error());
      return false;
    }
  }
  m->started = true;
  r->start_ns = bench_now_ns();
  st = w->setup(r);
  if (st == MR_OK && r->skipped) {
    res->outcome = BENCH_SKIPPED;
    if (c->peak && (!*slow_peak || c->peak < *slow_peak))
      *slow_peak = c->peak;
  } else if (st == MR_OK) {
    st = calibrate(r, w, o, &m->iters);
    res->iters = m->iters;
  }
  if (st != MR_OK) {
    res->outcome = BENCH_ERROR;
    res->status = st;
  }
  return res->outcome == BENCH_OK;
}

mr_status bench_meas_rewarm(bench_meas *m) {
  uint64_t ns = 0, ops = 0;
  return timed(&m->r, m->w, m->iters / 4 ? m->iters / 4 : 1, &ns, &ops);
}

mr_status bench_meas_rep(bench_meas *m, double *ns_per_op, uint64_t *ops, int64_t *upstream) {
  uint64_t ns = 0;
  int64_t up0 = upstream_calls(&m->r);
  mr_status st = timed(&m->r, m->w, m->iters, &ns, ops);
  int64_t up1 = upstream_calls(&m->r);
  *upstream = up0 < 0 || up1 < 0 ? -1 : up1 - up0;
  *ns_per_op = *ops ? (double)ns / (double)*ops : 0;
  return st;
}

void bench_meas_end(bench_meas *m, bench_result *res) {
  if (!m->started)
    return;
  bench_run *r = &m->r;
  const balloc_desc *d = r->a ? r->a->d : NULL;
  if (res->outcome == BENCH_OK && d && (d->flags & BA_POOL) && m->a.mr) {
    mr_stats s = MR_STATS_INIT;
    if (mr_stats_get(m->a.mr, &s) == MR_OK) {
      res->has_pool = true;
      res->stats = s;
    }
  }
  res->req_peak = r->req_peak;
  res->warm_steps = r->warm_steps;
  res->warm_cut = r->warm_cut;
  m->w->teardown(r);
  if (d)
    d->close(&m->a);
  res->wall_s = (double)(bench_now_ns() - m->t0) / 1e9;
  if (res->outcome != BENCH_OK || r->note[0]) {
    if (res->outcome == BENCH_OK) { /* teardown failed to free: keep the figures, say so */
      snprintf(res->note, sizeof res->note, "teardown: %.200s", r->note);
    } else {
      snprintf(res->note, sizeof res->note, "%s", r->note[0] ? r->note : mr_last_error());
    }
  }
  m->started = false;
}

void bench_stat3(const double *in, int n, double *med, double *min, double *max) {
  double v[BENCH_MAX_REPS];
  memcpy(v, in, (size_t)n * sizeof v[0]);
  qsort(v, (size_t)n, sizeof v[0], cmp_double);
  *min = v[0];
  *max = v[n - 1];
  *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_result_summarize(bench_result *res, int n) {
  res->reps = n;
  bench_stat3(res->rep_ns, n, &res->med, &res->min, &res->max);
}

/* One measurement: its timed repetitions, the median of them reported. */
static void run_one(const bench_case *c, const balloc_desc *d, const bench_opts *o,
                    bench_result *res, uint64_t *slow_peak) {
  bench_meas m;
  if (bench_meas_start(&m, c, d, o, res, slow_peak)) {
    for (int i = 0; i < o->reps; i++) {
      uint64_t ops = 0;
      mr_status st = bench_meas_rep(&m, &res->rep_ns[i], &ops, &res->rep_upstream[i]);
      if (st != MR_OK) {
        res->outcome = BENCH_ERROR;
        res->status = st;
        break;
      }
      if (i == 0)
        res->ops = ops;
    }
    if (res->outcome == BENCH_OK)
      bench_result_summarize(res, o->reps);
  }
  bench_meas_end(&m, res);
}

int main(int argc, char **argv) {
  bench_opts o;
  if (parse(argc, argv, &o) != 0)
    return 2;
  g_progress_tty = isatty(STDERR_FILENO);

  bench_machine m;
  memset(&m, 0, sizeof m);
  bench_cpu_model(m.cpu, sizeof m.cpu);
  m.cores = bench_cores();
  m.mem_available = bench_mem_available();
  bench_git_commit(m.commit, sizeof m.commit);
  m.gpus = mr_device_count();
  if (m.gpus == 0) {
    mr_status st = mr_device_check(mr_device_gpu(0));
    snprintf(m.no_gpu, sizeof m.no_gpu, "%s", st != MR_OK ? mr_last_error() : "no GPU found");
    snprintf(m.device, sizeof m.device, "none");
  } else {
    bcu_device_name(m.device, sizeof m.device);
    (void)bcu_mem_info(&m.gpu_free, &m.gpu_total);
  }
  bcu_versions(&m.driver, &m.runtime);

  printf("memres-bench %s (commit %s)\n", mr_version_string(), m.commit);
  printf("CPU: %s, %d cores; GPU: %s", m.cpu, m.cores, m.device);
  if (m.gpus)
    printf("; driver %d, runtime %d", m.driver, m.runtime);
  printf("\n");
  if (m.gpus == 0 && !o.devices_arg && !o.bars)
    printf("no GPU: running the host allocators only (%s)\n", m.no_gpu);
  fflush(stdout);

  if (o.bars)
    return bench_bars_run(&o, &m, argc, argv);
  if (o.devices_arg) {
    if (m.gpus == 0) {
      printf("--devices %s: no GPU, nothing run for it (%s)\n", o.devices_arg, m.no_gpu);
      return 0;
    }
    int ids[64], n = 0;
    if (parse_devices(o.devices_arg, m.gpus, ids, &n) != 0)
      return 2;
    return bench_devices_run(&o, ids, n, argc, argv);
  }

  /* the cases, then the measurements */
  static bench_case cases[MAX_CASES];
  size_t n_cases = 0;
  for (size_t w = 0; w < bench_workload_count(); w++)
    if (o.sel_workload[w])
      n_cases += bench_workload_at(w)->cases(&o, (int)w, cases + n_cases, MAX_CASES - n_cases);

  const balloc_desc *allocs[32];
  size_t n_allocs = 0;
  for (size_t i = 0; i < bench_allocator_count(); i++) {
    const balloc_desc *d = bench_allocator_at(i);
    if (o.sel_alloc[i] && (!(d->flags & BA_GPU) || m.gpus > 0))
      allocs[n_allocs++] = d;
  }

  size_t total = 0;
  for (size_t i = 0; i < n_cases; i++)
    total += bench_workload_at((size_t)cases[i].wl)->per_allocator ? n_allocs : 1;
  bench_result *res = calloc(total ? total : 1, sizeof *res);
  if (!res) {
    fprintf(stderr, "memres-bench: out of memory\n");
    return 1;
  }
  uint64_t slow_peak[32] = {0};
  uint64_t t0 = bench_now_ns();
  size_t k = 0;
  for (size_t i = 0; i < n_cases; i++) {
    const bench_workload *w = bench_workload_at((size_t)cases[i].wl);
    if (!w->per_allocator) {
      progress(k + 1, total, w->name, cases[i].params, "memres");
      uint64_t unused = 0;
      run_one(&cases[i], NULL, &o, &res[k++], &unused);
      continue;
    }
    for (size_t j = 0; j < n_allocs; j++) {
      progress(k + 1, total, w->name, cases[i].params, allocs[j]->name);
      run_one(&cases[i], allocs[j], &o, &res[k++], &slow_peak[j]);
    }
  }
  m.elapsed_s = (double)(bench_now_ns() - t0) / 1e9;
  progress_done(m.elapsed_s, total);

  bench_report_ratios(res, k);
  bench_report_table(res, k, &m);
  int rc = 0;
  if (o.json && bench_report_json(o.json, res, k, &m, &o, argc, argv) != 0) {
    fprintf(stderr, "memres-bench: cannot write %s\n", o.json);
    rc = 1;
  }
  if (o.plot && bench_report_svg(o.plot, res, k, &m) != 0) {
    fprintf(stderr, "memres-bench: cannot write %s\n", o.plot);
    rc = 1;
  }
  free(res);
  return rc;
}
