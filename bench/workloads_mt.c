/* memres-bench: the workloads with threads and guards (the others are in workloads.c).
 *
 * threads  1, 2, 4, 8 (and up to the core count) threads, each with its own stream, one shared
 *          allocator; each keeps up to 16 live blocks of sizes from a seeded set (256 B-64 KiB).
 *          Workers are pinned one per physical core first (bench_cpu_order; --no-pin: not).
 *          A repetition is a window that ends when the first worker has done its iterations:
 *          the others stop at their next operation, and every operation done counts. (Each
 *          doing a fixed count, the aggregate was the slowest worker's speed times the count:
 *          on a VM whose vCPUs run at different speeds the faster ones sat idle at the end.)
 * context  a guard push + pop of a stream and two allocators; each context accessor. */
#include "bench.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- threads --------------------------------------------------------------------------------- */
#define TH_SLOTS 16
#define TH_SIZES 8

struct threads_state;

typedef struct tworker {
  _Alignas(64) struct threads_state *ts; /* a cache line of its own per worker */
  pthread_t th;
  bstream s;
  bool open;
  bench_rng rng;
  void *p[TH_SLOTS];
  size_t size[TH_SLOTS];
  uint64_t ops;
  mr_status status;
  char msg[200];
} tworker;

typedef struct threads_state {
  bench_run *r;
  int n, started;
  tworker *w;
  size_t sizes[TH_SIZES];
  pthread_mutex_t mu;
  pthread_cond_t go, done_cv;
  uint64_t gen, iters;
  int done;
  bool quit;
  _Alignas(64) atomic_bool stop; /* read by every worker on every iteration: a line of its own */
} threads_state;

static void worker_fail(tworker *w, mr_status st, const char *what, size_t size) {
  if (w->status != MR_OK)
    return;
  w->status = st;
  snprintf(w->msg, sizeof w->msg, "%s(%zu): %s", what, size, mr_last_error());
}

static void *worker_main(void *arg) {
  tworker *w = arg;
  threads_state *ts = w->ts;
  balloc *a = ts->r->a;
  uint64_t seen = 0;
  for (;;) {
    pthread_mutex_lock(&ts->mu);
    while (ts->gen == seen && !ts->quit)
      pthread_cond_wait(&ts->go, &ts->mu);
    seen = ts->gen;
    bool quit = ts->quit;
    uint64_t iters = ts->iters;
    pthread_mutex_unlock(&ts->mu);
    if (quit)
      break;
    uint64_t ops = 0, i = 0;
    for (; i < iters && w->status == MR_OK; i++) {
      if (atomic_load_explicit(&ts->stop, memory_order_relaxed))
        break;
      uint64_t u = bench_rng_next(&w->rng);
      size_t j = (size_t)(u % TH_SLOTS);
      size_t size = ts->sizes[(u >> 8) % TH_SIZES];
      mr_status st;
      if (w->p[j]) {
        if ((st = a->d->free(a, w->p[j], w->size[j], &w->s)) != MR_OK) {
          worker_fail(w, st, "free", w->size[j]);
          break;
        }
        w->p[j] = NULL;
        ops++;
      }
      if ((st = a->d->alloc(a, size, &w->s, &w->p[j])) != MR_OK) {
        w->p[j] = NULL;
        worker_fail(w, st, "alloc", size);
        break;
      }
      w->size[j] = size;
      ops++;
    }
    if (i == iters) /* the first to finish ends the window */
      atomic_store_explicit(&ts->stop, true, memory_order_relaxed);
    w->ops = ops;
    pthread_mutex_lock(&ts->mu);
    ts->done++;
    pthread_cond_signal(&ts->done_cv);
    pthread_mutex_unlock(&ts->mu);
  }
  for (int j = 0; j < TH_SLOTS; j++)
    if (w->p[j]) {
      mr_status st = a->d->free(a, w->p[j], w->size[j], &w->s);
      if (st != MR_OK)
        worker_fail(w, st, "free", w->size[j]);
      w->p[j] = NULL;
    }
  return NULL;
}

size_t bench_threads_cases(const bench_opts *o, int wl, bench_case *out, size_t cap) {
  size_t n = 0;
  int cores = bench_cores();
  int counts[16], nc = 0;
  int top = o->quick ? 2 : (cores > 8 ? cores : 8);
  for (int t = 1; t <= top && nc < 15; t *= 2)
    counts[nc++] = t;
  if (!o->quick && counts[nc - 1] != top)
    counts[nc++] = top;
  for (int i = 0; i < nc; i++) {
    char p[32];
    snprintf(p, sizeof p, "threads=%d", counts[i]);
    bench_put_case(out, cap, &n, wl, (size_t)counts[i], 0,
                   (uint64_t)counts[i] * TH_SLOTS * 64 * BENCH_KIB, o->quick ? 50000 : 1000000, p);
  }
  return n;
}

mr_status bench_threads_setup(bench_run *r) {
  threads_state *ts = aligned_alloc(64, sizeof *ts); /* sizeof is a multiple of 64 */
  if (!ts)
    return bench_fail(r, MR_ERR_OUT_OF_MEMORY, "bench state");
  memset(ts, 0, sizeof *ts);
  r->st = ts;
  ts->r = r;
  ts->n = (int)r->c->p1;
  ts->w = aligned_alloc(64, (size_t)ts->n * sizeof *ts->w); /* sizeof is a multiple of 64 */
  if (!ts->w)
    return bench_fail(r, MR_ERR_OUT_OF_MEMORY, "bench state");
  memset(ts->w, 0, (size_t)ts->n * sizeof *ts->w);
  bench_rng rng;
  bench_rng_seed(&rng, bench_case_seed(r->seed, r->c->wl, 0, 0));
  for (int i = 0; i < TH_SIZES; i++)
    ts->sizes[i] = (size_t)bench_rng_range(&rng, 256, 64 * BENCH_KIB);
  pthread_mutex_init(&ts->mu, NULL);
  pthread_cond_init(&ts->go, NULL);
  pthread_cond_init(&ts->done_cv, NULL);
  for (int i = 0; i < ts->n; i++) {
    tworker *w = &ts->w[i];
    w->ts = ts;
    bench_rng_seed(&w->rng, bench_case_seed(r->seed, r->c->wl, (size_t)i + 1, 1));
    mr_status s = r->a->d->stream_open(r->a, &w->s);
    if (s != MR_OK)
      return bench_fail(r, s, "stream");
    w->open = true;
  }
  /* One worker per physical core while there are cores, as the CPU order gives them: left to
   * the scheduler, 8 workers on 16 vCPUs share cores from run to run (4.3x to 9.2x). */
  int cpus[CPU_SETSIZE], ncpus = r->pin ? bench_cpu_order(cpus, CPU_SETSIZE) : 0;
  for (; ts->started < ts->n; ts->started++) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (ncpus > 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[ts->started % ncpus], &one);
      pthread_attr_setaffinity_np(&attr, sizeof one, &one);
    }
    int rc = pthread_create(&ts->w[ts->started].th, &attr, worker_main, &ts->w[ts->started]);
    pthread_attr_destroy(&attr);
    if (rc != 0)
      return bench_fail(r, mr_report_error(MR_ERR_OUT_OF_MEMORY, "pthread_create failed"),
                        "threads");
  }
  r->req_peak = 0; /* not tracked across threads */
  return MR_OK;
}

mr_status bench_threads_rep(bench_run *r, uint64_t iters, uint64_t *ops) {
  threads_state *ts = r->st;
  pthread_mutex_lock(&ts->mu);
  ts->iters = iters;
  ts->done = 0;
  atomic_store_explicit(&ts->stop, false, memory_order_relaxed); /* the mutex publishes it */
  ts->gen++;
  pthread_cond_broadcast(&ts->go);
  while (ts->done < ts->started)
    pthread_cond_wait(&ts->done_cv, &ts->mu);
  pthread_mutex_unlock(&ts->mu);
  *ops = 0;
  for (int i = 0; i < ts->started; i++) {
    *ops += ts->w[i].ops;
    if (ts->w[i].status != MR_OK) {
      snprintf(r->note, sizeof r->note, "thread %d: %s", i, ts->w[i].msg);
      return ts->w[i].status;
    }
  }
  return MR_OK;
}

void bench_threads_teardown(bench_run *r) {
  threads_state *ts = r->st;
  if (!ts)
    return;
  if (ts->w) {
    pthread_mutex_lock(&ts->mu);
    ts->quit = true;
    pthread_cond_broadcast(&ts->go);
    pthread_mutex_unlock(&ts->mu);
    for (int i = 0; i < ts->started; i++)
      pthread_join(ts->w[i].th, NULL);
    for (int i = 0; i < ts->n; i++) {
      if (ts->w[i].status != MR_OK && !r->note[0])
        snprintf(r->note, sizeof r->note, "thread %d: %s", i, ts->w[i].msg);
      if (ts->w[i].open)
        r->a->d->stream_close(r->a, &ts->w[i].s);
    }
    pthread_mutex_destroy(&ts->mu);
    pthread_cond_destroy(&ts->go);
    pthread_cond_destroy(&ts->done_cv);
    free(ts->w);
  }
  free(ts);
  r->st = NULL;
}

/* ---- context --------------------------------------------------------------------------------- */
enum { CX_GUARD = 0, CX_STREAM, CX_HOST, CX_PINNED, CX_DEVICE, CX_KIND, CX_COUNT };

static const char *const k_context_params[CX_COUNT] = {
    "guard push+pop (3 items)", "mr_context_stream",       "mr_context_host_alloc",
    "mr_context_pinned_alloc",  "mr_context_device_alloc", "mr_context_alloc(kind)",
};

typedef struct context_state {
  mr_stream *stream;
  mr_allocator *pinned, *device; /* stand-ins of those kinds: they are pushed, never used */
  mr_guard outer;
  mr_guard_item items[3];
} context_state;

static volatile uintptr_t g_sink;

static mr_status stand_in_alloc(mr_allocator *self, size_t size, mr_stream *stream, void **out) {
  (void)self;
  (void)stream;
  *out = NULL;
  return mr_report_error(MR_ERR_UNSUPPORTED, "bench stand-in allocator: alloc(%zu)", size);
}

static mr_status stand_in_free(mr_allocator *self, void *ptr, size_t size, mr_stream *stream) {
  (void)self;
  (void)ptr;
  (void)size;
  (void)stream;
  return MR_OK;
}

static const mr_allocator_ops k_stand_in_ops = {
    .version = MR_ALLOCATOR_OPS_VERSION, .alloc = stand_in_alloc, .free = stand_in_free};

size_t bench_context_cases(const bench_opts *o, int wl, bench_case *out, size_t cap) {
  size_t n = 0;
  for (int i = 0; i < CX_COUNT; i++)
    bench_put_case(out, cap, &n, wl, (size_t)i, 0, 0, o->quick ? 1000000 : 20000000,
                   k_context_params[i]);
  return n;
}

mr_status bench_context_setup(bench_run *r) {
  context_state *cs = calloc(1, sizeof *cs);
  if (!cs)
    return bench_fail(r, MR_ERR_OUT_OF_MEMORY, "bench state");
  r->st = cs;
  mr_status s = mr_stream_create_host(&cs->stream);
  if (s != MR_OK)
    return bench_fail(r, s, "mr_stream_create_host");
  s = mr_allocator_create(&cs->pinned, &k_stand_in_ops, NULL, mr_device_pinned(), "bench-pinned",
                          NULL);
  if (s != MR_OK)
    return bench_fail(r, s, "mr_allocator_create");
  s = mr_allocator_create(&cs->device, &k_stand_in_ops, NULL, mr_device_gpu(0), "bench-device",
                          NULL);
  if (s != MR_OK)
    return bench_fail(r, s, "mr_allocator_create");
  mr_allocator *host = mr_host_default();
  if (!host)
    return bench_fail(r, MR_ERR_INVALID_ARG, "mr_host_default");
  cs->items[0] = mr_guard_stream(cs->stream);
  cs->items[1] = mr_guard_alloc(host);
  cs->items[2] = mr_guard_alloc(cs->device);
  if (r->c->p1 != CX_GUARD) {
    /* the accessors read non-empty stacks */
    mr_guard_item all[4] = {mr_guard_stream(cs->stream), mr_guard_alloc(host),
                            mr_guard_alloc(cs->pinned), mr_guard_alloc(cs->device)};
    s = mr_guard_push(&cs->outer, all, 4);
    if (s != MR_OK)
      return bench_fail(r, s, "mr_guard_push");
    if (!mr_context_stream() || !mr_context_host_alloc() || !mr_context_pinned_alloc() ||
        !mr_context_device_alloc())
      return bench_fail(r, mr_last_status(), "context accessor returned NULL");
  }
  return MR_OK;
}

mr_status bench_context_rep(bench_run *r, uint64_t iters, uint64_t *ops) {
  context_state *cs = r->st;
  uintptr_t acc = 0;
  *ops = 0;
  switch (r->c->p1) {
  case CX_GUARD:
    for (uint64_t i = 0; i < iters; i++) {
      mr_guard g;
      mr_status s = mr_guard_push(&g, cs->items, 3);
      if (s != MR_OK)
        return bench_fail(r, s, "mr_guard_push");
      if ((s = mr_guard_pop(&g)) != MR_OK)
        return bench_fail(r, s, "mr_guard_pop");
    }
    break;
  case CX_STREAM:
    for (uint64_t i = 0; i < iters; i++)
      acc += (uintptr_t)mr_context_stream();
    break;
  case CX_HOST:
    for (uint64_t i = 0; i < iters; i++)
      acc += (uintptr_t)mr_context_host_alloc();
    break;
  case CX_PINNED:
    for (uint64_t i = 0; i < iters; i++)
      acc += (uintptr_t)mr_context_pinned_alloc();
    break;
  case CX_DEVICE:
    for (uint64_t i = 0; i < iters; i++)
      acc += (uintptr_t)mr_context_device_alloc();
    break;
  default:
    for (uint64_t i = 0; i < iters; i++)
      acc += (uintptr_t)mr_context_alloc((mr_kind)(i % 3));
    break;
  }
  g_sink = acc;
  *ops = iters;
  return MR_OK;
}

void bench_context_teardown(bench_run *r) {
  context_state *cs = r->st;
  if (!cs)
    return;
  if (cs->outer.active) {
    mr_status s = mr_guard_pop(&cs->outer);
    if (s != MR_OK)
      (void)bench_fail(r, s, "mr_guard_pop");
  }
  mr_allocator_release(cs->device);
  mr_allocator_release(cs->pinned);
  mr_stream_release(cs->stream);
  free(cs);
  r->st = NULL;
}
