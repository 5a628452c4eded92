/* The thread-local context: stacks of streams and of host, pinned and device allocators, and the
 * mask stack that says what each push put where.
 *
 * Each thread has one `ctx` in thread-local storage: four growable stacks (one per allocator kind,
 * one of streams), each a pointer to its top item over a NULL sentinel (an accessor is one load;
 * an empty stack reads NULL), and the mask, one 64-bit entry per push: the low bits name the stack
 * pushed to (or none, for a NULL push, marked BORROWED as it holds nothing), the high bits of a
 * guard's topmost entry carry the guard's tag (0 in every other entry). A pop reads the top mask
 * entry and undoes exactly that. The arrays grow by doubling and never shrink, so after warm-up
 * pushes and pops touch no lock and no malloc. At thread exit a pthread key destructor releases
 * whatever is still pushed.
 *
 * References: every entry keeps its object alive until it is popped. Pushing the object that is
 * already on top of the same stack takes no new reference (the entry is marked BORROWED): the
 * entry below holds one and, the stacks being LIFO, is popped after it. That saves two atomic
 * operations on the common re-push of the same stream. */
#include "ctx.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

void *mr__ctx_none[1]; /* the top of a stack with no memory: reads NULL */

/* Grows stack `slot` to `want` items (the sentinel not counted), keeping its top. */
static int grow_stack(ctx *c, int slot, size_t want) {
  size_t len = stack_len(c, slot), cap = c->cap[slot];
  void **items = c->items[slot];
  if (!grow((void **)&items, &cap, want + 1, sizeof *items))
    return 0;
  if (!c->items[slot])
    items[0] = NULL;
  c->items[slot] = items;
  c->cap[slot] = cap;
  c->top[slot] = items + len;
  return 1;
}

/* Makes room for n more mask entries, and keeps every stack at least one longer than the mask:
 * a stack holds one item per mask entry that pushed to it, plus (the host stack) the default
 * allocator at its bottom, so room in the mask is then room in every stack, and a push checks one
 * number. */
int mr__ctx_reserve(ctx *c, size_t n) {
  if (n > SIZE_MAX / 4 - c->depth)
    return 0;
  size_t want = c->mask_cap ? c->mask_cap : INITIAL_CAP;
  while (want < c->depth + n)
    want *= 2;
  /* The stacks first: if the mask then cannot grow, the stacks are still longer than it. */
  for (int slot = 0; slot < SLOT_COUNT; slot++)
    if (!grow_stack(c, slot, want + 1))
      return 0;
  return grow((void **)&c->mask, &c->mask_cap, want, sizeof *c->mask);
}

/* ---- the thread's context ----------------------------------------------------------------------
 */

_Thread_local ctx mr__tl_ctx MR__TLS_FAST;

ctx *mr__ctx_init(void) {
  ctx *c = &mr__tl_ctx;
  pthread_once(&g_key_once, key_create);
  c->live = 1;
  for (int slot = 0; slot < SLOT_COUNT; slot++)
    c->top[slot] = mr__ctx_none;
  /* Shifted as the mask keeps it: the first tag is range * 2^32 + 1 (never 0). */
  c->last_tag = atomic_fetch_add_explicit(&g_tag_ranges, 1, memory_order_relaxed)
                << (32 + TAG_SHIFT);
  if (g_key_ok)
    pthread_setspecific(g_key, c);
  /* Best effort: without memory for the first arrays the thread starts with empty stacks (and
   * pushes will try to grow them again). */
  mr__ctx_reserve(c, INITIAL_CAP);
  mr_allocator *host = mr_host_default();
  if (host && c->items[MR_HOST])
    *++c->top[MR_HOST] = mr_allocator_retain(host);
  return c;
}

static void thread_exit(void *arg) {
  ctx *c = arg;
  /* Detach first: a release below may run code that uses the context again, which then starts a
   * fresh one (and the key's destructor runs once more for it). */
  ctx old = *c;
  memset(c, 0, sizeof *c);
  for (size_t i = old.depth; i-- > 0;) {
    int slot = (int)(old.mask[i] & SLOT_MASK);
    if (slot == SLOT_NONE || stack_len(&old, slot) == 0)
      continue;
    void *p = *old.top[slot]--;
    if (!(old.mask[i] & BORROWED))
      release_slot(slot, p);
  }
  for (int slot = 0; slot < SLOT_COUNT; slot++)
    while (stack_len(&old, slot))
      release_slot(slot, *old.top[slot]--);
  for (int slot = 0; slot < SLOT_COUNT; slot++)
    free(old.items[slot]);
  free(old.mask);
}

/* ---- accessors ------------------------------------------------------------------------------- */

static __attribute__((noinline)) void *empty(const char *what) {
  mr__error(MR_ERR_EMPTY_CONTEXT, "no %s in this thread's context (push one, e.g. with MR_GUARD)",
            what);
  return NULL;
}

static inline void *top(int slot) { return *ctx_get()->top[slot]; /* NULL when empty */ }

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
  mr_allocator *top_alloc = *c->top[MR_DEVICE];
  if (MR_LIKELY(top_alloc && top_alloc->device.id == device.id))
    return top_alloc;
  size_t len = stack_len(c, MR_DEVICE);
  for (size_t i = len; i > 0; i--) {
    mr_allocator *a = c->items[MR_DEVICE][i];
    if (a->device.id == device.id)
      return a;
  }
  if (!top_alloc)
    return empty("device allocator");
  mr__error(MR_ERR_EMPTY_CONTEXT,
            "no allocator for device %d in this thread's context (%zu device allocator%s pushed, "
            "the top one '%s' on device %d; push one for device %d, e.g. with MR_GUARD)",
            device.id, len, len == 1 ? "" : "s", top_alloc->name, top_alloc->device.id, device.id);
  return NULL;
}

mr_stream *mr__context_stream_peek(void) { return top(SLOT_STREAM); }

size_t mr_context_depth(void) { return ctx_get()->depth; }
size_t mr_context_stream_depth(void) { return stack_len(ctx_get(), SLOT_STREAM); }
size_t mr_context_alloc_depth(mr_kind kind) {
  if ((unsigned)kind >= MR_KIND_COUNT_) {
    mr__error(MR_ERR_INVALID_ARG, "mr_context_alloc_depth: bad kind %d", (int)kind);
    return 0;
  }
  return stack_len(ctx_get(), (int)kind);
}

/* ---- push and pop ------------------------------------------------------------------------------
 */

mr_status mr__ctx_no_memory(const char *who, size_t depth) {
  return mr__error(MR_ERR_OUT_OF_MEMORY, "%s: cannot grow the context stacks past depth %zu", who,
                   depth);
}

static mr_status push_one(int slot, void *p, const char *who) {
  ctx *c = ctx_get();
  if (MR_UNLIKELY(c->depth >= c->mask_cap) && !mr__ctx_reserve(c, 1))
    return mr__ctx_no_memory(who, c->depth);
  push_raw(c, slot, p);
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
