/* The thread-local context: stacks of streams and of host, pinned and device allocators, and the
 * mask stack that says what each push put where.
 *
 * Each thread has one `ctx` in thread-local storage: four growable stacks (one per allocator kind,
 * one of streams) and the mask, one 64-bit entry per push: the low bits name the stack pushed to
 * (or none, for a NULL push), the high bits carry the tag of the guard that pushed it (0 for a
 * single push). A pop reads the top mask entry and undoes exactly that. The arrays grow by
 * doubling and never shrink, so after warm-up pushes and pops touch no lock and no malloc.
 * At thread exit a pthread key destructor releases whatever is still pushed.
 *
 * References: every entry keeps its object alive until it is popped. Pushing the object that is
 * already on top of the same stack takes no new reference (the entry is marked BORROWED): the
 * entry below holds one and, the stacks being LIFO, is popped after it. That saves two atomic
 * operations on the common re-push of the same stream. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The context is read on every accessor: initial-exec TLS avoids __tls_get_addr in a shared
 * library. It is small (about 140 bytes), well within glibc's static TLS surplus for dlopen. */
#if defined(__GNUC__) && defined(__ELF__)
#define MR__TLS_FAST __attribute__((tls_model("initial-exec")))
#else
#define MR__TLS_FAST
#endif

enum {
  SLOT_STREAM = MR_KIND_COUNT_, /* slots 0..2 are the allocator kinds */
  SLOT_COUNT,
  SLOT_NONE = SLOT_COUNT, /* a mask entry that pushed nothing */
  SLOT_MASK = 7,
  BORROWED = 8, /* the entry holds no reference of its own */
  TAG_SHIFT = 4,
};

#define INITIAL_CAP 16
#define TAG_LIMIT (UINT64_MAX >> TAG_SHIFT)

typedef struct stack {
  void **items;
  size_t len, cap;
} stack;

typedef struct ctx {
  stack st[SLOT_COUNT];
  uint64_t *mask;
  size_t depth, mask_cap;
  uint64_t next_tag;
  int live;
} ctx;

static _Thread_local ctx tl_ctx MR__TLS_FAST;

static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static int g_key_ok;
/* Each thread (each initialisation) takes its own range of 2^32 guard tags. */
static atomic_uint_fast64_t g_tag_ranges;

static void thread_exit(void *arg);

static void key_create(void) { g_key_ok = pthread_key_create(&g_key, thread_exit) == 0; }

/* ---- growing ----------------------------------------------------------------------------------
 */

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return 1;
  size_t n = *cap ? *cap : INITIAL_CAP;
  while (n < need) {
    if (n > SIZE_MAX / 2 / elem)
      return 0;
    n *= 2;
  }
  if (n > SIZE_MAX / elem)
    return 0;
  void *p = realloc(*arr, n * elem);
  if (!p)
    return 0;
  *arr = p;
  *cap = n;
  return 1;
}

/* Makes room for n more mask entries, and keeps every stack at least one longer than the mask:
 * a stack holds one item per mask entry that pushed to it, plus (the host stack) the default
 * allocator at its bottom, so room in the mask is then room in every stack, and a push checks one
 * number. */
static int reserve(ctx *c, size_t n) {
  if (n > SIZE_MAX / 4 - c->depth)
    return 0;
  size_t want = c->mask_cap ? c->mask_cap : INITIAL_CAP;
  while (want < c->depth + n)
    want *= 2;
  /* The stacks first: if the mask then cannot grow, the stacks are still longer than it. */
  for (int slot = 0; slot < SLOT_COUNT; slot++)
    if (!grow((void **)&c->st[slot].items, &c->st[slot].cap, want + 1, sizeof *c->st[slot].items))
      return 0;
  return grow((void **)&c->mask, &c->mask_cap, want, sizeof *c->mask);
}

/* ---- the thread's context ----------------------------------------------------------------------
 */

static __attribute__((noinline)) ctx *ctx_init(void) {
  ctx *c = &tl_ctx;
  pthread_once(&g_key_once, key_create);
  c->live = 1;
  c->next_tag = (atomic_fetch_add_explicit(&g_tag_ranges, 1, memory_order_relaxed) << 32) + 1;
  if (g_key_ok)
    pthread_setspecific(g_key, c);
  /* Best effort: without memory for the first arrays the thread starts with empty stacks (and
   * pushes will try to grow them again). */
  reserve(c, INITIAL_CAP);
  mr_allocator *host = mr_host_default();
  if (host && c->st[MR_HOST].cap)
    c->st[MR_HOST].items[c->st[MR_HOST].len++] = mr_allocator_retain(host);
  return c;
}

static inline ctx *ctx_get(void) {
  ctx *c = &tl_ctx;
  if (MR_UNLIKELY(!c->live))
    return ctx_init();
  return c;
}

/* Reference counting inlined on the hot path (biased to the objects' creating thread: a guard's
 * retains and releases of objects its thread made cost no locked instruction). */
static inline mr__rc *rc_of(int slot, void *p) {
  return slot == SLOT_STREAM ? &((mr_stream *)p)->rc : &((mr_allocator *)p)->rc;
}

static inline void retain_slot(int slot, void *p) { mr__rc_retain(rc_of(slot, p)); }

static inline void release_slot(int slot, void *p) {
  if (MR_LIKELY(!mr__rc_release(rc_of(slot, p))))
    return;
  if (slot == SLOT_STREAM)
    mr__stream_destroy(p);
  else
    mr__allocator_destroy(p);
}

static void thread_exit(void *arg) {
  ctx *c = arg;
  /* Detach first: a release below may run code that uses the context again, which then starts a
   * fresh one (and the key's destructor runs once more for it). */
  ctx old = *c;
  memset(c, 0, sizeof *c);
  for (size_t i = old.depth; i-- > 0;) {
    int slot = (int)(old.mask[i] & SLOT_MASK);
    if (slot == SLOT_NONE || old.st[slot].len == 0)
      continue;
    void *p = old.st[slot].items[--old.st[slot].len];
    if (!(old.mask[i] & BORROWED))
      release_slot(slot, p);
  }
  for (int slot = 0; slot < SLOT_COUNT; slot++)
    while (old.st[slot].len)
      release_slot(slot, old.st[slot].items[--old.st[slot].len]);
  for (int slot = 0; slot < SLOT_COUNT; slot++)
    free(old.st[slot].items);
  free(old.mask);
}

/* ---- accessors ------------------------------------------------------------------------------- */

static __attribute__((noinline)) void *empty(const char *what) {
  mr__error(MR_ERR_EMPTY_CONTEXT, "no %s in this thread's context (push one, e.g. with MR_GUARD)",
            what);
  return NULL;
}

static inline void *top(int slot) {
  ctx *c = ctx_get();
  stack *s = &c->st[slot];
  return MR_LIKELY(s->len) ? s->items[s->len - 1] : NULL;
}

mr_stream *mr_context_stream(void) {
  mr_stream *s = top(SLOT_STREAM);
  return MR_LIKELY(s != NULL) ? s : empty("stream");
}
mr_allocator *mr_context_host_alloc(void) {
  mr_allocator *a = top(MR_HOST);
  return MR_LIKELY(a != NULL) ? a : empty("host allocator");
}
mr_allocator *mr_context_pinned_alloc(void) {
  mr_allocator *a = top(MR_PINNED);
  return MR_LIKELY(a != NULL) ? a : empty("pinned allocator");
}
mr_allocator *mr_context_device_alloc(void) {
  mr_allocator *a = top(MR_DEVICE);
  return MR_LIKELY(a != NULL) ? a : empty("device allocator");
}

mr_allocator *mr_context_alloc(mr_kind kind) {
  if (MR_UNLIKELY((unsigned)kind >= MR_KIND_COUNT_)) {
    mr__error(MR_ERR_INVALID_ARG, "mr_context_alloc: bad kind %d", (int)kind);
    return NULL;
  }
  mr_allocator *a = top((int)kind);
  if (MR_LIKELY(a != NULL))
    return a;
  static const char *const what[MR_KIND_COUNT_] = {"host allocator", "pinned allocator",
                                                   "device allocator"};
  return empty(what[kind]);
}

mr_allocator *mr_context_alloc_for(mr_device device) {
  if (MR_UNLIKELY((unsigned)device.kind >= MR_KIND_COUNT_)) {
    mr__error(MR_ERR_INVALID_ARG, "mr_context_alloc_for: bad kind %d", (int)device.kind);
    return NULL;
  }
  if (device.kind != MR_DEVICE)
    return mr_context_alloc(device.kind);
  ctx *c = ctx_get();
  const stack *s = &c->st[MR_DEVICE];
  mr_allocator *top_alloc = s->len ? s->items[s->len - 1] : NULL;
  if (MR_LIKELY(top_alloc && top_alloc->device.id == device.id))
    return top_alloc;
  for (size_t i = s->len; i-- > 0;) {
    mr_allocator *a = s->items[i];
    if (a->device.id == device.id)
      return a;
  }
  if (!top_alloc)
    return empty("device allocator");
  mr__error(MR_ERR_EMPTY_CONTEXT,
            "no allocator for device %d in this thread's context (%zu device allocator%s pushed, "
            "the top one '%s' on device %d; push one for device %d, e.g. with MR_GUARD)",
            device.id, s->len, s->len == 1 ? "" : "s", top_alloc->name, top_alloc->device.id,
            device.id);
  return NULL;
}

mr_stream *mr__context_stream_peek(void) { return top(SLOT_STREAM); }

size_t mr_context_depth(void) { return ctx_get()->depth; }
size_t mr_context_stream_depth(void) { return ctx_get()->st[SLOT_STREAM].len; }
size_t mr_context_alloc_depth(mr_kind kind) {
  if ((unsigned)kind >= MR_KIND_COUNT_) {
    mr__error(MR_ERR_INVALID_ARG, "mr_context_alloc_depth: bad kind %d", (int)kind);
    return 0;
  }
  return ctx_get()->st[kind].len;
}

/* ---- push and pop ------------------------------------------------------------------------------
 */

/* Capacity is there: push one entry, retaining what it pushed (unless already on top). */
static inline void push_raw(ctx *c, int slot, void *p, uint64_t tag) {
  uint64_t e = (tag << TAG_SHIFT) | (uint64_t)slot;
  if (slot != SLOT_NONE) {
    stack *s = &c->st[slot];
    if (s->len && s->items[s->len - 1] == p)
      e |= BORROWED;
    else
      retain_slot(slot, p);
    s->items[s->len++] = p;
  }
  c->mask[c->depth++] = e;
}

static inline void pop_raw(ctx *c) {
  uint64_t e = c->mask[--c->depth];
  int slot = (int)(e & SLOT_MASK);
  if (slot != SLOT_NONE) {
    stack *s = &c->st[slot];
    void *p = s->items[--s->len];
    if (!(e & BORROWED))
      release_slot(slot, p); /* last: the stacks are consistent if this re-enters */
  }
}

static __attribute__((noinline)) mr_status no_memory(const char *who, size_t depth) {
  return mr__error(MR_ERR_OUT_OF_MEMORY, "%s: cannot grow the context stacks past depth %zu", who,
                   depth);
}

static mr_status push_one(int slot, void *p, const char *who) {
  ctx *c = ctx_get();
  if (MR_UNLIKELY(c->depth >= c->mask_cap) && !reserve(c, 1))
    return no_memory(who, c->depth);
  push_raw(c, slot, p, 0);
  return MR_OK;
}

mr_status mr_context_push_stream(mr_stream *s) {
  return push_one(s ? SLOT_STREAM : SLOT_NONE, s, "mr_context_push_stream");
}

mr_status mr_context_push_alloc(mr_allocator *a) {
  if (a && (unsigned)a->device.kind >= MR_KIND_COUNT_)
    return mr__error(MR_ERR_INVALID_ARG, "mr_context_push_alloc: '%s' has a bad device kind %d",
                     a->name, (int)a->device.kind);
  return push_one(a ? (int)a->device.kind : SLOT_NONE, a, "mr_context_push_alloc");
}

mr_status mr_context_pop(void) {
  ctx *c = ctx_get();
  if (c->depth == 0)
    return mr__error(MR_ERR_EMPTY_CONTEXT, "mr_context_pop: nothing pushed on this thread");
  pop_raw(c);
  return MR_OK;
}

/* ---- for guards ---------------------------------------------------------------------------------
 */

static __attribute__((noinline)) mr_status bad_item(ctx *c, size_t b, size_t d,
                                                    const mr_guard_item *items, size_t i) {
  c->depth = d;
  while (c->depth > b)
    pop_raw(c);
  return mr__error(MR_ERR_INVALID_ARG,
                   "mr_guard_push: item %zu has a bad type %d (or an allocator of a bad kind)", i,
                   (int)items[i].type);
}

mr_status mr__context_push_items(const mr_guard_item *items, size_t n, uint64_t *tag,
                                 size_t *base) {
  ctx *c = ctx_get();
  /* Room in the mask is room in every stack (see reserve). Reserving up front means the loop
   * below cannot fail half-way for lack of memory. */
  if (MR_UNLIKELY(n > c->mask_cap - c->depth) && !reserve(c, n))
    return no_memory("mr_guard_push", c->depth);
  const size_t b = c->depth;
  uint64_t t = c->next_tag++;
  if (MR_UNLIKELY(t > TAG_LIMIT || t == 0))
    t = c->next_tag = 1;
  /* Locals: stores to the mask (uint64_t) could alias c->depth (size_t). */
  uint64_t *mask = c->mask;
  const uint64_t te = t << TAG_SHIFT;
  size_t d = b;
  for (size_t i = 0; i < n; i++) {
    void *p = items[i].ptr;
    unsigned type = (unsigned)items[i].type;
    unsigned slot;
    if (MR_LIKELY(type == MR_GUARD_ITEM_ALLOC && p)) {
      slot = (unsigned)((const mr_allocator *)p)->device.kind;
      if (MR_UNLIKELY(slot >= MR_KIND_COUNT_))
        return bad_item(c, b, d, items, i);
    } else if (type == MR_GUARD_ITEM_STREAM && p) {
      slot = SLOT_STREAM;
    } else if (type <= MR_GUARD_ITEM_ALLOC) {
      mask[d++] = te | SLOT_NONE;
      continue;
    } else {
      return bad_item(c, b, d, items, i);
    }
    stack *s = &c->st[slot];
    size_t len = s->len;
    uint64_t e = te | slot;
    if (len && s->items[len - 1] == p)
      e |= BORROWED;
    else
      retain_slot((int)slot, p);
    s->items[len] = p;
    s->len = len + 1;
    mask[d++] = e;
  }
  c->depth = d;
  *tag = t;
  *base = b;
  return MR_OK;
}

static __attribute__((noinline)) mr_status order_error(size_t base, size_t n, size_t depth) {
  return mr__error(MR_ERR_GUARD_ORDER,
                   "guard pushed %zu entr%s at depth %zu popped at depth %zu%s: pop the guards "
                   "and pushes above it first (stacks left as they were)",
                   n, n == 1 ? "y" : "ies", base, depth,
                   depth == base + n ? " over entries not its own (another thread's guard, "
                                       "or its entries were popped)"
                                     : "");
}

mr_status mr__context_pop_items(size_t base, size_t n, uint64_t tag) {
  ctx *c = ctx_get();
  const size_t d = c->depth;
  const uint64_t *mask = c->mask;
  /* The guard's entries are on top, and the topmost is its own: tags are unique to a push and
   * an entry never moves, so the ones below it are the guard's too. */
  if (MR_UNLIKELY(d < base || d - base != n || (n && (mask[d - 1] >> TAG_SHIFT) != tag)))
    return order_error(base, n, d);
  for (size_t i = d; i-- > base;) {
    uint64_t e = mask[i];
    int slot = (int)(e & SLOT_MASK);
    c->depth = i; /* consistent before a release that may re-enter */
    if (slot != SLOT_NONE) {
      stack *s = &c->st[slot];
      void *p = s->items[--s->len];
      if (!(e & BORROWED))
        release_slot(slot, p);
    }
  }
  return MR_OK;
}
