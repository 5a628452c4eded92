/* mr_device_default: the process's default device allocator of each GPU (MR_DEVICE_AUTO),
 * created on first use. The table is sized once (mr_device_count, under pthread_once); each slot
 * is an atomic pointer read without a lock once set, and filled under a mutex, so two threads
 * asking for the same GPU at once get the same allocator. A failed creation leaves the slot
 * empty: the next call tries again (and records its own error). The allocators live until the
 * process exits (a GPU's default pool outlives every user of it). */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static mr_allocator *_Atomic *g_slots;
static int g_count;

static void init_slots(void) {
  int n = mr_device_count();
  if (n <= 0)
    return;
  g_slots = calloc((size_t)n, sizeof *g_slots);
  if (g_slots)
    g_count = n;
}

mr_allocator *mr_device_default(int device_id) {
  if (device_id < 0) {
    mr__error(MR_ERR_INVALID_ARG, "mr_device_default: bad device id %d", device_id);
    return NULL;
  }
  pthread_once(&g_once, init_slots);
  if (MR_UNLIKELY(device_id >= g_count)) {
    if (g_count == 0 && !g_slots && mr_device_count() > 0) {
      mr__error(MR_ERR_OUT_OF_MEMORY, "mr_device_default: cannot allocate the table of GPUs");
      return NULL;
    }
    /* mr_device_check says why: no GPU, or no such GPU (with the number visible). */
    mr_status st = mr_device_check(mr_device_gpu(device_id));
    if (st == MR_OK) /* a GPU that appeared after the table was sized */
      mr__error(MR_ERR_NO_DEVICE, "mr_device_default: device %d was not visible at first use",
                device_id);
    return NULL;
  }
  mr_allocator *a = atomic_load_explicit(&g_slots[device_id], memory_order_acquire);
  if (MR_LIKELY(a != NULL))
    return a;
  pthread_mutex_lock(&g_mu);
  a = atomic_load_explicit(&g_slots[device_id], memory_order_relaxed);
  if (!a) {
    mr_device_options o = {.backend = MR_DEVICE_AUTO, .release_threshold = 0};
    if (mr_device_allocator_create(&a, device_id, &o) == MR_OK)
      atomic_store_explicit(&g_slots[device_id], a, memory_order_release);
    else
      a = NULL; /* the error is recorded; a later call tries again */
  }
  pthread_mutex_unlock(&g_mu);
  return a;
}
