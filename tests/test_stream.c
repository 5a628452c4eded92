/* Streams and events without a GPU: the host backend, custom backends (the manual one from
 * tests/support), the defaults of optional ops, refcounts, identities and bad input. */
#include "manual_stream.h"

#include <criterion/criterion.h>
#include <string.h>

/* ---- a minimal custom backend: only the required ops, and counters ------------------------- */

typedef struct mini_state {
  int events_live;
  int records;
  int destroyed;
  int fail_event_create;
} mini_state;

static int g_mini_destroyed;

static mr_status mini_ev_create(mr_stream *self, void **event) {
  mini_state *m = mr_stream_state(self);
  if (m->fail_event_create)
    return mr_report_error(MR_ERR_CUDA, "mini: event_create refused");
  m->events_live++;
  *event = m;
  return MR_OK;
}
static void mini_ev_destroy(mr_stream *self, void *event) {
  (void)event;
  mini_state *m = mr_stream_state(self);
  m->events_live--;
}
static mr_status mini_ev_record(mr_stream *self, void *event) {
  (void)event;
  mini_state *m = mr_stream_state(self);
  m->records++;
  return MR_OK;
}
static mr_status mini_ev_query(mr_stream *self, void *event, bool *done) {
  (void)self;
  (void)event;
  *done = true;
  return MR_OK;
}
static void mini_destroy(mr_stream *self) {
  (void)self;
  g_mini_destroyed++;
}

static const mr_stream_ops k_mini_required = {
    .version = MR_STREAM_OPS_VERSION,
    .backend = "mini",
    .event_create = mini_ev_create,
    .event_destroy = mini_ev_destroy,
    .event_record = mini_ev_record,
    .event_query = mini_ev_query,
};

static const mr_stream_ops k_mini_with_destroy = {
    .version = MR_STREAM_OPS_VERSION,
    .backend = "mini",
    .event_create = mini_ev_create,
    .event_destroy = mini_ev_destroy,
    .event_record = mini_ev_record,
    .event_query = mini_ev_query,
    .destroy = mini_destroy,
};

/* ---- host stream --------------------------------------------------------------------------- */

Test(host_stream, properties) {
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create_host(&s), MR_OK);
  cr_assert_not_null(s);
  cr_assert_str_eq(mr_stream_backend(s), "host");
  cr_assert_eq(mr_stream_device(s).kind, MR_HOST);
  cr_assert_not(mr_stream_is_cuda(s));
  cr_assert_null(mr_stream_native(s));
  cr_assert_null(mr_stream_state(s));
  cr_assert_not_null(mr_stream_ops_of(s));
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  mr_stream_release(s);
}

Test(host_stream, copy_and_fill_are_done_on_return) {
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create_host(&s), MR_OK);
  char src[64], dst[64];
  for (int i = 0; i < 64; i++)
    src[i] = (char)i;
  memset(dst, 0, sizeof dst);
  cr_assert_eq(mr_stream_copy(s, dst, src, sizeof src), MR_OK);
  cr_assert_arr_eq(dst, src, sizeof src);
  cr_assert_eq(mr_stream_fill(s, dst + 8, 0x5a, 16), MR_OK);
  for (int i = 0; i < 64; i++)
    cr_assert_eq(dst[i], (i >= 8 && i < 24) ? 0x5a : (char)i, "byte %d", i);
  /* zero bytes is fine even with NULL pointers */
  cr_assert_eq(mr_stream_copy(s, NULL, NULL, 0), MR_OK);
  cr_assert_eq(mr_stream_fill(s, NULL, 0, 0), MR_OK);
  /* overlapping copies behave as memmove */
  cr_assert_eq(mr_stream_copy(s, src + 1, src, 32), MR_OK);
  cr_assert_eq(src[1], 0);
  cr_assert_eq(src[32], 31);
  mr_stream_release(s);
}

Test(host_stream, events_always_complete) {
  mr_stream *s = NULL;
  mr_event *e = NULL;
  cr_assert_eq(mr_stream_create_host(&s), MR_OK);
  cr_assert_eq(mr_event_create(&e, s), MR_OK);
  cr_assert_null(mr_event_stream(e));
  bool done = false;
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert(done);
  cr_assert_eq(mr_event_record(e, s), MR_OK);
  cr_assert_eq(mr_event_stream(e), s);
  done = false;
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert(done);
  cr_assert_eq(mr_event_synchronize(e), MR_OK);
  mr_stream *s2 = NULL;
  cr_assert_eq(mr_stream_create_host(&s2), MR_OK);
  cr_assert_eq(mr_stream_wait_event(s2, e), MR_OK);
  mr_event_destroy(e);
  mr_stream_release(s2);
  mr_stream_release(s);
}

Test(host_stream, event_keeps_its_backend_stream_alive) {
  g_mini_destroyed = 0;
  mini_state m = {0};
  mr_stream *s = NULL;
  mr_event *e = NULL;
  cr_assert_eq(mr_stream_create_custom(&s, &k_mini_with_destroy, &m, mr_device_host()), MR_OK);
  cr_assert_eq(mr_event_create(&e, s), MR_OK);
  mr_stream_release(s);
  cr_assert_eq(g_mini_destroyed, 0, "the event holds its backend stream");
  cr_assert_eq(m.events_live, 1);
  mr_event_destroy(e);
  cr_assert_eq(m.events_live, 0);
  cr_assert_eq(g_mini_destroyed, 1);
}

/* ---- custom streams and the defaults of optional ops --------------------------------------- */

Test(custom_stream, state_device_and_defaults) {
  mini_state m = {0};
  mr_stream *s = NULL;
  mr_device dev = {MR_PINNED, 3};
  cr_assert_eq(mr_stream_create_custom(&s, &k_mini_required, &m, dev), MR_OK);
  cr_assert_eq(mr_stream_state(s), &m);
  cr_assert_eq(mr_stream_ops_of(s), &k_mini_required);
  cr_assert_eq(mr_stream_device(s).kind, MR_PINNED);
  cr_assert_eq(mr_stream_device(s).id, 3);
  cr_assert_str_eq(mr_stream_backend(s), "mini");
  cr_assert_null(mr_stream_native(s), "native defaults to NULL");
  cr_assert_not(mr_stream_is_cuda(s));
  /* synchronize defaults to record + synchronize on a temporary event */
  cr_assert_eq(mr_stream_synchronize(s), MR_OK);
  cr_assert_eq(m.records, 1);
  cr_assert_eq(m.events_live, 0, "the temporary event is destroyed");
  /* copy/fill default to memmove/memset */
  int a[4] = {1, 2, 3, 4}, b[4] = {0};
  cr_assert_eq(mr_stream_copy(s, b, a, sizeof a), MR_OK);
  cr_assert_arr_eq(a, b, sizeof a);
  cr_assert_eq(mr_stream_fill(s, b, 0, sizeof b), MR_OK);
  cr_assert_eq(b[0] | b[1] | b[2] | b[3], 0);
  mr_stream_release(s);
}

Test(custom_stream, failing_event_create_is_reported) {
  mini_state m = {.fail_event_create = 1};
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create_custom(&s, &k_mini_required, &m, mr_device_host()), MR_OK);
  mr_event *e = (mr_event *)&m;
  cr_assert_eq(mr_event_create(&e, s), MR_ERR_CUDA);
  cr_assert_null(e);
  cr_assert(strstr(mr_last_error(), "event_create refused"));
  cr_assert_eq(mr_stream_synchronize(s), MR_ERR_CUDA, "default synchronize needs an event");
  mr_stream_release(s);
}

Test(custom_stream, retain_release_destroys_once) {
  g_mini_destroyed = 0;
  mini_state m = {0};
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create_custom(&s, &k_mini_with_destroy, &m, mr_device_host()), MR_OK);
  cr_assert_eq(mr_stream_retain(s), s);
  cr_assert_eq(mr_stream_retain(s), s);
  mr_stream_release(s);
  mr_stream_release(s);
  cr_assert_eq(g_mini_destroyed, 0);
  mr_stream_release(s);
  cr_assert_eq(g_mini_destroyed, 1);
}

Test(custom_stream, identities_are_unique_and_never_cuda_like) {
  enum { N = 200 };
  mr_stream *s[N];
  for (int i = 0; i < N; i++) {
    cr_assert_eq(i % 2 ? mr_stream_create_host(&s[i]) : manual_stream_create(&s[i]), MR_OK);
    /* CUDA's stream ids are small counters; ours count down from UINT64_MAX */
    cr_assert_gt(mr_stream_id(s[i]), UINT64_MAX / 2);
  }
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++)
      cr_assert_neq(mr_stream_id(s[i]), mr_stream_id(s[j]), "streams %d and %d", i, j);
  uint64_t last = mr_stream_id(s[N - 1]);
  for (int i = 0; i < N; i++)
    mr_stream_release(s[i]);
  /* a new stream never reuses a released stream's identity */
  mr_stream *t = NULL;
  cr_assert_eq(mr_stream_create_host(&t), MR_OK);
  cr_assert_lt(mr_stream_id(t), last);
  mr_stream_release(t);
}

/* ---- the manual backend: events complete when the test says ------------------------------- */

Test(manual_stream, events_pending_until_completed) {
  long live0 = manual_stream_live_events();
  mr_stream *s = NULL;
  mr_event *e = NULL;
  cr_assert_eq(manual_stream_create(&s), MR_OK);
  cr_assert(manual_stream_is(s));
  cr_assert_str_eq(mr_stream_backend(s), "manual");
  cr_assert_eq(mr_event_create(&e, s), MR_OK);
  cr_assert_eq(manual_stream_live_events(), live0 + 1);
  cr_assert_eq(mr_event_record(e, s), MR_OK);
  cr_assert_eq(manual_stream_recorded(s), 1);
  bool done = true;
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert_not(done);
  cr_assert_eq(mr_event_synchronize(e), MR_ERR_UNSUPPORTED, "pending work cannot be waited on");
  cr_assert_eq(mr_stream_synchronize(s), MR_ERR_UNSUPPORTED);
  manual_stream_complete(s);
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert(done);
  cr_assert_eq(mr_event_synchronize(e), MR_OK);
  /* an idle stream's new record is complete at once; once work is submitted it is pending */
  cr_assert_eq(mr_event_record(e, s), MR_OK);
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert(done);
  manual_stream_submit(s);
  cr_assert_eq(mr_event_record(e, s), MR_OK);
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert_not(done);
  manual_stream_complete(s);
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert(done);
  mr_event_destroy(e);
  cr_assert_eq(manual_stream_live_events(), live0);
  mr_stream_release(s);
}

Test(manual_stream, wait_event_orders_without_blocking) {
  mr_stream *a = NULL, *b = NULL;
  mr_event *e = NULL;
  cr_assert_eq(manual_stream_create(&a), MR_OK);
  cr_assert_eq(manual_stream_create(&b), MR_OK);
  cr_assert_eq(mr_event_create(&e, a), MR_OK);
  cr_assert_eq(mr_event_record(e, a), MR_OK);
  cr_assert_eq(mr_event_record(e, a), MR_OK);
  /* b waits on an event recorded on a: no host sync (it is still pending), one wait on b */
  cr_assert_eq(mr_stream_wait_event(b, e), MR_OK);
  cr_assert_eq(manual_stream_waits(b), 1);
  cr_assert_eq(manual_stream_waits(a), 0);
  cr_assert_eq(manual_stream_last_wait_owner(b), a);
  cr_assert_eq(manual_stream_last_wait_seq(b), 2);
  bool done = true;
  cr_assert_eq(mr_event_query(e, &done), MR_OK);
  cr_assert_not(done);
  /* an event recorded on b, created on a's backend: the owner becomes b */
  cr_assert_eq(mr_event_record(e, b), MR_OK);
  cr_assert_eq(mr_event_stream(e), b);
  cr_assert_eq(mr_stream_wait_event(a, e), MR_OK);
  cr_assert_eq(manual_stream_last_wait_owner(a), b);
  manual_stream_complete(a);
  manual_stream_complete(b);
  mr_event_destroy(e);
  mr_stream_release(a);
  mr_stream_release(b);
}

Test(manual_stream, wait_across_backends_synchronizes) {
  mr_stream *m = NULL, *h = NULL;
  mr_event *e = NULL;
  cr_assert_eq(manual_stream_create(&m), MR_OK);
  cr_assert_eq(mr_stream_create_host(&h), MR_OK);
  cr_assert_eq(mr_event_create(&e, m), MR_OK);
  cr_assert_eq(mr_event_record(e, m), MR_OK);
  /* a host stream cannot wait on manual work without blocking: it synchronizes, which the
   * manual backend refuses while the work is pending */
  cr_assert_eq(mr_stream_wait_event(h, e), MR_ERR_UNSUPPORTED);
  cr_assert_eq(manual_stream_waits(m), 0);
  manual_stream_complete(m);
  cr_assert_eq(mr_stream_wait_event(h, e), MR_OK);
  mr_event_destroy(e);
  mr_stream_release(h);
  mr_stream_release(m);
}

Test(manual_stream, event_recorded_on_another_backend_is_refused) {
  mr_stream *m = NULL, *h = NULL;
  mr_event *e = NULL;
  cr_assert_eq(manual_stream_create(&m), MR_OK);
  cr_assert_eq(mr_stream_create_host(&h), MR_OK);
  cr_assert_eq(mr_event_create(&e, m), MR_OK);
  cr_assert_eq(mr_event_record(e, h), MR_ERR_INVALID_ARG);
  cr_assert(strstr(mr_last_error(), "manual"), "message: %s", mr_last_error());
  cr_assert(strstr(mr_last_error(), "host"), "message: %s", mr_last_error());
  cr_assert_null(mr_event_stream(e), "a refused record changes nothing");
  cr_assert_eq(manual_stream_recorded(m), 0);
  mr_event_destroy(e);
  mr_stream_release(h);
  mr_stream_release(m);
}

/* ---- bad input ------------------------------------------------------------------------------ */

Test(stream_bad_input, create_custom) {
  mini_state m = {0};
  mr_stream *s = (mr_stream *)&m;
  cr_assert_eq(mr_stream_create_custom(NULL, &k_mini_required, &m, mr_device_host()),
               MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_create_custom(&s, NULL, &m, mr_device_host()), MR_ERR_INVALID_ARG);
  cr_assert_null(s, "*out is cleared on failure");

  mr_stream_ops ops = k_mini_required;
  ops.event_create = NULL;
  cr_assert_eq(mr_stream_create_custom(&s, &ops, &m, mr_device_host()), MR_ERR_INVALID_ARG);
  ops = k_mini_required;
  ops.event_destroy = NULL;
  cr_assert_eq(mr_stream_create_custom(&s, &ops, &m, mr_device_host()), MR_ERR_INVALID_ARG);
  ops = k_mini_required;
  ops.event_record = NULL;
  cr_assert_eq(mr_stream_create_custom(&s, &ops, &m, mr_device_host()), MR_ERR_INVALID_ARG);
  ops = k_mini_required;
  ops.event_query = NULL;
  cr_assert_eq(mr_stream_create_custom(&s, &ops, &m, mr_device_host()), MR_ERR_INVALID_ARG);
  cr_assert(strstr(mr_last_error(), "required"), "message: %s", mr_last_error());

  ops = k_mini_required;
  ops.version = MR_STREAM_OPS_VERSION + 1;
  cr_assert_eq(mr_stream_create_custom(&s, &ops, &m, mr_device_host()), MR_ERR_INVALID_ARG);
  cr_assert(strstr(mr_last_error(), "version"), "message: %s", mr_last_error());
  ops.version = 0;
  cr_assert_eq(mr_stream_create_custom(&s, &ops, &m, mr_device_host()), MR_ERR_INVALID_ARG);

  mr_device bad = {MR_KIND_COUNT_, 0};
  cr_assert_eq(mr_stream_create_custom(&s, &k_mini_required, &m, bad), MR_ERR_INVALID_ARG);
  bad.kind = (mr_kind)-1;
  cr_assert_eq(mr_stream_create_custom(&s, &k_mini_required, &m, bad), MR_ERR_INVALID_ARG);
  cr_assert_null(s);
  cr_assert_eq(mr_stream_create_host(NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_create(NULL, 0, 0), MR_ERR_INVALID_ARG);
}

Test(stream_bad_input, null_streams_and_events) {
  mr_stream *s = NULL;
  mr_event *e = NULL;
  cr_assert_eq(mr_stream_create_host(&s), MR_OK);
  cr_assert_eq(mr_event_create(&e, s), MR_OK);
  char buf[4] = {0};
  bool done;

  cr_assert_eq(mr_stream_synchronize(NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_copy(NULL, buf, buf + 2, 2), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_copy(s, NULL, buf, 2), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_copy(s, buf, NULL, 2), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_fill(NULL, buf, 0, 2), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_fill(s, NULL, 0, 2), MR_ERR_INVALID_ARG);

  mr_event *e2 = (mr_event *)buf;
  cr_assert_eq(mr_event_create(NULL, s), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_event_create(&e2, NULL), MR_ERR_INVALID_ARG);
  cr_assert_null(e2);
  cr_assert_eq(mr_event_record(NULL, s), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_event_record(e, NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_event_query(NULL, &done), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_event_query(e, NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_event_synchronize(NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_wait_event(NULL, e), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_wait_event(s, NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_last_status(), MR_ERR_INVALID_ARG);

  /* accessors and release accept NULL */
  cr_assert_null(mr_stream_retain(NULL));
  mr_stream_release(NULL);
  mr_event_destroy(NULL);
  cr_assert_null(mr_stream_state(NULL));
  cr_assert_null(mr_stream_ops_of(NULL));
  cr_assert_null(mr_stream_native(NULL));
  cr_assert_eq(mr_stream_id(NULL), 0);
  cr_assert_str_eq(mr_stream_backend(NULL), "");
  cr_assert_not(mr_stream_is_cuda(NULL));
  cr_assert_eq(mr_stream_device(NULL).kind, MR_HOST);
  cr_assert_null(mr_event_stream(NULL));

  mr_event_destroy(e);
  mr_stream_release(s);
}
