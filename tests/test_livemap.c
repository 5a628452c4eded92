/* The caching pool's live map (src/alloc/livemap.c and the inline operations in
 * caching_internal.h), tested on its own: it is host code only, so one suite covers it for host
 * and device pools alike (the pool suites reach it through the allocator, over both). Checked: a
 * lookup finds every block and nothing else; a removal marks its slot EMPTY in a group that has
 * an EMPTY slot and DELETED in a full group, and a probe still goes past that group; insertions
 * reuse DELETED slots; the table grows at 7/8, and rehashes at the same size when DELETED slots
 * fill it while its blocks fill at most 25/32 of it (doubling only past that); a slot gives back
 * the exact sizes it was filled with, packed or escaped to the record, through a free and a reuse;
 * and a model of 200,000 random operations agrees with the map, whose own check (mr__livemap_check,
 * part of mr_caching_pool_validate) passes throughout. */
#include "../src/alloc/caching_internal.h"

#include <criterion/criterion.h>

/* A block pointer to store: the map never reads through it. */
static mr__blk *blk_of(uintptr_t addr) { return (mr__blk *)(addr ^ 0x5a5a0000u); }

static void check_ok(const mr__livemap *m) {
  char why[200];
  cr_assert(mr__livemap_check(m, why, sizeof why), "%s", why);
}

static void insert_ok(mr__livemap *m, uintptr_t addr) {
  cr_assert(mr__livemap_insert(m, addr, 512, blk_of(addr), 100), "insert %p", (void *)addr);
}

static void found(const mr__livemap *m, uintptr_t addr) {
  size_t i = mr__livemap_find(m, addr);
  cr_assert_neq(i, SIZE_MAX, "%p is in the map but not found", (void *)addr);
  cr_assert_eq(mr__ls_addr(&m->slots[i]), addr);
  cr_assert_eq(mr__ls_blk(&m->slots[i]), blk_of(addr));
}

static size_t deleted_slots(const mr__livemap *m) {
  size_t n = 0;
  for (size_t i = 0; i <= m->mask; i++)
    n += m->ctrl[i] == MR__LM_DELETED;
  return n;
}

/* n addresses (multiples of 256) whose home group in a table of `cap` slots is group g. */
static void in_group(uintptr_t *out, size_t n, size_t cap, size_t g) {
  size_t k = 0;
  for (uintptr_t a = 256; k < n; a += 256)
    if (mr__livemap_home(mr__livemap_hash(a), cap - 1) == g * MR__LM_GROUP)
      out[k++] = a;
}

Test(livemap, a_removal_in_a_full_group_leaves_the_probe_unbroken) {
  mr__livemap m = {0};
  uintptr_t a[10];
  in_group(a, 10, 64, 0);
  for (int i = 0; i < 9; i++) /* 8 fill group 0, the 9th goes on to group 1 */
    insert_ok(&m, a[i]);
  cr_assert_eq(m.mask, 63);
  size_t ninth = mr__livemap_find(&m, a[8]);
  cr_assert_geq(ninth, MR__LM_GROUP, "the 9th of one group's addresses is in slot %zu", ninth);
  size_t left = m.left;
  mr__livemap_remove_at(&m, mr__livemap_find(&m, a[3]));
  cr_expect_eq(deleted_slots(&m), 1, "a removal from a full group is DELETED");
  cr_expect_eq(m.left, left, "a DELETED slot is no room");
  found(&m, a[8]); /* the probe goes past group 0 still */
  cr_expect_eq(mr__livemap_find(&m, a[3]), SIZE_MAX);
  check_ok(&m);
  mr__livemap_remove_at(&m, ninth); /* group 1 has EMPTY slots */
  cr_expect_eq(deleted_slots(&m), 1);
  cr_expect_eq(m.left, left + 1, "a removal from a group with an EMPTY slot is EMPTY again");
  insert_ok(&m, a[9]); /* reuses the DELETED slot in group 0 */
  cr_expect_eq(deleted_slots(&m), 0);
  cr_expect_lt(mr__livemap_find(&m, a[9]), MR__LM_GROUP);
  cr_expect_eq(m.left, left + 1, "filling a DELETED slot takes no room");
  for (int i = 0; i < 10; i++)
    if (i != 3 && i != 8)
      found(&m, a[i]);
  check_ok(&m);
  mr__livemap_destroy(&m);
}

Test(livemap, grows_at_seven_eighths) {
  mr__livemap m = {0};
  for (uintptr_t k = 1; k <= 56; k++)
    insert_ok(&m, k * 4096);
  cr_expect_eq(m.mask + 1, 64, "56 blocks fit in 64 slots");
  cr_expect_eq(m.left, 0);
  insert_ok(&m, 57 * 4096);
  cr_expect_eq(m.mask + 1, 128, "the 57th doubles the table");
  for (uintptr_t k = 1; k <= 57; k++)
    found(&m, k * 4096);
  check_ok(&m);
  mr__livemap_destroy(&m);
}

/* DELETED slots count against the room: when they fill it while few blocks are live, the table is
 * rehashed at its size, without them. */
Test(livemap, deleted_slots_are_dropped_by_a_rehash_at_the_same_size) {
  mr__livemap m = {0};
  uintptr_t a[4][8], b[4][6];
  for (size_t g = 0; g < 4; g++) {
    in_group(a[g], 8, 64, g);
    in_group(b[g], 6, 64, g + 4);
    for (int i = 0; i < 8; i++)
      insert_ok(&m, a[g][i]);
  }
  cr_assert_eq(m.mask, 63);
  for (size_t g = 0; g < 4; g++) /* groups 0-3 full: every removal there is DELETED */
    for (int i = 0; i < 8; i++)
      mr__livemap_remove_at(&m, mr__livemap_find(&m, a[g][i]));
  cr_expect_eq(deleted_slots(&m), 32);
  cr_expect_eq(m.left, 56 - 32, "DELETED slots are no room");
  check_ok(&m);
  for (size_t g = 0; g < 4; g++) /* 24 blocks in groups 4-7 take the rest of the room */
    for (int i = 0; i < 6; i++)
      insert_ok(&m, b[g][i]);
  cr_expect_eq(m.left, 0);
  cr_expect_eq(m.mask, 63);
  insert_ok(&m, a[0][0]); /* 24 live, under 25/32 of 64: the same size */
  cr_expect_eq(m.mask, 63, "a rehash with few blocks live keeps the size");
  cr_expect_eq(deleted_slots(&m), 0, "a rehash drops the DELETED slots");
  cr_expect_eq(m.left, 56 - 25);
  found(&m, a[0][0]);
  for (size_t g = 0; g < 4; g++)
    for (int i = 0; i < 6; i++)
      found(&m, b[g][i]);
  check_ok(&m);
  mr__livemap_destroy(&m);
}

/* Full or DELETED at 7/8 of 64 slots: with 48 blocks live (under 25/32 of 64, 50) the table keeps
 * its size, 1 MiB and not 2 at 1e5 live; with 50 it doubles. */
static size_t size_after_refill(int removed) {
  mr__livemap m = {0};
  uintptr_t a[7][8], extra[1];
  for (size_t g = 0; g < 7; g++) { /* groups 0-6 full: 56 blocks, no room left */
    in_group(a[g], 8, 64, g);
    for (int i = 0; i < 8; i++)
      insert_ok(&m, a[g][i]);
  }
  cr_assert_eq(m.mask, 63);
  cr_assert_eq(m.left, 0);
  for (int i = 0; i < removed; i++) /* DELETED: group 0 has no EMPTY slot */
    mr__livemap_remove_at(&m, mr__livemap_find(&m, a[0][i]));
  cr_assert_eq(deleted_slots(&m), (size_t)removed);
  in_group(extra, 1, 64, 7);
  insert_ok(&m, extra[0]);
  cr_expect_eq(deleted_slots(&m), 0, "the rehash drops the DELETED slots");
  cr_expect_eq(m.count, 57 - (size_t)removed);
  found(&m, extra[0]);
  for (size_t g = 0; g < 7; g++)
    for (int i = g ? 0 : removed; i < 8; i++)
      found(&m, a[g][i]);
  check_ok(&m);
  size_t cap = m.mask + 1;
  mr__livemap_destroy(&m);
  return cap;
}

Test(livemap, holds_its_blocks_up_to_25_32_before_doubling) {
  cr_expect_eq(size_after_refill(8), 64, "48 blocks live in 64 slots: rehashed at the same size");
  cr_expect_eq(size_after_refill(7), 64, "49 blocks live: the same size");
  cr_expect_eq(size_after_refill(6), 128, "50 blocks live (25/32 of 64): doubled");
}

Test(livemap, agrees_with_a_model_over_random_operations) {
  enum { KEYS = 6000 };
  static uintptr_t keys[KEYS];
  static int in[KEYS];
  mr__livemap m = {0};
  uint64_t x = 0x9E3779B97F4A7C15ull;
  size_t count = 0;
  for (int k = 0; k < KEYS; k++)
    keys[k] = (uintptr_t)(k + 1) * 256 + ((uintptr_t)(k % 7) << 32);
  for (int op = 0; op < 200000; op++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    /* the live count walks up to about 5000, then down and up again */
    int k = (int)(x % KEYS);
    if (in[k]) {
      size_t i = mr__livemap_find(&m, keys[k]);
      cr_assert_neq(i, SIZE_MAX, "op %d: %p lost", op, (void *)keys[k]);
      cr_assert_eq(mr__ls_blk(&m.slots[i]), blk_of(keys[k]));
      if ((op / 50000) % 2 == 0 || (x >> 40) % 4 != 0) {
        mr__livemap_remove_at(&m, i);
        in[k] = 0;
        count--;
      }
    } else {
      cr_assert_eq(mr__livemap_find(&m, keys[k]), SIZE_MAX, "op %d: %p found, not in the map", op,
                   (void *)keys[k]);
      insert_ok(&m, keys[k]);
      in[k] = 1;
      count++;
    }
    cr_assert_eq(m.count, count);
    if (op % 5000 == 0)
      check_ok(&m);
  }
  for (int k = 0; k < KEYS; k++)
    if (in[k])
      found(&m, keys[k]);
  check_ok(&m);
  mr__livemap_destroy(&m);
}

/* Every block size and slack on both sides of what a slot packs (65,535 units, 1 MiB of slack),
 * for three alignments and the highest address a slot keeps: the sizes come back exact, in the
 * slot or in the record (live_requested, cleared by the free), and a reuse rewrites them. */
Test(livemap, a_slot_packs_its_sizes_or_escapes_them_to_the_record) {
  mr__blk *rec = aligned_alloc(64, sizeof *rec);
  cr_assert_not_null(rec);
  memset(rec, 0, sizeof *rec);
  const unsigned shifts[] = {4, 8, 21};
  const uint64_t units[] = {1, 2, 65534, 65535, 65536, 1u << 20};
  const uint64_t slacks[] = {0, 1, 65535, 65536, (1u << 20) - 1, 1u << 20, 3u << 20};
  size_t packed = 0, escaped = 0;
  for (size_t si = 0; si < sizeof shifts / sizeof shifts[0]; si++) {
    const unsigned sh = shifts[si];
    const uintptr_t addr = (uintptr_t)(MR__LS_LIMIT - ((uint64_t)1 << sh) * 3);
    for (size_t ui = 0; ui < sizeof units / sizeof units[0]; ui++) {
      const size_t bsize = (size_t)(units[ui] << sh);
      for (size_t ki = 0; ki < sizeof slacks / sizeof slacks[0]; ki++) {
        if (slacks[ki] >= bsize)
          continue; /* a block is requested for 1 byte at least */
        const size_t req = bsize - (size_t)slacks[ki];
        const int esc = units[ui] >= 65535 || slacks[ki] >= (1u << 20);
        rec->size = bsize;
        mr__live_slot sl;
        mr__ls_set(&sl, sh, addr, bsize, rec, req);
        mr__live v = mr__ls_get(&sl, sh);
        cr_assert(mr__ls_addr(&sl) == addr && v.blk == rec && !mr__ls_freed(&sl));
        cr_assert(v.bsize == bsize && v.requested == req && v.escaped == esc,
                  "shift %u, %zu bytes asked %zu: read back %zu asked %zu, escaped %d (want %d)",
                  sh, bsize, req, v.bsize, v.requested, v.escaped, esc);
        cr_assert_eq(rec->live_requested, esc ? req : 0);
        packed += !esc;
        escaped += (size_t)esc;
        mr__ls_free(&sl, &v);
        cr_assert(mr__ls_freed(&sl) && mr__ls_addr(&sl) == addr && mr__ls_blk(&sl) == rec);
        cr_assert_eq(rec->live_requested, 0, "a free clears the record's requested size");
        /* handed out again for a slack on the other side of the limit */
        const size_t req2 =
            slacks[ki] < (1u << 20) && bsize > (1u << 20) ? bsize - (1u << 20) : bsize;
        const int esc2 = units[ui] >= 65535 || bsize - req2 >= (1u << 20);
        mr__ls_reuse(&sl, sh, addr, bsize, rec, req2);
        v = mr__ls_get(&sl, sh);
        cr_assert(!mr__ls_freed(&sl) && v.blk == rec && mr__ls_addr(&sl) == addr);
        cr_assert(v.bsize == bsize && v.requested == req2 && v.escaped == esc2,
                  "reuse: shift %u, %zu bytes asked %zu: read back %zu asked %zu", sh, bsize, req2,
                  v.bsize, v.requested);
        mr__ls_free(&sl, &v);
      }
    }
  }
  cr_expect_gt(packed, 20);
  cr_expect_gt(escaped, 20);
  free(rec);
}
