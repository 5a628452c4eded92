/* The allocator vtable, the host allocator, statistics, status and errors, without a GPU. */
#include "manual_stream.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a counting user allocator: only alloc and free ---------------------------------------- */

typedef struct counting {
  int allocs, frees, destroys;
  size_t bytes;
  mr_stream *last_stream;
  void *last_freed;
  size_t last_free_size;
} counting;

static mr_status cnt_alloc(mr_allocator *self, size_t size, mr_stream *stream, void **out) {
  counting *c = mr_allocator_state(self);
  void *p = malloc(size);
  if (!p)
    return mr_report_error(MR_ERR_OUT_OF_MEMORY, "counting: %zu bytes", size);
  c->allocs++;
  c->bytes += size;
  c->last_stream = stream;
  *out = p;
  return MR_OK;
}
static mr_status cnt_free(mr_allocator *self, void *ptr, size_t size, mr_stream *stream) {
  counting *c = mr_allocator_state(self);
  c->frees++;
  c->bytes -= size;
  c->last_stream = stream;
  c->last_freed = ptr;
  c->last_free_size = size;
  free(ptr);
  return MR_OK;
}
static void cnt_destroy(mr_allocator *self) {
  counting *c = mr_allocator_state(self);
  c->destroys++;
}

static const mr_allocator_ops k_counting = {
    .version = MR_ALLOCATOR_OPS_VERSION, .alloc = cnt_alloc, .free = cnt_free};
static const mr_allocator_ops k_counting_destroy = {.version = MR_ALLOCATOR_OPS_VERSION,
                                                    .alloc = cnt_alloc,
                                                    .free = cnt_free,
                                                    .destroy = cnt_destroy};

/* ---- the vtable ---------------------------------------------------------------------------- */

Test(vtable, user_allocator_with_only_alloc_and_free) {
  counting c = {0};
  mr_allocator *a = NULL;
  cr_assert_eq(mr_allocator_create(&a, &k_counting, &c, mr_device_host(), "counting", NULL), MR_OK);
  cr_assert_eq(mr_allocator_state(a), &c);
  cr_assert_eq(mr_allocator_ops_of(a), &k_counting);
  cr_assert_str_eq(mr_allocator_name(a), "counting");
  cr_assert_eq(mr_allocator_device(a).kind, MR_HOST);
  cr_assert_null(mr_allocator_stream(a));

  void *p = NULL;
  cr_assert_eq(mr_alloc(a, 100, &p), MR_OK);
  cr_assert_not_null(p);
  memset(p, 1, 100);
  cr_assert_eq(c.allocs, 1);
  cr_assert_eq(c.bytes, 100);
  cr_assert_eq(mr_free(a, p, 100), MR_OK);
  cr_assert_eq(c.frees, 1);
  cr_assert_eq(c.last_freed, p);
  cr_assert_eq(c.last_free_size, 100);

  /* the defaults of the optional ops */
  cr_assert_eq(mr_trim(a, 0), MR_OK);
  mr_stats s = MR_STATS_INIT;
  mr_clear_error();
  cr_assert_eq(mr_stats_get(a, &s), MR_ERR_UNSUPPORTED);
  cr_assert(strstr(mr_last_error(), "counting"), "message: %s", mr_last_error());
  mr_allocator_release(a); /* destroy NULL: nothing to do, the state is ours */
  cr_assert_eq(c.allocs, 1);
}

Test(vtable, freeing_null_does_nothing) {
  counting c = {0};
  mr_allocator *a = NULL;
  cr_assert_eq(mr_allocator_create(&a, &k_counting, &c, mr_device_host(), "counting", NULL), MR_OK);
  cr_assert_eq(mr_free(a, NULL, 10), MR_OK);
  cr_assert_eq(mr_free_async(a, NULL, 10, NULL), MR_OK);
  cr_assert_eq(c.frees, 0);
  mr_allocator_release(a);
}

Test(vtable, bound_and_explicit_streams) {
  counting c = {0};
  mr_stream *s1 = NULL, *s2 = NULL;
  cr_assert_eq(manual_stream_create(&s1), MR_OK);
  cr_assert_eq(mr_stream_create_host(&s2), MR_OK);
  mr_allocator *a = NULL;
  cr_assert_eq(mr_allocator_create(&a, &k_counting, &c, mr_device_host(), "bound", s1), MR_OK);
  cr_assert_eq(mr_allocator_stream(a), s1);

  void *p = NULL;
  cr_assert_eq(mr_alloc(a, 8, &p), MR_OK);
  cr_assert_eq(c.last_stream, s1, "mr_alloc uses the bound stream");
  cr_assert_eq(mr_free(a, p, 8), MR_OK);
  cr_assert_eq(c.last_stream, s1, "mr_free uses the bound stream");
  cr_assert_eq(mr_alloc_async(a, 8, s2, &p), MR_OK);
  cr_assert_eq(c.last_stream, s2, "mr_alloc_async uses the explicit stream");
  cr_assert_eq(mr_free_async(a, p, 8, NULL), MR_OK);
  cr_assert_null(c.last_stream, "mr_free_async passes NULL through");

  /* the allocator retains its bound stream */
  mr_stream_release(s1);
  cr_assert(manual_stream_is(mr_allocator_stream(a)));
  cr_assert_eq(mr_alloc(a, 8, &p), MR_OK);
  cr_assert_eq(mr_free(a, p, 8), MR_OK);
  mr_allocator_release(a);
  mr_stream_release(s2);
}

Test(vtable, views_share_state_and_keep_parent_alive) {
  counting c = {0};
  mr_stream *s1 = NULL, *s2 = NULL;
  cr_assert_eq(manual_stream_create(&s1), MR_OK);
  cr_assert_eq(manual_stream_create(&s2), MR_OK);
  mr_allocator *a = NULL, *v = NULL, *vv = NULL;
  cr_assert_eq(mr_allocator_create(&a, &k_counting_destroy, &c, mr_device_host(), "parent", s1),
               MR_OK);
  cr_assert_eq(mr_allocator_bind(a, s2, &v), MR_OK);
  cr_assert_neq(v, a);
  cr_assert_eq(mr_allocator_state(v), &c);
  cr_assert_eq(mr_allocator_ops_of(v), &k_counting_destroy);
  cr_assert_str_eq(mr_allocator_name(v), "parent");
  cr_assert_eq(mr_allocator_stream(v), s2);
  cr_assert_eq(mr_allocator_stream(a), s1, "binding leaves the parent's stream");
  /* a view of a view binds to the same state, with no stream */
  cr_assert_eq(mr_allocator_bind(v, NULL, &vv), MR_OK);
  cr_assert_eq(mr_allocator_state(vv), &c);
  cr_assert_null(mr_allocator_stream(vv));

  void *p = NULL;
  cr_assert_eq(mr_alloc(v, 16, &p), MR_OK);
  cr_assert_eq(c.last_stream, s2);
  cr_assert_eq(mr_free(a, p, 16), MR_OK, "a block from the view goes back through the parent");
  cr_assert_eq(c.last_stream, s1);

  mr_allocator_release(a);
  cr_assert_eq(c.destroys, 0, "views keep the parent alive");
  cr_assert_eq(mr_alloc(v, 16, &p), MR_OK);
  cr_assert_eq(mr_free(v, p, 16), MR_OK);
  mr_allocator_release(v);
  cr_assert_eq(c.destroys, 0);
  cr_assert_eq(mr_alloc(vv, 16, &p), MR_OK);
  cr_assert_eq(mr_free(vv, p, 16), MR_OK);
  mr_allocator_release(vv);
  cr_assert_eq(c.destroys, 1, "the last reference destroys the state once");
  cr_assert_eq(c.allocs, 3);
  cr_assert_eq(c.frees, 3);
  mr_stream_release(s1);
  mr_stream_release(s2);
}

Test(vtable, refcounts) {
  counting c = {0};
  mr_allocator *a = NULL;
  cr_assert_eq(mr_allocator_create(&a, &k_counting_destroy, &c, mr_device_host(), "rc", NULL),
               MR_OK);
  cr_assert_eq(mr_allocator_retain(a), a);
  cr_assert_eq(mr_allocator_retain(a), a);
  mr_allocator_release(a);
  mr_allocator_release(a);
  cr_assert_eq(c.destroys, 0);
  mr_allocator_release(a);
  cr_assert_eq(c.destroys, 1);
  cr_assert_null(mr_allocator_retain(NULL));
  mr_allocator_release(NULL);
}

Test(vtable, names) {
  counting c = {0};
  mr_allocator *a = NULL;
  cr_assert_eq(mr_allocator_create(&a, &k_counting, &c, mr_device_host(), NULL, NULL), MR_OK);
  cr_assert_str_eq(mr_allocator_name(a), "allocator", "NULL name gets a default");
  mr_allocator_release(a);

  char longname[100];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  cr_assert_eq(mr_allocator_create(&a, &k_counting, &c, mr_device_host(), longname, NULL), MR_OK);
  cr_assert_eq(strlen(mr_allocator_name(a)), 47, "names are cut at 47 characters");
  cr_assert_eq(strncmp(mr_allocator_name(a), longname, 47), 0);
  mr_allocator_release(a);

  char name[8] = "mine";
  cr_assert_eq(mr_allocator_create(&a, &k_counting, &c, mr_device_host(), name, NULL), MR_OK);
  name[0] = 'X';
  cr_assert_str_eq(mr_allocator_name(a), "mine", "the name is copied");
  mr_allocator_release(a);
  cr_assert_str_eq(mr_allocator_name(NULL), "");
}

Test(vtable, report_error_for_allocator_writers) {
  mr_clear_error();
  cr_assert_eq(mr_report_error(MR_ERR_INJECTED, "custom %d", 42), MR_ERR_INJECTED);
  cr_assert_str_eq(mr_last_error(), "MR_ERR_INJECTED: custom 42");
  cr_assert_eq(mr_last_status(), MR_ERR_INJECTED);
}

Test(vtable, bad_input) {
  counting c = {0};
  mr_allocator *a = (mr_allocator *)&c;
  cr_assert_eq(mr_allocator_create(NULL, &k_counting, &c, mr_device_host(), "x", NULL),
               MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_allocator_create(&a, NULL, &c, mr_device_host(), "x", NULL), MR_ERR_INVALID_ARG);
  cr_assert_null(a, "*out is cleared on failure");
  mr_allocator_ops ops = k_counting;
  ops.alloc = NULL;
  cr_assert_eq(mr_allocator_create(&a, &ops, &c, mr_device_host(), "x", NULL), MR_ERR_INVALID_ARG);
  ops = k_counting;
  ops.free = NULL;
  cr_assert_eq(mr_allocator_create(&a, &ops, &c, mr_device_host(), "x", NULL), MR_ERR_INVALID_ARG);
  ops = k_counting;
  ops.version = MR_ALLOCATOR_OPS_VERSION + 1;
  cr_assert_eq(mr_allocator_create(&a, &ops, &c, mr_device_host(), "x", NULL), MR_ERR_INVALID_ARG);
  cr_assert(strstr(mr_last_error(), "version"), "message: %s", mr_last_error());
  cr_assert_eq(mr_allocator_create(&a, &k_counting, &c, (mr_device){MR_KIND_COUNT_, 0}, "x", NULL),
               MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_allocator_create(&a, &k_counting, &c, (mr_device){MR_DEVICE, -1}, "x", NULL),
               MR_ERR_INVALID_ARG);
  cr_assert_null(a);

  cr_assert_eq(mr_allocator_create(&a, &k_counting, &c, mr_device_host(), "x", NULL), MR_OK);
  void *p = &c;
  cr_assert_eq(mr_alloc(a, 10, NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_alloc(NULL, 10, &p), MR_ERR_INVALID_ARG);
  cr_assert_null(p, "*out is cleared on failure");
  p = &c;
  cr_assert_eq(mr_alloc(a, 0, &p), MR_ERR_INVALID_ARG);
  cr_assert_null(p);
  cr_assert(strstr(mr_last_error(), "size 0"), "message: %s", mr_last_error());
  cr_assert_eq(mr_alloc_async(a, 0, NULL, &p), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_free(NULL, &c, 10), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_trim(NULL, 0), MR_ERR_INVALID_ARG);
  mr_allocator *v = a;
  cr_assert_eq(mr_allocator_bind(NULL, NULL, &v), MR_ERR_INVALID_ARG);
  cr_assert_null(v);
  cr_assert_eq(mr_allocator_bind(a, NULL, NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(c.allocs, 0, "no bad call reached the allocator");
  cr_assert_eq(c.frees, 0);
  mr_allocator_release(a);

  cr_assert_null(mr_allocator_state(NULL));
  cr_assert_null(mr_allocator_ops_of(NULL));
  cr_assert_null(mr_allocator_stream(NULL));
  cr_assert_eq(mr_allocator_device(NULL).kind, MR_KIND_COUNT_);
}

/* ---- the host allocator -------------------------------------------------------------------- */

Test(host_alloc, alloc_free_and_stats) {
  mr_allocator *a = NULL;
  cr_assert_eq(mr_host_allocator_create(&a, NULL), MR_OK);
  cr_assert_str_eq(mr_allocator_name(a), "host");
  cr_assert_eq(mr_allocator_device(a).kind, MR_HOST);
  cr_assert_eq(mr_device_allocator_backend(a), MR_DEVICE_BACKEND_COUNT_, "not a device allocator");
  void *p = NULL, *q = NULL;
  cr_assert_eq(mr_alloc(a, 1000, &p), MR_OK);
  cr_assert_eq(mr_alloc(a, 24, &q), MR_OK);
  memset(p, 0xab, 1000);
  memset(q, 0xcd, 24);
  mr_stats s = MR_STATS_INIT;
  cr_assert_eq(mr_stats_get(a, &s), MR_OK);
  cr_assert_eq(s.struct_size, sizeof(mr_stats));
  cr_assert_eq(s.version, MR_STATS_VERSION);
  cr_assert_eq(s.bytes_in_use, 1024);
  cr_assert_eq(s.peak_in_use, 1024);
  cr_assert_eq(s.bytes_requested, 1024);
  cr_assert_eq(s.live_blocks, 2);
  cr_assert_eq(s.allocs, 2);
  cr_assert_eq(s.frees, 0);
  cr_assert_eq(mr_free(a, p, 1000), MR_OK);
  cr_assert_eq(mr_stats_get(a, &s), MR_OK);
  cr_assert_eq(s.bytes_in_use, 24);
  cr_assert_eq(s.peak_in_use, 1024);
  cr_assert_eq(s.live_blocks, 1);
  cr_assert_eq(s.frees, 1);
  cr_assert_eq(mr_free(a, q, 24), MR_OK);
  cr_assert_eq(mr_trim(a, 0), MR_OK);
  cr_assert_eq(mr_stats_get(a, &s), MR_OK);
  cr_assert_eq(s.bytes_in_use, 0);
  cr_assert_eq(s.live_blocks, 0);
  cr_assert_eq(s.failed_allocs, 0);
  mr_allocator_release(a);
}

Test(host_alloc, default_alignment_is_64) {
  mr_allocator *a = NULL;
  cr_assert_eq(mr_host_allocator_create(&a, &(mr_host_options){0}), MR_OK);
  void *p[40];
  for (int i = 0; i < 40; i++) {
    size_t size = 1 + (size_t)i * 37;
    cr_assert_eq(mr_alloc(a, size, &p[i]), MR_OK);
    cr_assert_eq((uintptr_t)p[i] % 64, 0, "block %d of %zu bytes at %p", i, size, p[i]);
  }
  for (int i = 0; i < 40; i++)
    cr_assert_eq(mr_free(a, p[i], 1 + (size_t)i * 37), MR_OK);
  mr_allocator_release(a);
}

Test(host_alloc, alignment_option) {
  size_t aligns[] = {1, 2, 8, 256, 4096, 65536};
  for (size_t k = 0; k < sizeof aligns / sizeof aligns[0]; k++) {
    mr_allocator *a = NULL;
    mr_host_options o = {.alignment = aligns[k]};
    cr_assert_eq(mr_host_allocator_create(&a, &o), MR_OK, "alignment %zu", aligns[k]);
    for (int i = 0; i < 8; i++) {
      void *p = NULL;
      cr_assert_eq(mr_alloc(a, 3 + (size_t)i * 100, &p), MR_OK);
      cr_assert_eq((uintptr_t)p % aligns[k], 0, "alignment %zu: %p", aligns[k], p);
      cr_assert_eq(mr_free(a, p, 3 + (size_t)i * 100), MR_OK);
    }
    mr_allocator_release(a);
  }
}

Test(host_alloc, alignment_must_be_a_power_of_two) {
  size_t bad[] = {3, 24, 100, 65535, SIZE_MAX};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    mr_allocator *a = (mr_allocator *)bad;
    mr_host_options o = {.alignment = bad[k]};
    cr_assert_eq(mr_host_allocator_create(&a, &o), MR_ERR_INVALID_ARG, "alignment %zu", bad[k]);
    cr_assert_null(a);
    char want[64];
    snprintf(want, sizeof want, "alignment %zu", bad[k]);
    cr_assert(strstr(mr_last_error(), want), "message: %s", mr_last_error());
  }
  cr_assert_eq(mr_host_allocator_create(NULL, NULL), MR_ERR_INVALID_ARG);
}

Test(host_alloc, huge_sizes_fail_cleanly) {
  mr_allocator *a = NULL;
  cr_assert_eq(mr_host_allocator_create(&a, NULL), MR_OK);
  size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 63, (size_t)PTRDIFF_MAX + 1};
  for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
    void *p = a;
    cr_assert_eq(mr_alloc(a, huge[k], &p), MR_ERR_OUT_OF_MEMORY, "size %zu", huge[k]);
    cr_assert_null(p);
    char want[32];
    snprintf(want, sizeof want, "%zu", huge[k]);
    cr_assert(strstr(mr_last_error(), want), "message names the size: %s", mr_last_error());
    cr_assert(strstr(mr_last_error(), "host"), "message names the allocator: %s", mr_last_error());
  }
  mr_stats s = MR_STATS_INIT;
  cr_assert_eq(mr_stats_get(a, &s), MR_OK);
  cr_assert_eq(s.failed_allocs, 4);
  cr_assert_eq(s.allocs, 0);
  cr_assert_eq(s.bytes_in_use, 0);
  /* still works */
  void *p = NULL;
  cr_assert_eq(mr_alloc(a, 64, &p), MR_OK);
  cr_assert_eq(mr_free(a, p, 64), MR_OK);
  mr_allocator_release(a);
}

Test(host_alloc, views_of_the_host_allocator) {
  mr_allocator *a = NULL, *v = NULL;
  mr_stream *s = NULL;
  cr_assert_eq(mr_stream_create_host(&s), MR_OK);
  cr_assert_eq(mr_host_allocator_create(&a, NULL), MR_OK);
  cr_assert_eq(mr_allocator_bind(a, s, &v), MR_OK);
  mr_allocator_release(a);
  void *p = NULL;
  cr_assert_eq(mr_alloc(v, 128, &p), MR_OK);
  mr_stats st = MR_STATS_INIT;
  cr_assert_eq(mr_stats_get(v, &st), MR_OK);
  cr_assert_eq(st.bytes_in_use, 128);
  cr_assert_eq(mr_free(v, p, 128), MR_OK);
  mr_allocator_release(v);
  mr_stream_release(s);
}

static void *default_of_thread(void *arg) {
  (void)arg;
  return mr_host_default();
}

Test(host_alloc, default_is_one_per_process) {
  pthread_t t[8];
  for (int i = 0; i < 8; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, default_of_thread, NULL), 0);
  void *got[8];
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], &got[i]);
  mr_allocator *d = mr_host_default();
  cr_assert_not_null(d);
  for (int i = 0; i < 8; i++)
    cr_assert_eq(got[i], d, "thread %d", i);
  cr_assert_str_eq(mr_allocator_name(d), "host");
  cr_assert_eq(mr_allocator_device(d).kind, MR_HOST);
  void *p = NULL;
  cr_assert_eq(mr_alloc(d, 100, &p), MR_OK);
  cr_assert_eq((uintptr_t)p % 64, 0);
  cr_assert_eq(mr_free(d, p, 100), MR_OK);
}

/* ---- statistics ---------------------------------------------------------------------------- */

Test(stats, short_struct_gets_only_its_fields) {
  mr_allocator *a = NULL;
  cr_assert_eq(mr_host_allocator_create(&a, NULL), MR_OK);
  void *p = NULL;
  cr_assert_eq(mr_alloc(a, 500, &p), MR_OK);
  mr_stats s;
  memset(&s, 0xee, sizeof s);
  s.struct_size = offsetof(mr_stats, peak_in_use); /* an older caller's struct */
  s.version = MR_STATS_VERSION;
  cr_assert_eq(mr_stats_get(a, &s), MR_OK);
  cr_assert_eq(s.struct_size, offsetof(mr_stats, peak_in_use));
  cr_assert_eq(s.bytes_in_use, 500);
  cr_assert_eq(s.peak_in_use, 0xeeeeeeeeeeeeeeeeull, "fields past struct_size are not written");
  mr_stats z = {0};
  cr_assert_eq(mr_stats_get(a, &z), MR_ERR_INVALID_ARG, "struct_size 0");
  cr_assert(strstr(mr_last_error(), "MR_STATS_INIT"), "message: %s", mr_last_error());
  cr_assert_eq(mr_stats_get(a, NULL), MR_ERR_INVALID_ARG);
  mr_stats full = MR_STATS_INIT;
  cr_assert_eq(mr_stats_get(NULL, &full), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_free(a, p, 500), MR_OK);
  mr_allocator_release(a);
}

Test(stats, json) {
  mr_stats s = MR_STATS_INIT;
  s.bytes_in_use = 123;
  s.allocs = 7;
  s.failed_allocs = 2;
  char buf[1024];
  size_t n = mr_stats_json(&s, buf, sizeof buf);
  cr_assert_eq(n, strlen(buf));
  cr_assert_eq(buf[0], '{');
  cr_assert_eq(buf[n - 1], '}');
  cr_assert(strstr(buf, "\"bytes_in_use\":123,"), "%s", buf);
  cr_assert(strstr(buf, "\"allocs\":7,"), "%s", buf);
  cr_assert(strstr(buf, "\"failed_allocs\":2}"), "%s", buf);
  cr_assert(strstr(buf, "\"peak_reserved\":0,"), "%s", buf);
  /* truncated, always terminated, returns the full length */
  char small[16];
  memset(small, 'z', sizeof small);
  cr_assert_eq(mr_stats_json(&s, small, sizeof small), n);
  cr_assert_eq(small[15], '\0');
  cr_assert_eq(strncmp(small, buf, 15), 0);
  cr_assert_eq(mr_stats_json(&s, NULL, 0), n, "sizing call");
  cr_assert_eq(mr_stats_json(NULL, buf, sizeof buf), 0);
  cr_assert_eq(mr_stats_json(&s, NULL, 10), 0);
}

/* ---- status, errors, version --------------------------------------------------------------- */

Test(status, every_code_has_a_distinct_name) {
  for (int i = 0; i < MR_STATUS_COUNT_; i++) {
    const char *a = mr_status_str((mr_status)i);
    cr_assert_not_null(a);
    cr_assert_eq(strncmp(a, "MR_", 3), 0, "%d: %s", i, a);
    cr_assert_null(strstr(a, "unknown"), "%d: %s", i, a);
    for (int j = 0; j < i; j++)
      cr_assert_str_neq(a, mr_status_str((mr_status)j));
  }
  cr_assert_str_eq(mr_status_str(MR_OK), "MR_OK");
  cr_assert_str_eq(mr_status_str(MR_ERR_OUT_OF_MEMORY), "MR_ERR_OUT_OF_MEMORY");
  cr_assert_str_eq(mr_status_str(MR_ERR_NO_DEVICE), "MR_ERR_NO_DEVICE");
  cr_assert_not_null(mr_status_str(MR_STATUS_COUNT_));
  cr_assert_not_null(mr_status_str((mr_status)-1));
  cr_assert(strstr(mr_status_str(MR_STATUS_COUNT_), "unknown"));
}

Test(status, last_error) {
  mr_clear_error();
  cr_assert_str_eq(mr_last_error(), "");
  cr_assert_eq(mr_last_status(), MR_OK);
  void *p;
  cr_assert_eq(mr_alloc(mr_host_default(), 0, &p), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_last_status(), MR_ERR_INVALID_ARG);
  cr_assert_eq(strncmp(mr_last_error(), "MR_ERR_INVALID_ARG: ", 20), 0, "%s", mr_last_error());
  cr_assert(strstr(mr_last_error(), "'host'"), "names the allocator: %s", mr_last_error());
  /* a successful call does not clear it */
  cr_assert_eq(mr_alloc(mr_host_default(), 8, &p), MR_OK);
  cr_assert_eq(mr_last_status(), MR_ERR_INVALID_ARG);
  cr_assert_neq(mr_last_error()[0], '\0');
  cr_assert_eq(mr_free(mr_host_default(), p, 8), MR_OK);
  mr_clear_error();
  cr_assert_str_eq(mr_last_error(), "");
  cr_assert_eq(mr_last_status(), MR_OK);
}

static void *fail_in_thread(void *arg) {
  (void)arg;
  mr_trim(NULL, 0);
  return NULL;
}

Test(status, last_error_is_per_thread) {
  mr_clear_error();
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
  pthread_join(t, NULL);
  cr_assert_str_eq(mr_last_error(), "", "another thread's error is not ours");
}

typedef struct seen {
  int calls;
  mr_status status;
  char message[512];
} seen;

static void handler(mr_status status, const char *message, void *arg) {
  seen *s = arg;
  s->calls++;
  s->status = status;
  snprintf(s->message, sizeof s->message, "%s", message);
}

Test(status, error_handler) {
  seen s = {0};
  mr_set_error_handler(handler, &s);
  cr_assert_eq(mr_trim(NULL, 0), MR_ERR_INVALID_ARG);
  cr_assert_eq(s.calls, 1);
  cr_assert_eq(s.status, MR_ERR_INVALID_ARG);
  cr_assert_str_eq(s.message, mr_last_error());
  void *p;
  cr_assert_eq(mr_alloc(mr_host_default(), 8, &p), MR_OK);
  cr_assert_eq(mr_free(mr_host_default(), p, 8), MR_OK);
  cr_assert_eq(s.calls, 1, "successful calls do not call the handler");
  mr_report_error(MR_ERR_INJECTED, "from user code");
  cr_assert_eq(s.calls, 2);
  cr_assert_str_eq(s.message, "MR_ERR_INJECTED: from user code");
  mr_set_error_handler(NULL, NULL);
  cr_assert_eq(mr_trim(NULL, 0), MR_ERR_INVALID_ARG);
  cr_assert_eq(s.calls, 2, "removed");
}

Test(status, version) {
  cr_assert_eq(mr_version(), MEMRES_VERSION);
  cr_assert_eq(MEMRES_VERSION,
               MEMRES_VERSION_MAJOR * 10000 + MEMRES_VERSION_MINOR * 100 + MEMRES_VERSION_PATCH);
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", MEMRES_VERSION_MAJOR, MEMRES_VERSION_MINOR,
           MEMRES_VERSION_PATCH);
  cr_assert_str_eq(mr_version_string(), want);
}

/* ---- devices -------------------------------------------------------------------------------- */

Test(device, kinds_and_ids) {
  cr_assert_str_eq(mr_kind_str(MR_HOST), "host");
  cr_assert_str_eq(mr_kind_str(MR_PINNED), "pinned");
  cr_assert_str_eq(mr_kind_str(MR_DEVICE), "device");
  cr_assert_str_eq(mr_kind_str(MR_KIND_COUNT_), "invalid");
  cr_assert_geq(mr_device_count(), 0);
  cr_assert_eq(mr_device_check(mr_device_host()), MR_OK);
  cr_assert_eq(mr_device_check((mr_device){MR_KIND_COUNT_, 0}), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_device_check((mr_device){(mr_kind)-3, 0}), MR_ERR_INVALID_ARG);
  cr_assert(strstr(mr_last_error(), "kind"), "message: %s", mr_last_error());
  cr_assert_eq(mr_device_check(mr_device_gpu(-1)), MR_ERR_INVALID_ARG);
  cr_assert(strstr(mr_last_error(), "-1"), "message: %s", mr_last_error());
  cr_assert_eq(mr_device_check((mr_device){MR_PINNED, -7}), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_device_check((mr_device){MR_HOST, -1}), MR_ERR_INVALID_ARG);
  /* an id past the last GPU */
  int beyond = mr_device_count() + 1000;
  cr_assert_eq(mr_device_check(mr_device_gpu(beyond)), MR_ERR_NO_DEVICE);
  cr_assert_eq(mr_device_check((mr_device){MR_PINNED, beyond}), MR_ERR_NO_DEVICE);
}

Test(device, bad_arguments_of_gpu_constructors) {
  mr_allocator *a = (mr_allocator *)&a;
  cr_assert_eq(mr_device_allocator_create(NULL, 0, NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_pinned_allocator_create(NULL, 0, NULL), MR_ERR_INVALID_ARG);
  cr_assert_neq(mr_device_allocator_create(&a, -1, NULL), MR_OK);
  cr_assert_null(a);
  a = (mr_allocator *)&a;
  cr_assert_neq(mr_pinned_allocator_create(&a, -1, NULL), MR_OK);
  cr_assert_null(a);
  mr_stream *s = (mr_stream *)&s;
  cr_assert_neq(mr_stream_create(&s, -1, 0), MR_OK);
  cr_assert_null(s);
#if MEMRES_HAVE_CUDA
  /* with CUDA, a negative id is refused as such, before looking for a GPU */
  cr_assert_eq(mr_device_allocator_create(&a, -1, NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_pinned_allocator_create(&a, -1, NULL), MR_ERR_INVALID_ARG);
  cr_assert_eq(mr_stream_create(&s, -1, 0), MR_ERR_INVALID_ARG);
  mr_device_options bad = {.backend = MR_DEVICE_BACKEND_COUNT_};
  cr_assert_eq(mr_device_allocator_create(&a, 0, &bad), MR_ERR_INVALID_ARG);
  cr_assert(strstr(mr_last_error(), "backend"), "message: %s", mr_last_error());
  mr_pinned_options badflags = {.flags = 0x80000000u};
  cr_assert_eq(mr_pinned_allocator_create(&a, 0, &badflags), MR_ERR_INVALID_ARG);
  cr_assert(strstr(mr_last_error(), "flags"), "message: %s", mr_last_error());
#endif
  cr_assert_eq(mr_device_allocator_backend(NULL), MR_DEVICE_BACKEND_COUNT_);
}

/* On a machine without a GPU device 0 does not exist; on one with n GPUs device n does not:
 * either way the CUDA constructors say MR_ERR_NO_DEVICE (with CUDA's own error when there is
 * no GPU at all). */
Test(device, gpu_constructors_on_a_missing_device_say_no_device) {
  const int missing = mr_device_count();
  const int no_gpu = missing == 0;
  (void)no_gpu; /* read only where CUDA is built in */
  mr_stream *s = (mr_stream *)&s;
  mr_clear_error();
  cr_assert_eq(mr_stream_create(&s, missing, 0), MR_ERR_NO_DEVICE);
  cr_assert_null(s);
  cr_assert_eq(strncmp(mr_last_error(), "MR_ERR_NO_DEVICE: ", 18), 0, "%s", mr_last_error());
#if MEMRES_HAVE_CUDA
  /* the CUDA runtime's own error, by name and text */
  if (no_gpu)
    cr_assert(strstr(mr_last_error(), "cudaError"), "message: %s", mr_last_error());
#endif

  mr_allocator *a = (mr_allocator *)&a;
  mr_clear_error();
  cr_assert_eq(mr_pinned_allocator_create(&a, missing, NULL), MR_ERR_NO_DEVICE);
  cr_assert_null(a);
  cr_assert(strstr(mr_last_error(), "pinned"), "message: %s", mr_last_error());
#if MEMRES_HAVE_CUDA
  if (no_gpu)
    cr_assert(strstr(mr_last_error(), "cudaError"), "message: %s", mr_last_error());
#endif

  const mr_device_backend backends[] = {MR_DEVICE_AUTO, MR_DEVICE_DEFAULT_POOL,
                                        MR_DEVICE_PRIVATE_POOL, MR_DEVICE_MALLOC};
  for (int i = 0; i < 4; i++) {
    mr_device_options o = {.backend = backends[i]};
    a = (mr_allocator *)&a;
    mr_clear_error();
    cr_assert_eq(mr_device_allocator_create(&a, missing, &o), MR_ERR_NO_DEVICE, "backend %d", i);
    cr_assert_null(a);
    cr_assert(strstr(mr_last_error(), "device"), "message: %s", mr_last_error());
#if MEMRES_HAVE_CUDA
    if (no_gpu)
      cr_assert(strstr(mr_last_error(), "cudaError"), "message: %s", mr_last_error());
#endif
  }
  cr_assert_eq(mr_device_check(mr_device_gpu(missing)), MR_ERR_NO_DEVICE);
  cr_assert_eq(mr_device_check((mr_device){MR_PINNED, missing}), MR_ERR_NO_DEVICE);
}
