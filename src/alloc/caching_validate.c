/* The caching pool's self-check: walks every segment, index, batch and front cache and checks
 * that they agree (mr_caching_pool_validate). Slow by design; for tests and debugging. */
#include "caching_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

static mr_status inconsistent(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static mr_status inconsistent(const char *name, const char *fmt, ...) {
  char what[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return mr__error(MR_ERR_INVALID_ARG, "caching pool '%s' is inconsistent: %s", name, what);
}

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      return inconsistent(p->name, __VA_ARGS__);                                                   \
  } while (0)

static size_t count_index(const mr__tlsf *t, size_t *bytes) {
  size_t n = 0;
  *bytes = 0;
  for (unsigned c = 0; c < MR_TLSF_CLASSES; c++) {
    int bit = (t->sl_map[c / MR_TLSF_SL] >> (c % MR_TLSF_SL)) & 1;
    if (bit != (t->heads[c] != NULL))
      return SIZE_MAX;
    for (mr__blk *b = t->heads[c]; b; b = b->free_next) {
      if (b->cls != c || mr__tlsf_class(b->size) != c)
        return SIZE_MAX;
      n++;
      *bytes += b->size;
    }
  }
  for (unsigned fl = 0; fl < MR_TLSF_FL; fl++)
    if (((t->fl_map >> fl) & 1) != (t->sl_map[fl] != 0))
      return SIZE_MAX;
  return n;
}

/* Called with the pool mutex and every stream's lock held. */
mr_status mr__core_validate(mr__pool *p) {
  size_t align = p->opt.alignment;
  size_t nblocks = 0, nfree = 0, npending = 0, ncached = 0, nlive = 0;
  uint64_t reserved = 0, live_bytes = 0;
  size_t nsegs = 0;
  for (mr__seg *s = p->segs; s; s = s->next) {
    nsegs++;
    reserved += s->up_size;
    CHECK(s->base % align == 0, "segment %p misaligned", (void *)s->base);
    CHECK(s->next == NULL || s->next->prev == s, "segment list links broken");
    uintptr_t at = s->base;
    mr__blk *prev = NULL;
    for (mr__blk *b = s->first; b; prev = b, b = b->phys_next) {
      nblocks++;
      unsigned st = state_of(b);
      CHECK(b->addr == at, "block %p does not follow its neighbour (expected %p)", (void *)b->addr,
            (void *)at);
      CHECK(b->phys_prev == prev, "block %p has a wrong left neighbour", (void *)b->addr);
      CHECK(b->size && b->size % align == 0, "block %p has size %zu", (void *)b->addr, b->size);
      CHECK(b->small == s->small, "block %p small flag differs from its segment", (void *)b->addr);
      /* a LIVE block's slot, and what it says (nothing when it has none) */
      const mr__live_slot *sl =
          st == MR__LIVE && b->owner ? mr__livemap_slot_of(&b->owner->lives, b) : NULL;
      const mr__live v = sl ? mr__ls_get(sl, b->owner->lives.shift) : (mr__live){0};
      CHECK(!b->live_requested || v.escaped,
            "block %p keeps a requested size (%zu) but is no escaped live block", (void *)b->addr,
            b->live_requested);
      switch (st) {
      case MR__LIVE: { /* handed out (in its stream's map) or in its stream's front cache */
        CHECK(b->owner, "live block %p without owner", (void *)b->addr);
        if (!sl || mr__ls_freed(sl)) { /* cached (parked in its slot or not: see below) */
          ncached++;
          break;
        }
        nlive++;
        live_bytes += b->size;
        CHECK(!mr__ls_freed(sl) && v.requested && v.requested <= b->size && v.bsize == b->size,
              "live block %p: %s, requested %zu, size %zu in its stream's map, of %zu",
              (void *)b->addr, mr__ls_freed(sl) ? "freed" : "handed out", v.requested, v.bsize,
              b->size);
        break;
      }
      case MR__FREE:
        nfree++;
        CHECK(!b->batch, "settled block %p is in a batch", (void *)b->addr);
        CHECK(!prev || state_of(prev) != MR__FREE, "settled blocks %p and %p were not merged",
              (void *)prev->addr, (void *)b->addr);
        break;
      case MR__PENDING:
        npending++;
        CHECK(b->owner && b->batch, "pending block %p without owner or batch", (void *)b->addr);
        break;
      default:
        CHECK(0, "block %p in state %u", (void *)b->addr, st);
      }
      at += b->size;
    }
    CHECK(at == s->base + s->size, "blocks of segment %p cover %zu of %zu bytes", (void *)s->base,
          (size_t)(at - s->base), s->size);
  }
  CHECK(nsegs == p->nsegs, "segment count %zu, recorded %zu", nsegs, p->nsegs);
  CHECK(reserved == p->reserved, "reserved %" PRIu64 ", recorded %" PRIu64, reserved, p->reserved);
  size_t idx_free = 0, idx_pending = 0, idx_cached = 0, bytes;
  for (int k = 0; k < 2; k++) {
    size_t n = count_index(&p->settled[k], &bytes);
    CHECK(n != SIZE_MAX && n == p->settled[k].count && bytes == p->settled[k].bytes,
          "settled index %d disagrees with its bitmaps or counts", k);
    idx_free += n;
  }
  int64_t in_use = 0, live = 0;
  size_t nmapped = 0;
  for (mr__pstream *o = p->streams; o; o = o->next) {
    for (int k = 0; k < 2; k++) {
      size_t n = count_index(&o->pending[k], &bytes);
      CHECK(n != SIZE_MAX && n == o->pending[k].count && bytes == o->pending[k].bytes,
            "pending index %d of stream %" PRIu64 " disagrees with its bitmaps or counts (%zu/%zu "
            "blocks, %zu/%zu bytes)",
            k, o->id, n, o->pending[k].count, bytes, o->pending[k].bytes);
      for (unsigned c = 0; c < MR_TLSF_CLASSES; c++)
        for (mr__blk *b = o->pending[k].heads[c]; b; b = b->free_next)
          CHECK(state_of(b) == MR__PENDING && b->owner == o, "pending list holds a foreign block");
      idx_pending += n;
    }
    size_t in_batches = 0;
    for (mr__batch *bt = o->open; bt; bt = NULL) {
      size_t c = 0;
      for (mr__blk *b = bt->head; b; b = b->batch_next, c++)
        CHECK(b->batch == bt && b->owner == o, "open batch holds a foreign block");
      CHECK(c == bt->count, "open batch count %zu, holds %zu", bt->count, c);
      in_batches += c;
    }
    for (mr__batch *bt = o->sealed_head; bt; bt = bt->next) {
      size_t c = 0;
      for (mr__blk *b = bt->head; b; b = b->batch_next, c++)
        CHECK(b->batch == bt && b->owner == o, "sealed batch holds a foreign block");
      CHECK(c == bt->count && bt->event, "sealed batch count %zu, holds %zu", bt->count, c);
      in_batches += c;
    }
    CHECK(in_batches == o->pending[0].count + o->pending[1].count,
          "stream %" PRIu64 ": %zu blocks in batches, %zu pending", o->id, in_batches,
          o->pending[0].count + o->pending[1].count);
    char why[200];
    CHECK(mr__livemap_check(&o->lives, why, sizeof why), "stream %" PRIu64 ": %s", o->id, why);
    size_t cached = 0, cbytes = 0, parked = 0;
    CHECK(!o->bins[MR_TLSF_CLASSES].n, "the front cache's top bin of stream %" PRIu64 " is used",
          o->id);
    for (unsigned c = 0; c < MR_TLSF_CLASSES; c++) {
      const mr__cbin *bn = &o->bins[c];
      int bit = (int)((o->bin_map[c / 64] >> (c % 64)) & 1);
      CHECK(bit == (bn->n != 0), "front cache bitmap of stream %" PRIu64 " is off", o->id);
      CHECK(bn->n <= bn->cap, "front cache bin %u of stream %" PRIu64 " overflows", c, o->id);
      for (uint32_t k = 0; k < bn->n; k++) {
        const mr__centry *e = &bn->v[k];
        const mr__blk *b = e->blk;
        CHECK(state_of(b) == MR__LIVE && b->owner == o, "front cache holds a foreign block");
        CHECK(b->addr == e->addr && b->size == e->size,
              "front cache entry %p (%zu bytes) disagrees with its block %p (%zu)", (void *)e->addr,
              e->size, (void *)b->addr, b->size);
        CHECK(mr__tlsf_class(e->size) == c, "cached block in the wrong bin");
        const mr__live_slot *sl = mr__livemap_slot_of(&o->lives, b);
        if (e->slot == MR__NO_SLOT) {
          CHECK(!sl, "cached block %p is in the live map", (void *)b->addr);
        } else {
          CHECK(sl && (size_t)(sl - o->lives.slots) == e->slot && mr__ls_freed(sl),
                "parked block %p is not in its slot %zu, marked freed", (void *)b->addr, e->slot);
          parked++;
        }
        cached++;
        cbytes += e->size;
      }
    }
    for (const mr__blk *b = o->spill; b; b = b->free_next) {
      CHECK(state_of(b) == MR__LIVE && b->owner == o, "spill list holds a foreign block");
      CHECK(!mr__livemap_slot_of(&o->lives, b), "spilled block %p is in the live map",
            (void *)b->addr);
      cached++;
      cbytes += b->size;
    }
    CHECK(cached == o->cache_blocks && cbytes == o->cache_bytes,
          "front cache of stream %" PRIu64 " counts %zu/%zu, holds %zu/%zu", o->id, o->cache_blocks,
          o->cache_bytes, cached, cbytes);
    CHECK(parked == o->parked, "stream %" PRIu64 " counts %zu parked blocks, holds %zu", o->id,
          o->parked, parked);
    idx_cached += cached;
    in_use += o->in_use;
    live += (int64_t)(o->allocs - o->frees);
    nmapped += o->lives.count - o->parked;
  }
  CHECK(nmapped == nlive, "%zu blocks in the streams' maps, %zu live", nmapped, nlive);
  CHECK(idx_free == nfree, "%zu settled blocks, %zu indexed", nfree, idx_free);
  CHECK(idx_pending == npending, "%zu pending blocks, %zu indexed", npending, idx_pending);
  CHECK(idx_cached == ncached, "%zu cached blocks, %zu in caches", ncached, idx_cached);
  CHECK((uint64_t)in_use == live_bytes && (uint64_t)live == nlive,
        "statistics say %" PRId64 " bytes in %" PRId64 " live blocks, segments hold %" PRIu64
        " in %zu",
        in_use, live, live_bytes, nlive);
  return MR_OK;
}
