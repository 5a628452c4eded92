/* The caching pool's structures, shared by caching.c (the front's alloc and free, the API),
 * caching_front.c/.h (each stream's front cache), caching_stats.c (statistics), caching_core.c
 * (the shared structure: TLSF indexes, settling, upstream), caching_batch.c (batches of pending
 * blocks and their events), caching_segments.c (segments and block records),
 * caching_validate.c (the self-check) and livemap.c (each stream's live blocks). */
#ifndef MEMRES_ALLOC_CACHING_INTERNAL_H
#define MEMRES_ALLOC_CACHING_INTERNAL_H

#include "../common/bias.h"
#include "../common/spin.h"
#include "internal.h"
#include "tlsf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Zeroed memory aligned to a cache line (the pool and its per-stream states hold aligned
 * members); free() releases it. */
static inline void *mr__calloc_aligned(size_t size) {
  size_t n = (size + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, n);
  if (p)
    memset(p, 0, n);
  return p;
}

/* Block states. A block is always in exactly one place:
 *  LIVE    its owner stream's front holds it: handed to a caller (in the stream's live map), the
 *          stream's hot block (in the map, freed), or in its front cache (parked in its map slot,
 *          freed, if it was freed on that stream: see mr__centry). The front never reads or
 *          writes a record (at 1e5 live blocks each record touched is a cache miss): the map and
 *          the cache hold what it needs, and only the core changes a record's state;
 *  PENDING in its owner stream's pending index and in one of its batches: freed on that stream,
 *          its free event not yet known complete; the owner may reuse it at once;
 *  FREE    in the pool's settled index: usable by every stream;
 *  SPARE   a record not in use. */
#define MR__MIB ((size_t)1 << 20)

/* The two families of segments: small requests and their segments, and the rest. */
enum { MR__SMALL = 0, MR__LARGE = 1 };

enum { MR__LIVE = 1, MR__PENDING, MR__FREE, MR__SPARE };

struct mr__pstream;
struct mr__batch;
struct mr__seg;

struct mr__blk;

/* livemap.c: a stream's live blocks by address (under the stream's lock); the hot operations are
 * inline below, after mr__blk. Each slot holds what a free checks and needs (address, requested
 * and block sizes) beside the block, so neither a probe nor a free reads a block record: at 1e5
 * live blocks each record read is a cache miss.
 *
 * The table is open addressing over groups of 8 slots, with a control byte a slot (as Abseil's
 * Swiss tables): EMPTY, DELETED, or a full slot's 7 bits of hash with the high bit set. A probe
 * reads the home group's 8 control bytes (the control array is 1/16 of the slots' size: it stays
 * in cache), and then only the slot whose bits match: one slot line a lookup. A removal writes
 * its own slot and control byte and nothing else (no backward shift that reads the next slots),
 * so slots never move but in a rehash, and the table can fill to 7/8, its blocks to 25/32 (see
 * mr__livemap_grow).
 *
 * A slot is 16 bytes, 4 to a cache line: with random's 5e4 blocks live at 1e5 the table is
 * 1 MiB (2^16 slots), where four plain words at a linear probe's 1/2 would take 8, and the
 * free's one likely cache miss (the slot's line) is that much less likely. Block addresses and
 * records lie below 2^48 (the pool checks both) and records are 64-byte aligned, which leaves
 * room for the sizes:
 *   key  bits 0-47 the block's address (key 0: no block), 48-63 its size in units of the pool's
 *        alignment;
 *   val  bits 6-47 the record, bit 0 freed (the stream's hot block), bits 48-63 and 1-4 the
 *        slack (block size - requested size: bits 0-15 and 16-19).
 * A block whose units or slack do not fit (65,535 units or more, 1 MiB of slack or more) is
 * escaped: units all ones, its size read from its record, and its requested size kept there
 * (live_requested: written and cleared by its stream's front only, zero otherwise). */
typedef struct mr__live_slot {
  uint64_t key;
  uint64_t val;
} mr__live_slot;

#define MR__LS_ADDR 0x0000FFFFFFFFFFFFull /* key: the address */
#define MR__LS_BLK 0x0000FFFFFFFFFFC0ull  /* val: the record */
#define MR__LS_FREED 1ull                 /* val: freed */
#define MR__LS_ESC 0xFFFFull              /* key >> 48 of an escaped block */
#define MR__LS_SLACK_LIMIT (1ull << 20)
/* The highest address, plus one, a block or a record may have. */
#define MR__LS_LIMIT (1ull << 48)

enum { MR__LM_EMPTY = 0x00, MR__LM_DELETED = 0x01, MR__LM_GROUP = 8 };

typedef struct mr__livemap {
  mr__live_slot *slots;
  uint8_t *ctrl; /* a byte a slot (after the slots, in the same allocation) */
  size_t mask;   /* slots - 1: a power of two, 64 at least */
  size_t count;
  size_t left;    /* insertions into EMPTY slots before a rehash (the table full at 7/8) */
  int fuller;     /* no memory to grow: filling on to 15/16 */
  unsigned shift; /* log2 of the pool's alignment: block sizes are stored in its units */
} mr__livemap;

int mr__livemap_rehash(mr__livemap *m, size_t cap);
/* Makes room for one more (0 when there is no host memory for it). */
int mr__livemap_grow(mr__livemap *m);
/* b's slot, or NULL when b is not in the map. */
const mr__live_slot *mr__livemap_slot_of(const mr__livemap *m, const struct mr__blk *b);
void mr__livemap_destroy(mr__livemap *m);
/* Checks the map's own invariants (for mr_caching_pool_validate): 0 with what is wrong in `why`. */
int mr__livemap_check(const mr__livemap *m, char *why, size_t len);

/* A block record. The front (the live maps, the front caches) never touches one. Its first cache
 * line holds all that the core reads and writes (indexes, splits, merges): at 1e5 live blocks
 * each record touched is a cache miss, and one line a record keeps it to one. The second line is
 * for PENDING blocks (and escaped live ones: see mr__live_slot), and is zero in a SPARE record. A
 * live block's requested size is in its stream's live map, not here. */
typedef struct mr__blk {
  _Alignas(64) uintptr_t addr; /* blocks never share a cache line: threads own their own */
  size_t size;                 /* bytes of the block (a multiple of the pool's alignment) */
  struct mr__blk *phys_prev, *phys_next; /* neighbours within the segment */
  struct mr__blk *free_prev;             /* FREE, PENDING: the TLSF list */
  struct mr__blk *free_next;             /* TLSF list, a spill or spare list */
  struct mr__pstream *owner; /* LIVE, PENDING: the stream whose front or index holds it */
  _Atomic unsigned char state;
  unsigned char small;
  unsigned short cls; /* TLSF class while indexed */
  /* second line */
  struct mr__batch *batch; /* while PENDING */
  struct mr__blk *batch_prev, *batch_next;
  size_t live_requested; /* LIVE, handed out, escaped in its live-map slot: the requested size */
} mr__blk;

/* An address's hash: its home group comes from bits 32 and up, its 7 control bits from 25-31. */
static inline uint64_t mr__livemap_hash(uintptr_t addr) {
  return ((uint64_t)addr >> 4) * 0x9E3779B97F4A7C15ull;
}

/* A full slot's control byte: the high bit, and 7 bits of its hash. */
static inline uint8_t mr__livemap_tag(uint64_t h) { return (uint8_t)(0x80 | (h >> 25)); }

static inline size_t mr__livemap_home(uint64_t h, size_t mask) {
  return (size_t)(h >> 32) & mask & ~(size_t)(MR__LM_GROUP - 1);
}

/* The 8 control bytes of the group at slot g, byte k of the group in byte k of the word. */
static inline uint64_t mr__livemap_group(const uint8_t *ctrl, size_t g) {
  uint64_t w;
  memcpy(&w, ctrl + g, sizeof w);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

#define MR__LM_LOW7 0x7F7F7F7F7F7F7F7Full
#define MR__LM_HIGH 0x8080808080808080ull

/* The high bit of every byte of x that is zero (exactly: no borrow between bytes). */
static inline uint64_t mr__livemap_zero_bytes(uint64_t x) {
  return ~(((x & MR__LM_LOW7) + MR__LM_LOW7) | x | MR__LM_LOW7);
}

/* The high bit of every byte of group word w that holds hash h's control byte (candidates). */
static inline uint64_t mr__livemap_match(uint64_t w, uint64_t h) {
  return mr__livemap_zero_bytes(w ^ (0x0101010101010101ull * mr__livemap_tag(h)));
}

static inline size_t mr__livemap_bit_slot(size_t g, uint64_t bits) {
  return g + (size_t)(__builtin_ctzll(bits) >> 3);
}

/* What a full slot says of its block. */
typedef struct mr__live {
  mr__blk *blk;
  size_t bsize;     /* the block's size */
  size_t requested; /* the size it was allocated with (0 for an escaped hot block) */
  int escaped;      /* requested is in the record */
} mr__live;

static inline uintptr_t mr__ls_addr(const mr__live_slot *sl) {
  return (uintptr_t)(sl->key & MR__LS_ADDR);
}
static inline mr__blk *mr__ls_blk(const mr__live_slot *sl) {
  return (mr__blk *)(uintptr_t)(sl->val & MR__LS_BLK);
}
/* Whether the slot holds a freed block: the stream's hot block, or a parked one (mr__centry). */
static inline int mr__ls_freed(const mr__live_slot *sl) { return (sl->val & MR__LS_FREED) != 0; }

/* val of record b with a slack that fits (under MR__LS_SLACK_LIMIT). */
static inline uint64_t mr__ls_val(const mr__blk *b, uint64_t slack) {
  return (uint64_t)(uintptr_t)b | slack << 48 | (slack >> 16) << 1;
}

/* Fills slot sl: block b at addr (bsize bytes, a multiple of 1 << shift), live for `requested`
 * (at most bsize). Writes b's record only when the sizes do not fit the slot. */
static inline void mr__ls_set(mr__live_slot *sl, unsigned shift, uintptr_t addr, size_t bsize,
                              mr__blk *b, size_t requested) {
  const uint64_t units = (uint64_t)(bsize >> shift), slack = (uint64_t)(bsize - requested);
  if (MR_LIKELY(units < MR__LS_ESC && slack < MR__LS_SLACK_LIMIT)) {
    sl->key = (uint64_t)addr | units << 48;
    sl->val = mr__ls_val(b, slack);
  } else {
    b->live_requested = requested;
    sl->key = (uint64_t)addr | MR__LS_ESC << 48;
    sl->val = (uint64_t)(uintptr_t)b;
  }
}

/* Hands out again the hot block in sl (b, bsize bytes at addr) for `requested`: only the slack
 * changes, unless escaped. */
static inline void mr__ls_reuse(mr__live_slot *sl, unsigned shift, uintptr_t addr, size_t bsize,
                                mr__blk *b, size_t requested) {
  const uint64_t slack = (uint64_t)(bsize - requested);
  if (MR_LIKELY(slack < MR__LS_SLACK_LIMIT && (sl->key >> 48) != MR__LS_ESC))
    sl->val = mr__ls_val(b, slack);
  else
    mr__ls_set(sl, shift, addr, bsize, b, requested);
}

static inline mr__live mr__ls_get(const mr__live_slot *sl, unsigned shift) {
  const uint64_t units = sl->key >> 48, val = sl->val;
  mr__live v = {.blk = mr__ls_blk(sl)};
  if (MR_LIKELY(units != MR__LS_ESC)) {
    v.bsize = (size_t)units << shift;
    v.requested = v.bsize - (size_t)(val >> 48 | (val & 0x1E) << 15);
  } else {
    v.bsize = v.blk->size;
    v.requested = v.blk->live_requested;
    v.escaped = 1;
  }
  return v;
}

/* A free of the block in sl, described by v: the slot is marked freed (the stream's hot block). */
static inline void mr__ls_free(mr__live_slot *sl, const mr__live *v) {
  sl->val |= MR__LS_FREED;
  if (MR_UNLIKELY(v->escaped))
    v->blk->live_requested = 0;
}

/* An EMPTY or DELETED slot for addr (hash h), claimed: its control byte set, counted. The map
 * has room (m->left > 0 or a DELETED slot on the way). */
static inline mr__live_slot *mr__livemap_claim(struct mr__livemap *m, uint64_t h) {
  size_t g = mr__livemap_home(h, m->mask);
  uint64_t free_bits; /* EMPTY and DELETED bytes have the high bit clear */
  while (!(free_bits = ~mr__livemap_group(m->ctrl, g) & MR__LM_HIGH))
    g = (g + MR__LM_GROUP) & m->mask;
  const size_t i = mr__livemap_bit_slot(g, free_bits);
  m->left -= m->ctrl[i] == MR__LM_EMPTY;
  m->ctrl[i] = mr__livemap_tag(h);
  m->count++;
  return &m->slots[i];
}

/* Enters block b (at addr, of bsize bytes), live for `requested` bytes; reads nothing of b (and
 * writes it only if escaped). Its slot, or NULL when there is no host memory for it. */
static inline mr__live_slot *mr__livemap_insert(struct mr__livemap *m, uintptr_t addr, size_t bsize,
                                                mr__blk *b, size_t requested) {
  if (MR_UNLIKELY(!m->left) && !mr__livemap_grow(m))
    return NULL;
  mr__live_slot *sl = mr__livemap_claim(m, mr__livemap_hash(addr));
  mr__ls_set(sl, m->shift, addr, bsize, b, requested);
  return sl;
}

/* Removes slot i, writing nothing else. Its control byte goes back to EMPTY when its group has an
 * EMPTY slot: such a group was never full, so no probe ever went past it. Otherwise DELETED, which
 * probes pass over and insertions reuse. */
static inline void mr__livemap_remove_at(struct mr__livemap *m, size_t i) {
  if (mr__livemap_zero_bytes(mr__livemap_group(m->ctrl, i & ~(size_t)(MR__LM_GROUP - 1)))) {
    m->ctrl[i] = MR__LM_EMPTY;
    m->left++;
  } else {
    m->ctrl[i] = MR__LM_DELETED;
  }
  m->slots[i].key = 0;
  m->count--;
}

/* The slot of addr (hash h), or SIZE_MAX, in a map that has a table. */
static inline size_t mr__livemap_find_h(const struct mr__livemap *m, uintptr_t addr, uint64_t h) {
  for (size_t g = mr__livemap_home(h, m->mask);; g = (g + MR__LM_GROUP) & m->mask) {
    const uint64_t w = mr__livemap_group(m->ctrl, g);
    for (uint64_t x = mr__livemap_match(w, h); x; x &= x - 1) {
      const size_t i = mr__livemap_bit_slot(g, x);
      if (MR_LIKELY(mr__ls_addr(&m->slots[i]) == addr))
        return i;
    }
    if (mr__livemap_zero_bytes(w)) /* an EMPTY slot: no probe went on from here */
      return SIZE_MAX;
  }
}

/* Starts loading both slot lines of the home group of hash h (8 slots of 16 bytes), without
 * waiting for its control bytes: the slot a lookup reads is most likely one of them. */
static inline void mr__livemap_prefetch_home(const struct mr__livemap *m, uint64_t h) {
  const mr__live_slot *g = &m->slots[mr__livemap_home(h, m->mask)];
  __builtin_prefetch(g, 1);
  __builtin_prefetch(g + 4, 1);
}

/* The slot of addr (hash h), or SIZE_MAX. */
static inline size_t mr__livemap_find_hashed(const struct mr__livemap *m, uintptr_t addr,
                                             uint64_t h) {
  if (MR_UNLIKELY(!m->count || !addr))
    return SIZE_MAX;
  return mr__livemap_find_h(m, addr, h);
}

/* The slot of addr, or SIZE_MAX. */
static inline size_t mr__livemap_find(const struct mr__livemap *m, uintptr_t addr) {
  return mr__livemap_find_hashed(m, addr, mr__livemap_hash(addr));
}

/* The block at addr, removed if its requested size is `size` (*st MR_OK, its block size in
 * *bsize); left in place with *st MR_ERR_INVALID_ARG if the size differs (the size it was
 * allocated with in *asked); NULL with MR_ERR_UNKNOWN_POINTER if absent or
 * freed (a hot or parked block: the caller finds the double free). */
static inline mr__blk *mr__livemap_take(struct mr__livemap *m, uintptr_t addr, size_t size,
                                        mr_status *st, size_t *bsize, size_t *asked) {
  size_t i = mr__livemap_find(m, addr);
  if (MR_UNLIKELY(i == SIZE_MAX || mr__ls_freed(&m->slots[i]))) {
    *st = MR_ERR_UNKNOWN_POINTER;
    return NULL;
  }
  const mr__live v = mr__ls_get(&m->slots[i], m->shift);
  if (MR_UNLIKELY(v.requested != size)) {
    *st = MR_ERR_INVALID_ARG;
    *asked = v.requested;
    return v.blk;
  }
  mr__ls_free(&m->slots[i], &v); /* clears an escaped block's requested size */
  *bsize = v.bsize;
  mr__livemap_remove_at(m, i);
  *st = MR_OK;
  return v.blk;
}

typedef struct mr__seg {
  uintptr_t base; /* aligned start */
  size_t size;    /* usable bytes from base */
  void *up_ptr;   /* what upstream returned */
  size_t up_size; /* what was asked of upstream */
  struct mr__seg *prev, *next;
  mr__blk *first;
  int small;
} mr__seg;

/* Blocks freed on one stream that share one completion event (recorded when the batch was
 * sealed; NULL while open). */
typedef struct mr__batch {
  mr_event *event;
  mr__blk *head;
  size_t count;
  size_t bytes;
  uint64_t seq;
  struct mr__batch *next;
} mr__batch;

/* A pending block into batch bt / out of its batch (the records' second lines). */
static inline void mr__batch_link(mr__batch *bt, mr__blk *b) {
  b->batch = bt;
  b->batch_prev = NULL;
  b->batch_next = bt->head;
  if (bt->head)
    bt->head->batch_prev = b;
  bt->head = b;
  bt->count++;
  bt->bytes += b->size;
}

static inline void mr__batch_unlink(mr__blk *b) {
  mr__batch *bt = b->batch;
  if (b->batch_prev)
    b->batch_prev->batch_next = b->batch_next;
  else
    bt->head = b->batch_next;
  if (b->batch_next)
    b->batch_next->batch_prev = b->batch_prev;
  b->batch_prev = b->batch_next = NULL;
  b->batch = NULL;
  bt->count--;
  bt->bytes -= b->size;
}

#define MR__CACHE_BIN_WORDS (MR_TLSF_CLASSES / 64)

/* A front-cache entry: all that taking the block back needs, so that neither filing a block in
 * the cache nor taking it out touches its record. A block freed on its own stream keeps its
 * live-map slot while it waits here (parked: marked freed, as the hot block is): taking it back
 * rewrites that slot, with no hash, no probe and no control byte written, and filing it wrote
 * nothing in the map either. Every other way out of the cache removes the slot (mr__cache_unpark);
 * a rehash of the map moves the slots, and the parked blocks find theirs again (mr__cache_refind).
 */
#define MR__NO_SLOT SIZE_MAX
typedef struct mr__centry {
  uintptr_t addr;
  size_t size;
  mr__blk *blk;
  size_t slot; /* its parked slot in the stream's live map, or MR__NO_SLOT */
} mr__centry;

/* One size class of a stream's front cache: a LIFO stack of entries (it grows; it is freed with
 * the pool). */
typedef struct mr__cbin {
  mr__centry *v;
  uint32_t n, cap;
} mr__cbin;

/* One per stream the pool has seen (and one for host order: stream NULL). Lives until the pool
 * is destroyed; retains its mr_stream. */
typedef struct mr__pstream {
  /* front: under `lock` */
  _Alignas(64) mr__bias lock;         /* biased to the thread that first used the stream */
  mr__cbin bins[MR_TLSF_CLASSES + 1]; /* the last one stays empty (the class above the top) */
  uint64_t bin_map[MR__CACHE_BIN_WORDS];
  size_t cache_bytes;  /* in the bins and the spill list */
  size_t cache_blocks; /* idem */
  /* Blocks filed when their bin could not grow (no host memory): through free_next, taken by
     the next eviction or flush, never by an allocation. */
  mr__blk *spill;
  /* The hot block: the last one freed on this stream, kept in its live-map slot (marked
   * freed there) so that the next allocation that fits takes it back without a bin or a hash
   * insert; filed in the front cache (mr__hot_file, parked in the same slot) before anything
   * else reads the bins. NULL: none. */
  mr__blk *hot;
  uintptr_t hot_addr;
  size_t hot_slot, hot_size;
  size_t parked; /* front-cache entries that keep their live-map slot (see mr__centry) */
  /* The block handed out last on this stream: its address (UINTPTR_MAX: none) and live-map slot. A
   * free of it takes that slot without a probe once the slot is seen to hold it still (a rehash
   * moves slots, a free empties them, and an address is in one slot at most). */
  uintptr_t recent_addr;
  size_t recent_slot;
  int64_t in_use, requested;                 /* net bytes allocated minus freed on this stream */
  int64_t pending_in_use, pending_requested; /* not yet added to the pool-wide counters */
  /* The only stream that has allocated or freed: its own counters are the pool's, so it
   * publishes nothing (a 4 MiB alloc would otherwise pass the slack every time). */
  int solo;
  int active; /* has allocated or freed (under the pool mutex) */
  uint64_t peak_in_use, peak_requested;
  uint64_t allocs, frees, failed; /* live blocks: allocs - frees */
  uint64_t grown;                 /* allocations that took a new segment (not cache hits) */
  mr__livemap lives; /* blocks allocated on this stream and not freed; and, marked freed, its
                        hot block and the parked blocks of its front cache */
  /* core: under the pool's mutex */
  mr_stream *stream; /* NULL: host order */
  uint64_t id;
  mr__tlsf pending[2]; /* [0] small, [1] large */
  mr__batch *open;
  mr__batch *sealed_head, *sealed_tail;
  struct mr__pstream *next;
} mr__pstream;

typedef struct mr__pool {
  /* read-mostly, on every hot-path call: a cache line of their own, never written after
     creation (a write beside them would bounce that line between threads) */
  _Alignas(64) mr_caching_pool_options opt;
  size_t cache_cap; /* front cache budget per stream (0: no front cache) */
  uint64_t uid;
  mr__pstream *host_ps; /* stream NULL */
  mr_allocator *upstream;
  char name[MR_NAME_MAX];
  /* the core, under mu */
  _Alignas(64) pthread_mutex_t mu;
  mr__tlsf settled[2];
  mr__seg *segs;
  size_t nsegs;
  mr__pstream *streams;
  uint64_t batch_seq;
  mr_event **events; /* idle events, reused by batches */
  size_t nevents, cap_events;
  mr__blk *spare; /* block structs to reuse */
  void **slabs;
  size_t nslabs, cap_slabs;
  size_t last_large;
  uint64_t reserved, peak_reserved, upstream_allocs, upstream_frees, splits, merges, oom_retries;
  uint64_t core_failed;
  uint64_t cross_misses; /* times a stream would have grown under a cross-stream policy */
  mr__pstream *solo;     /* the one active stream, while there is only one */
  unsigned nactive;
  /* pool-wide counters, published by streams past the slack */
  _Alignas(64) atomic_llong g_in_use;
  atomic_llong g_requested;
  atomic_ullong g_peak_in_use, g_peak_requested;
} mr__pool;

static inline unsigned state_of(const mr__blk *b) {
  return atomic_load_explicit(&b->state, memory_order_relaxed);
}
static inline void set_state(mr__blk *b, unsigned s) {
  atomic_store_explicit(&b->state, (unsigned char)s, memory_order_relaxed);
}

/* caching_segments.c; with p->mu held */
mr__blk *mr__blk_new(mr__pool *p);
void mr__blk_free(mr__pool *p, mr__blk *b);
mr_status mr__segment_release(mr__pool *p, mr__seg *s);
int mr__segment_is_free(const mr__seg *s);
/* Returns wholly free settled segments upstream while more than `keep` bytes are reserved. */
size_t mr__release_free_segments(mr__pool *p, size_t keep);
/* The release threshold: free settled segments beyond it go back upstream. */
void mr__apply_threshold(mr__pool *p);
size_t mr__segment_size(mr__pool *p, int kind, size_t rsize);
/* A new segment holding at least rsize, as one block out of every index; NULL with *st. Drops
 * the mutex around the upstream call. */
mr__blk *mr__grow(mr__pool *p, mr__pstream *ps, int kind, size_t rsize, size_t seg_size,
                  mr_status *st);

/* caching_batch.c, with p->mu held */
/* An idle event of s's backend, or a new one (NULL with the error recorded). */
mr_event *mr__event_take(mr__pool *p, mr_stream *s);
/* Back to the idle events (destroyed if their list cannot grow); NULL does nothing. */
void mr__event_put(mr__pool *p, mr_event *e);
/* ps's open batch, opened if need be (NULL without host memory). */
mr__batch *mr__batch_open(mr__pool *p, mr__pstream *ps);
/* Closes ps's open batch with event e recorded on ps's stream after its frees (the batch then
 * owns it), or with one recorded now when e is NULL; on failure the batch stays open. */
mr_status mr__seal_with(mr__pool *p, mr__pstream *ps, mr_event *e);
mr_status mr__seal(mr__pool *p, mr__pstream *ps);

/* caching_core.c; all with p->mu held unless said otherwise */
mr__pstream *mr__pool_stream_new(mr__pool *p, mr_stream *s);
/* The state of stream s (NULL: host order), or NULL if the pool has not seen it. */
mr__pstream *mr__pool_stream_find(mr__pool *p, mr_stream *s);
mr_status mr__core_alloc(mr__pool *p, mr__pstream *ps, size_t size, size_t rsize, mr__blk **out,
                         int *from_upstream);
/* Takes blocks freed on ps (LIVE, ps's, out of every list: from its front cache or spill list,
 * or larger than the cache) into the core, pending on ps, through free_next. */
void mr__core_put(mr__pool *p, mr__pstream *ps, mr__blk *list);
void mr__core_flush_cache(mr__pool *p, mr__pstream *ps);
mr_status mr__core_trim(mr__pool *p, size_t keep);
/* Takes one segment of `bytes` (rounded to the alignment) from upstream, free for every stream. */
mr_status mr__core_reserve(mr__pool *p, size_t bytes);
void mr__core_destroy(mr__pool *p);
/* caching_validate.c: with the mutex and every stream's lock held */
mr_status mr__core_validate(mr__pool *p);
size_t mr__core_largest_free(mr__pool *p);

/* caching.c: the pool behind a caching-pool allocator, or NULL with MR_ERR_INVALID_ARG recorded
 * (`what` names the caller). */
mr__pool *mr__caching_pool_of(mr_allocator *a, const char *what);

/* caching_stats.c */
/* Adds what ps kept to the pool-wide counters and peaks (ps->lock held). */
void mr__pool_publish(mr__pool *p, mr__pstream *ps);
/* ps's first allocation or free (p->mu held, ps->lock not): the solo-stream bookkeeping. */
void mr__pool_activate(mr__pool *p, mr__pstream *ps);
/* The pool's statistics (the allocator's stats operation). */
mr_status mr__pool_stats(mr_allocator *self, mr_stats *s);

#endif
