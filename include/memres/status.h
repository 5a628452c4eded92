/* memres: status codes and this thread's last error message. */
#ifndef MEMRES_STATUS_H
#define MEMRES_STATUS_H

#include "export.h"

MR_EXTERN_C_BEGIN

typedef enum mr_status {
  MR_OK = 0,
  MR_ERR_INVALID_ARG,      /* NULL where a pointer is required, size 0, bad kind, bad id */
  MR_ERR_OUT_OF_MEMORY,    /* the allocator (or its upstream) has no memory for the request */
  MR_ERR_CUDA,             /* a CUDA runtime call failed; the message names the error */
  MR_ERR_NO_DEVICE,        /* no GPU, no such device, or built without CUDA */
  MR_ERR_EMPTY_CONTEXT,    /* the context stack asked for is empty */
  MR_ERR_UNKNOWN_POINTER,  /* freed a pointer this allocator never gave out */
  MR_ERR_DOUBLE_FREE,      /* freed a pointer twice */
  MR_ERR_GUARD_ORDER,      /* guards popped out of LIFO order; stacks left as they were */
  MR_ERR_UNSUPPORTED,      /* the allocator or stream backend lacks that operation */
  MR_ERR_LIVE_ALLOCATIONS, /* destroyed with blocks still in use (they were released anyway) */
  MR_ERR_INJECTED,         /* a failure injected by the fault-injection adaptor */
  MR_STATUS_COUNT_         /* sentinel */
} mr_status;

/* A short constant name for a status, e.g. "MR_ERR_OUT_OF_MEMORY". Never NULL. */
MR_API const char *mr_status_str(mr_status status);

/* This thread's message for the last failed call, with its detail (the CUDA error, the size
 * asked, the allocator's name, what a pool held). "" if no call has failed on this thread.
 * Successful calls do not clear it. */
MR_API const char *mr_last_error(void);

/* The status that went with mr_last_error(). */
MR_API mr_status mr_last_status(void);

/* Clear this thread's last error. */
MR_API void mr_clear_error(void);

/* Called (if set) on every error the library records, in the thread that hit it. The library
 * never prints by itself; install a handler to log. NULL removes it. Process-wide. */
typedef void (*mr_error_handler)(mr_status status, const char *message, void *arg);
MR_API void mr_set_error_handler(mr_error_handler handler, void *arg);

/* The library version as MEMRES_VERSION encodes it, and as a string "0.1.0". */
MR_API int mr_version(void);
MR_API const char *mr_version_string(void);

MR_EXTERN_C_END

#endif
