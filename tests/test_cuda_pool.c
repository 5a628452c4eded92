/* The caching pool on a real GPU (skipped without one): stream order checked with data, the
 * WAIT policy, multi-stream stress, a pool over pinned memory, the front cache, the hot block and
 * parked blocks (growth and out of memory: test_cuda_pool_growth.c). Work on a stream is
 * held back by a host function that spins on a gate the test opens, so "pending" is
 * deterministic. MEMRES_TEST_OPS sets the stress ops per stream (default 4000). */
#if !MEMRES_HAVE_CUDA
/* Built without CUDA: cuda.h cannot be included; the suite reports itself skipped. */
#include "gpu.h"

#include <criterion/criterion.h>

TestSuite(cuda_pool, .init = require_gpu);
Test(cuda_pool, needs_cuda) { cr_skip_test("memres was built without CUDA"); }

#else
#include "cuda_pool_util.h"
#include "gpu.h"
#include "pool_evict.h"
#include "pool_front_fit.h"
#include "pool_parked.h"
#include "pool_sizes.h"
#include "pool_small_cache.h"
#include "pool_take_larger.h"
#include "pool_take_over.h"
#include "pool_turns.h"
#include "pool_util.h"

#include <memres/cuda.h>

#include <criterion/criterion.h>

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

static atomic_int g_gate; /* 0: closed */

static void CUDART_CB wait_for_gate(void *arg) {
  (void)arg;
  while (!atomic_load(&g_gate))
    sched_yield();
}
static void open_gate(void) { atomic_store(&g_gate, 1); }
static void close_gate_on(mr_stream *s) {
  atomic_store(&g_gate, 0);
  cr_assert_eq(cudaLaunchHostFunc(mr_stream_cuda(s), wait_for_gate, NULL), cudaSuccess);
}

static void CUDART_CB spin_a_little(void *arg) {
  volatile uint64_t n = (uint64_t)(uintptr_t)arg;
  while (n)
    n = n - 1;
}

/* A failed assertion must never leave a gate closed (the process could not exit). */
static void teardown(void) { open_gate(); }

TestSuite(cuda_pool, .init = require_gpu, .fini = teardown, .timeout = 120);

/* ---- stream order with data ------------------------------------------------------------------ */

/* A's block is written (0xAA) behind a closed gate, then freed on A. B asks for the same size:
 * it must not get A's memory. B writes 0xBB to its block; after the gate opens, A's block holds
 * 0xAA and B's 0xBB (if they aliased, A's late write would show in B's block). Without a front
 * cache (1 byte: none in effect) the block waits in the core's index; with one, in A's front
 * cache, which B takes back before growing. */
static void blocked_stream_not_reused(mr_cross_stream_policy policy, size_t size,
                                      size_t front_cache) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){.cross_stream = policy,
                                                               .growth = MR_GROWTH_EXACT,
                                                               .front_cache_bytes = front_cache});
  mr_stream *a = new_stream(), *b = new_stream();
  void *p = alloc_ok(pool, size, a);
  cr_assert_eq(cudaMemsetAsync(p, 0x11, size, mr_stream_cuda(a)), cudaSuccess);
  close_gate_on(a);
  cr_assert_eq(cudaMemsetAsync(p, 0xAA, size, mr_stream_cuda(a)), cudaSuccess);
  free_ok(pool, p, size, a);
  void *q = alloc_ok(pool, size, b);
  cr_expect_not(ranges_overlap(p, size, q, size), "B got A's block while A was blocked");
  cr_assert_eq(cudaMemsetAsync(q, 0xBB, size, mr_stream_cuda(b)), cudaSuccess);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(b)), cudaSuccess);
  open_gate();
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  cr_expect(device_bytes_are(p, 0xAA, size), "A's block does not hold A's write");
  cr_expect(device_bytes_are(q, 0xBB, size), "B's block was overwritten by A's pending work");
  free_ok(pool, q, size, b);
  cr_expect_eq(mr_caching_pool_validate(pool), MR_OK, "%s", mr_last_error());
  release_all(pool, a, b, up);
}

Test(cuda_pool, events_blocked_stream_large) {
  blocked_stream_not_reused(MR_CROSS_STREAM_EVENTS, 8 * MiB, 1);
}
Test(cuda_pool, events_blocked_stream_small) {
  blocked_stream_not_reused(MR_CROSS_STREAM_EVENTS, 64 * KiB, 1);
}
Test(cuda_pool, events_blocked_stream_front_cache) {
  blocked_stream_not_reused(MR_CROSS_STREAM_EVENTS, 64 * KiB, 0);
}
Test(cuda_pool, none_blocked_stream) {
  blocked_stream_not_reused(MR_CROSS_STREAM_NONE, 8 * MiB, 1);
}

/* Once A's event completed, B may take A's block (EVENTS). */
Test(cuda_pool, events_reuse_after_completion) {
  const size_t size = 8 * MiB;
  mr_allocator *up = device_upstream();
  mr_allocator *pool =
      make_pool(up, (mr_caching_pool_options){.growth = MR_GROWTH_EXACT,
                                              .front_cache_bytes = 1 /* none in effect */});
  mr_stream *a = new_stream(), *b = new_stream();
  void *p = alloc_ok(pool, size, a);
  free_ok(pool, p, size, a);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  void *q = alloc_ok(pool, size, b);
  cr_expect_eq(q, p, "B did not reuse A's completed block");
  free_ok(pool, q, size, b);
  release_all(pool, a, b, up);
}

/* WAIT: B takes A's block at once, and B's later copy observes A's (gated) write. From the
 * core's index without a front cache (1 byte: none in effect), from A's front cache with one. */
static void wait_policy_orders_b_after_a(size_t front_cache) {
  const size_t size = 4 * MiB;
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){.cross_stream = MR_CROSS_STREAM_WAIT,
                                                               .growth = MR_GROWTH_EXACT,
                                                               .front_cache_bytes = front_cache});
  mr_stream *a = new_stream(), *b = new_stream();
  unsigned char *host = NULL;
  cr_assert_eq(cudaMallocHost((void **)&host, size), cudaSuccess);
  memset(host, 0, size);
  void *p = alloc_ok(pool, size, a);
  close_gate_on(a);
  cr_assert_eq(cudaMemsetAsync(p, 0xAA, size, mr_stream_cuda(a)), cudaSuccess);
  free_ok(pool, p, size, a);
  void *q = alloc_ok(pool, size, b); /* A still blocked */
  cr_expect_eq(q, p, "WAIT: B did not take A's block");
  cr_assert_eq(cudaMemcpyAsync(host, q, size, cudaMemcpyDeviceToHost, mr_stream_cuda(b)),
               cudaSuccess);
  if (q == p)
    cr_expect_eq(cudaStreamQuery(mr_stream_cuda(b)), cudaErrorNotReady,
                 "B's copy ran before A's work: B was not made to wait");
  open_gate();
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(b)), cudaSuccess);
  if (q == p)
    cr_expect(bytes_are(host, 0xAA, size), "B's copy did not observe A's write");
  free_ok(pool, q, size, b);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  cr_assert_eq(cudaFreeHost(host), cudaSuccess);
  release_all(pool, a, b, up);
}

Test(cuda_pool, wait_policy_orders_b_after_a) { wait_policy_orders_b_after_a(1); }
Test(cuda_pool, wait_policy_from_a_front_cache) { wait_policy_orders_b_after_a(0); }

Test(cuda_pool, same_stream_reuse) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){0});
  mr_stream *a = new_stream();
  size_t sizes[] = {256, 4 * KiB, 3 * MiB};
  for (int i = 0; i < 3; i++) {
    void *p = alloc_ok(pool, sizes[i], a);
    cr_expect_eq((uintptr_t)p % 256, 0);
    free_ok(pool, p, sizes[i], a);
    mr_stats before = pool_stats(pool);
    void *q = alloc_ok(pool, sizes[i], a);
    cr_expect_eq(q, p);
    cr_expect_eq(pool_stats(pool).cache_hits, before.cache_hits + 1);
    free_ok(pool, q, sizes[i], a);
  }
  release_all(pool, a, NULL, up);
}

/* ---- stress ---------------------------------------------------------------------------------- */

typedef struct live_blk {
  void *p;
  size_t size;
  unsigned char pat;
  int s;
} live_blk;

static void stress(mr_cross_stream_policy policy) {
  enum { NS = 4, HOLD = 48 };
  uint64_t ops = pool_test_ops(4000);
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){.cross_stream = policy});
  mr_stream *s[NS];
  for (int i = 0; i < NS; i++)
    s[i] = new_stream();
  unsigned char *host = NULL;
  const size_t max_check = 64 * KiB;
  cr_assert_eq(cudaMallocHost((void **)&host, max_check), cudaSuccess);
  live_blk live[NS * HOLD];
  size_t n = 0;
  pool_rng r;
  pool_rng_seed(&r, pool_test_seed(99));
  unsigned seq = 0;
  for (uint64_t op = 0; op < ops * NS; op++) {
    int si = (int)(op % NS);
    cudaStream_t cs = mr_stream_cuda(s[si]);
    if (pool_rng_below(&r, 50) == 0) /* make the stream lag */
      cr_assert_eq(cudaLaunchHostFunc(cs, spin_a_little, (void *)(uintptr_t)20000), cudaSuccess);
    if (n < NS * HOLD && pool_rng_below(&r, 2)) {
      size_t size = pool_rng_below(&r, 20) ? 1 + pool_rng_below(&r, 32 * KiB)
                                           : 32 * KiB + pool_rng_below(&r, 4 * MiB);
      void *p = alloc_ok(pool, size, s[si]);
      for (size_t k = 0; k < n; k++)
        cr_assert_not(ranges_overlap(p, size, live[k].p, live[k].size), "overlap at op %llu",
                      (unsigned long long)op);
      unsigned char pat = (unsigned char)(1 + seq++ % 255);
      cr_assert_eq(cudaMemsetAsync(p, pat, size, cs), cudaSuccess);
      live[n++] = (live_blk){p, size, pat, si};
    } else if (n) {
      size_t k = pool_rng_below(&r, n);
      live_blk bl = live[k];
      cudaStream_t bs = mr_stream_cuda(s[bl.s]);
      if (pool_rng_below(&r, 4) == 0) { /* check the pattern, on the block's stream */
        size_t m = bl.size < max_check ? bl.size : max_check;
        cr_assert_eq(cudaMemcpyAsync(host, bl.p, m, cudaMemcpyDeviceToHost, bs), cudaSuccess);
        cr_assert_eq(cudaStreamSynchronize(bs), cudaSuccess);
        cr_assert(bytes_are(host, bl.pat, m), "block %p (%zu) lost its pattern %#x at op %llu",
                  bl.p, bl.size, bl.pat, (unsigned long long)op);
      }
      free_ok(pool, bl.p, bl.size, s[bl.s]);
      live[k] = live[--n];
    }
  }
  for (size_t k = 0; k < n; k++) {
    size_t m = live[k].size < max_check ? live[k].size : max_check;
    cudaStream_t bs = mr_stream_cuda(s[live[k].s]);
    cr_assert_eq(cudaMemcpyAsync(host, live[k].p, m, cudaMemcpyDeviceToHost, bs), cudaSuccess);
    cr_assert_eq(cudaStreamSynchronize(bs), cudaSuccess);
    cr_assert(bytes_are(host, live[k].pat, m), "block lost its pattern at the end");
    free_ok(pool, live[k].p, live[k].size, s[live[k].s]);
  }
  mr_stats st = pool_stats(pool);
  cr_expect_eq(st.allocs, st.frees);
  cr_expect_eq(st.bytes_in_use, 0);
  cr_expect_eq(mr_caching_pool_validate(pool), MR_OK, "%s", mr_last_error());
  for (int i = 0; i < NS; i++)
    cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(s[i])), cudaSuccess);
  cr_expect_eq(mr_trim(pool, 0), MR_OK);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 0);
  mr_allocator_release(pool);
  for (int i = 0; i < NS; i++)
    mr_stream_release(s[i]);
  cr_assert_eq(cudaFreeHost(host), cudaSuccess);
  mr_allocator_release(up);
}

Test(cuda_pool, stress_4_streams_events) { stress(MR_CROSS_STREAM_EVENTS); }
Test(cuda_pool, stress_4_streams_wait) { stress(MR_CROSS_STREAM_WAIT); }

/* ---- pinned upstream ---------------------------------------------------------------------------
 */

Test(cuda_pool, over_pinned_memory) {
  mr_allocator *up = NULL;
  cr_assert_eq(mr_pinned_allocator_create(&up, 0, NULL), MR_OK, "%s", mr_last_error());
  mr_allocator *pool =
      make_pool(up, (mr_caching_pool_options){.growth = MR_GROWTH_EXACT,
                                              .front_cache_bytes = 1 /* none in effect */});
  cr_expect_eq(mr_allocator_device(pool).kind, MR_PINNED);
  mr_stream *a = new_stream(), *b = new_stream();
  const size_t size = 2 * MiB;
  void *dev = NULL;
  cr_assert_eq(cudaMalloc(&dev, size), cudaSuccess);
  cr_assert_eq(cudaMemset(dev, 0xAA, size), cudaSuccess);
  /* A's pending copy into its pinned block, behind a gate; then the block is freed on A. */
  unsigned char *p = alloc_ok(pool, size, a);
  memset(p, 0, size);
  close_gate_on(a);
  cr_assert_eq(cudaMemcpyAsync(p, dev, size, cudaMemcpyDeviceToHost, mr_stream_cuda(a)),
               cudaSuccess);
  free_ok(pool, p, size, a);
  unsigned char *q = alloc_ok(pool, size, b);
  cr_expect_not(ranges_overlap(p, size, q, size), "B got A's pinned block while A was blocked");
  memset(q, 0xBB, size);
  open_gate();
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  cr_expect(bytes_are(p, 0xAA, size), "A's copy did not land in A's block");
  cr_expect(bytes_are(q, 0xBB, size), "B's pinned block was overwritten by A's copy");
  free_ok(pool, q, size, b);
  /* many small staging buffers: cached, reused */
  for (int i = 0; i < 1000; i++) {
    unsigned char *t = alloc_ok(pool, 4 * KiB, a);
    t[0] = (unsigned char)i;
    free_ok(pool, t, 4 * KiB, a);
  }
  mr_stats st = pool_stats(pool);
  cr_expect_geq(st.cache_hits, 999);
  cr_expect_eq(mr_caching_pool_validate(pool), MR_OK, "%s", mr_last_error());
  cr_assert_eq(cudaFree(dev), cudaSuccess);
  release_all(pool, a, b, up);
}

/* The hot block over device memory (test_pool_hot covers it over host memory): the last block
 * freed on a stream is the next one that fits, a second free of it is a double free, and
 * another stream does not get it while the stream's work runs. */
Test(cuda_pool, hot_block_reuse_and_double_free) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){0});
  mr_stream *a = new_stream(), *b = new_stream();
  void *p = alloc_ok(pool, 64 * KiB, a);
  close_gate_on(a);
  cr_expect_eq(cudaMemsetAsync(p, 0x11, 64 * KiB, mr_stream_cuda(a)), cudaSuccess);
  free_ok(pool, p, 64 * KiB, a);
  cr_expect_eq(mr_free_async(pool, p, 64 * KiB, a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  cr_expect_eq(mr_free_async(pool, p, 64 * KiB, b), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  void *q = alloc_ok(pool, 64 * KiB, b);
  cr_expect_neq(q, p, "B got the block A's pending memset writes");
  /* the refused double free on A filed the hot block in A's front cache: same size, same class */
  void *r = alloc_ok(pool, 64 * KiB, a);
  cr_expect_eq(r, p, "A's next allocation of that size did not take the block it freed");
  open_gate();
  cr_expect_eq(mr_caching_pool_validate(pool), MR_OK, "%s", mr_last_error());
  free_ok(pool, r, 64 * KiB, a);
  free_ok(pool, q, 64 * KiB, b);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(b)), cudaSuccess);
  cr_expect_eq(mr_caching_pool_validate(pool), MR_OK, "%s", mr_last_error());
  release_all(pool, a, b, up);
}

/* Sizes on both sides of what a live-map slot packs, over device memory (see pool_sizes.h;
 * over host memory: test_pool_checks.c). */
Test(cuda_pool, sizes_packed_in_a_slot_and_past_it) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool16 = make_pool(up, (mr_caching_pool_options){.alignment = 16});
  mr_allocator *pool256 = make_pool(up, (mr_caching_pool_options){0});
  mr_stream *a = new_stream(), *b = new_stream();
  check_slot_sizes(pool16, pool256, a, b);
  mr_allocator_release(pool16);
  release_all(pool256, a, b, up);
}

/* The block a stream handed out last (whose slot it keeps, to free it without a probe), once
 * freed on another stream or filed away as the hot block, is a double free on the first
 * (test_pool_hot checks the same over host memory). */
Test(cuda_pool, the_block_handed_out_last_once_gone_is_a_double_free) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){0});
  mr_stream *a = new_stream(), *b = new_stream();
  void *p = alloc_ok(pool, 4 * KiB, a);
  free_ok(pool, p, 4 * KiB, b);
  cr_expect_eq(mr_free_async(pool, p, 4 * KiB, a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  void *q = alloc_ok(pool, 4 * KiB, a);
  void *r = alloc_ok(pool, 4 * KiB, a);
  free_ok(pool, q, 4 * KiB, a);
  free_ok(pool, r, 4 * KiB, a);
  cr_expect_eq(mr_free_async(pool, r, 4 * KiB, a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  cr_expect_eq(mr_free_async(pool, q, 4 * KiB, a), MR_ERR_DOUBLE_FREE, "%s", mr_last_error());
  mr_stats s = pool_stats(pool);
  cr_expect_eq(s.live_blocks, 0);
  cr_expect_eq(s.frees, 3);
  cr_expect_eq(mr_caching_pool_validate(pool), MR_OK, "%s", mr_last_error());
  release_all(pool, a, b, up);
}

/* Blocks freed before the hot one wait in the front cache parked in their live-map slots, over
 * device memory (see pool_parked.h; over host memory: pool_hot/parked_*). */
Test(cuda_pool, parked_blocks_keep_their_slots) {
  on_one_stream((mr_caching_pool_options){0}, parked_blocks_keep_their_slots);
}

Test(cuda_pool, parked_blocks_survive_a_rehash) {
  on_one_stream((mr_caching_pool_options){.initial_reserve = 128 * MiB},
                parked_blocks_survive_a_rehash);
}

Test(cuda_pool, a_parked_block_freed_again_is_a_double_free) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){0});
  mr_stream *a = new_stream(), *b = new_stream();
  a_parked_block_freed_again_is_a_double_free(pool, a, b);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  release_all(pool, a, b, up);
}

/* The front cache's budget over device memory (test_pool_checks covers it over host memory):
 * frees on the owner stream past front_cache_bytes send the oldest half of each size class to
 * the core, pending on that stream, where they merge and serve a larger request of the same
 * stream without growing. 32 x 64 KiB in address order, freed in order, 1 MiB budget: blocks
 * 0-17. */
Test(cuda_pool, front_cache_budget) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){.front_cache_bytes = 1 * MiB});
  mr_stream *a = new_stream();
  void *p[32];
  cr_assert(pool_alloc_in_order(pool, a, p, 32, 64 * KiB), "32 x 64 KiB not carved in order: %s",
            mr_last_error());
  cr_assert_eq(pool_stats(pool).bytes_reserved, 2 * MiB);
  for (int i = 0; i < 32; i++)
    free_ok(pool, p[i], 64 * KiB, a);
  mr_stats sa = MR_STATS_INIT;
  cr_assert_eq(mr_caching_pool_stream_stats(pool, a, &sa), MR_OK, "%s", mr_last_error());
  cr_expect_eq(sa.largest_free_block, 18 * 64 * KiB,
               "the blocks over the budget did not reach the core: largest pending %llu",
               (unsigned long long)sa.largest_free_block);
  void *big = alloc_ok(pool, 1 * MiB, a);
  cr_expect_eq(pool_stats(pool).bytes_reserved, 2 * MiB, "the pool grew");
  cr_expect(within(big, p[0], 18 * 64 * KiB));
  cr_expect_eq(cudaMemsetAsync(big, 0x5a, 1 * MiB, mr_stream_cuda(a)), cudaSuccess);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  cr_expect(device_bytes_are(big, 0x5a, 1 * MiB));
  free_ok(pool, big, 1 * MiB, a);
  finish_one_stream(pool, a, up);
}

/* An eviction keeps the newest half of every size class, over device memory (see pool_evict.h;
 * over host memory: pool_stats/an_eviction_keeps_the_newest_half_of_each_size). */
Test(cuda_pool, an_eviction_keeps_the_newest_half_of_each_size) {
  on_one_stream((mr_caching_pool_options){.front_cache_bytes = 1 * MiB}, evict_keeps_newest_halves);
}

/* An allocation looks below the top of its size class, over device memory (see
 * pool_front_fit.h; over host memory: pool_stats/an_allocation_looks_below_the_top_of_its_class).
 */
Test(cuda_pool, an_allocation_looks_below_the_top_of_its_class) {
  on_one_stream((mr_caching_pool_options){0}, front_fit_looks_below_the_top);
}

static void cuda_done(mr_stream *s) {
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(s)), cudaSuccess);
}

/* Another stream's front cache, taken back before growing, serves a request of a lower size class
 * with a larger block, over device memory (see pool_take_larger.h; over host memory:
 * pool_streams/a_taken_cache_serves_a_smaller_request). */
Test(cuda_pool, a_taken_cache_serves_a_smaller_request) {
  const size_t smaller[] = {300 * KiB, 20 * KiB};
  for (int i = 0; i < 2; i++) {
    mr_allocator *up = device_upstream();
    mr_allocator *pool = make_pool(up, (mr_caching_pool_options){0});
    mr_stream *a = new_stream(), *b = new_stream();
    taken_cache_serves_a_smaller_request(pool, a, b, smaller[i], cuda_done);
    cuda_done(b);
    release_all(pool, a, b, up);
  }
}

/* A stream that takes another's front cache past its own budget is evicted to half of it and
 * keeps its hot block, over device memory (see pool_take_over.h; over host memory:
 * pool_streams/a_taken_cache_over_budget_is_evicted). */
Test(cuda_pool, a_taken_cache_over_budget_is_evicted) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){.front_cache_bytes = MiB});
  mr_stream *a = new_stream(), *b = new_stream();
  taken_cache_over_budget_is_evicted(pool, a, b, cuda_done);
  cuda_done(a);
  cuda_done(b);
  release_all(pool, a, b, up);
}

/* A stream's small front cache is kept, and the pool grows, while another stream allocates, over
 * device memory (see pool_small_cache.h; over host memory:
 * pool_streams/a_small_cache_is_kept_while_others_allocate). */
Test(cuda_pool, a_small_cache_is_kept_while_others_allocate) {
  const struct { int with_b, freed; } runs[] = {{1, 2}, {1, 8}, {0, 2}};
  for (int i = 0; i < 3; i++) {
    mr_allocator *up = device_upstream();
    mr_allocator *pool = make_pool(up, (mr_caching_pool_options){0});
    mr_stream *a = new_stream(), *b = new_stream();
    small_cache_kept_when_others_allocate(pool, a, runs[i].with_b ? b : NULL, runs[i].freed);
    cuda_done(a);
    cuda_done(b);
    release_all(pool, a, b, up);
  }
}

/* Pool-wide peaks with the default statistics slack over device memory (test_pool_peaks covers
 * them over host memory): exact while one stream allocates, kept when a second one starts. */
Test(cuda_pool, peaks_one_stream_then_two) {
  mr_allocator *up = device_upstream();
  mr_allocator *pool = NULL;
  cr_assert_eq(mr_caching_pool_create(&pool, up, NULL), MR_OK, "%s", mr_last_error());
  mr_stream *a = new_stream(), *b = new_stream();
  void *p[3];
  for (int i = 0; i < 3; i++)
    p[i] = alloc_ok(pool, 100 * KiB, a);
  for (int i = 0; i < 3; i++)
    free_ok(pool, p[i], 100 * KiB, a);
  cr_expect_eq(pool_stats(pool).peak_in_use, 300 * KiB, "one stream, under the slack");
  void *q = alloc_ok(pool, 4 * MiB, b);
  for (int i = 0; i < 3; i++)
    p[i] = alloc_ok(pool, 4 * MiB, a);
  mr_stats s = pool_stats(pool);
  cr_expect_eq(s.bytes_in_use, 16 * MiB);
  cr_expect_eq(s.peak_in_use, 16 * MiB);
  for (int i = 0; i < 3; i++)
    free_ok(pool, p[i], 4 * MiB, a);
  free_ok(pool, q, 4 * MiB, b);
  cr_expect_eq(pool_stats(pool).peak_in_use, 16 * MiB);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(b)), cudaSuccess);
  release_all(pool, a, b, up);
}

/* Streams that take turns with one working set over device memory, then over pinned memory (see
 * pool_turns.h; over host memory: pool_streams/streams_in_turn_share_one_working_set). As there,
 * the work before a hand-off is done when the next stream starts: while it runs (the host ahead
 * of the GPU), what was freed on that stream cannot go to another under the events policy, and
 * the pool holds a copy per stream in flight. */
static void cuda_handoff(mr_stream *from, mr_stream *to) {
  turns_order(from, to);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(from)), cudaSuccess);
}

static void cuda_use(void *p, size_t size, mr_stream *s) {
  cr_assert_eq(cudaMemsetAsync(p, 0x5A, size, mr_stream_cuda(s)), cudaSuccess);
}

static void turns_over(mr_allocator *up) {
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){0});
  mr_stream *s[TURNS_STREAMS];
  for (int i = 0; i < TURNS_STREAMS; i++)
    s[i] = new_stream();
  turns_share_one_working_set(pool, s, cuda_handoff, cuda_use, 400);
  for (int i = 0; i < TURNS_STREAMS; i++)
    cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(s[i])), cudaSuccess);
  mr_allocator_release(pool);
  for (int i = 0; i < TURNS_STREAMS; i++)
    mr_stream_release(s[i]);
  mr_allocator_release(up);
}

Test(cuda_pool, streams_in_turn_share_one_working_set) { turns_over(device_upstream()); }

Test(cuda_pool, streams_in_turn_share_one_working_set_pinned) {
  mr_allocator *up = NULL;
  cr_assert_eq(mr_pinned_allocator_create(&up, 0, NULL), MR_OK, "%s", mr_last_error());
  turns_over(up);
}

/* A consumer thread frees on its own stream what a producer thread allocated on another (see
 * pool_turns.h; over host memory: pool_streams/a_consumer_thread_does_not_hoard). */
static void cuda_consumed(mr_stream *s) {
  if (cudaStreamSynchronize(mr_stream_cuda(s)) != cudaSuccess)
    abort();
}

Test(cuda_pool, a_consumer_thread_does_not_hoard) {
  const size_t budget = 64 * MiB;
  mr_allocator *up = device_upstream();
  mr_allocator *pool = make_pool(up, (mr_caching_pool_options){.front_cache_bytes = budget});
  mr_stream *a = new_stream(), *b = new_stream();
  turns_across_threads(pool, budget, a, b, cuda_consumed, 400);
  cr_assert_eq(cudaStreamSynchronize(mr_stream_cuda(a)), cudaSuccess);
  release_all(pool, a, b, up);
}

#endif /* MEMRES_HAVE_CUDA */
