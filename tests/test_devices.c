/* Several GPUs, the parts that need none: per-device defaults refuse bad ids, the context hands
 * out the allocator of the GPU asked for (user allocators carry any device id, so a stack of
 * "GPU 0" and "GPU 1" allocators over host memory is enough), and mr_allocator_grant_access
 * dispatches through the vtable (pools and adaptors forward it to their upstream). The GPU
 * halves are in test_cuda_devices.c (one GPU) and test_cuda_multi.c (two or more). */
#include "counting_alloc.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

/* ---- mr_device_default ------------------------------------------------------------------------
 */

Test(device_default, an_id_past_the_last_gpu_is_no_device) {
  int n = mr_device_count(); /* 0 here without a GPU: device 0 itself is missing */
  mr_clear_error();
  cr_expect_null(mr_device_default(n));
  cr_expect_eq(mr_last_status(), MR_ERR_NO_DEVICE, "%s", mr_last_error());
  cr_expect(strstr(mr_last_error(), "device"), "message: %s", mr_last_error());
  cr_expect_null(mr_device_default(n + 5));
  cr_expect_eq(mr_last_status(), MR_ERR_NO_DEVICE);
  if (n == 0) {
    mr_clear_error();
    cr_expect_null(mr_device_default(0), "no GPU, no default device allocator");
    cr_expect_eq(mr_last_status(), MR_ERR_NO_DEVICE, "%s", mr_last_error());
  }
}

Test(device_default, a_negative_id_is_invalid) {
  mr_clear_error();
  cr_expect_null(mr_device_default(-1));
  cr_expect_eq(mr_last_status(), MR_ERR_INVALID_ARG);
  cr_expect(strstr(mr_last_error(), "-1"), "message: %s", mr_last_error());
  cr_expect_null(mr_device_default(-1000));
  cr_expect_eq(mr_last_status(), MR_ERR_INVALID_ARG);
}

/* ---- mr_context_alloc_for ---------------------------------------------------------------------
 */

Test(context_alloc_for, picks_the_allocator_of_the_gpu_asked_for) {
  counting_state s0 = {0}, s1 = {0};
  mr_allocator *gpu0, *gpu1;
  cr_assert_eq(counting_create(&gpu0, &s0, mr_device_gpu(0), NULL), MR_OK);
  cr_assert_eq(counting_create(&gpu1, &s1, mr_device_gpu(1), NULL), MR_OK);
  {
    MR_GUARD(g0, gpu0);
    cr_expect_eq(mr_context_alloc_for(mr_device_gpu(0)), gpu0);
    mr_clear_error();
    cr_expect_null(mr_context_alloc_for(mr_device_gpu(1)), "device 0's allocator is no answer");
    cr_expect_eq(mr_last_status(), MR_ERR_EMPTY_CONTEXT);
    cr_expect(strstr(mr_last_error(), "device 1") && strstr(mr_last_error(), "device 0"),
              "names what was asked and what is there: %s", mr_last_error());
    {
      MR_GUARD(g1, gpu1);
      cr_expect_eq(mr_context_alloc(MR_DEVICE), gpu1, "mr_context_alloc is still the top");
      cr_expect_eq(mr_context_alloc_for(mr_device_gpu(1)), gpu1);
      cr_expect_eq(mr_context_alloc_for(mr_device_gpu(0)), gpu0, "walks down past GPU 1's");
      {
        MR_GUARD(g2, gpu0, gpu1, gpu1);
        cr_expect_eq(mr_context_alloc_for(mr_device_gpu(0)), gpu0);
        cr_expect_eq(mr_context_alloc_for(mr_device_gpu(1)), gpu1);
      }
      mr_clear_error();
      cr_expect_null(mr_context_alloc_for(mr_device_gpu(2)));
      cr_expect_eq(mr_last_status(), MR_ERR_EMPTY_CONTEXT);
    }
    cr_expect_eq(mr_context_alloc_depth(MR_DEVICE), 1);
  }
  cr_expect_eq(atomic_load(&s0.allocs) + atomic_load(&s1.allocs), 0, "lookups allocate nothing");
  mr_allocator_release(gpu1);
  mr_allocator_release(gpu0);
}

Test(context_alloc_for, empty_stack_and_bad_kind) {
  mr_clear_error();
  cr_expect_null(mr_context_alloc_for(mr_device_gpu(0)));
  cr_expect_eq(mr_last_status(), MR_ERR_EMPTY_CONTEXT);
  mr_clear_error();
  cr_expect_null(mr_context_alloc_for((mr_device){MR_KIND_COUNT_, 0}));
  cr_expect_eq(mr_last_status(), MR_ERR_INVALID_ARG);
  cr_expect_null(mr_context_alloc_for((mr_device){(mr_kind)-1, 0}));
  cr_expect_eq(mr_last_status(), MR_ERR_INVALID_ARG);
}

Test(context_alloc_for, host_and_pinned_are_the_tops) {
  cr_expect_eq(mr_context_alloc_for(mr_device_host()), mr_host_default());
  counting_state ps = {0};
  mr_allocator *pin1;
  /* a pinned allocator made from GPU 1: its memory is usable from any GPU */
  cr_assert_eq(counting_create(&pin1, &ps, (mr_device){MR_PINNED, 1}, NULL), MR_OK);
  {
    MR_GUARD(g, pin1);
    cr_expect_eq(mr_context_alloc_for(mr_device_pinned()), pin1);
    cr_expect_eq(mr_context_alloc_for((mr_device){MR_PINNED, 1}), pin1);
  }
  mr_clear_error();
  cr_expect_null(mr_context_alloc_for(mr_device_pinned()));
  cr_expect_eq(mr_last_status(), MR_ERR_EMPTY_CONTEXT);
  mr_allocator_release(pin1);
}

Test(context_alloc_for, buffers_come_from_their_gpus_allocator) {
  counting_state s0 = {0}, s1 = {0};
  mr_allocator *gpu0, *gpu1;
  cr_assert_eq(counting_create(&gpu0, &s0, mr_device_gpu(0), NULL), MR_OK);
  cr_assert_eq(counting_create(&gpu1, &s1, mr_device_gpu(1), NULL), MR_OK);
  mr_buffer *b0 = NULL, *b1 = NULL, *none = (mr_buffer *)1;
  {
    MR_GUARD(g, gpu0, gpu1);
    cr_assert_eq(mr_buffer_create(&b0, 16, MR_F32, mr_device_gpu(0)), MR_OK, "%s", mr_last_error());
    cr_assert_eq(mr_buffer_create(&b1, 16, MR_F32, mr_device_gpu(1)), MR_OK, "%s", mr_last_error());
    mr_clear_error();
    cr_expect_eq(mr_buffer_create(&none, 16, MR_F32, mr_device_gpu(3)), MR_ERR_INVALID_ARG,
                 "device allocators are pushed, none of GPU 3");
    cr_expect_null(none);
    cr_expect(strstr(mr_last_error(), "device 3"), "message: %s", mr_last_error());
  }
  cr_expect_eq(mr_buffer_device(b0).id, 0);
  cr_expect_eq(mr_buffer_device(b1).id, 1);
  cr_expect_eq(atomic_load(&s0.allocs), 1, "GPU 0's buffer from GPU 0's allocator");
  cr_expect_eq(atomic_load(&s1.allocs), 1);
  mr_buffer_release(b0);
  mr_buffer_release(b1);
  cr_expect_eq(atomic_load(&s0.frees), 1);
  cr_expect_eq(atomic_load(&s1.frees), 1);
  mr_allocator_release(gpu1);
  mr_allocator_release(gpu0);
}

/* One thread per "GPU", each in its own guard: each context answers with its own allocator. */
typedef struct per_gpu {
  mr_allocator *mine, *other;
  int id, ok;
} per_gpu;

static void *per_gpu_thread(void *arg) {
  per_gpu *t = arg;
  MR_GUARD(g, t->mine);
  int ok = 1;
  for (int i = 0; i < 1000 && ok; i++) {
    ok = mr_context_alloc_for(mr_device_gpu(t->id)) == t->mine &&
         mr_context_alloc_for(mr_device_gpu(1 - t->id)) == NULL;
    mr_buffer *b = NULL;
    ok = ok && mr_buffer_create(&b, 64, MR_U8, mr_device_gpu(t->id)) == MR_OK;
    mr_buffer_release(b);
  }
  t->ok = ok;
  return NULL;
}

Test(context_alloc_for, one_thread_per_gpu_without_cross_talk) {
  counting_state s[2] = {{0}, {0}};
  mr_allocator *a[2];
  per_gpu t[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    cr_assert_eq(counting_create(&a[i], &s[i], mr_device_gpu(i), NULL), MR_OK);
  for (int i = 0; i < 2; i++) {
    t[i] = (per_gpu){.mine = a[i], .other = a[1 - i], .id = i, .ok = 0};
    cr_assert_eq(pthread_create(&th[i], NULL, per_gpu_thread, &t[i]), 0);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(th[i], NULL);
    cr_expect(t[i].ok, "thread of GPU %d saw another GPU's allocator", i);
    cr_expect_eq(atomic_load(&s[i].allocs), 1000);
    cr_expect_eq(atomic_load(&s[i].frees), 1000);
  }
  for (int i = 0; i < 2; i++)
    mr_allocator_release(a[i]);
}

/* ---- mr_allocator_grant_access ----------------------------------------------------------------
 */

typedef struct granting {
  counting_state c; /* first: the counting ops read the state as a counting_state */
  atomic_int grants;
  atomic_int last_peer;
  mr_status answer;
} granting;

static mr_status granting_grant(mr_allocator *self, int peer) {
  granting *g = mr_allocator_state(self);
  atomic_fetch_add(&g->grants, 1);
  atomic_store(&g->last_peer, peer);
  return g->answer == MR_OK ? MR_OK : mr_report_error(g->answer, "granting: told to refuse");
}

static const mr_allocator_ops k_granting_ops = {
    .version = MR_ALLOCATOR_OPS_VERSION,
    .alloc = counting_alloc,
    .free = counting_free,
    .destroy = counting_destroy,
    .grant_access = granting_grant,
};

/* An old table (version 1) ends before grant_access: whatever sits there is never called. */
static const mr_allocator_ops k_version1_ops = {
    .version = 1,
    .alloc = counting_alloc,
    .free = counting_free,
    .grant_access = granting_grant,
};

Test(grant_access, host_and_plain_user_allocators_are_unsupported) {
  mr_clear_error();
  cr_expect_eq(mr_allocator_grant_access(mr_host_default(), 1), MR_ERR_UNSUPPORTED);
  cr_expect(strstr(mr_last_error(), "grant"), "message: %s", mr_last_error());
  counting_state cs = {0};
  mr_allocator *a;
  cr_assert_eq(counting_create(&a, &cs, mr_device_gpu(0), NULL), MR_OK);
  mr_clear_error();
  cr_expect_eq(mr_allocator_grant_access(a, 1), MR_ERR_UNSUPPORTED);
  cr_expect(strstr(mr_last_error(), "counting"), "names the allocator: %s", mr_last_error());
  mr_allocator_release(a);
}

Test(grant_access, bad_arguments) {
  cr_expect_eq(mr_allocator_grant_access(NULL, 1), MR_ERR_INVALID_ARG);
  granting g = {.answer = MR_OK};
  mr_allocator *a;
  cr_assert_eq(mr_allocator_create(&a, &k_granting_ops, &g, mr_device_gpu(0), "granting", NULL),
               MR_OK);
  cr_expect_eq(mr_allocator_grant_access(a, -1), MR_ERR_INVALID_ARG);
  cr_expect_eq(atomic_load(&g.grants), 0, "refused before the vtable");
  mr_allocator_release(a);
}

Test(grant_access, dispatches_to_the_vtable_and_returns_its_answer) {
  granting g = {.answer = MR_OK};
  mr_allocator *a;
  cr_assert_eq(mr_allocator_create(&a, &k_granting_ops, &g, mr_device_gpu(0), "granting", NULL),
               MR_OK);
  cr_expect_eq(mr_allocator_grant_access(a, 1), MR_OK);
  cr_expect_eq(atomic_load(&g.grants), 1);
  cr_expect_eq(atomic_load(&g.last_peer), 1);
  g.answer = MR_ERR_UNSUPPORTED;
  cr_expect_eq(mr_allocator_grant_access(a, 2), MR_ERR_UNSUPPORTED);
  cr_expect_eq(atomic_load(&g.grants), 2);
  mr_allocator_release(a);
}

Test(grant_access, a_version_1_table_is_accepted_and_never_read_past) {
  granting g = {.answer = MR_OK};
  mr_allocator *a;
  cr_assert_eq(mr_allocator_create(&a, &k_version1_ops, &g, mr_device_gpu(0), "old", NULL), MR_OK,
               "%s", mr_last_error());
  void *p = NULL;
  cr_expect_eq(mr_alloc(a, 32, &p), MR_OK);
  cr_expect_eq(mr_free(a, p, 32), MR_OK);
  cr_expect_eq(mr_allocator_grant_access(a, 1), MR_ERR_UNSUPPORTED);
  cr_expect_eq(atomic_load(&g.grants), 0);
  mr_allocator_release(a);
}

Test(grant_access, pools_adaptors_and_views_forward_to_the_upstream) {
  granting g = {.answer = MR_OK};
  mr_allocator *up, *pool, *fault, *view, *pool_over_fault;
  cr_assert_eq(mr_allocator_create(&up, &k_granting_ops, &g, mr_device_host(), "granting", NULL),
               MR_OK);
  cr_assert_eq(mr_caching_pool_create(&pool, up, NULL), MR_OK, "%s", mr_last_error());
  cr_expect_eq(mr_allocator_grant_access(pool, 1), MR_OK, "%s", mr_last_error());
  cr_expect_eq(atomic_load(&g.grants), 1, "the pool passed it to its upstream");
  cr_expect_eq(atomic_load(&g.last_peer), 1);

  cr_assert_eq(mr_allocator_bind(pool, NULL, &view), MR_OK);
  cr_expect_eq(mr_allocator_grant_access(view, 3), MR_OK);
  cr_expect_eq(atomic_load(&g.grants), 2, "a view answers through its pool");
  cr_expect_eq(atomic_load(&g.last_peer), 3);

  cr_assert_eq(mr_fault_allocator_create(&fault, up, NULL), MR_OK);
  cr_assert_eq(mr_caching_pool_create(&pool_over_fault, fault, NULL), MR_OK);
  cr_expect_eq(mr_allocator_grant_access(pool_over_fault, 2), MR_OK);
  cr_expect_eq(atomic_load(&g.grants), 3, "pool -> fault adaptor -> upstream");
  cr_expect_eq(atomic_load(&g.last_peer), 2);

  g.answer = MR_ERR_CUDA;
  cr_expect_eq(mr_allocator_grant_access(pool, 1), MR_ERR_CUDA, "the upstream's error comes back");
  cr_expect_eq(atomic_load(&g.grants), 4);

  mr_allocator_release(pool_over_fault);
  mr_allocator_release(fault);
  mr_allocator_release(view);
  mr_allocator_release(pool);
  mr_allocator_release(up);

  /* a pool over an allocator without the op: unsupported, from the upstream */
  counting_state cs = {0};
  mr_allocator *plain, *pool2;
  cr_assert_eq(counting_create(&plain, &cs, mr_device_host(), NULL), MR_OK);
  cr_assert_eq(mr_caching_pool_create(&pool2, plain, NULL), MR_OK);
  cr_expect_eq(mr_allocator_grant_access(pool2, 1), MR_ERR_UNSUPPORTED);
  mr_allocator_release(pool2);
  mr_allocator_release(plain);
}
