/* memres-bench --devices: the pair and threads workloads on every GPU at once, one thread per GPU.
 *
 * Each thread makes its GPU current and drives that GPU's allocator only: "pool-device", a fresh
 * caching pool over mr_device_default(d) on a memres stream of GPU d, or "cudaMallocAsync" on a
 * CUDA stream of GPU d (its default pool; the release threshold of every GPU's default pool is set
 * to UINT64_MAX first, as the single-GPU run does for GPU 0, so both keep their memory). The
 * threads start each repetition together; each ends it with a synchronize of its own GPU. Rows:
 * one per GPU (that thread's ns per op) and one aggregate ("all": the repetition's wall time,
 * first start to last end, over the operations of every thread). Calibration, warm-up and the
 * median of --reps repetitions are as in the single-GPU run. */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D_SLOTS 16
#define D_SIZES 8
#define D_MAX_GPUS 64

enum { DA_POOL = 0, DA_ASYNC, DA_COUNT };
static const char *const k_dalloc[DA_COUNT] = {"pool-device", "cudaMallocAsync"};

typedef struct dcase {
  const char *wl;
  char params[32];
  size_t size; /* pair: the size; threads: 0 */
  uint64_t max_iters;
} dcase;

struct dstate;

typedef struct dworker {
  _Alignas(64) struct dstate *ds; /* a cache line of its own per worker */
  int dev;
  pthread_t th;
  mr_allocator *pool;
  mr_stream *s;
  void *cu, *cu_ev;
  bench_rng rng;
  void *p[D_SLOTS];
  size_t size[D_SLOTS];
  uint64_t ops, t0, t1;
  mr_status status;
  char msg[200];
} dworker;

typedef struct dstate {
  const dcase *c;
  int kind, n, started;
  dworker *w;
  size_t sizes[D_SIZES];
  pthread_mutex_t mu;
  pthread_cond_t go, done_cv;
  uint64_t gen, iters;
  int done;
  bool quit;
} dstate;

typedef struct drow {
  const dcase *c;
  const char *alloc;
  int dev; /* -1: all GPUs together */
  bool ok;
  double med, min, max; /* ns per op */
  uint64_t ops;         /* per repetition */
  char note[200];
} drow;

static void dfail(dworker *w, mr_status st, const char *what) {
  if (w->status != MR_OK)
    return;
  w->status = st;
  snprintf(w->msg, sizeof w->msg, "gpu%d %s: %s", w->dev, what, mr_last_error());
}

static mr_status d_alloc(dworker *w, size_t size, void **p) {
  if (w->ds->kind == DA_POOL)
    return mr_alloc_async(w->pool, size, w->s, p);
  return bcu_malloc_async(size, w->cu, p);
}

static mr_status d_free(dworker *w, void *p, size_t size) {
  if (w->ds->kind == DA_POOL)
    return mr_free_async(w->pool, p, size, w->s);
  return bcu_free_async(p, w->cu);
}

static mr_status d_open(dworker *w) {
  mr_status st = bcu_set_device(w->dev);
  if (st != MR_OK)
    return st;
  if (w->ds->kind == DA_ASYNC)
    return bcu_stream_create(&w->cu, &w->cu_ev);
  mr_allocator *def = mr_device_default(w->dev);
  if (!def)
    return mr_last_status();
  st = mr_caching_pool_create(&w->pool, def, NULL);
  if (st != MR_OK)
    return st;
  return mr_stream_create(&w->s, w->dev, 0);
}

static void d_close(dworker *w) {
  for (int j = 0; j < D_SLOTS; j++)
    if (w->p[j]) {
      mr_status st = d_free(w, w->p[j], w->size[j]);
      if (st != MR_OK)
        dfail(w, st, "free");
      w->p[j] = NULL;
    }
  (void)bcu_device_sync();
  if (w->ds->kind == DA_ASYNC) {
    bcu_stream_destroy(w->cu, w->cu_ev);
  } else {
    mr_allocator_release(w->pool);
    mr_stream_release(w->s);
  }
  (void)bcu_trim_pool_of(w->dev);
}

/* One repetition of `iters` iterations on this thread's GPU; *ops as the single-GPU workloads
 * count them (pair: one alloc + free; threads: each alloc and each free). */
static mr_status d_rep(dworker *w, uint64_t iters, uint64_t *ops) {
  dstate *ds = w->ds;
  mr_status st;
  *ops = 0;
  if (ds->c->size) {
    for (uint64_t i = 0; i < iters; i++) {
      void *p;
      if ((st = d_alloc(w, ds->c->size, &p)) != MR_OK) {
        dfail(w, st, "alloc");
        return st;
      }
      if ((st = d_free(w, p, ds->c->size)) != MR_OK) {
        dfail(w, st, "free");
        return st;
      }
    }
    *ops = iters;
  } else {
    for (uint64_t i = 0; i < iters; i++) {
      uint64_t u = bench_rng_next(&w->rng);
      size_t j = (size_t)(u % D_SLOTS);
      size_t size = ds->sizes[(u >> 8) % D_SIZES];
      if (w->p[j]) {
        if ((st = d_free(w, w->p[j], w->size[j])) != MR_OK) {
          dfail(w, st, "free");
          return st;
        }
        w->p[j] = NULL;
        ++*ops;
      }
      if ((st = d_alloc(w, size, &w->p[j])) != MR_OK) {
        w->p[j] = NULL;
        dfail(w, st, "alloc");
        return st;
      }
      w->size[j] = size;
      ++*ops;
    }
  }
  if ((st = bcu_device_sync()) != MR_OK)
    dfail(w, st, "sync");
  return st;
}

static void signal_done(dstate *ds) {
  pthread_mutex_lock(&ds->mu);
  ds->done++;
  pthread_cond_signal(&ds->done_cv);
  pthread_mutex_unlock(&ds->mu);
}

static void *d_main(void *arg) {
  dworker *w = arg;
  dstate *ds = w->ds;
  mr_status st = d_open(w);
  if (st != MR_OK)
    dfail(w, st, "open");
  signal_done(ds); /* opened (or failed to) */
  uint64_t seen = 0;
  for (;;) {
    pthread_mutex_lock(&ds->mu);
    while (ds->gen == seen && !ds->quit)
      pthread_cond_wait(&ds->go, &ds->mu);
    seen = ds->gen;
    bool quit = ds->quit;
    uint64_t iters = ds->iters;
    pthread_mutex_unlock(&ds->mu);
    if (quit)
      break;
    w->ops = 0;
    w->t0 = bench_now_ns();
    if (w->status == MR_OK)
      (void)d_rep(w, iters, &w->ops);
    w->t1 = bench_now_ns();
    signal_done(ds);
  }
  d_close(w); /* what was opened, even if the open failed half-way */
  return NULL;
}

static void wait_all(dstate *ds) {
  pthread_mutex_lock(&ds->mu);
  while (ds->done < ds->started)
    pthread_cond_wait(&ds->done_cv, &ds->mu);
  pthread_mutex_unlock(&ds->mu);
}

/* Every thread runs `iters`; ns_wall the repetition's wall time (first start to last end). */
static int d_round(dstate *ds, uint64_t iters, uint64_t *ns_wall, uint64_t *ops_total) {
  pthread_mutex_lock(&ds->mu);
  ds->iters = iters;
  ds->done = 0;
  ds->gen++;
  pthread_cond_broadcast(&ds->go);
  pthread_mutex_unlock(&ds->mu);
  wait_all(ds);
  uint64_t t0 = UINT64_MAX, t1 = 0, ops = 0;
  for (int i = 0; i < ds->n; i++) {
    if (ds->w[i].status != MR_OK)
      return -1;
    t0 = ds->w[i].t0 < t0 ? ds->w[i].t0 : t0;
    t1 = ds->w[i].t1 > t1 ? ds->w[i].t1 : t1;
    ops += ds->w[i].ops;
  }
  *ns_wall = t1 - t0;
  *ops_total = ops;
  return 0;
}

static const char *first_error(const dstate *ds) {
  for (int i = 0; i < ds->n; i++)
    if (ds->w[i].status != MR_OK)
      return ds->w[i].msg;
  return "unknown error";
}

/* One (case, allocator) on every GPU: fills n + 1 rows (per GPU, then all). */
static void d_measure(const bench_opts *o, const dcase *c, int kind, const int *ids, int n,
                      drow *rows) {
  for (int i = 0; i <= n; i++) {
    memset(&rows[i], 0, sizeof rows[i]);
    rows[i].c = c;
    rows[i].alloc = k_dalloc[kind];
    rows[i].dev = i < n ? ids[i] : -1;
  }
  dstate ds;
  memset(&ds, 0, sizeof ds);
  ds.c = c;
  ds.kind = kind;
  ds.n = n;
  ds.w = aligned_alloc(64, (size_t)n * sizeof *ds.w);
  if (!ds.w) {
    snprintf(rows[n].note, sizeof rows[n].note, "out of memory");
    return;
  }
  memset(ds.w, 0, (size_t)n * sizeof *ds.w);
  bench_rng rng;
  bench_rng_seed(&rng, o->seed ^ 0x5eedull);
  for (int i = 0; i < D_SIZES; i++)
    ds.sizes[i] = (size_t)bench_rng_range(&rng, 256, 64 * BENCH_KIB);
  pthread_mutex_init(&ds.mu, NULL);
  pthread_cond_init(&ds.go, NULL);
  pthread_cond_init(&ds.done_cv, NULL);
  for (int i = 0; i < n; i++) {
    ds.w[i].ds = &ds;
    ds.w[i].dev = ids[i];
    uint64_t x = o->seed + (uint64_t)i + 1;
    bench_rng_seed(&ds.w[i].rng, bench_splitmix(&x));
  }
  const char *err = NULL;
  for (; ds.started < n; ds.started++)
    if (pthread_create(&ds.w[ds.started].th, NULL, d_main, &ds.w[ds.started]) != 0) {
      err = "pthread_create failed";
      break;
    }
  wait_all(&ds); /* every thread opened its GPU's allocator, or failed to */
  for (int i = 0; i < ds.started && !err; i++)
    if (ds.w[i].status != MR_OK)
      err = ds.w[i].msg;

  double wall[BENCH_MAX_REPS], per[D_MAX_GPUS][BENCH_MAX_REPS];
  uint64_t ops = 0, ns = 0;
  if (!err) {
    const double target = o->rep_ms * 1e6;
    uint64_t iters = 1;
    int bad = d_round(&ds, 1, &ns, &ops); /* cold */
    while (!bad) {
      if ((bad = d_round(&ds, iters, &ns, &ops)) != 0)
        break;
      if ((double)ns >= target / 4 || iters >= c->max_iters)
        break;
      iters = bench_calib_next(iters, ns, target, c->max_iters);
    }
    if (!bad) {
      iters = bench_iters_for(iters, ns, target, c->max_iters);
      bad = d_round(&ds, iters, &ns, &ops); /* warm-up */
    }
    if (!bad && bench_warm_again(&iters, ns, target, c->max_iters))
      bad = d_round(&ds, iters, &ns, &ops);
    for (int r = 0; r < o->reps && !bad; r++) {
      if ((bad = d_round(&ds, iters, &ns, &ops)) != 0)
        break;
      wall[r] = ops ? (double)ns / (double)ops : 0;
      for (int i = 0; i < n; i++)
        per[i][r] = ds.w[i].ops ? (double)(ds.w[i].t1 - ds.w[i].t0) / (double)ds.w[i].ops : 0;
    }
    if (bad)
      err = first_error(&ds);
  }
  if (!err) {
    for (int i = 0; i < n; i++) {
      bench_stat3(per[i], o->reps, &rows[i].med, &rows[i].min, &rows[i].max);
      rows[i].ops = ds.w[i].ops;
      rows[i].ok = true;
    }
    bench_stat3(wall, o->reps, &rows[n].med, &rows[n].min, &rows[n].max);
    rows[n].ops = ops;
    rows[n].ok = true;
  } else {
    for (int i = 0; i <= n; i++)
      snprintf(rows[i].note, sizeof rows[i].note, "%.190s", err);
  }

  pthread_mutex_lock(&ds.mu);
  ds.quit = true;
  pthread_cond_broadcast(&ds.go);
  pthread_mutex_unlock(&ds.mu);
  for (int i = 0; i < ds.started; i++)
    pthread_join(ds.w[i].th, NULL);
  for (int i = 0; i < n && !err; i++) /* a failure to free at the end */
    if (ds.w[i].status != MR_OK)
      snprintf(rows[i].note, sizeof rows[i].note, "teardown: %.180s", ds.w[i].msg);
  pthread_mutex_destroy(&ds.mu);
  pthread_cond_destroy(&ds.go);
  pthread_cond_destroy(&ds.done_cv);
  free(ds.w);
}

static const drow *find_row(const drow *rows, size_t n, const drow *x, const char *alloc) {
  for (size_t i = 0; i < n; i++)
    if (rows[i].c == x->c && rows[i].dev == x->dev && rows[i].ok &&
        strcmp(rows[i].alloc, alloc) == 0)
      return &rows[i];
  return NULL;
}

static void dev_name(char *buf, size_t len, int dev) {
  if (dev < 0)
    snprintf(buf, len, "all");
  else
    snprintf(buf, len, "gpu%d", dev);
}

static int write_json(const char *path, const drow *rows, size_t k, const int *ids, int n,
                      const bench_opts *o, int argc, char **argv) {
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  char commit[64];
  bench_git_commit(commit, sizeof commit);
  fprintf(f, "{\n  \"mode\": \"devices\",\n  \"version\": \"%s\",\n  \"commit\": \"%s\",\n",
          mr_version_string(), commit);
  fprintf(f, "  \"argv\": [");
  bench_json_strs(f, argv, argc);
  fprintf(f, "],\n  \"reps\": %d,\n  \"rep_ms\": %g,\n  \"gpus\": [", o->reps, o->rep_ms);
  for (int i = 0; i < n; i++) {
    char name[128];
    bcu_device_name_of(ids[i], name, sizeof name);
    fprintf(f, "%s{\"id\": %d, \"name\": ", i ? ", " : "", ids[i]);
    bench_json_str(f, name);
    fputc('}', f);
  }
  fprintf(f, "],\n  \"results\": [\n");
  for (size_t i = 0; i < k; i++) {
    const drow *r = &rows[i];
    char dn[16];
    dev_name(dn, sizeof dn, r->dev);
    fprintf(f,
            "    {\"workload\": \"%s\", \"params\": \"%s\", \"alloc\": \"%s\", \"device\": \"%s\", "
            "\"ok\": %s",
            r->c->wl, r->c->params, r->alloc, dn, r->ok ? "true" : "false");
    if (r->ok)
      fprintf(f, ", \"ns_per_op\": %.3f, \"min\": %.3f, \"max\": %.3f, \"ops\": %llu", r->med,
              r->min, r->max, (unsigned long long)r->ops);
    if (r->note[0]) {
      fprintf(f, ", \"note\": ");
      bench_json_str(f, r->note);
    }
    fprintf(f, "}%s\n", i + 1 < k ? "," : "");
  }
  fprintf(f, "  ]\n}\n");
  return fclose(f) == 0 ? 0 : -1;
}

int bench_devices_run(const bench_opts *o, const int *ids, int n, int argc, char **argv) {
  if (n > D_MAX_GPUS)
    n = D_MAX_GPUS;
  int wl_pair = bench_workload_find("pair"), wl_threads = bench_workload_find("threads");
  static dcase cases[8];
  size_t nc = 0;
  if (wl_pair >= 0 && o->sel_workload[wl_pair]) {
    static const size_t sizes[] = {256, 64 * BENCH_KIB, 4 * BENCH_MIB};
    for (size_t i = 0; i < 3; i++) {
      dcase *c = &cases[nc++];
      c->wl = "pair";
      bench_fmt_bytes(c->params, sizeof c->params, sizes[i]);
      c->size = sizes[i];
      c->max_iters = o->quick ? 200000 : 2000000;
    }
  }
  if (wl_threads >= 0 && o->sel_workload[wl_threads]) {
    dcase *c = &cases[nc++];
    c->wl = "threads";
    snprintf(c->params, sizeof c->params, "1/GPU");
    c->size = 0;
    c->max_iters = o->quick ? 50000 : 1000000;
  }
  bool sel[DA_COUNT];
  for (int k = 0; k < DA_COUNT; k++) {
    const balloc_desc *d = bench_allocator_find(k_dalloc[k]);
    sel[k] = false;
    for (size_t i = 0; d && i < bench_allocator_count(); i++)
      if (bench_allocator_at(i) == d)
        sel[k] = o->sel_alloc[i];
  }

  printf("--devices: %d GPU%s at once, one thread per GPU:", n, n == 1 ? "" : "s");
  for (int i = 0; i < n; i++) {
    char name[128];
    bcu_device_name_of(ids[i], name, sizeof name);
    printf("%s gpu%d %s", i ? "," : "", ids[i], name);
  }
  printf("\n");
  if (nc == 0 || (!sel[DA_POOL] && !sel[DA_ASYNC])) {
    printf("--devices runs pair and threads on pool-device and cudaMallocAsync: none selected\n");
    return 0;
  }
  for (int i = 0; i < n; i++)
    if (bcu_async_init_device(ids[i]) != MR_OK)
      fprintf(stderr, "memres-bench: gpu%d: %s\n", ids[i], mr_last_error());
  fflush(stdout);

  size_t cap = nc * DA_COUNT * (size_t)(n + 1), k = 0;
  drow *rows = calloc(cap, sizeof *rows);
  if (!rows) {
    fprintf(stderr, "memres-bench: out of memory\n");
    return 1;
  }
  uint64_t t0 = bench_now_ns();
  for (size_t i = 0; i < nc; i++)
    for (int a = 0; a < DA_COUNT; a++) {
      if (!sel[a])
        continue;
      fprintf(stderr, "[devices] %s %s %s ...\n", cases[i].wl, cases[i].params, k_dalloc[a]);
      d_measure(o, &cases[i], a, ids, n, rows + k);
      k += (size_t)n + 1;
    }
  fprintf(stderr, "memres-bench: %zu multi-GPU measurements in %.1f s\n", k / (size_t)(n + 1),
          (double)(bench_now_ns() - t0) / 1e9);

  printf("\n%-8s %-7s %-16s %-6s %10s %10s %10s %9s %8s  %s\n", "workload", "params", "allocator",
         "device", "ns/op", "min", "max", "Mops/s", "vs async", "note");
  for (size_t i = 0; i < k; i++) {
    const drow *r = &rows[i];
    char dn[16];
    dev_name(dn, sizeof dn, r->dev);
    if (!r->ok) {
      printf("%-8s %-7s %-16s %-6s %10s %10s %10s %9s %8s  error: %s\n", r->c->wl, r->c->params,
             r->alloc, dn, "-", "-", "-", "-", "-", r->note);
      continue;
    }
    const drow *base = find_row(rows, k, r, "cudaMallocAsync");
    char ratio[16] = "-";
    if (base && base->med > 0 && base != r)
      snprintf(ratio, sizeof ratio, "%.2fx", r->med / base->med);
    printf("%-8s %-7s %-16s %-6s %10.1f %10.1f %10.1f %9.2f %8s  %s\n", r->c->wl, r->c->params,
           r->alloc, dn, r->med, r->min, r->max, r->med > 0 ? 1e3 / r->med : 0.0, ratio, r->note);
  }
  printf("ns/op per GPU: that GPU's thread; 'all': the repetition's wall time over every thread's "
         "operations (Mops/s is the throughput of all GPUs together). 'vs async': ns/op over "
         "cudaMallocAsync's on the same GPU(s), lower is better.\n");
  int rc = 0;
  if (o->json && write_json(o->json, rows, k, ids, n, o, argc, argv) != 0) {
    fprintf(stderr, "memres-bench: cannot write %s\n", o->json);
    rc = 1;
  }
  free(rows);
  return rc;
}
