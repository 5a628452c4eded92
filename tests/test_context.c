/* The thread-local context: tops, depths, retain/release, threads, growth, named scopes. */
#include "counting_alloc.h"
#include "manual_stream.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

static void expect_empty(void *got, const char *what) {
  cr_expect_null(got, "%s on an empty stack should be NULL", what);
  cr_expect_eq(mr_last_status(), MR_ERR_EMPTY_CONTEXT, "%s: status %s", what,
               mr_status_str(mr_last_status()));
  cr_expect(strstr(mr_last_error(), "MR_ERR_EMPTY_CONTEXT") != NULL, "%s: message '%s'", what,
            mr_last_error());
}

Test(context, thread_starts_with_the_host_allocator) {
  mr_allocator *host = mr_host_default();
  cr_assert_not_null(host);
  cr_expect_eq(mr_context_host_alloc(), host);
  cr_expect_eq(mr_context_alloc(MR_HOST), host);
  cr_expect_eq(mr_context_alloc_depth(MR_HOST), 1);
  cr_expect_eq(mr_context_depth(), 0, "the initial host entry is not a mask entry");
  /* ... and it cannot be popped. */
  cr_expect_eq(mr_context_pop(), MR_ERR_EMPTY_CONTEXT);
  cr_expect_eq(mr_context_host_alloc(), host);
  cr_expect_eq(mr_context_alloc_depth(MR_HOST), 1);
}

Test(context, every_accessor_on_an_empty_stack_is_null_with_empty_context) {
  mr_clear_error();
  expect_empty(mr_context_stream(), "mr_context_stream");
  mr_clear_error();
  expect_empty(mr_context_pinned_alloc(), "mr_context_pinned_alloc");
  mr_clear_error();
  expect_empty(mr_context_device_alloc(), "mr_context_device_alloc");
  mr_clear_error();
  expect_empty(mr_context_alloc(MR_PINNED), "mr_context_alloc(MR_PINNED)");
  mr_clear_error();
  expect_empty(mr_context_alloc(MR_DEVICE), "mr_context_alloc(MR_DEVICE)");
  cr_expect_eq(mr_context_stream_depth(), 0);
  cr_expect_eq(mr_context_alloc_depth(MR_PINNED), 0);
  cr_expect_eq(mr_context_alloc_depth(MR_DEVICE), 0);
}

Test(context, bad_kinds_are_invalid_arg) {
  mr_clear_error();
  cr_expect_null(mr_context_alloc(MR_KIND_COUNT_));
  cr_expect_eq(mr_last_status(), MR_ERR_INVALID_ARG);
  mr_clear_error();
  cr_expect_null(mr_context_alloc((mr_kind)-1));
  cr_expect_eq(mr_last_status(), MR_ERR_INVALID_ARG);
  mr_clear_error();
  cr_expect_eq(mr_context_alloc_depth((mr_kind)42), 0);
  cr_expect_eq(mr_last_status(), MR_ERR_INVALID_ARG);
}

Test(context, pop_of_nothing_is_empty_context) {
  cr_expect_eq(mr_context_pop(), MR_ERR_EMPTY_CONTEXT);
  cr_expect_eq(mr_context_depth(), 0);
}

Test(context, push_retains_and_pop_releases) {
  counting_state cs = {0};
  mr_allocator *a;
  cr_assert_eq(counting_create(&a, &cs, mr_device_host(), NULL), MR_OK);
  cr_assert_eq(mr_context_push_alloc(a), MR_OK);
  mr_allocator_release(a); /* the owner's reference: the stack still holds one */
  cr_expect_eq(atomic_load(&cs.destroyed), 0, "destroyed while on the stack");
  cr_expect_eq(mr_context_host_alloc(), a);
  cr_expect_eq(mr_context_alloc_depth(MR_HOST), 2);
  cr_expect_eq(mr_context_depth(), 1);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(atomic_load(&cs.destroyed), 1, "the pop released the last reference");
  cr_expect_eq(mr_context_host_alloc(), mr_host_default());
  cr_expect_eq(mr_context_depth(), 0);
}

Test(context, stream_push_retains_and_pop_releases) {
  mr_stream *s;
  cr_assert_eq(manual_stream_create(&s), MR_OK);
  long events = manual_stream_live_events();
  cr_assert_eq(mr_context_push_stream(s), MR_OK);
  cr_expect_eq(mr_context_stream(), s);
  cr_expect_eq(mr_context_stream_depth(), 1);
  /* Still usable through the context after the owner let go. */
  mr_stream_release(s);
  mr_event *e;
  cr_assert_eq(mr_event_create(&e, mr_context_stream()), MR_OK);
  cr_expect_eq(manual_stream_live_events(), events + 1);
  mr_event_destroy(e);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(mr_context_stream_depth(), 0);
  cr_expect_null(mr_context_stream());
}

Test(context, an_allocator_goes_on_the_stack_of_its_kind) {
  counting_state hs = {0}, ps = {0}, ds = {0};
  mr_allocator *h, *p, *d;
  cr_assert_eq(counting_create(&h, &hs, mr_device_host(), NULL), MR_OK);
  cr_assert_eq(counting_create(&p, &ps, mr_device_pinned(), NULL), MR_OK);
  cr_assert_eq(counting_create(&d, &ds, mr_device_gpu(3), NULL), MR_OK);
  cr_assert_eq(mr_context_push_alloc(p), MR_OK);
  cr_assert_eq(mr_context_push_alloc(d), MR_OK);
  cr_assert_eq(mr_context_push_alloc(h), MR_OK);
  cr_expect_eq(mr_context_host_alloc(), h);
  cr_expect_eq(mr_context_pinned_alloc(), p);
  cr_expect_eq(mr_context_device_alloc(), d);
  cr_expect_eq(mr_context_alloc(MR_PINNED), p);
  cr_expect_eq(mr_context_alloc(MR_DEVICE), d);
  cr_expect_eq(mr_context_alloc_depth(MR_HOST), 2);
  cr_expect_eq(mr_context_alloc_depth(MR_PINNED), 1);
  cr_expect_eq(mr_context_alloc_depth(MR_DEVICE), 1);
  cr_expect_eq(mr_context_depth(), 3);
  /* Pops undo exactly the last push each: host, then device, then pinned. */
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(mr_context_host_alloc(), mr_host_default());
  cr_expect_eq(mr_context_device_alloc(), d);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(mr_context_alloc_depth(MR_DEVICE), 0);
  cr_expect_eq(mr_context_pinned_alloc(), p);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(mr_context_alloc_depth(MR_PINNED), 0);
  cr_expect_eq(mr_context_depth(), 0);
  mr_allocator_release(h);
  mr_allocator_release(p);
  mr_allocator_release(d);
  cr_expect(hs.destroyed && ps.destroyed && ds.destroyed);
}

Test(context, a_null_push_adds_a_mask_entry_naming_nothing) {
  mr_stream *s;
  cr_assert_eq(mr_stream_create_host(&s), MR_OK);
  cr_assert_eq(mr_context_push_stream(s), MR_OK);
  cr_assert_eq(mr_context_push_stream(NULL), MR_OK);
  cr_assert_eq(mr_context_push_alloc(NULL), MR_OK);
  cr_expect_eq(mr_context_depth(), 3);
  cr_expect_eq(mr_context_stream_depth(), 1);
  cr_expect_eq(mr_context_alloc_depth(MR_HOST), 1);
  cr_expect_eq(mr_context_stream(), s, "a NULL push leaves the top as it was");
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(mr_context_stream(), s, "popping NULL entries pops nothing else");
  cr_expect_eq(mr_context_depth(), 1);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(mr_context_stream_depth(), 0);
  mr_stream_release(s);
}

Test(context, stacks_grow_without_a_fixed_limit) {
  enum { N = 20000 };
  counting_state cs = {0};
  mr_allocator *a;
  mr_stream *s;
  cr_assert_eq(counting_create(&a, &cs, mr_device_pinned(), NULL), MR_OK);
  cr_assert_eq(mr_stream_create_host(&s), MR_OK);
  for (int i = 0; i < N; i++) {
    mr_status st = i % 3 == 0   ? mr_context_push_alloc(a)
                   : i % 3 == 1 ? mr_context_push_stream(s)
                                : mr_context_push_stream(NULL);
    cr_assert_eq(st, MR_OK, "push %d: %s", i, mr_last_error());
  }
  cr_expect_eq(mr_context_depth(), N);
  cr_expect_eq(mr_context_alloc_depth(MR_PINNED), (N + 2) / 3);
  cr_expect_eq(mr_context_stream_depth(), (N + 1) / 3);
  mr_allocator_release(a);
  mr_stream_release(s);
  for (int i = 0; i < N; i++)
    cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(mr_context_depth(), 0);
  cr_expect_eq(atomic_load(&cs.destroyed), 1);
  cr_expect_null(mr_context_stream());
}

/* ---- threads ------------------------------------------------------------------------------- */

typedef struct thread_arg {
  pthread_barrier_t *barrier;
  mr_stream *stream;
  mr_allocator *alloc;
  int ok_tops, ok_depths, ok_after, ok_host;
} thread_arg;

static void *guarded_thread(void *p) {
  thread_arg *t = p;
  t->ok_host = mr_context_host_alloc() == mr_host_default() && mr_context_depth() == 0;
  mr_guard g;
  mr_guard_item items[] = {mr_guard_stream(t->stream), mr_guard_alloc(t->alloc)};
  if (mr_guard_push(&g, items, 2) != MR_OK)
    return NULL;
  pthread_barrier_wait(t->barrier); /* both threads have pushed */
  t->ok_tops = mr_context_stream() == t->stream && mr_context_alloc(MR_PINNED) == t->alloc;
  t->ok_depths = mr_context_depth() == 2 && mr_context_stream_depth() == 1 &&
                 mr_context_alloc_depth(MR_PINNED) == 1;
  pthread_barrier_wait(t->barrier); /* both threads have looked */
  int popped = mr_guard_pop(&g) == MR_OK;
  pthread_barrier_wait(t->barrier); /* one popped, the other looks again */
  t->ok_after = popped && mr_context_depth() == 0 && mr_context_stream_depth() == 0;
  return NULL;
}

Test(context, two_threads_never_see_each_others_stacks) {
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, 2);
  counting_state s1 = {0}, s2 = {0};
  thread_arg args[2] = {{.barrier = &barrier}, {.barrier = &barrier}};
  cr_assert_eq(manual_stream_create(&args[0].stream), MR_OK);
  cr_assert_eq(mr_stream_create_host(&args[1].stream), MR_OK);
  cr_assert_eq(counting_create(&args[0].alloc, &s1, mr_device_pinned(), NULL), MR_OK);
  cr_assert_eq(counting_create(&args[1].alloc, &s2, mr_device_pinned(), NULL), MR_OK);
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, guarded_thread, &args[i]);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    cr_expect(args[i].ok_host, "thread %d did not start with just the host allocator", i);
    cr_expect(args[i].ok_tops, "thread %d saw another thread's tops", i);
    cr_expect(args[i].ok_depths, "thread %d saw another thread's depths", i);
    cr_expect(args[i].ok_after, "thread %d's stacks after its pop", i);
    mr_stream_release(args[i].stream);
    mr_allocator_release(args[i].alloc);
  }
  cr_expect_eq(mr_context_depth(), 0, "the main thread saw nothing");
  cr_expect_null(mr_context_pinned_alloc());
  cr_expect(s1.destroyed && s2.destroyed);
  pthread_barrier_destroy(&barrier);
}

static void *leaving_thread(void *p) {
  thread_arg *t = p;
  /* Pushed and never popped: the thread's exit must release them. */
  mr_context_push_stream(t->stream);
  mr_context_push_alloc(t->alloc);
  mr_context_push_alloc(NULL);
  mr_guard g;
  mr_guard_item items[] = {mr_guard_alloc(t->alloc), mr_guard_stream(t->stream)};
  mr_guard_push(&g, items, 2);
  t->ok_tops = mr_context_depth() == 5;
  return NULL;
}

Test(context, thread_exit_releases_what_is_still_pushed) {
  counting_state cs = {0};
  flag_stream_state fs = {0};
  thread_arg arg = {0};
  cr_assert_eq(flag_stream_create(&arg.stream, &fs), MR_OK);
  cr_assert_eq(counting_create(&arg.alloc, &cs, mr_device_host(), NULL), MR_OK);
  pthread_t th;
  pthread_create(&th, NULL, leaving_thread, &arg);
  pthread_join(th, NULL);
  cr_expect(arg.ok_tops);
  cr_expect_eq(atomic_load(&cs.destroyed), 0, "the owner still holds it");
  mr_allocator_release(arg.alloc);
  cr_expect_eq(atomic_load(&cs.destroyed), 1, "the exited thread still held the allocator");
  cr_expect_eq(atomic_load(&fs.destroyed), 0);
  mr_stream_release(arg.stream);
  cr_expect_eq(atomic_load(&fs.destroyed), 1, "the exited thread still held the stream");
}

static void *many_threads_body(void *p) {
  mr_allocator *a = p;
  for (int i = 0; i < 1000; i++) {
    MR_GUARD(g, a, (void *)0);
    if (g.status != MR_OK || mr_context_alloc(MR_HOST) != a)
      return (void *)1;
  }
  return NULL;
}

Test(context, many_threads_share_one_allocator) {
  counting_state cs = {0};
  mr_allocator *a;
  cr_assert_eq(counting_create(&a, &cs, mr_device_host(), NULL), MR_OK);
  pthread_t th[8];
  for (int i = 0; i < 8; i++)
    pthread_create(&th[i], NULL, many_threads_body, a);
  for (int i = 0; i < 8; i++) {
    void *r;
    pthread_join(th[i], &r);
    cr_expect_null(r, "thread %d saw a wrong top", i);
  }
  mr_allocator_release(a);
  cr_expect_eq(atomic_load(&cs.destroyed), 1, "every thread's reference was released");
}

Test(context, a_repeated_push_keeps_the_object_alive_until_its_last_entry_pops) {
  counting_state cs = {0};
  flag_stream_state fs = {0};
  mr_allocator *a;
  mr_stream *s;
  cr_assert_eq(counting_create(&a, &cs, mr_device_host(), NULL), MR_OK);
  cr_assert_eq(flag_stream_create(&s, &fs), MR_OK);
  MR_GUARD(g1, s, a);
  cr_assert_eq(mr_context_push_alloc(a), MR_OK); /* the same object on top again */
  cr_assert_eq(mr_context_push_stream(s), MR_OK);
  mr_allocator_release(a);
  mr_stream_release(s);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_assert_eq(mr_context_pop(), MR_OK);
  cr_expect_eq(mr_context_host_alloc(), a);
  cr_expect_eq(mr_context_stream(), s);
  cr_expect(!cs.destroyed && !fs.destroyed, "the lower entries still hold them");
  cr_assert_eq(mr_guard_pop(&g1), MR_OK);
  cr_expect(cs.destroyed && fs.destroyed, "the last entries released them");
}
