/* The context on a real GPU: a CUDA stream and a device allocator under MR_GUARD, buffers. */
#include "gpu.h"

#include <criterion/criterion.h>
#include <string.h>

static mr_stream *stream;
static mr_allocator *dev;

static void setup(void) {
  require_gpu();
  cr_assert_eq(mr_stream_create(&stream, 0, 0), MR_OK, "%s", mr_last_error());
  cr_assert_eq(
      mr_device_allocator_create(&dev, 0, &(mr_device_options){.backend = MR_DEVICE_DEFAULT_POOL}),
      MR_OK, "%s", mr_last_error());
}

static void teardown(void) {
  mr_allocator_release(dev);
  mr_stream_release(stream);
}

TestSuite(cuda_context, .init = setup, .fini = teardown);

Test(cuda_context, guard_a_cuda_stream_and_device_allocator_and_round_trip_a_buffer) {
  size_t depth = mr_context_depth(), streams = mr_context_stream_depth();
  size_t devices = mr_context_alloc_depth(MR_DEVICE);
  mr_allocator *host = mr_context_host_alloc();
  enum { N = 1 << 16 };
  {
    MR_GUARD(g, stream, dev);
    cr_assert_eq(g.status, MR_OK, "%s", mr_last_error());
    cr_expect_eq(mr_context_stream(), stream);
    cr_expect(mr_stream_is_cuda(mr_context_stream()));
    cr_expect_eq(mr_context_device_alloc(), dev);
    cr_expect_eq(mr_context_depth(), depth + 2);

    mr_buffer *d, *h, *back;
    cr_assert_eq(mr_buffer_create(&d, N, MR_F32, mr_device_gpu(0)), MR_OK, "%s", mr_last_error());
    cr_assert_eq(mr_buffer_create(&h, N, MR_F32, mr_device_host()), MR_OK);
    cr_assert_eq(mr_buffer_create(&back, N, MR_F32, mr_device_host()), MR_OK);
    cr_expect_eq(mr_buffer_allocator(d), dev);
    float *hp = mr_buffer_data(h);
    for (int i = 0; i < N; i++)
      hp[i] = (float)i * 0.5f;
    cr_assert_eq(mr_buffer_copy(d, h), MR_OK, "%s", mr_last_error());
    cr_assert_eq(mr_buffer_clear(back), MR_OK, "%s", mr_last_error());
    cr_assert_eq(mr_buffer_copy(back, d), MR_OK, "%s", mr_last_error());
    cr_assert_eq(mr_stream_synchronize(stream), MR_OK, "%s", mr_last_error());
    cr_expect_eq(memcmp(mr_buffer_data(back), hp, N * sizeof(float)), 0,
                 "the round trip through the GPU changed the data");
    /* Clear on the GPU, copy back, see zeros. */
    cr_assert_eq(mr_buffer_clear(d), MR_OK);
    cr_assert_eq(mr_buffer_copy(back, d), MR_OK);
    cr_assert_eq(mr_stream_synchronize(stream), MR_OK);
    cr_expect_eq(((float *)mr_buffer_data(back))[N - 1], 0.0f);
    mr_buffer_release(d);
    mr_buffer_release(h);
    mr_buffer_release(back);
  }
  cr_expect_eq(mr_context_depth(), depth);
  cr_expect_eq(mr_context_stream_depth(), streams);
  cr_expect_eq(mr_context_alloc_depth(MR_DEVICE), devices);
  cr_expect_eq(mr_context_host_alloc(), host);
}

Test(cuda_context, a_buffer_outliving_the_guard_frees_on_the_gpu) {
  mr_buffer *d = NULL;
  {
    MR_GUARD(g, stream, dev);
    cr_assert_eq(g.status, MR_OK);
    cr_assert_eq(mr_buffer_create(&d, 1000, MR_I32, mr_device_gpu(0)), MR_OK, "%s",
                 mr_last_error());
  }
  cr_expect_eq(mr_context_alloc_depth(MR_DEVICE), 0);
  cr_expect_eq(mr_buffer_allocator(d), dev);
  mr_buffer_release(d);
  cr_expect_eq(mr_stream_synchronize(stream), MR_OK);
}

Test(cuda_context, device_id_must_match_the_allocator) {
  MR_GUARD(g, stream, dev);
  cr_assert_eq(g.status, MR_OK);
  mr_buffer *b = NULL;
  cr_assert_eq(mr_buffer_create(&b, 256, MR_U8, mr_device_gpu(0)), MR_OK, "%s", mr_last_error());
  cr_expect_eq(mr_buffer_device(b).id, 0);
  mr_buffer_release(b);
  int other = mr_device_count(); /* an id the allocator (on device 0) is not on */
  mr_clear_error();
  cr_expect_eq(mr_buffer_create(&b, 256, MR_U8, mr_device_gpu(other)), MR_ERR_INVALID_ARG);
  cr_expect_null(b);
  cr_expect(strstr(mr_last_error(), "device 0") != NULL, "message: '%s'", mr_last_error());
}

Test(cuda_context, pinned_buffers_with_a_cuda_stream) {
  mr_allocator *pinned;
  cr_assert_eq(mr_pinned_allocator_create(&pinned, 0, NULL), MR_OK, "%s", mr_last_error());
  MR_GUARD(g, stream, dev, pinned);
  mr_allocator_release(pinned);
  mr_buffer *p, *d, *back;
  cr_assert_eq(mr_buffer_create(&p, 4096, MR_U8, mr_device_pinned()), MR_OK);
  cr_assert_eq(mr_buffer_create(&d, 4096, MR_U8, mr_device_gpu(0)), MR_OK);
  cr_assert_eq(mr_buffer_create(&back, 4096, MR_U8, mr_device_pinned()), MR_OK);
  memset(mr_buffer_data(p), 0x3c, 4096);
  cr_assert_eq(mr_buffer_copy(d, p), MR_OK);
  cr_assert_eq(mr_buffer_copy(back, d), MR_OK);
  cr_assert_eq(mr_stream_synchronize(stream), MR_OK);
  cr_expect_eq(memcmp(mr_buffer_data(back), mr_buffer_data(p), 4096), 0);
  mr_buffer_release(p);
  mr_buffer_release(d);
  mr_buffer_release(back);
}
