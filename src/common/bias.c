/* The process-wide half of the biased lock (bias.h): thread tokens and membarrier. */
#include "bias.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

_Thread_local char mr__bias_token __attribute__((tls_model("initial-exec")));
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_available;

static void registration(void) {
#ifdef SYS_membarrier
  long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
      syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
    g_available = 1;
#endif
}

void mr__bias_lock_slow(mr__bias *b, const void *owner) {
  mr__spin_lock(&b->lock);
  if (owner) { /* biased to another thread: make it leave, or see us, before going on */
    atomic_store_explicit(&b->revoked, 1, memory_order_relaxed);
    mr__bias_barrier();
    while (atomic_load_explicit(&b->busy, memory_order_acquire))
      ;
    if (++b->foreign >= MR__BIAS_SHARE_AFTER)
      atomic_store_explicit(&b->owner, NULL, memory_order_relaxed);
  }
  b->fast = 0;
}

int mr__bias_available(void) {
  pthread_once(&g_once, registration);
  return g_available;
}

void mr__bias_barrier(void) {
#ifdef SYS_membarrier
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
    return;
#endif
  /* cannot happen once registered; a full fence keeps this thread's side right at least */
  atomic_thread_fence(memory_order_seq_cst);
}
