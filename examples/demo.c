/* memres-demo: allocate through each allocator (host; pinned and device when a GPU is there)
 * inside a guard, and say what happened. */
#include <memres/memres.h>

#include <stdio.h>
#include <string.h>

static void show(const char *what, mr_status st) {
  if (st == MR_OK)
    printf("  %-34s ok\n", what);
  else
    printf("  %-34s %s\n    (%s)\n", what, mr_status_str(st), mr_last_error());
}

/* One buffer from the context's allocator of `kind`, filled, copied to host and checked. */
static int round_trip(mr_device device) {
  char what[64];
  snprintf(what, sizeof what, "%s buffer of 1024 x f32", mr_kind_str(device.kind));
  mr_buffer *b = NULL, *h = NULL;
  mr_status st = mr_buffer_create(&b, 1024, MR_F32, device);
  show(what, st);
  if (st != MR_OK)
    return 1;
  printf("    from '%s' at %p (%zu bytes, scope '%s')\n", mr_allocator_name(mr_buffer_allocator(b)),
         mr_buffer_data(b), mr_buffer_bytes(b), mr_scope_path());
  st = mr_buffer_create(&h, 1024, MR_F32, mr_device_host());
  if (st == MR_OK) {
    float *hp = mr_buffer_data(h);
    for (int i = 0; i < 1024; i++)
      hp[i] = (float)i;
    st = mr_buffer_copy(b, h);
    if (st == MR_OK)
      st = mr_buffer_clear(h);
    if (st == MR_OK)
      st = mr_buffer_copy(h, b);
    if (st == MR_OK && mr_context_stream())
      st = mr_stream_synchronize(mr_context_stream());
    if (st == MR_OK && (hp[0] != 0.0f || hp[1023] != 1023.0f))
      st = mr_report_error(MR_ERR_INVALID_ARG, "round trip returned %g, %g", hp[0], hp[1023]);
  }
  show("  copy host -> buffer -> host", st);
  mr_buffer_release(h);
  mr_buffer_release(b);
  return st != MR_OK;
}

int main(void) {
  int failures = 0;
  printf("memres %s: %d GPU(s)\n", mr_version_string(), mr_device_count());

  /* Host: the thread starts with the process's host allocator. */
  {
    MR_SCOPE("host");
    mr_stream *hs = NULL;
    mr_stream_create_host(&hs);
    MR_GUARD(g, hs, mr_host_default());
    mr_stream_release(hs);
    show("guard(host stream, host allocator)", g.status);
    failures += round_trip(mr_device_host());
  }

  /* Pinned and device: need a GPU. */
  mr_stream *s = NULL;
  mr_allocator *pinned = NULL, *device = NULL;
  mr_status st = mr_stream_create(&s, 0, 0);
  show("CUDA stream on GPU 0", st);
  if (st == MR_OK) {
    st = mr_pinned_allocator_create(&pinned, 0, NULL);
    show("pinned allocator", st);
  }
  if (st == MR_OK) {
    st = mr_device_allocator_create(&device, 0, &(mr_device_options){.backend = MR_DEVICE_AUTO});
    show("device allocator (auto backend)", st);
  }
  if (st == MR_OK) {
    MR_SCOPE("gpu");
    MR_GUARD(g, s, pinned, device);
    show("guard(stream, pinned, device)", g.status);
    printf("  context depth %zu: stream '%s', pinned '%s', device '%s'\n", mr_context_depth(),
           mr_stream_backend(mr_context_stream()), mr_allocator_name(mr_context_pinned_alloc()),
           mr_allocator_name(mr_context_device_alloc()));
    failures += round_trip(mr_device_pinned());
    failures += round_trip(mr_device_gpu(0));
  } else {
    printf("  skipping pinned and device memory: %s\n", mr_last_error());
  }
  mr_allocator_release(device);
  mr_allocator_release(pinned);
  mr_stream_release(s);
  printf("context depth after the guards: %zu; %s\n", mr_context_depth(),
         failures ? "FAILED" : "done");
  return failures != 0;
}
