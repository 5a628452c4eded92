/* The caching pool when the host has no memory for its own bookkeeping: a front-cache bin that
 * cannot grow, a live map that cannot grow. This binary is linked with -Wl,--wrap=realloc and
 * -Wl,--wrap=calloc (tests/CMakeLists.txt), so the calls of the memres objects linked into it go
 * through the wrappers below, which fail while a test has armed them. Over host memory with
 * manual streams; no GPU needed (the front cache and the live maps are host structures whatever
 * the pool's memory is). */
#include "pool_fixture.h"

#include <stdbool.h>

void *__real_realloc(void *p, size_t n);
void *__real_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_calloc(size_t n, size_t size);

static bool g_fail_realloc;
static size_t g_fail_calloc_from = SIZE_MAX; /* callocs of at least this many bytes fail */
static unsigned g_realloc_refused, g_calloc_refused;

void *__wrap_realloc(void *p, size_t n) {
  if (g_fail_realloc) {
    g_realloc_refused++;
    return NULL;
  }
  return __real_realloc(p, n);
}

void *__wrap_calloc(size_t n, size_t size) {
  if (size && n >= g_fail_calloc_from / size) {
    g_calloc_refused++;
    return NULL;
  }
  return __real_calloc(n, size);
}

static mr_allocator *g_pool;

static void hm_setup(void) {
  setup();
  g_pool = make_pool((mr_caching_pool_options){0});
}

static void hm_teardown(void) {
  g_fail_realloc = false;
  g_fail_calloc_from = SIZE_MAX;
  release_pool(g_pool);
  teardown();
}

TestSuite(pool_hostmem, .init = hm_setup, .fini = hm_teardown);

/* A freed block whose front-cache bin cannot grow waits on the stream's spill list: the free
 * succeeds, the pool stays consistent, and the block goes to the core with the next flush (here
 * mr_trim's, in host order so that it settles at once and the segment can go back). */
Test(pool_hostmem, a_bin_that_cannot_grow_spills_the_block) {
  void *p = alloc_ok(g_pool, 4 * KiB, NULL);
  void *q = alloc_ok(g_pool, 4 * KiB, NULL);
  g_fail_realloc = true;
  free_ok(g_pool, p, 4 * KiB, NULL); /* p is the hot block */
  free_ok(g_pool, q, 4 * KiB, NULL); /* q is; filing p needs the bin's first room */
  cr_expect_gt(g_realloc_refused, 0, "the bin grew without realloc");
  void *q2 = alloc_ok(g_pool, 4 * KiB, NULL);
  cr_expect_eq(q2, q, "the hot block was not taken back");
  validate_ok(g_pool); /* counts the spilled block as cached */
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.live_blocks, 1);
  cr_expect_eq(s.bytes_in_use, 4 * KiB);
  void *r = alloc_ok(g_pool, 4 * KiB, NULL);
  cr_expect_neq(r, q2);
  validate_ok(g_pool);
  free_ok(g_pool, r, 4 * KiB, NULL);
  free_ok(g_pool, q2, 4 * KiB, NULL);
  g_fail_realloc = false;
  cr_assert_eq(mr_trim(g_pool, 0), MR_OK, "%s", mr_last_error());
  s = pool_stats(g_pool);
  cr_expect_eq(s.bytes_reserved, 0, "the segment did not go back: %llu bytes reserved",
               (unsigned long long)s.bytes_reserved);
  validate_ok(g_pool);
}

/* Spilled blocks count against the front cache's budget, and the eviction they cause sends them
 * to the core with the rest. */
Test(pool_hostmem, spilled_blocks_are_evicted_with_the_cache) {
  mr_allocator *pool = make_pool((mr_caching_pool_options){.front_cache_bytes = 256 * KiB});
  void *p[16];
  for (int i = 0; i < 16; i++)
    p[i] = alloc_ok(pool, 32 * KiB, NULL);
  g_fail_realloc = true;
  for (int i = 0; i < 16; i++) {
    free_ok(pool, p[i], 32 * KiB, NULL);
    validate_ok(pool);
  }
  g_fail_realloc = false;
  /* host order settles at once: what was evicted merged into free blocks of the segment */
  mr_stats s = pool_stats(pool);
  cr_expect_geq(s.largest_free_block, 128 * KiB, "largest free block %llu",
                (unsigned long long)s.largest_free_block);
  cr_expect_eq(s.bytes_in_use, 0);
  release_pool(pool);
}

/* An allocation whose live map cannot grow fails with MR_ERR_OUT_OF_MEMORY and a message; the
 * block it would have had goes back to the stream's cache, and the next allocation (with memory)
 * gets it. */
Test(pool_hostmem, a_live_map_that_cannot_grow_fails_the_allocation) {
  g_fail_calloc_from = 1024; /* the map's first table; segment records are smaller */
  void *p = NULL;
  mr_status st = mr_alloc_async(g_pool, 4 * KiB, g_a, &p);
  cr_expect_eq(st, MR_ERR_OUT_OF_MEMORY, "%s", mr_last_error());
  cr_expect_null(p);
  cr_expect(strstr(mr_last_error(), "track a live block") != NULL, "message: %s", mr_last_error());
  cr_expect_gt(g_calloc_refused, 0);
  mr_stats s = pool_stats(g_pool);
  cr_expect_eq(s.live_blocks, 0);
  cr_expect_eq(s.failed_allocs, 1);
  validate_ok(g_pool);
  g_fail_calloc_from = SIZE_MAX;
  void *q = alloc_ok(g_pool, 4 * KiB, g_a);
  cr_expect_eq(pool_stats(g_pool).bytes_reserved, 2 * MiB, "the pool grew");
  free_ok(g_pool, q, 4 * KiB, g_a);
  validate_ok(g_pool);
}

/* A live map grows when its table is 7/8 full; one that cannot grow fills on to 15/16, then fails
 * allocations; the blocks already handed out stay valid and free normally. */
Test(pool_hostmem, a_full_live_map_degrades_then_fails) {
  void *p[64];
  int n = 0;
  for (; n < 32; n++)
    p[n] = alloc_ok(g_pool, 256, g_a); /* in the first table (64 slots), which holds 56 */
  g_fail_calloc_from = 1024;
  mr_status st = MR_OK;
  while (n < 64) {
    st = mr_alloc_async(g_pool, 256, g_a, &p[n]);
    if (st != MR_OK)
      break;
    n++;
  }
  cr_expect_eq(st, MR_ERR_OUT_OF_MEMORY, "%s", mr_last_error());
  cr_expect_eq(n, 60, "a 64-slot table holds 60 at 15/16, held %d", n);
  validate_ok(g_pool);
  for (int i = 0; i < n; i++)
    free_ok(g_pool, p[i], 256, g_a);
  validate_ok(g_pool);
  cr_expect_eq(pool_stats(g_pool).live_blocks, 0);
}
