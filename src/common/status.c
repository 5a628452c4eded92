/* Status names, this thread's last error, the error handler, the version. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char tl_message[512];
static _Thread_local mr_status tl_status;

static _Atomic(mr_error_handler) g_handler;
static _Atomic(void *) g_handler_arg;

static const char *const k_names[MR_STATUS_COUNT_] = {
    [MR_OK] = "MR_OK",
    [MR_ERR_INVALID_ARG] = "MR_ERR_INVALID_ARG",
    [MR_ERR_OUT_OF_MEMORY] = "MR_ERR_OUT_OF_MEMORY",
    [MR_ERR_CUDA] = "MR_ERR_CUDA",
    [MR_ERR_NO_DEVICE] = "MR_ERR_NO_DEVICE",
    [MR_ERR_EMPTY_CONTEXT] = "MR_ERR_EMPTY_CONTEXT",
    [MR_ERR_UNKNOWN_POINTER] = "MR_ERR_UNKNOWN_POINTER",
    [MR_ERR_DOUBLE_FREE] = "MR_ERR_DOUBLE_FREE",
    [MR_ERR_GUARD_ORDER] = "MR_ERR_GUARD_ORDER",
    [MR_ERR_UNSUPPORTED] = "MR_ERR_UNSUPPORTED",
    [MR_ERR_LIVE_ALLOCATIONS] = "MR_ERR_LIVE_ALLOCATIONS",
    [MR_ERR_INJECTED] = "MR_ERR_INJECTED",
};

const char *mr_status_str(mr_status status) {
  if ((unsigned)status >= MR_STATUS_COUNT_)
    return "MR_ERR_(unknown status)";
  return k_names[status];
}

const char *mr_last_error(void) { return tl_message; }
mr_status mr_last_status(void) { return tl_status; }

void mr_clear_error(void) {
  tl_message[0] = '\0';
  tl_status = MR_OK;
}

void mr_set_error_handler(mr_error_handler handler, void *arg) {
  atomic_store(&g_handler_arg, arg);
  atomic_store(&g_handler, handler);
}

static mr_status verror(mr_status status, const char *fmt, va_list ap) {
  int n = snprintf(tl_message, sizeof tl_message, "%s: ", mr_status_str(status));
  if (n < 0)
    n = 0;
  if ((size_t)n < sizeof tl_message)
    vsnprintf(tl_message + n, sizeof tl_message - (size_t)n, fmt, ap);
  tl_status = status;
  mr_error_handler h = atomic_load(&g_handler);
  if (h)
    h(status, tl_message, atomic_load(&g_handler_arg));
  return status;
}

mr_status mr__error(mr_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(status, fmt, ap);
  va_end(ap);
  return status;
}

mr_status mr_report_error(mr_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(status, fmt, ap);
  va_end(ap);
  return status;
}

int mr_version(void) { return MEMRES_VERSION; }

#define MR__STR(x) #x
#define MR__XSTR(x) MR__STR(x)
const char *mr_version_string(void) {
  return MR__XSTR(MEMRES_VERSION_MAJOR) "." MR__XSTR(MEMRES_VERSION_MINOR) "." MR__XSTR(
      MEMRES_VERSION_PATCH);
}

const char *mr_kind_str(mr_kind kind) {
  switch (kind) {
  case MR_HOST:
    return "host";
  case MR_PINNED:
    return "pinned";
  case MR_DEVICE:
    return "device";
  default:
    return "invalid";
  }
}
