/* Guards (MR_GUARD, mr_guard_push/pop) and named scopes (MR_SCOPE). */
#include "counting_alloc.h"
#include "manual_stream.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

/* Three streams, a host, a pinned and a device allocator, all of them test backends. */
static mr_stream *s1, *s2, *s3;
static mr_allocator *h1, *p1, *d1;
static counting_state hs, ps, ds;

static void setup(void) {
  cr_assert_eq(manual_stream_create(&s1), MR_OK);
  cr_assert_eq(mr_stream_create_host(&s2), MR_OK);
  cr_assert_eq(manual_stream_create(&s3), MR_OK);
  cr_assert_eq(counting_create(&h1, &hs, mr_device_host(), s1), MR_OK);
  cr_assert_eq(counting_create(&p1, &ps, mr_device_pinned(), NULL), MR_OK);
  cr_assert_eq(counting_create(&d1, &ds, mr_device_gpu(0), s3), MR_OK);
}

static void teardown(void) {
  mr_allocator_release(h1);
  mr_allocator_release(p1);
  mr_allocator_release(d1);
  mr_stream_release(s1);
  mr_stream_release(s2);
  mr_stream_release(s3);
}

TestSuite(guard, .init = setup, .fini = teardown);

typedef struct snapshot {
  size_t depth, streams, host, pinned, device;
  mr_stream *stream;
  mr_allocator *h, *p, *d;
} snapshot;

static snapshot snap(void) {
  snapshot s = {mr_context_depth(),
                mr_context_stream_depth(),
                mr_context_alloc_depth(MR_HOST),
                mr_context_alloc_depth(MR_PINNED),
                mr_context_alloc_depth(MR_DEVICE),
                mr_context_stream(),
                mr_context_host_alloc(),
                mr_context_pinned_alloc(),
                mr_context_device_alloc()};
  return s;
}

#define expect_snapshot(got, depth_, streams_, host_, pinned_, device_, stream_, h_, p_, d_)       \
  do {                                                                                             \
    snapshot g_ = (got);                                                                           \
    cr_expect_eq(g_.depth, (size_t)(depth_), "mask depth %zu, want %zu", g_.depth,                 \
                 (size_t)(depth_));                                                                \
    cr_expect_eq(g_.streams, (size_t)(streams_), "stream depth %zu", g_.streams);                  \
    cr_expect_eq(g_.host, (size_t)(host_), "host depth %zu", g_.host);                             \
    cr_expect_eq(g_.pinned, (size_t)(pinned_), "pinned depth %zu", g_.pinned);                     \
    cr_expect_eq(g_.device, (size_t)(device_), "device depth %zu", g_.device);                     \
    cr_expect_eq(g_.stream, (stream_), "stream top");                                              \
    cr_expect_eq(g_.h, (h_), "host top");                                                          \
    cr_expect_eq(g_.p, (p_), "pinned top");                                                        \
    cr_expect_eq(g_.d, (d_), "device top");                                                        \
  } while (0)

Test(guard, three_nested_guards_with_null_entries) {
  mr_allocator *host = mr_host_default();
  expect_snapshot(snap(), 0, 0, 1, 0, 0, NULL, host, NULL, NULL);
  {
    MR_GUARD(g1, s1, h1, NULL);
    cr_assert_eq(g1.status, MR_OK, "%s", mr_last_error());
    cr_expect_eq(g1.base, 0);
    cr_expect_eq(g1.count, 3);
    expect_snapshot(snap(), 3, 1, 2, 0, 0, s1, h1, NULL, NULL);
    {
      MR_GUARD(g2, NULL, p1, s2, NULL);
      cr_assert_eq(g2.status, MR_OK);
      cr_expect_eq(g2.base, 3);
      expect_snapshot(snap(), 7, 2, 2, 1, 0, s2, h1, p1, NULL);
      {
        MR_GUARD(g3, d1, NULL, NULL, s3, host);
        cr_assert_eq(g3.status, MR_OK);
        cr_expect_eq(g3.base, 7);
        cr_expect_eq(g3.count, 5);
        expect_snapshot(snap(), 12, 3, 3, 1, 1, s3, host, p1, d1);
      }
      expect_snapshot(snap(), 7, 2, 2, 1, 0, s2, h1, p1, NULL);
    }
    expect_snapshot(snap(), 3, 1, 2, 0, 0, s1, h1, NULL, NULL);
  }
  expect_snapshot(snap(), 0, 0, 1, 0, 0, NULL, host, NULL, NULL);
}

Test(guard, one_to_eight_items_of_every_type) {
  mr_stream *none_s = NULL;
  mr_allocator *none_a = NULL;
  {
    MR_GUARD(g, s1);
    cr_expect_eq(g.count, 1);
    cr_expect_eq(mr_context_stream(), s1);
  }
  {
    MR_GUARD(g, NULL);
    cr_expect_eq(g.status, MR_OK);
    cr_expect_eq(mr_context_depth(), 1);
    cr_expect_eq(mr_context_stream_depth(), 0);
  }
  {
    MR_GUARD(g, none_s, none_a); /* typed NULLs are empty entries too */
    cr_expect_eq(g.status, MR_OK);
    expect_snapshot(snap(), 2, 0, 1, 0, 0, NULL, mr_host_default(), NULL, NULL);
  }
  {
    MR_GUARD(g, h1, s1, NULL);
    expect_snapshot(snap(), 3, 1, 2, 0, 0, s1, h1, NULL, NULL);
  }
  {
    MR_GUARD(g, p1, d1, s2, s3);
    expect_snapshot(snap(), 4, 2, 1, 1, 1, s3, mr_host_default(), p1, d1);
  }
  {
    MR_GUARD(g, s1, NULL, h1, p1, d1);
    expect_snapshot(snap(), 5, 1, 2, 1, 1, s1, h1, p1, d1);
  }
  {
    MR_GUARD(g, s1, s2, NULL, h1, NULL, d1);
    expect_snapshot(snap(), 6, 2, 2, 0, 1, s2, h1, NULL, d1);
  }
  {
    MR_GUARD(g, d1, d1, s1, s1, NULL, p1, h1);
    expect_snapshot(snap(), 7, 2, 2, 1, 2, s1, h1, p1, d1);
  }
  {
    MR_GUARD(g, s1, h1, p1, d1, NULL, s2, none_a, s3);
    cr_expect_eq(g.count, 8);
    expect_snapshot(snap(), 8, 3, 2, 1, 1, s3, h1, p1, d1);
  }
  expect_snapshot(snap(), 0, 0, 1, 0, 0, NULL, mr_host_default(), NULL, NULL);
}

Test(guard, out_of_order_pop_is_reported_and_leaves_the_stacks_intact) {
  mr_guard g1, g2;
  mr_guard_item i1[] = {mr_guard_stream(s1), mr_guard_alloc(h1)};
  mr_guard_item i2[] = {mr_guard_alloc(p1), mr_guard_none(NULL), mr_guard_stream(s2)};
  cr_assert_eq(mr_guard_push(&g1, i1, 2), MR_OK);
  cr_assert_eq(mr_guard_push(&g2, i2, 3), MR_OK);
  snapshot before = snap();
  mr_clear_error();
  cr_expect_eq(mr_guard_pop(&g1), MR_ERR_GUARD_ORDER);
  cr_expect_eq(mr_last_status(), MR_ERR_GUARD_ORDER);
  cr_expect(strstr(mr_last_error(), "depth") != NULL, "message: '%s'", mr_last_error());
  cr_expect_eq(g1.active, 1, "the guard stays active");
  cr_expect_eq(g1.status, MR_ERR_GUARD_ORDER);
  expect_snapshot(snap(), before.depth, before.streams, before.host, before.pinned, before.device,
                  before.stream, before.h, before.p, before.d);
  /* The right order works. */
  cr_expect_eq(mr_guard_pop(&g2), MR_OK);
  expect_snapshot(snap(), 2, 1, 2, 0, 0, s1, h1, NULL, NULL);
  cr_expect_eq(mr_guard_pop(&g1), MR_OK);
  expect_snapshot(snap(), 0, 0, 1, 0, 0, NULL, mr_host_default(), NULL, NULL);
  /* Popping an inactive guard again is fine and does nothing. */
  cr_expect_eq(mr_guard_pop(&g1), MR_OK);
  cr_expect_eq(mr_context_depth(), 0);
}

Test(guard, a_single_push_above_a_guard_blocks_its_pop) {
  mr_guard g;
  mr_guard_item it[] = {mr_guard_stream(s1)};
  cr_assert_eq(mr_guard_push(&g, it, 1), MR_OK);
  cr_assert_eq(mr_context_push_alloc(h1), MR_OK);
  cr_expect_eq(mr_guard_pop(&g), MR_ERR_GUARD_ORDER);
  cr_expect_eq(mr_context_host_alloc(), h1);
  cr_expect_eq(mr_context_stream(), s1);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(mr_guard_pop(&g), MR_OK);
  cr_expect_eq(mr_context_depth(), 0);
}

Test(guard, entries_replaced_under_a_guard_are_not_its_own) {
  /* Someone pops the guard's entries by hand and pushes as many others: same depth, but the
   * guard must not pop them. */
  mr_guard g;
  mr_guard_item it[] = {mr_guard_stream(s1), mr_guard_alloc(h1)};
  cr_assert_eq(mr_guard_push(&g, it, 2), MR_OK);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_assert_eq(mr_context_push_stream(s2), MR_OK);
  cr_assert_eq(mr_context_push_alloc(p1), MR_OK);
  cr_expect_eq(mr_guard_pop(&g), MR_ERR_GUARD_ORDER);
  cr_expect_eq(mr_context_stream(), s2);
  cr_expect_eq(mr_context_pinned_alloc(), p1);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(mr_context_depth(), 0);
}

Test(guard, a_topmost_entry_replaced_under_a_guard_is_not_its_own) {
  /* Only the guard's topmost entry is replaced, by a single push or by another guard's entry: the
   * entries below are still the guard's, the top is not. */
  mr_guard g, h;
  mr_guard_item it[] = {mr_guard_stream(s1), mr_guard_alloc(h1), mr_guard_none(NULL)};
  cr_assert_eq(mr_guard_push(&g, it, 3), MR_OK);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_assert_eq(mr_context_push_stream(NULL), MR_OK);
  cr_expect_eq(mr_guard_pop(&g), MR_ERR_GUARD_ORDER);
  cr_assert_eq(mr_context_pop(), MR_OK);
  mr_guard_item one[] = {mr_guard_alloc(p1)};
  cr_assert_eq(mr_guard_push(&h, one, 1), MR_OK);
  cr_expect_eq(mr_context_depth(), 3);
  cr_expect_eq(mr_guard_pop(&g), MR_ERR_GUARD_ORDER);
  cr_expect_eq(mr_context_pinned_alloc(), p1);
  cr_expect_eq(mr_guard_pop(&h), MR_OK);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_assert_eq(mr_context_pop(), MR_OK);
  expect_snapshot(snap(), 0, 0, 1, 0, 0, NULL, mr_host_default(), NULL, NULL);
}

Test(guard, guards_of_only_empty_entries_nest_and_check_their_order) {
  mr_guard a, b;
  mr_guard_item none2[] = {mr_guard_none(NULL), mr_guard_stream(NULL)};
  cr_assert_eq(mr_guard_push(&a, none2, 2), MR_OK);
  cr_assert_eq(mr_guard_push(&b, none2, 1), MR_OK);
  cr_expect_eq(mr_guard_pop(&a), MR_ERR_GUARD_ORDER);
  cr_expect_eq(mr_guard_pop(&b), MR_OK);
  cr_expect_eq(mr_guard_pop(&a), MR_OK);
  expect_snapshot(snap(), 0, 0, 1, 0, 0, NULL, mr_host_default(), NULL, NULL);
}

typedef struct cross_arg {
  mr_guard *g;
  mr_status st;
  size_t depth_after;
} cross_arg;

static void *pop_elsewhere(void *p) {
  cross_arg *a = p;
  /* Same depth on this thread as on the owner's. */
  mr_context_push_stream(NULL);
  a->st = mr_guard_pop(a->g);
  a->depth_after = mr_context_depth();
  mr_context_pop();
  return NULL;
}

Test(guard, a_guard_popped_on_another_thread_is_reported) {
  mr_guard g;
  mr_guard_item it[] = {mr_guard_stream(s1)};
  cr_assert_eq(mr_guard_push(&g, it, 1), MR_OK);
  cross_arg a = {&g, MR_OK, 0};
  pthread_t th;
  pthread_create(&th, NULL, pop_elsewhere, &a);
  pthread_join(th, NULL);
  cr_expect_eq(a.st, MR_ERR_GUARD_ORDER);
  cr_expect_eq(a.depth_after, 1, "the other thread's entry stayed");
  cr_expect_eq(mr_context_stream(), s1);
  cr_expect_eq(mr_guard_pop(&g), MR_OK);
}

Test(guard, an_allocator_released_by_its_owner_lives_until_popped) {
  counting_state cs = {0};
  mr_allocator *a;
  cr_assert_eq(counting_create(&a, &cs, mr_device_pinned(), NULL), MR_OK);
  {
    MR_GUARD(g, a, s1);
    mr_allocator_release(a);
    a = NULL;
    cr_expect_eq(atomic_load(&cs.destroyed), 0);
    void *p;
    mr_allocator *top = mr_context_pinned_alloc();
    cr_assert_not_null(top);
    cr_assert_eq(mr_alloc(top, 100, &p), MR_OK);
    cr_assert_eq(mr_free(top, p, 100), MR_OK);
    cr_expect_eq(atomic_load(&cs.allocs), 1);
    cr_expect_eq(atomic_load(&cs.destroyed), 0);
  }
  cr_expect_eq(atomic_load(&cs.destroyed), 1, "the guard's pop released the last reference");
}

Test(guard, push_retains_and_pop_releases_each_entry) {
  counting_state cs = {0};
  flag_stream_state fs = {0};
  mr_allocator *a;
  mr_stream *s;
  cr_assert_eq(counting_create(&a, &cs, mr_device_host(), NULL), MR_OK);
  cr_assert_eq(flag_stream_create(&s, &fs), MR_OK);
  mr_guard g;
  mr_guard_item it[] = {mr_guard_alloc(a), mr_guard_stream(s), mr_guard_alloc(a)};
  cr_assert_eq(mr_guard_push(&g, it, 3), MR_OK);
  mr_allocator_release(a);
  mr_stream_release(s);
  cr_expect(!cs.destroyed && !fs.destroyed);
  cr_assert_eq(mr_guard_pop(&g), MR_OK);
  cr_expect_eq(atomic_load(&cs.destroyed), 1);
  cr_expect_eq(atomic_load(&fs.destroyed), 1);
}

Test(guard, bad_inputs) {
  mr_guard g;
  mr_guard_item it[] = {mr_guard_stream(s1)};
  cr_expect_eq(mr_guard_push(NULL, it, 1), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_guard_pop(NULL), MR_ERR_INVALID_ARG);
  memset(&g, 0xab, sizeof g);
  cr_expect_eq(mr_guard_push(&g, NULL, 2), MR_ERR_INVALID_ARG);
  cr_expect_eq(g.active, 0);
  cr_expect_eq(g.status, MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_guard_pop(&g), MR_OK, "an inactive guard pops nothing");
  cr_expect_eq(mr_context_depth(), 0);
  /* n == 0 is an empty guard, fine. */
  cr_expect_eq(mr_guard_push(&g, NULL, 0), MR_OK);
  cr_expect_eq(g.active, 1);
  cr_expect_eq(mr_context_depth(), 0);
  cr_expect_eq(mr_guard_pop(&g), MR_OK);
}

Test(guard, a_bad_item_leaves_nothing_pushed) {
  counting_state cs = {0};
  mr_allocator *a;
  cr_assert_eq(counting_create(&a, &cs, mr_device_host(), NULL), MR_OK);
  mr_guard_item it[] = {mr_guard_alloc(a), mr_guard_stream(s1), {(mr_guard_item_type)7, s2}};
  mr_guard g;
  mr_clear_error();
  cr_expect_eq(mr_guard_push(&g, it, 3), MR_ERR_INVALID_ARG);
  cr_expect(strstr(mr_last_error(), "item 2") != NULL, "message: '%s'", mr_last_error());
  cr_expect_eq(g.active, 0);
  expect_snapshot(snap(), 0, 0, 1, 0, 0, NULL, mr_host_default(), NULL, NULL);
  mr_allocator_release(a);
  cr_expect_eq(atomic_load(&cs.destroyed), 1, "the partial push's reference was given back");
}

Test(guard, plain_calls_interleave_with_macros) {
  MR_GUARD(outer, s1, h1);
  mr_guard inner;
  mr_guard_item it[] = {mr_guard_alloc(d1)};
  cr_assert_eq(mr_guard_push(&inner, it, 1), MR_OK);
  cr_expect_eq(inner.base, 2);
  cr_expect_eq(mr_context_device_alloc(), d1);
  cr_expect_eq(mr_guard_pop(&inner), MR_OK);
  cr_expect_eq(mr_context_alloc_depth(MR_DEVICE), 0);
  cr_expect_eq(mr_context_depth(), 2);
}

/* An allocator made on another thread counts this thread's references in its shared half: the
 * guard's push and pop take the paths for objects another thread owns. */
static void *make_counting(void *arg) {
  counting_state *cs = arg;
  mr_allocator *a = NULL;
  if (counting_create(&a, cs, mr_device_pinned(), NULL) != MR_OK)
    return NULL;
  return a;
}

Test(guard, an_allocator_made_on_another_thread_lives_until_popped) {
  counting_state cs = {0};
  pthread_t th;
  void *made = NULL;
  pthread_create(&th, NULL, make_counting, &cs);
  pthread_join(th, &made);
  mr_allocator *a = made;
  cr_assert_not_null(a);
  {
    MR_GUARD(g, s1, a, h1);
    mr_allocator_release(a); /* the reference made on the other thread */
    cr_expect_eq(atomic_load(&cs.destroyed), 0);
    cr_expect_eq(mr_context_pinned_alloc(), a);
    cr_expect_eq(mr_context_host_alloc(), h1);
  }
  cr_expect_eq(atomic_load(&cs.destroyed), 1, "the guard's pop released the last reference");
  expect_snapshot(snap(), 0, 0, 1, 0, 0, NULL, mr_host_default(), NULL, NULL);
}

/* An allocator whose destroy pushes and pops a guard big enough to grow the context's arrays:
 * the pop that drops its last reference must go on over the grown arrays. */
static mr_stream *g_reentry_stream;
static int g_reentry_depth = -1;

static void reentrant_destroy(mr_allocator *self) {
  counting_destroy(self);
  mr_guard_item big[100];
  for (int i = 0; i < 100; i++)
    big[i] = i % 2 ? mr_guard_stream(g_reentry_stream) : mr_guard_none(NULL);
  mr_guard g;
  if (mr_guard_push(&g, big, 100) == MR_OK) {
    g_reentry_depth = (int)mr_context_depth();
    (void)mr_guard_pop(&g);
  }
}

Test(guard, a_destroy_that_uses_the_context_during_a_pop) {
  static const mr_allocator_ops ops = {.version = MR_ALLOCATOR_OPS_VERSION,
                                       .alloc = counting_alloc,
                                       .free = counting_free,
                                       .destroy = reentrant_destroy};
  counting_state cs = {0};
  mr_allocator *a;
  cr_assert_eq(mr_allocator_create(&a, &ops, &cs, mr_device_gpu(0), "reentrant", NULL), MR_OK);
  g_reentry_stream = s2;
  MR_GUARD(outer, s1, h1);
  {
    MR_GUARD(g, s3, p1, a, d1);
    mr_allocator_release(a);
    g_reentry_depth = -1;
  }
  cr_expect_eq(atomic_load(&cs.destroyed), 1);
  /* the destroy ran with the entries above a's popped: outer's 2, s3's and p1's below it */
  cr_expect_eq(g_reentry_depth, 4 + 100, "depth inside the destroy: %d", g_reentry_depth);
  expect_snapshot(snap(), 2, 1, 2, 0, 0, s1, h1, NULL, NULL);
}

/* ---- named scopes -------------------------------------------------------------------------- */

Test(scope, paths_join_names_with_slashes) {
  cr_expect_str_eq(mr_scope_path(), "");
  {
    MR_SCOPE("prefill");
    cr_expect_str_eq(mr_scope_path(), "prefill");
    {
      MR_SCOPE("layer3");
      cr_expect_str_eq(mr_scope_path(), "prefill/layer3");
      {
        MR_SCOPE("attn");
        cr_expect_str_eq(mr_scope_path(), "prefill/layer3/attn");
      }
      cr_expect_str_eq(mr_scope_path(), "prefill/layer3");
    }
    MR_SCOPE("mlp"); /* two scopes in one block */
    cr_expect_str_eq(mr_scope_path(), "prefill/mlp");
  }
  cr_expect_str_eq(mr_scope_path(), "");
  {
    MR_SCOPE("decode");
    cr_expect_str_eq(mr_scope_path(), "decode");
  }
  cr_expect_str_eq(mr_scope_path(), "");
}

Test(scope, plain_calls_and_bad_inputs) {
  cr_expect_eq(mr_scope_pop(), MR_ERR_EMPTY_CONTEXT);
  cr_expect_eq(mr_scope_push(NULL), MR_ERR_INVALID_ARG);
  cr_expect_str_eq(mr_scope_path(), "");
  char long_name[200];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  cr_assert_eq(mr_scope_push("a"), MR_OK);
  cr_assert_eq(mr_scope_push(long_name), MR_OK);
  cr_expect_eq(strlen(mr_scope_path()), 2 + 63, "names are cut at 63 characters");
  cr_assert_eq(mr_scope_pop(), MR_OK);
  cr_expect_str_eq(mr_scope_path(), "a");
  cr_assert_eq(mr_scope_pop(), MR_OK);
  cr_expect_str_eq(mr_scope_path(), "");
  cr_expect_eq(mr_scope_pop(), MR_ERR_EMPTY_CONTEXT);
}

Test(scope, deep_scopes_grow) {
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(mr_scope_push("abcdefgh"), MR_OK);
  cr_expect_eq(strlen(mr_scope_path()), 1000 * 9 - 1);
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(mr_scope_pop(), MR_OK);
  cr_expect_str_eq(mr_scope_path(), "");
}

static void *scope_thread(void *p) {
  MR_SCOPE("worker");
  *(int *)p = strcmp(mr_scope_path(), "worker") == 0;
  return NULL;
}

Test(scope, each_thread_has_its_own_path) {
  MR_SCOPE("main");
  int ok = 0;
  pthread_t th;
  pthread_create(&th, NULL, scope_thread, &ok);
  pthread_join(th, NULL);
  cr_expect(ok, "the worker saw the main thread's scope");
  cr_expect_str_eq(mr_scope_path(), "main");
}
