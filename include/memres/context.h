/* memres: the thread-local context stack, guards and named scopes. */
#ifndef MEMRES_CONTEXT_H
#define MEMRES_CONTEXT_H

#include "allocator.h"

MR_EXTERN_C_BEGIN

/* Accessors: the tops of this thread's stacks. NULL (with MR_ERR_EMPTY_CONTEXT in
 * mr_last_error) when that stack is empty. Not retained for the caller. */
MR_API mr_stream *mr_context_stream(void);
MR_API mr_allocator *mr_context_host_alloc(void);
MR_API mr_allocator *mr_context_pinned_alloc(void);
MR_API mr_allocator *mr_context_device_alloc(void);
/* MR_HOST, MR_PINNED or MR_DEVICE; NULL with MR_ERR_INVALID_ARG for another kind. */
MR_API mr_allocator *mr_context_alloc(mr_kind kind);
/* The allocator for memory on `device`: for MR_DEVICE, the topmost allocator on the device
 * stack whose device id is device.id (the stack is walked down from the top, so a guard for
 * another GPU above it does not hide it); for MR_HOST and MR_PINNED, the top of that stack
 * (host memory has no GPU; pinned memory, portable by default, is usable from every GPU). NULL with
 * MR_ERR_EMPTY_CONTEXT when there is none, MR_ERR_INVALID_ARG for a bad kind. */
MR_API mr_allocator *mr_context_alloc_for(mr_device device);

/* Single pushes: each adds one mask entry naming what it pushed (none for NULL), and retains.
 * An allocator goes on the stack of its device kind. */
MR_API mr_status mr_context_push_stream(mr_stream *s);
MR_API mr_status mr_context_push_alloc(mr_allocator *a);
/* Undo the last push exactly (releases what it pushed). MR_ERR_EMPTY_CONTEXT if none. */
MR_API mr_status mr_context_pop(void);
/* Number of mask entries (pushes not yet popped) on this thread. */
MR_API size_t mr_context_depth(void);
/* Depth of one stack (MR_HOST..MR_DEVICE allocators; the stream stack with `streams`). */
MR_API size_t mr_context_stream_depth(void);
MR_API size_t mr_context_alloc_depth(mr_kind kind);

/* ---- guards -------------------------------------------------------------------------------- */
typedef enum mr_guard_item_type {
  MR_GUARD_ITEM_NONE = 0,
  MR_GUARD_ITEM_STREAM,
  MR_GUARD_ITEM_ALLOC
} mr_guard_item_type;

typedef struct mr_guard_item {
  mr_guard_item_type type;
  void *ptr;
} mr_guard_item;

typedef struct mr_guard {
  size_t base;  /* depth before the guard pushed */
  size_t count; /* entries it pushed */
  int active;   /* 1 between push and pop */
  mr_status status;
  uint64_t tag; /* marks its topmost mask entry: a pop checks the entries on top are its own */
} mr_guard;

/* Push `n` items (one mask entry each; NULL items push nothing but still add an entry). On
 * failure nothing stays pushed and g->active is 0. */
MR_API mr_status mr_guard_push(mr_guard *g, const mr_guard_item *items, size_t n);
/* Pop what the guard pushed. If other pushes sit above it (out of LIFO order), returns
 * MR_ERR_GUARD_ORDER and leaves every stack as it is (the guard stays active). Popping an
 * inactive guard is MR_OK. */
MR_API mr_status mr_guard_pop(mr_guard *g);

static inline mr_guard_item mr_guard_stream(mr_stream *s) {
  mr_guard_item it = {s ? MR_GUARD_ITEM_STREAM : MR_GUARD_ITEM_NONE, s};
  return it;
}
static inline mr_guard_item mr_guard_alloc(mr_allocator *a) {
  mr_guard_item it = {a ? MR_GUARD_ITEM_ALLOC : MR_GUARD_ITEM_NONE, a};
  return it;
}
static inline mr_guard_item mr_guard_none(const void *p) {
  (void)p;
  mr_guard_item it = {MR_GUARD_ITEM_NONE, 0};
  return it;
}

// clang-format off
/* _Generic sorts streams from allocators; a NULL (void *) is an empty entry. */
#define MR_GUARD_ITEM(x)                                                                           \
  _Generic((x),                                                                                    \
      mr_stream *: mr_guard_stream,                                                                \
      mr_allocator *: mr_guard_alloc,                                                              \
      default: mr_guard_none)(x)

#define MR__NARG(...) MR__NARG_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define MR__NARG_(a1, a2, a3, a4, a5, a6, a7, a8, n, ...) n
#define MR__CAT(a, b) MR__CAT_(a, b)
#define MR__CAT_(a, b) a##b
#define MR__MAP1(f, x) f(x)
#define MR__MAP2(f, x, ...) f(x), MR__MAP1(f, __VA_ARGS__)
#define MR__MAP3(f, x, ...) f(x), MR__MAP2(f, __VA_ARGS__)
#define MR__MAP4(f, x, ...) f(x), MR__MAP3(f, __VA_ARGS__)
#define MR__MAP5(f, x, ...) f(x), MR__MAP4(f, __VA_ARGS__)
#define MR__MAP6(f, x, ...) f(x), MR__MAP5(f, __VA_ARGS__)
#define MR__MAP7(f, x, ...) f(x), MR__MAP6(f, __VA_ARGS__)
#define MR__MAP8(f, x, ...) f(x), MR__MAP7(f, __VA_ARGS__)
#define MR__MAP(f, ...) MR__CAT(MR__MAP, MR__NARG(__VA_ARGS__))(f, __VA_ARGS__)
// clang-format on

/* Internal to MR_GUARD: push and return the guard by value. */
MR_API mr_guard mr__guard_begin(const mr_guard_item *items, size_t n);
MR_API void mr__guard_cleanup(mr_guard *g);

// clang-format off
#if defined(__GNUC__) || defined(__clang__)
#define MR_HAVE_CLEANUP 1
/* MR_GUARD(g, stream, alloc, ...): push 1 to 8 streams/allocators/NULLs; pops when the scope
 * ends. g.status says whether the push worked. Cleanups do not run on longjmp/exit/abort. */
#define MR_GUARD(g, ...)                                                                           \
  __attribute__((cleanup(mr__guard_cleanup))) mr_guard g = mr__guard_begin(                        \
      (const mr_guard_item[]){MR__MAP(MR_GUARD_ITEM, __VA_ARGS__)}, MR__NARG(__VA_ARGS__))
#endif
// clang-format on

/* ---- named scopes --------------------------------------------------------------------------- */
/* Push a scope name (copied, up to 63 characters) on this thread's scope stack. */
MR_API mr_status mr_scope_push(const char *name);
MR_API mr_status mr_scope_pop(void);
/* The current scope path, names joined by '/', e.g. "prefill/layer3" ("" outside any scope).
 * Valid until this thread's next scope push or pop. */
MR_API const char *mr_scope_path(void);
MR_API void mr__scope_cleanup(int *token);

#ifdef MR_HAVE_CLEANUP
#define MR_SCOPE(name)                                                                             \
  __attribute__((cleanup(mr__scope_cleanup))) int MR__CAT(mr__scope_, __LINE__) =                  \
      (mr_scope_push(name) == MR_OK)
#endif

MR_EXTERN_C_END

#endif
