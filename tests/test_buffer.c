/* mr_buffer over host memory, test allocators and test streams. */
#include "counting_alloc.h"
#include "manual_stream.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

Test(buffer, dtype_sizes_and_names) {
  static const struct {
    mr_dtype d;
    size_t size;
    const char *name;
  } want[] = {{MR_U8, 1, "u8"},     {MR_I8, 1, "i8"},   {MR_I16, 2, "i16"},
              {MR_I32, 4, "i32"},   {MR_I64, 8, "i64"}, {MR_F16, 2, "f16"},
              {MR_BF16, 2, "bf16"}, {MR_F32, 4, "f32"}, {MR_F64, 8, "f64"}};
  cr_assert_eq(sizeof want / sizeof want[0], MR_DTYPE_COUNT_);
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    cr_expect_eq(mr_dtype_size(want[i].d), want[i].size, "%s", want[i].name);
    cr_expect_str_eq(mr_dtype_str(want[i].d), want[i].name);
  }
  cr_expect_eq(mr_dtype_size(MR_DTYPE_COUNT_), 0);
  cr_expect_eq(mr_dtype_size((mr_dtype)-1), 0);
  cr_expect_str_eq(mr_dtype_str(MR_DTYPE_COUNT_), "invalid");
}

Test(buffer, a_host_buffer_from_the_default_context) {
  mr_buffer *b;
  cr_assert_eq(mr_buffer_create(&b, 1000, MR_F32, mr_device_host()), MR_OK, "%s", mr_last_error());
  cr_assert_not_null(mr_buffer_data(b));
  cr_expect_eq((uintptr_t)mr_buffer_data(b) % 64, 0, "the host default aligns to 64");
  cr_expect_eq(mr_buffer_count(b), 1000);
  cr_expect_eq(mr_buffer_bytes(b), 4000);
  cr_expect_eq(mr_buffer_dtype(b), MR_F32);
  cr_expect_eq(mr_buffer_device(b).kind, MR_HOST);
  cr_expect_eq(mr_buffer_allocator(b), mr_host_default());
  memset(mr_buffer_data(b), 0x5a, mr_buffer_bytes(b));
  mr_buffer_release(b);
  mr_buffer_release(NULL);
}

Test(buffer, bytes_come_from_the_context_allocator_and_go_back_on_its_bound_stream) {
  counting_state cs = {0};
  mr_stream *bound;
  mr_allocator *a;
  cr_assert_eq(manual_stream_create(&bound), MR_OK);
  cr_assert_eq(counting_create(&a, &cs, mr_device_host(), bound), MR_OK);
  mr_buffer *b = NULL;
  {
    MR_GUARD(g, a);
    cr_assert_eq(mr_buffer_create(&b, 10, MR_I64, mr_device_host()), MR_OK);
  }
  cr_expect_eq(mr_buffer_allocator(b), a);
  cr_expect_eq(atomic_load(&cs.allocs), 1);
  cr_expect_eq(atomic_load(&cs.live_bytes), 80);
  cr_expect_eq(atomic_load(&cs.last_alloc_stream), bound);
  mr_buffer_release(b);
  cr_expect_eq(atomic_load(&cs.frees), 1);
  cr_expect_eq(atomic_load(&cs.live_bytes), 0);
  cr_expect_eq(atomic_load(&cs.last_free_stream), bound, "freed on the allocator's bound stream");
  mr_allocator_release(a);
  mr_stream_release(bound);
  cr_expect_eq(atomic_load(&cs.destroyed), 1);
}

Test(buffer, a_buffer_outliving_its_guard_keeps_its_allocator_alive) {
  counting_state cs = {0};
  mr_allocator *a;
  cr_assert_eq(counting_create(&a, &cs, mr_device_pinned(), NULL), MR_OK);
  mr_buffer *b = NULL;
  {
    MR_GUARD(g, a);
    mr_allocator_release(a); /* now only the stack holds it */
    cr_assert_eq(mr_buffer_create(&b, 3, MR_BF16, mr_device_pinned()), MR_OK);
  }
  cr_expect_eq(mr_context_alloc_depth(MR_PINNED), 0, "the guard is gone");
  cr_expect_eq(atomic_load(&cs.destroyed), 0, "the buffer still holds the allocator");
  cr_expect_eq(mr_buffer_device(b).kind, MR_PINNED);
  mr_buffer *b2 = mr_buffer_retain(b);
  mr_buffer_release(b);
  cr_expect_eq(atomic_load(&cs.frees), 0, "a reference is left");
  memset(mr_buffer_data(b2), 1, mr_buffer_bytes(b2));
  mr_buffer_release(b2);
  cr_expect_eq(atomic_load(&cs.frees), 1);
  cr_expect_eq(atomic_load(&cs.live_bytes), 0);
  cr_expect_eq(atomic_load(&cs.destroyed), 1, "the last buffer reference released it");
}

Test(buffer, create_from_an_explicit_allocator) {
  counting_state cs = {0};
  mr_allocator *a;
  cr_assert_eq(counting_create(&a, &cs, mr_device_host(), NULL), MR_OK);
  mr_buffer *b;
  cr_assert_eq(mr_buffer_create_from(&b, 7, MR_I16, a), MR_OK);
  cr_expect_eq(mr_buffer_bytes(b), 14);
  cr_expect_eq(mr_context_alloc_depth(MR_HOST), 1, "the context is not involved");
  mr_allocator_release(a);
  cr_expect_eq(atomic_load(&cs.destroyed), 0);
  mr_buffer_release(b);
  cr_expect_eq(atomic_load(&cs.destroyed), 1);
}

Test(buffer, device_ids_must_match_the_context_allocator) {
  /* A fake "device" allocator over host memory: enough to check the id rule without a GPU. */
  counting_state cs = {0};
  mr_allocator *a;
  cr_assert_eq(counting_create(&a, &cs, mr_device_gpu(1), NULL), MR_OK);
  MR_GUARD(g, a);
  mr_buffer *b = (mr_buffer *)1;
  mr_clear_error();
  cr_expect_eq(mr_buffer_create(&b, 4, MR_F32, mr_device_gpu(0)), MR_ERR_INVALID_ARG);
  cr_expect_null(b);
  cr_expect(strstr(mr_last_error(), "device 0") && strstr(mr_last_error(), "device 1"),
            "message: '%s'", mr_last_error());
  cr_expect_eq(atomic_load(&cs.allocs), 0);
  cr_assert_eq(mr_buffer_create(&b, 4, MR_F32, mr_device_gpu(1)), MR_OK);
  cr_expect_eq(mr_buffer_device(b).kind, MR_DEVICE);
  cr_expect_eq(mr_buffer_device(b).id, 1);
  mr_buffer_release(b);
  mr_allocator_release(a);
}

Test(buffer, no_allocator_of_that_kind_is_empty_context) {
  mr_buffer *b = (mr_buffer *)1;
  mr_clear_error();
  cr_expect_eq(mr_buffer_create(&b, 4, MR_F32, mr_device_pinned()), MR_ERR_EMPTY_CONTEXT);
  cr_expect_null(b);
  cr_expect_eq(mr_last_status(), MR_ERR_EMPTY_CONTEXT);
  cr_expect_eq(mr_buffer_create(&b, 4, MR_F32, mr_device_gpu(0)), MR_ERR_EMPTY_CONTEXT);
}

Test(buffer, bad_inputs) {
  mr_buffer *b = (mr_buffer *)1;
  cr_expect_eq(mr_buffer_create(NULL, 1, MR_U8, mr_device_host()), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_buffer_create(&b, 0, MR_U8, mr_device_host()), MR_ERR_INVALID_ARG);
  cr_expect_null(b);
  mr_clear_error();
  cr_expect_eq(mr_buffer_create(&b, SIZE_MAX / 2, MR_F32, mr_device_host()), MR_ERR_INVALID_ARG);
  cr_expect(strstr(mr_last_error(), "overflow") != NULL, "message: '%s'", mr_last_error());
  cr_expect_eq(mr_buffer_create(&b, SIZE_MAX / 8 + 1, MR_F64, mr_device_host()),
               MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_buffer_create(&b, 1, MR_DTYPE_COUNT_, mr_device_host()), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_buffer_create(&b, 1, (mr_dtype)-3, mr_device_host()), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_buffer_create(&b, 1, MR_U8, (mr_device){MR_KIND_COUNT_, 0}), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_buffer_create(&b, 1, MR_U8, (mr_device){(mr_kind)-1, 0}), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_buffer_create_from(&b, 1, MR_U8, NULL), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_buffer_create_from(NULL, 1, MR_U8, mr_host_default()), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_buffer_create_from(&b, 0, MR_U8, mr_host_default()), MR_ERR_INVALID_ARG);
  cr_expect_null(b);
  cr_expect_eq(mr_buffer_copy(NULL, NULL), MR_ERR_INVALID_ARG);
  cr_expect_eq(mr_buffer_clear(NULL), MR_ERR_INVALID_ARG);
  cr_expect_null(mr_buffer_data(NULL));
  cr_expect_eq(mr_buffer_bytes(NULL), 0);
  cr_expect_eq(mr_buffer_count(NULL), 0);
  cr_expect_null(mr_buffer_allocator(NULL));
}

Test(buffer, an_allocator_failure_is_passed_on_and_nothing_is_retained) {
  counting_state cs = {0};
  atomic_store(&cs.fail, 1);
  mr_allocator *a;
  cr_assert_eq(counting_create(&a, &cs, mr_device_host(), NULL), MR_OK);
  mr_buffer *b = (mr_buffer *)1;
  {
    MR_GUARD(g, a);
    cr_expect_eq(mr_buffer_create(&b, 16, MR_U8, mr_device_host()), MR_ERR_OUT_OF_MEMORY);
    cr_expect_null(b);
    cr_expect(strstr(mr_last_error(), "told to fail") != NULL, "message: '%s'", mr_last_error());
  }
  mr_allocator_release(a);
  cr_expect_eq(atomic_load(&cs.destroyed), 1);
}

Test(buffer, copy_and_clear_without_a_stream_are_synchronous_on_the_host) {
  mr_buffer *src, *dst;
  cr_assert_eq(mr_buffer_create(&src, 256, MR_I32, mr_device_host()), MR_OK);
  cr_assert_eq(mr_buffer_create(&dst, 1024, MR_U8, mr_device_host()), MR_OK);
  int32_t *s = mr_buffer_data(src);
  for (int i = 0; i < 256; i++)
    s[i] = i * 7 - 3;
  cr_assert_eq(mr_buffer_copy(dst, src), MR_OK, "%s", mr_last_error());
  cr_expect_eq(memcmp(mr_buffer_data(dst), s, 1024), 0);
  cr_assert_eq(mr_buffer_clear(src), MR_OK);
  for (int i = 0; i < 256; i++)
    cr_assert_eq(s[i], 0);
  cr_expect_eq(mr_buffer_copy(src, src), MR_OK);
  mr_buffer *small;
  cr_assert_eq(mr_buffer_create(&small, 10, MR_U8, mr_device_host()), MR_OK);
  cr_expect_eq(mr_buffer_copy(small, src), MR_ERR_INVALID_ARG, "sizes differ");
  mr_buffer_release(small);
  mr_buffer_release(src);
  mr_buffer_release(dst);
}

Test(buffer, copy_and_clear_run_on_the_context_stream) {
  flag_stream_state fs = {0};
  mr_stream *s;
  cr_assert_eq(flag_stream_create(&s, &fs), MR_OK);
  counting_state cs = {0};
  mr_allocator *pinned;
  cr_assert_eq(counting_create(&pinned, &cs, mr_device_pinned(), NULL), MR_OK);
  MR_GUARD(g, s, pinned);
  mr_buffer *h, *p;
  cr_assert_eq(mr_buffer_create(&h, 64, MR_F64, mr_device_host()), MR_OK);
  cr_assert_eq(mr_buffer_create(&p, 64, MR_F64, mr_device_pinned()), MR_OK);
  double *hd = mr_buffer_data(h);
  for (int i = 0; i < 64; i++)
    hd[i] = i / 4.0;
  cr_assert_eq(mr_buffer_copy(p, h), MR_OK);
  cr_expect_eq(atomic_load(&fs.copies), 1);
  cr_expect_eq(memcmp(mr_buffer_data(p), hd, 64 * sizeof(double)), 0);
  cr_assert_eq(mr_buffer_clear(h), MR_OK);
  cr_expect_eq(atomic_load(&fs.fills), 1);
  cr_expect_eq(hd[63], 0.0);
  mr_buffer_release(h);
  mr_buffer_release(p);
  mr_stream_release(s);
  mr_allocator_release(pinned);
}

Test(buffer, device_buffers_need_a_stream_that_reaches_the_gpu) {
  counting_state cs = {0};
  mr_allocator *fake;
  cr_assert_eq(counting_create(&fake, &cs, mr_device_gpu(0), NULL), MR_OK);
  MR_GUARD(g, fake);
  mr_buffer *d, *h;
  cr_assert_eq(mr_buffer_create(&d, 8, MR_U8, mr_device_gpu(0)), MR_OK);
  cr_assert_eq(mr_buffer_create(&h, 8, MR_U8, mr_device_host()), MR_OK);
  mr_clear_error();
  cr_expect_eq(mr_buffer_copy(d, h), MR_ERR_EMPTY_CONTEXT, "no context stream");
  cr_expect(strstr(mr_last_error(), "stream") != NULL, "message: '%s'", mr_last_error());
  cr_expect_eq(mr_buffer_clear(d), MR_ERR_EMPTY_CONTEXT);
  mr_stream *host;
  cr_assert_eq(mr_stream_create_host(&host), MR_OK);
  {
    MR_GUARD(g2, host);
    cr_expect_eq(mr_buffer_copy(h, d), MR_ERR_INVALID_ARG, "a host stream cannot reach a GPU");
    cr_expect_eq(mr_buffer_clear(d), MR_ERR_INVALID_ARG);
    cr_expect_eq(mr_buffer_clear(h), MR_OK, "host buffers are fine on it");
  }
  mr_stream_release(host);
  mr_buffer_release(d);
  mr_buffer_release(h);
  mr_allocator_release(fake);
}
