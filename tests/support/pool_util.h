/* Helpers for the pool suites (header-only): a recording upstream allocator that tracks its live
 * segments, op counts scaled by environment and sanitizer, and a small deterministic PRNG. */
#ifndef MEMRES_TEST_POOL_UTIL_H
#define MEMRES_TEST_POOL_UTIL_H

#include <memres/memres.h>

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- op counts --------------------------------------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define POOL_TEST_SANITIZER_DIV 20
#elif defined(__SANITIZE_ADDRESS__)
#define POOL_TEST_SANITIZER_DIV 4
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define POOL_TEST_SANITIZER_DIV 20
#elif __has_feature(address_sanitizer)
#define POOL_TEST_SANITIZER_DIV 4
#endif
#endif
#ifndef POOL_TEST_SANITIZER_DIV
#define POOL_TEST_SANITIZER_DIV 1
#endif

static inline unsigned long long pool_env_ull(const char *name, unsigned long long dflt) {
  const char *v = getenv(name);
  if (!v || !*v)
    return dflt;
  char *end = NULL;
  unsigned long long x = strtoull(v, &end, 0);
  return end && *end == '\0' ? x : dflt;
}

/* `dflt` ops, or MEMRES_TEST_OPS if set; then divided by MEMRES_TEST_OPS_SCALE (if set) or by
 * the sanitizer's factor (tsan 20, asan 4). Never below 1000. */
static inline unsigned long long pool_test_ops(unsigned long long dflt) {
  unsigned long long n = pool_env_ull("MEMRES_TEST_OPS", dflt);
  unsigned long long div = pool_env_ull("MEMRES_TEST_OPS_SCALE", POOL_TEST_SANITIZER_DIV);
  if (div == 0)
    div = 1;
  n /= div;
  return n < 1000 ? 1000 : n;
}

/* ---- PRNG (splitmix64 seeded xorshift64*) ------------------------------------------------- */

typedef struct pool_rng {
  uint64_t s;
} pool_rng;

static inline void pool_rng_seed(pool_rng *r, uint64_t seed) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  r->s = (z ^ (z >> 31)) | 1;
}
static inline uint64_t pool_rng_next(pool_rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ull;
}
/* Uniform in [0, n). */
static inline uint64_t pool_rng_below(pool_rng *r, uint64_t n) {
  return n ? pool_rng_next(r) % n : 0;
}

/* The seed of a run: MEMRES_TEST_SEED if set, else `dflt`. */
static inline uint64_t pool_test_seed(uint64_t dflt) {
  return pool_env_ull("MEMRES_TEST_SEED", dflt);
}

/* ---- a recording upstream ------------------------------------------------------------------ */

typedef struct rec_seg {
  uintptr_t base;
  size_t size;
} rec_seg;

/* State of a recording allocator: every live segment it handed out, and counters. Passes to
 * `inner` (retained) or, when inner is NULL, to aligned malloc. Thread-safe. */
typedef struct recorder {
  pthread_mutex_t mu;
  mr_allocator *inner;
  size_t alignment;
  rec_seg *segs;
  size_t n, cap;
  uint64_t allocs, frees, bad_frees, failed;
  uint64_t live_bytes, peak_bytes;
  uint64_t largest_segment;
  int with_stats;
} recorder;

static inline mr_status rec_alloc(mr_allocator *self, size_t size, mr_stream *stream, void **out) {
  recorder *r = mr_allocator_state(self);
  void *p = NULL;
  mr_status st;
  if (r->inner) {
    st = mr_alloc_async(r->inner, size, stream, &p);
  } else {
    size_t align = r->alignment ? r->alignment : 64;
    st = posix_memalign(&p, align, size) == 0 && p
             ? MR_OK
             : mr_report_error(MR_ERR_OUT_OF_MEMORY, "recorder: malloc(%zu) failed", size);
  }
  pthread_mutex_lock(&r->mu);
  if (st != MR_OK) {
    r->failed++;
    pthread_mutex_unlock(&r->mu);
    *out = NULL;
    return st;
  }
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 64;
    rec_seg *segs = realloc(r->segs, cap * sizeof *segs);
    if (!segs) {
      pthread_mutex_unlock(&r->mu);
      abort();
    }
    r->segs = segs;
    r->cap = cap;
  }
  r->segs[r->n++] = (rec_seg){(uintptr_t)p, size};
  r->allocs++;
  r->live_bytes += size;
  if (r->live_bytes > r->peak_bytes)
    r->peak_bytes = r->live_bytes;
  if (size > r->largest_segment)
    r->largest_segment = size;
  pthread_mutex_unlock(&r->mu);
  *out = p;
  return MR_OK;
}

static inline mr_status rec_free(mr_allocator *self, void *ptr, size_t size, mr_stream *stream) {
  recorder *r = mr_allocator_state(self);
  pthread_mutex_lock(&r->mu);
  size_t i = 0;
  while (i < r->n && r->segs[i].base != (uintptr_t)ptr)
    i++;
  if (i == r->n || r->segs[i].size != size) {
    r->bad_frees++;
    pthread_mutex_unlock(&r->mu);
    return mr_report_error(i == r->n ? MR_ERR_UNKNOWN_POINTER : MR_ERR_INVALID_ARG,
                           "recorder: bad free of %p (%zu bytes)", ptr, size);
  }
  r->segs[i] = r->segs[--r->n];
  r->frees++;
  r->live_bytes -= size;
  pthread_mutex_unlock(&r->mu);
  if (r->inner)
    return mr_free_async(r->inner, ptr, size, stream);
  free(ptr);
  return MR_OK;
}

static inline mr_status rec_stats(mr_allocator *self, mr_stats *out) {
  recorder *r = mr_allocator_state(self);
  pthread_mutex_lock(&r->mu);
  out->bytes_in_use = out->bytes_reserved = out->bytes_requested = r->live_bytes;
  out->peak_in_use = out->peak_reserved = out->peak_requested = r->peak_bytes;
  out->live_blocks = r->n;
  out->allocs = r->allocs;
  out->frees = r->frees;
  out->failed_allocs = r->failed;
  pthread_mutex_unlock(&r->mu);
  return MR_OK;
}

static inline void rec_destroy(mr_allocator *self) {
  recorder *r = mr_allocator_state(self);
  mr_allocator_release(r->inner);
  pthread_mutex_destroy(&r->mu);
  free(r->segs);
  free(r);
}

static const mr_allocator_ops rec_ops_full = {
    .version = MR_ALLOCATOR_OPS_VERSION,
    .alloc = rec_alloc,
    .free = rec_free,
    .stats = rec_stats,
    .destroy = rec_destroy,
};
/* A user allocator with only the required ops and destroy (no stats, no trim). */
static const mr_allocator_ops rec_ops_minimal = {
    .version = MR_ALLOCATOR_OPS_VERSION,
    .alloc = rec_alloc,
    .free = rec_free,
    .destroy = rec_destroy,
};

/* A recording allocator over `inner` (retained; NULL: aligned malloc at `alignment`, 0 -> 64).
 * *rec stays valid while the allocator lives: keep a reference to read it after a pool that used
 * it is gone. */
static inline mr_status recorder_create(mr_allocator **out, recorder **rec, mr_allocator *inner,
                                        size_t alignment, int minimal) {
  recorder *r = calloc(1, sizeof *r);
  if (!r)
    return MR_ERR_OUT_OF_MEMORY;
  pthread_mutex_init(&r->mu, NULL);
  r->inner = mr_allocator_retain(inner);
  r->alignment = alignment;
  mr_status st = mr_allocator_create(out, minimal ? &rec_ops_minimal : &rec_ops_full, r,
                                     mr_device_host(), "recorder", NULL);
  if (st != MR_OK) {
    mr_allocator_release(r->inner);
    pthread_mutex_destroy(&r->mu);
    free(r);
    return st;
  }
  if (rec)
    *rec = r;
  return MR_OK;
}

static inline uint64_t recorder_live_bytes(recorder *r) {
  pthread_mutex_lock(&r->mu);
  uint64_t v = r->live_bytes;
  pthread_mutex_unlock(&r->mu);
  return v;
}
static inline size_t recorder_live_segments(recorder *r) {
  pthread_mutex_lock(&r->mu);
  size_t v = r->n;
  pthread_mutex_unlock(&r->mu);
  return v;
}
/* 1 if p lies in [base, base + len). */
static inline int within(const void *p, const void *base, size_t len) {
  return (const char *)p >= (const char *)base && (const char *)p < (const char *)base + len;
}

/* Allocates n blocks of `size` on stream s into p: 1 if every one succeeded and each lies right
 * after the one before (a fresh pool carves a segment front to back), else 0. */
static inline int pool_alloc_in_order(mr_allocator *pool, mr_stream *s, void **p, int n,
                                      size_t size) {
  for (int i = 0; i < n; i++) {
    p[i] = NULL;
    if (mr_alloc_async(pool, size, s, &p[i]) != MR_OK ||
        (i && (char *)p[i] != (char *)p[i - 1] + size))
      return 0;
  }
  return 1;
}

/* 1 if [p, p + size) lies inside one live segment. */
static inline int recorder_contains(recorder *r, const void *p, size_t size) {
  uintptr_t a = (uintptr_t)p;
  int found = 0;
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->n && !found; i++)
    found = a >= r->segs[i].base && a - r->segs[i].base <= r->segs[i].size &&
            size <= r->segs[i].size - (a - r->segs[i].base);
  pthread_mutex_unlock(&r->mu);
  return found;
}

/* ---- misc ------------------------------------------------------------------------------------ */

static inline int ranges_overlap(const void *a, size_t an, const void *b, size_t bn) {
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return x < y + bn && y < x + an;
}

/* 1 if every byte of p[0..n) is v. */
static inline int bytes_are(const void *p, int v, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != (unsigned char)v)
      return 0;
  return 1;
}

/* Checked pool calls, for the suites over host memory (pool_fixture.h) and over a GPU
 * (test_cuda_pool.c) alike. */
static inline void *alloc_ok(mr_allocator *pool, size_t size, mr_stream *s) {
  void *p = NULL;
  mr_status st = mr_alloc_async(pool, size, s, &p);
  cr_assert_eq(st, MR_OK, "alloc(%zu): %s", size, mr_last_error());
  cr_assert_not_null(p);
  return p;
}
static inline void free_ok(mr_allocator *pool, void *p, size_t size, mr_stream *s) {
  mr_status st = mr_free_async(pool, p, size, s);
  cr_assert_eq(st, MR_OK, "free(%p, %zu): %s", p, size, mr_last_error());
}
static inline void validate_ok(mr_allocator *pool) {
  mr_status st = mr_caching_pool_validate(pool);
  cr_assert_eq(st, MR_OK, "validate: %s", mr_last_error());
}

static inline mr_stats pool_stats(mr_allocator *a) {
  mr_stats s = MR_STATS_INIT;
  if (mr_stats_get(a, &s) != MR_OK)
    memset(&s.bytes_in_use, 0xff, sizeof s - offsetof(mr_stats, bytes_in_use));
  return s;
}

#endif
