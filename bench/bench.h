/* memres-bench: declarations shared by the benchmark's files.
 *
 * main.c        options, the driver (calibration, warm-up, repetitions), progress line
 * workloads.c   pair, random, phases, streams, threads, context
 * allocators.c  one small adapter per allocator, raw baselines included
 * baselines_cuda.c / baselines_nocuda.c   the raw CUDA runtime calls (or their stand-ins)
 * sysinfo.c     CPU, memory, commit
 * report.c      the table, JSON, the SVG plot
 * devices.c     --devices: every GPU at once
 * bars.c        --bars: the bars of the benchmark's issue, each ratio's two sides alternating */
#ifndef MEMRES_BENCH_H
#define MEMRES_BENCH_H

#include <memres/memres.h>

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define BENCH_MIB ((size_t)1 << 20)
#define BENCH_KIB ((size_t)1 << 10)
#define BENCH_SETUP_LIMIT_MS 3000 /* a setup (the random fill) slower than this is skipped */
/* random: after the fill, BENCH_WARM_STEPS_PER_BLOCK x N untimed steps of the sequence, or as many
 * as BENCH_WARM_LIMIT_MS allows */
#define BENCH_WARM_STEPS_PER_BLOCK 10
#define BENCH_WARM_LIMIT_MS 250

/* ---- calibration of a repetition's count (main.c and devices.c) ------------------------------ */
/* While calibrating: a repetition of `iters` took `ns`, under a quarter of `target`; the next
 * count to try (2 to 1000 times as many, toward that quarter, at most max_iters). */
static inline uint64_t bench_calib_next(uint64_t iters, uint64_t ns, double target,
                                        uint64_t max_iters) {
  double f = ns ? target / (double)ns / 4 : 1000;
  f = f < 2 ? 2 : f > 1000 ? 1000 : f;
  double next = ceil((double)iters * f);
  return next >= (double)max_iters ? max_iters : (uint64_t)next;
}

/* The count for a repetition of `target` ns at the rate of one of `iters` that took `ns`, in
 * [1, max_iters] (max_iters when ns is 0). */
static inline uint64_t bench_iters_for(uint64_t iters, uint64_t ns, double target,
                                       uint64_t max_iters) {
  double want = ns ? (double)iters * target / (double)ns : (double)max_iters;
  return want < 1 ? 1 : want >= (double)max_iters ? max_iters : (uint64_t)want;
}

/* After the warm-up (`iters` took `ns`): the calibration may have timed one-off costs (a pool
 * growing: cudaHostAlloc takes milliseconds a segment), which leave the count far too small. A
 * warm-up under half the target sets *iters again from its rate and returns true: run it once
 * more at that count. */
static inline bool bench_warm_again(uint64_t *iters, uint64_t ns, double target,
                                    uint64_t max_iters) {
  if (!ns || (double)ns >= target / 2 || *iters >= max_iters)
    return false;
  *iters = bench_iters_for(*iters, ns, target, max_iters);
  return true;
}

/* ---- time and a seeded generator (xoshiro256**) -------------------------------------------- */
static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct bench_rng {
  uint64_t s[4];
} bench_rng;

static inline uint64_t bench_splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static inline void bench_rng_seed(bench_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = bench_splitmix(&seed);
}

static inline uint64_t bench_rng_next(bench_rng *r) {
  uint64_t *s = r->s;
  uint64_t x = s[1] * 5;
  uint64_t result = ((x << 7) | (x >> 57)) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return result;
}

/* Uniform in [lo, hi] (the modulo bias is below 2^-40 for the spans used here). */
static inline uint64_t bench_rng_range(bench_rng *r, uint64_t lo, uint64_t hi) {
  return lo + bench_rng_next(r) % (hi - lo + 1);
}

/* ---- streams: one per lane of a workload ----------------------------------------------------- */
typedef struct bstream {
  mr_stream *mr; /* memres stream (CUDA for GPU allocators, host for host ones), or NULL */
  mr_event *ev;  /* memres event recorded when blocks are handed to another stream */
  void *cu;      /* cudaStream_t of the raw cudaMallocAsync baseline */
  void *cu_ev;   /* its cudaEvent_t */
} bstream;

/* ---- allocator adapters: every allocator driven through one small interface -------------------
 */
enum {
  BA_GPU = 1u << 0,   /* needs a GPU */
  BA_ASYNC = 1u << 1, /* stream-ordered on the GPU: each timed repetition ends with a device sync */
  BA_POOL = 1u << 2,  /* a caching pool: report peak reserved over peak in use */
};

typedef struct balloc balloc;

typedef struct balloc_desc {
  const char *name;
  const char *what; /* one line for --list */
  mr_kind kind;     /* host allocators compare to malloc, pinned and device to cudaMallocAsync */
  unsigned flags;
  mr_status (*open)(balloc *a); /* a fresh allocator for each measurement */
  void (*close)(balloc *a);
  mr_status (*alloc)(balloc *a, size_t size, bstream *s, void **p);
  mr_status (*free)(balloc *a, void *p, size_t size, bstream *s);
  mr_status (*stream_open)(balloc *a, bstream *s);
  void (*stream_close)(balloc *a, bstream *s);
  /* Blocks freed on `from` are about to be allocated on `to`: an event on `from`, `to` waits. */
  mr_status (*handoff)(balloc *a, bstream *from, bstream *to);
  mr_status (*sync)(balloc *a); /* wait for all work the allocator queued (BA_ASYNC) */
} balloc_desc;

struct balloc {
  const balloc_desc *d;
  mr_allocator *mr;       /* the memres allocator measured; NULL for the raw baselines */
  mr_allocator *upstream; /* a pool's upstream, held while the pool lives */
};

size_t bench_allocator_count(void);
const balloc_desc *bench_allocator_at(size_t i);
const balloc_desc *bench_allocator_find(const char *name);

/* ---- raw CUDA runtime (baselines_cuda.c; baselines_nocuda.c answers MR_ERR_NO_DEVICE) -------- */
/* Errors are recorded with mr_report_error, so mr_last_error() has the CUDA message. */
bool bcu_built(void);
mr_status bcu_malloc(size_t size, void **p);
mr_status bcu_free(void *p);
mr_status bcu_host_alloc(size_t size, void **p);
mr_status bcu_free_host(void *p);
mr_status bcu_async_init(void); /* device 0's default pool: release threshold UINT64_MAX */
mr_status bcu_malloc_async(size_t size, void *stream, void **p);
mr_status bcu_free_async(void *p, void *stream);
mr_status bcu_stream_create(void **stream, void **event);
void bcu_stream_destroy(void *stream, void *event);
mr_status bcu_handoff(void *from, void *event, void *to);
mr_status bcu_device_sync(void);
mr_status bcu_trim_default_pool(void); /* synchronize, then hand the default pool's cache back */
mr_status bcu_mem_info(uint64_t *free_bytes, uint64_t *total_bytes);
void bcu_versions(int *driver, int *runtime);
void bcu_device_name(char *buf, size_t len);
/* For --devices: make GPU d current in the calling thread; name one GPU; set the release threshold
 * of GPU d's default pool to UINT64_MAX (as bcu_async_init does for device 0); synchronize the
 * current device and hand GPU d's default pool cache back. */
mr_status bcu_set_device(int d);
void bcu_device_name_of(int d, char *buf, size_t len);
mr_status bcu_async_init_device(int d);
mr_status bcu_trim_pool_of(int d);

/* ---- machine information (sysinfo.c) ------------------------------------------------------- */
uint64_t bench_mem_available(void); /* MemAvailable from /proc/meminfo, bytes (0 if unknown) */
void bench_cpu_model(char *buf, size_t len);
int bench_cores(void);
/* The CPUs this process may run on, one per physical core first (then their siblings): where the
 * threads workload pins its workers, so that 8 threads on 16 vCPUs of 8 cores get 8 cores.
 * Returns how many it wrote (0: unknown, do not pin). */
int bench_cpu_order(int *cpus, int cap);
void bench_git_commit(char *buf, size_t len);

/* ---- workloads ------------------------------------------------------------------------------ */
typedef struct bench_opts {
  bool sel_alloc[32];
  bool sel_workload[16];
  int reps;
  bool reps_set; /* --reps was given */
  bool bars;     /* --bars: the bars (bars.c) instead of the table */
  uint64_t seed;
  bool quick;
  bool no_pin;   /* --no-pin: leave the threads workload's workers where the scheduler puts them */
  double rep_ms; /* target duration of one timed repetition */
  const char *json;
  const char *plot;
  const char *alloc_arg;
  const char *workload_arg;
  const char *devices_arg; /* --devices: "all" or GPU ids "0,1"; NULL: the single-GPU run */
} bench_opts;

typedef struct bench_case {
  int wl;             /* index into the workload table */
  char params[48];    /* as printed */
  size_t p1, p2;      /* pair: size; random: N, max; phases/streams: -; threads: count; context */
  uint64_t peak;      /* peak bytes the case may hold live (skip it above the allocator's cap) */
  uint64_t max_iters; /* iterations per repetition, at most */
} bench_case;

typedef struct bench_run {
  const bench_case *c;
  balloc *a; /* NULL for workloads that use no allocator (context) */
  uint64_t seed;
  bool pin;               /* threads: pin workers (bench_cpu_order) */
  uint64_t start_ns;      /* when setup began: a setup slower than BENCH_SETUP_LIMIT_MS skips */
  void *st;               /* the workload's state */
  uint64_t req, req_peak; /* bytes requested and live, and their peak (0: not tracked) */
  bool skipped;           /* setup decided to skip; note says why */
  char note[240];         /* a skip reason or an error's detail */
  uint64_t warm_steps;    /* random: untimed steps after the fill (0: none) */
  bool warm_cut;          /* random: the warm-up stopped at its time limit */
} bench_run;

typedef struct bench_workload {
  const char *name;
  const char *unit; /* one op is: */
  const char *what; /* one line for --list */
  bool per_allocator;
  /* Fill `out` with the cases (at most cap); returns their number. */
  size_t (*cases)(const bench_opts *o, int wl, bench_case *out, size_t cap);
  mr_status (*setup)(bench_run *r);
  /* One timed repetition of `iters` iterations; *ops = operations done (ns/op divides by it). */
  mr_status (*rep)(bench_run *r, uint64_t iters, uint64_t *ops);
  void (*teardown)(bench_run *r);
} bench_workload;

/* --devices (devices.c): pair and threads on every GPU at once, one thread per GPU. `ids` lists
 * the GPUs (n of them). Prints its table; writes JSON to o->json if set. Returns the exit status.
 */
int bench_devices_run(const bench_opts *o, const int *ids, int n, int argc, char **argv);

/* Shared by the workload files: a case's seed, and appending a case to the table. */
uint64_t bench_case_seed(uint64_t seed, int wl, size_t p1, size_t p2);
void bench_put_case(bench_case *out, size_t cap, size_t *n, int wl, size_t p1, size_t p2,
                    uint64_t peak, uint64_t max_iters, const char *params);
/* workloads_mt.c: threads and context */
size_t bench_threads_cases(const bench_opts *o, int wl, bench_case *out, size_t cap);
mr_status bench_threads_setup(bench_run *r);
mr_status bench_threads_rep(bench_run *r, uint64_t iters, uint64_t *ops);
void bench_threads_teardown(bench_run *r);
size_t bench_context_cases(const bench_opts *o, int wl, bench_case *out, size_t cap);
mr_status bench_context_setup(bench_run *r);
mr_status bench_context_rep(bench_run *r, uint64_t iters, uint64_t *ops);
void bench_context_teardown(bench_run *r);
size_t bench_workload_count(void);
const bench_workload *bench_workload_at(size_t i);
int bench_workload_find(const char *name);
/* Record the status and mr_last_error() of a failed call in r->note; returns st. */
mr_status bench_fail(bench_run *r, mr_status st, const char *what);

/* ---- results and their reports ------------------------------------------------------------- */
typedef enum bench_outcome { BENCH_OK = 0, BENCH_SKIPPED, BENCH_ERROR } bench_outcome;

#define BENCH_MAX_REPS 100

typedef struct bench_result {
  const bench_case *c;
  const char *workload;
  const char *unit;
  const char *alloc; /* allocator name ("memres" for context) */
  mr_kind kind;
  unsigned flags;
  bench_outcome outcome;
  mr_status status;
  char note[240];
  uint64_t iters;                /* per repetition */
  uint64_t ops;                  /* per repetition (of the median one) */
  double med, min, max;          /* ns per op */
  double rep_ns[BENCH_MAX_REPS]; /* ns per op of each repetition */
  /* pools: upstream allocations and frees during each timed repetition (-1: unknown) */
  int64_t rep_upstream[BENCH_MAX_REPS];
  int reps;
  int threads;   /* threads workload: the thread count */
  double wall_s; /* the whole measurement: open, setup, calibration, repetitions, teardown */
  bool has_pool;
  mr_stats stats; /* pools: statistics at the end of the measurement */
  uint64_t req_peak;
  uint64_t warm_steps; /* random: untimed steps between the fill and the timing */
  bool warm_cut;       /* ... cut short by BENCH_WARM_LIMIT_MS */
  /* filled by the report */
  double ratio_base, ratio_pinned, speedup;
  const char *base;
} bench_result;

typedef struct bench_machine {
  char cpu[128];
  int cores;
  uint64_t mem_available;
  int gpus;
  char no_gpu[240]; /* why the GPU allocators did not run ("" if they did) */
  char device[128];
  int driver, runtime;
  uint64_t gpu_free, gpu_total;
  char commit[64];
  double elapsed_s;
} bench_machine;

/* ---- one measurement in steps (main.c): the table's run and --bars (bars.c) ----------------- */
typedef struct bench_meas {
  const bench_workload *w;
  balloc a;
  bench_run r;    /* r.a points at a: a bench_meas does not move while started */
  uint64_t iters; /* per timed repetition, from the calibration */
  uint64_t t0;
  bool started; /* opened (and set up): bench_meas_end has something to close */
} bench_meas;

/* Fills res's identity, checks the case fits in memory, opens allocator d (NULL: the workload
 * uses none), sets the workload up, then runs the cold repetition, the calibration and the
 * warm-up. True when timed repetitions can follow; otherwise res says why (skipped or error).
 * Call bench_meas_end in either case. */
bool bench_meas_start(bench_meas *m, const bench_case *c, const balloc_desc *d, const bench_opts *o,
                      bench_result *res, uint64_t *slow_peak);
/* An untimed quarter of a repetition (the same sequence goes on): brings the measurement's
 * state back into the caches after something else ran, before a timed repetition. */
mr_status bench_meas_rewarm(bench_meas *m);
/* One timed repetition: ns per op, ops done, a pool's upstream calls during it (-1: not a pool). */
mr_status bench_meas_rep(bench_meas *m, double *ns_per_op, uint64_t *ops, int64_t *upstream);
/* The pool's statistics into res, then teardown and close (res->wall_s: the whole measurement). */
void bench_meas_end(bench_meas *m, bench_result *res);
/* The median, min and max of n values, 0 < n <= BENCH_MAX_REPS (v is left in its order). */
void bench_stat3(const double *v, int n, double *med, double *min, double *max);
/* res->reps = n > 0, and the median, min and max of its first n rep_ns (left in their order). */
void bench_result_summarize(bench_result *res, int n);

/* --bars (bars.c): the bars, each side's repetitions alternating with the other's. Prints
 * its table; writes JSON to o->json if set. Returns the exit status. */
int bench_bars_run(const bench_opts *o, const bench_machine *m, int argc, char **argv);

void bench_report_ratios(bench_result *r, size_t n);
void bench_report_table(const bench_result *r, size_t n, const bench_machine *m);
int bench_report_json(const char *path, const bench_result *r, size_t n, const bench_machine *m,
                      const bench_opts *o, int argc, char **argv);
int bench_report_svg(const char *path, const bench_result *r, size_t n, const bench_machine *m);
/* JSON pieces (report.c): a string (escaped), a number (null for NaN or infinity), the top of a
 * report. */
void bench_json_str(FILE *f, const char *s);
void bench_json_num(FILE *f, double v);
/* The elements of a JSON array, ", " between them (the caller writes the brackets). */
void bench_json_strs(FILE *f, char *const *v, int n);
void bench_json_nums(FILE *f, const double *v, int n);
void bench_json_ints(FILE *f, const int64_t *v, int n);
/* The top of a JSON report: {"kind": 1, the version, the commit, elapsed_s, the "machine"
 * member, and "options": {"argv": [...: the caller closes argv's bracket, adds its options and
 * goes on. */
void bench_json_head(FILE *f, const char *kind, const bench_machine *m, int argc, char **argv);
/* "256B", "64KiB", "4MiB" */
void bench_fmt_bytes(char *buf, size_t len, uint64_t bytes);

#endif
