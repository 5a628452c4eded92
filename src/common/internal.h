/* memres internals shared by every folder. Never installed. */
#ifndef MEMRES_COMMON_INTERNAL_H
#define MEMRES_COMMON_INTERNAL_H

#include "memres/memres.h"

#include <stdatomic.h>

#define MR_UNUSED(x) (void)(x)
#define MR_LIKELY(x) __builtin_expect(!!(x), 1)
#define MR_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Record this thread's last error (and call the handler); returns status. */
mr_status mr__error(mr_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Overflow-safe round up to a power-of-two alignment; 0 on overflow. */
static inline size_t mr__align_up(size_t n, size_t align) {
  if (n > SIZE_MAX - (align - 1))
    return 0;
  return (n + align - 1) & ~(align - 1);
}
static inline int mr__is_pow2(size_t x) { return x && !(x & (x - 1)); }

#endif
