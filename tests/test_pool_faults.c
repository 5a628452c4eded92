/* The caching pool over a failing upstream: pool -> fault adaptor -> recorder -> host.
 * For every N in 1..1000 the Nth upstream alloc fails (and, separately, every Nth for a few N)
 * under a fixed workload of allocs, frees and trims. Every op returns MR_OK or
 * MR_ERR_OUT_OF_MEMORY, mr_caching_pool_validate stays MR_OK after every op, the statistics
 * agree with the upstream, a later alloc succeeds once upstream stops failing, and after the
 * pool is destroyed the upstream holds nothing.
 * MEMRES_TEST_OPS_SCALE (or a sanitizer build) strides N: 1, 1+s, 1+2s, ... */
#include "pool_util.h"

#include <criterion/criterion.h>

#include <inttypes.h>
#include <string.h>

#define KiB ((size_t)1024)
#define MAX_LIVE 24

typedef struct fixture {
  mr_allocator *host, *rec_alloc, *fault, *pool;
  recorder *rec;
  mr_stream *streams[3]; /* NULL and two host streams */
  void *p[MAX_LIVE];
  size_t size[MAX_LIVE];
  int stream[MAX_LIVE];
  size_t n;
  uint64_t allocs, frees, ooms;
} fixture;

static const mr_caching_pool_options k_opts = {
    .small_limit = 4 * KiB,
    .small_segment = 16 * KiB,
    .growth = MR_GROWTH_EXACT,
    .release_threshold = 64 * KiB,
    .stats_slack = 1,
};

static void fx_open(fixture *f, const mr_fault_options *fo) {
  memset(f, 0, sizeof *f);
  /* aligned like the pool (the less-aligned case is covered by test_pool_streams
   * less_aligned_upstream_counts_and_maximum) */
  cr_assert_eq(mr_host_allocator_create(&f->host, &(mr_host_options){.alignment = 256}), MR_OK);
  cr_assert_eq(recorder_create(&f->rec_alloc, &f->rec, f->host, 0, 0), MR_OK);
  cr_assert_eq(mr_fault_allocator_create(&f->fault, f->rec_alloc, fo), MR_OK);
  cr_assert_eq(mr_stream_create_host(&f->streams[1]), MR_OK);
  cr_assert_eq(mr_stream_create_host(&f->streams[2]), MR_OK);
  mr_status st = mr_caching_pool_create(&f->pool, f->fault, &k_opts);
  cr_assert_eq(st, MR_OK, "pool create: %s", mr_last_error());
}

/* Destroy the pool (with or without live blocks) and check the upstream holds nothing. */
static void fx_close(fixture *f, const char *what, uint64_t n) {
  mr_allocator_release(f->pool);
  cr_assert_eq(recorder_live_segments(f->rec), 0, "%s %" PRIu64 ": %zu segments left upstream",
               what, n, recorder_live_segments(f->rec));
  cr_assert_eq(recorder_live_bytes(f->rec), 0, "%s %" PRIu64 ": bytes left upstream", what, n);
  cr_assert_eq(f->rec->bad_frees, 0, "%s %" PRIu64 ": bad upstream frees", what, n);
  mr_allocator_release(f->fault);
  mr_allocator_release(f->rec_alloc);
  mr_allocator_release(f->host);
  mr_stream_release(f->streams[1]);
  mr_stream_release(f->streams[2]);
}

static void fx_check(fixture *f, const char *what, uint64_t n, uint64_t op) {
  mr_status st = mr_caching_pool_validate(f->pool);
  cr_assert_eq(st, MR_OK, "%s %" PRIu64 " op %" PRIu64 ": validate: %s", what, n, op,
               mr_last_error());
  mr_stats s = pool_stats(f->pool);
  cr_assert_eq(s.bytes_reserved, recorder_live_bytes(f->rec),
               "%s %" PRIu64 " op %" PRIu64 ": reserved %" PRIu64 ", upstream holds %" PRIu64, what,
               n, op, s.bytes_reserved, recorder_live_bytes(f->rec));
  cr_assert_eq(s.live_blocks, f->n, "%s %" PRIu64 " op %" PRIu64 ": live blocks", what, n, op);
  cr_assert_eq(s.allocs, f->allocs, "%s %" PRIu64 " op %" PRIu64 ": allocs", what, n, op);
  cr_assert_eq(s.frees, f->frees, "%s %" PRIu64 " op %" PRIu64 ": frees", what, n, op);
  cr_assert_eq(s.failed_allocs, f->ooms, "%s %" PRIu64 " op %" PRIu64 ": failed allocs", what, n,
               op);
  cr_assert_eq(s.upstream_allocs, f->rec->allocs, "%s %" PRIu64 " op %" PRIu64 ": upstream allocs",
               what, n, op);
}

static void fx_free_one(fixture *f, size_t k, const char *what, uint64_t n) {
  mr_status st = mr_free_async(f->pool, f->p[k], f->size[k], f->streams[f->stream[k]]);
  cr_assert_eq(st, MR_OK, "%s %" PRIu64 ": free: %s", what, n, mr_last_error());
  f->frees++;
  f->p[k] = f->p[--f->n];
  f->size[k] = f->size[f->n];
  f->stream[k] = f->stream[f->n];
}

/* One op of the fixed workload. */
static void fx_step(fixture *f, pool_rng *r, const char *what, uint64_t n, uint64_t op) {
  uint64_t c = pool_rng_below(r, 100);
  if (c < 48 && f->n < MAX_LIVE) {
    size_t size = pool_rng_below(r, 2) ? 1 + pool_rng_below(r, 4 * KiB)
                                       : 2048 * KiB + pool_rng_below(r, 4096 * KiB);
    int si = (int)pool_rng_below(r, 3);
    void *p = (void *)1;
    mr_status st = mr_alloc_async(f->pool, size, f->streams[si], &p);
    cr_assert(st == MR_OK || st == MR_ERR_OUT_OF_MEMORY,
              "%s %" PRIu64 " op %" PRIu64 ": alloc(%zu) returned %s: %s", what, n, op, size,
              mr_status_str(st), mr_last_error());
    if (st == MR_OK) {
      cr_assert_not_null(p);
      memset(p, 0x5c, size < 64 ? size : 64);
      f->p[f->n] = p;
      f->size[f->n] = size;
      f->stream[f->n] = si;
      f->n++;
      f->allocs++;
    } else {
      cr_assert_null(p, "%s %" PRIu64 ": failed alloc left *out set", what, n);
      cr_assert(mr_last_error()[0] != '\0');
      f->ooms++;
    }
  } else if (c < 88) {
    if (f->n)
      fx_free_one(f, pool_rng_below(r, f->n), what, n);
  } else {
    size_t keep = pool_rng_below(r, 2) ? 0 : pool_rng_below(r, 256 * KiB);
    mr_status st = mr_trim(f->pool, keep);
    cr_assert_eq(st, MR_OK, "%s %" PRIu64 " op %" PRIu64 ": trim: %s", what, n, op,
                 mr_last_error());
  }
  fx_check(f, what, n, op);
}

/* A request larger than anything cached: needs upstream, which no longer fails. */
static void fx_usable(fixture *f, const char *what, uint64_t n) {
  void *p = NULL;
  mr_status st = mr_alloc_async(f->pool, 300 * KiB, NULL, &p);
  cr_assert_eq(st, MR_OK, "%s %" PRIu64 ": pool unusable after the failure: %s", what, n,
               mr_last_error());
  memset(p, 0, 300 * KiB);
  cr_assert_eq(mr_free_async(f->pool, p, 300 * KiB, NULL), MR_OK);
  p = NULL;
  cr_assert_eq(mr_alloc_async(f->pool, 100, f->streams[1], &p), MR_OK);
  cr_assert_eq(mr_free_async(f->pool, p, 100, f->streams[1]), MR_OK);
  f->allocs += 2;
  f->frees += 2;
  fx_check(f, what, n, UINT64_MAX);
}

static void fail_nth_range(uint64_t from, uint64_t to) {
  uint64_t stride = pool_env_ull("MEMRES_TEST_OPS_SCALE", POOL_TEST_SANITIZER_DIV);
  if (stride == 0)
    stride = 1;
  uint64_t total_ops = 0;
  for (uint64_t n = from; n <= to; n += stride) {
    fixture f;
    fx_open(&f, &(mr_fault_options){.fail_nth = n});
    pool_rng r;
    pool_rng_seed(&r, 7); /* the same workload for every N */
    uint64_t op = 0, after = 0;
    const uint64_t cap = 40 * n + 5000;
    for (; op < cap && after < 100; op++) {
      fx_step(&f, &r, "fail_nth", n, op);
      if (mr_fault_allocator_failures(f.fault))
        after++;
    }
    total_ops += op;
    cr_assert_eq(mr_fault_allocator_failures(f.fault), 1,
                 "fail_nth %" PRIu64 ": the workload made only %" PRIu64
                 " upstream allocs in %" PRIu64 " ops",
                 n, mr_fault_allocator_calls(f.fault), op);
    fx_usable(&f, "fail_nth", n);
    if (n % 2) { /* odd N: free everything first; even N: destroy with live blocks */
      while (f.n)
        fx_free_one(&f, 0, "fail_nth", n);
      fx_check(&f, "fail_nth", n, op);
    }
    fx_close(&f, "fail_nth", n);
  }
  fprintf(stderr,
          "pool_faults: fail_nth %" PRIu64 "..%" PRIu64 " (stride %" PRIu64 "): %" PRIu64 " ops\n",
          from, to, stride, total_ops);
}

/* Split so the halves cost about the same (ops grow with N). */
Test(pool_faults, fail_nth_1_to_500) { fail_nth_range(1, 500); }
Test(pool_faults, fail_nth_501_to_707) { fail_nth_range(501, 707); }
Test(pool_faults, fail_nth_708_to_866) { fail_nth_range(708, 866); }
Test(pool_faults, fail_nth_867_to_1000) { fail_nth_range(867, 1000); }

Test(pool_faults, fail_every) {
  const uint64_t every[] = {1, 2, 3, 5, 7, 10, 50, 100, 1000};
  for (size_t i = 0; i < sizeof every / sizeof *every; i++) {
    uint64_t n = every[i];
    fixture f;
    fx_open(&f, &(mr_fault_options){.fail_every = n});
    pool_rng r;
    pool_rng_seed(&r, 11);
    for (uint64_t op = 0; op < 4000; op++)
      fx_step(&f, &r, "fail_every", n, op);
    uint64_t calls = mr_fault_allocator_calls(f.fault);
    cr_expect_eq(mr_fault_allocator_failures(f.fault), calls / n);
    if (n == 1)
      cr_expect_eq(f.allocs, 0, "every upstream alloc failed, yet %" PRIu64 " allocs worked",
                   f.allocs);
    cr_assert_eq(mr_fault_allocator_set(f.fault, NULL), MR_OK);
    fx_usable(&f, "fail_every", n);
    fx_close(&f, "fail_every", n); /* with whatever is live */
  }
}

/* Injected with a status other than out-of-memory: the pool reports a failure, never MR_OK with
 * no memory, and stays consistent. */
Test(pool_faults, other_injected_status) {
  fixture f;
  fx_open(&f, &(mr_fault_options){.fail_every = 1, .status = MR_ERR_INJECTED});
  void *p = (void *)1;
  mr_status st = mr_alloc_async(f.pool, 1000, NULL, &p);
  cr_expect_neq(st, MR_OK);
  cr_expect_null(p);
  cr_assert_eq(mr_caching_pool_validate(f.pool), MR_OK, "%s", mr_last_error());
  cr_assert_eq(mr_fault_allocator_set(f.fault, NULL), MR_OK);
  f.ooms = pool_stats(f.pool).failed_allocs;
  fx_usable(&f, "injected", 0);
  fx_close(&f, "injected", 0);
}

/* A failing initial reserve: creation fails cleanly, nothing held. */
Test(pool_faults, initial_reserve_fails) {
  mr_allocator *host, *rec_alloc, *fault, *pool = (mr_allocator *)1;
  recorder *rec = NULL;
  cr_assert_eq(mr_host_allocator_create(&host, NULL), MR_OK);
  cr_assert_eq(recorder_create(&rec_alloc, &rec, host, 0, 0), MR_OK);
  cr_assert_eq(mr_fault_allocator_create(&fault, rec_alloc, &(mr_fault_options){.fail_every = 1}),
               MR_OK);
  mr_status st = mr_caching_pool_create(&pool, fault,
                                        &(mr_caching_pool_options){.initial_reserve = 1024 * KiB});
  cr_expect_eq(st, MR_ERR_OUT_OF_MEMORY, "%s", mr_status_str(st));
  cr_expect_null(pool);
  cr_expect_eq(recorder_live_segments(rec), 0);
  mr_allocator_release(fault);
  mr_allocator_release(rec_alloc);
  mr_allocator_release(host);
}
