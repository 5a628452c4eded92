/* The fault-injection adaptor on its own: schedules, statuses, counters, pass-through. */
#include "pool_util.h"

#include <criterion/criterion.h>

#include <string.h>

static mr_allocator *g_up;
static recorder *g_rec;

static void setup(void) { cr_assert_eq(recorder_create(&g_up, &g_rec, NULL, 0, 0), MR_OK); }
static void teardown(void) { mr_allocator_release(g_up); }

TestSuite(fault, .init = setup, .fini = teardown);

Test(fault, passes_through_without_schedule) {
  mr_allocator *f;
  cr_assert_eq(mr_fault_allocator_create(&f, g_up, NULL), MR_OK);
  cr_expect_eq(mr_allocator_device(f).kind, MR_HOST);
  cr_expect_str_eq(mr_allocator_name(f), "fault(recorder)");
  void *p[10];
  for (int i = 0; i < 10; i++)
    cr_assert_eq(mr_alloc(f, 100 + i, &p[i]), MR_OK);
  cr_expect_eq(recorder_live_segments(g_rec), 10);
  cr_expect_eq(mr_fault_allocator_calls(f), 10);
  cr_expect_eq(mr_fault_allocator_failures(f), 0);
  mr_stats s = pool_stats(f);
  cr_expect_eq(s.allocs, 10);
  cr_expect_eq(s.live_blocks, 10);
  for (int i = 0; i < 10; i++)
    cr_assert_eq(mr_free(f, p[i], 100 + i), MR_OK);
  cr_expect_eq(recorder_live_segments(g_rec), 0);
  cr_expect_eq(mr_trim(f, 0), MR_OK);
  mr_allocator_release(f);
}

Test(fault, fails_nth_once_with_message) {
  mr_allocator *f;
  cr_assert_eq(mr_fault_allocator_create(&f, g_up, &(mr_fault_options){.fail_nth = 3}), MR_OK);
  void *p[6];
  for (int i = 0; i < 6; i++) {
    mr_status st = mr_alloc(f, 64, &p[i]);
    if (i == 2) {
      cr_expect_eq(st, MR_ERR_OUT_OF_MEMORY);
      cr_expect_null(p[i]);
      cr_expect_eq(mr_last_status(), MR_ERR_OUT_OF_MEMORY);
      cr_expect(strstr(mr_last_error(), "injected") != NULL, "message: %s", mr_last_error());
      cr_expect(strstr(mr_last_error(), "call 3") != NULL, "message: %s", mr_last_error());
    } else {
      cr_expect_eq(st, MR_OK, "alloc %d: %s", i + 1, mr_last_error());
    }
  }
  cr_expect_eq(mr_fault_allocator_calls(f), 6);
  cr_expect_eq(mr_fault_allocator_failures(f), 1);
  cr_expect_eq(recorder_live_segments(g_rec), 5);
  mr_stats s = pool_stats(f);
  cr_expect_eq(s.failed_allocs, 1);
  for (int i = 0; i < 6; i++)
    cr_assert_eq(mr_free(f, p[i], 64), MR_OK);
  cr_expect_eq(recorder_live_segments(g_rec), 0);
  mr_allocator_release(f);
}

Test(fault, fails_every_nth_with_given_status) {
  mr_allocator *f;
  cr_assert_eq(mr_fault_allocator_create(
                   &f, g_up, &(mr_fault_options){.fail_every = 4, .status = MR_ERR_INJECTED}),
               MR_OK);
  int failed = 0;
  for (int i = 1; i <= 20; i++) {
    void *p;
    mr_status st = mr_alloc(f, 32, &p);
    cr_expect_eq(st, i % 4 == 0 ? MR_ERR_INJECTED : MR_OK, "call %d", i);
    failed += st != MR_OK;
    cr_assert_eq(mr_free(f, p, 32), MR_OK);
  }
  cr_expect_eq(failed, 5);
  cr_expect_eq(mr_fault_allocator_failures(f), 5);
  mr_allocator_release(f);
}

Test(fault, set_restarts_counting) {
  mr_allocator *f;
  cr_assert_eq(mr_fault_allocator_create(&f, g_up, &(mr_fault_options){.fail_every = 1}), MR_OK);
  void *p;
  cr_expect_eq(mr_alloc(f, 8, &p), MR_ERR_OUT_OF_MEMORY);
  cr_expect_eq(mr_fault_allocator_set(f, &(mr_fault_options){.fail_nth = 2}), MR_OK);
  cr_expect_eq(mr_fault_allocator_calls(f), 0);
  cr_expect_eq(mr_fault_allocator_failures(f), 0);
  cr_expect_eq(mr_alloc(f, 8, &p), MR_OK);
  void *q;
  cr_expect_eq(mr_alloc(f, 8, &q), MR_ERR_OUT_OF_MEMORY);
  cr_expect_eq(mr_free(f, p, 8), MR_OK);
  cr_expect_eq(mr_fault_allocator_set(f, NULL), MR_OK);
  for (int i = 0; i < 5; i++) {
    cr_expect_eq(mr_alloc(f, 8, &p), MR_OK);
    cr_expect_eq(mr_free(f, p, 8), MR_OK);
  }
  mr_allocator_release(f);
}

Test(fault, bad_arguments) {
  mr_allocator *f = (mr_allocator *)1;
  cr_expect_eq(mr_fault_allocator_create(&f, NULL, NULL), MR_ERR_INVALID_ARG);
  cr_expect_null(f);
  cr_expect_eq(mr_fault_allocator_create(NULL, g_up, NULL), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_fault_allocator_create(&f, g_up, &(mr_fault_options){.status = MR_STATUS_COUNT_}),
               MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_fault_allocator_set(g_up, NULL), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_fault_allocator_calls(g_up), 0);
  cr_expect_eq(mr_fault_allocator_failures(NULL), 0);
}

Test(fault, keeps_upstream_alive_and_uses_own_counters) {
  mr_allocator *min_up, *f;
  recorder *r = NULL;
  cr_assert_eq(recorder_create(&min_up, &r, NULL, 0, 1), MR_OK);
  cr_assert_eq(mr_fault_allocator_create(&f, min_up, NULL), MR_OK);
  mr_allocator_release(min_up); /* the adaptor holds it now */
  void *p;
  cr_assert_eq(mr_alloc(f, 1000, &p), MR_OK);
  mr_stats s = pool_stats(f); /* upstream has no stats: the adaptor's own */
  cr_expect_eq(s.allocs, 1);
  cr_expect_eq(s.bytes_in_use, 1000);
  cr_expect_eq(s.live_blocks, 1);
  cr_assert_eq(mr_free(f, p, 1000), MR_OK);
  s = pool_stats(f);
  cr_expect_eq(s.frees, 1);
  cr_expect_eq(s.bytes_in_use, 0);
  cr_expect_eq(recorder_live_segments(r), 0);
  mr_allocator_release(f);
}
