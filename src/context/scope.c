/* Named scopes: a per-thread stack of names, joined by '/' into the current path. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SCOPE_NAME_MAX 63

typedef struct scope_ctx {
  char *path; /* "a/b/c", NUL-terminated (NULL until the first push) */
  size_t path_cap;
  size_t *starts; /* for each scope, the length of the path before it was pushed */
  size_t depth, starts_cap;
} scope_ctx;

static _Thread_local scope_ctx tl_scope;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static int g_key_ok;

static void scope_exit(void *arg) {
  scope_ctx *c = arg;
  scope_ctx old = *c;
  memset(c, 0, sizeof *c);
  free(old.path);
  free(old.starts);
}

static void key_create(void) { g_key_ok = pthread_key_create(&g_key, scope_exit) == 0; }

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return 1;
  size_t n = *cap ? *cap : 8;
  while (n < need) {
    if (n > SIZE_MAX / 2 / elem)
      return 0;
    n *= 2;
  }
  void *p = realloc(*arr, n * elem);
  if (!p)
    return 0;
  *arr = p;
  *cap = n;
  return 1;
}

mr_status mr_scope_push(const char *name) {
  if (!name)
    return mr__error(MR_ERR_INVALID_ARG, "mr_scope_push: name is NULL");
  scope_ctx *c = &tl_scope;
  if (!c->path) {
    pthread_once(&g_once, key_create);
    if (g_key_ok)
      pthread_setspecific(g_key, c);
  }
  size_t len = strnlen(name, SCOPE_NAME_MAX);
  size_t old = c->depth ? strlen(c->path) : 0;
  size_t sep = c->depth ? 1 : 0;
  if (!grow((void **)&c->starts, &c->starts_cap, c->depth + 1, sizeof *c->starts) ||
      !grow((void **)&c->path, &c->path_cap, old + sep + len + 1, 1))
    return mr__error(MR_ERR_OUT_OF_MEMORY, "mr_scope_push('%.*s'): no memory at scope depth %zu",
                     (int)len, name, c->depth);
  if (sep)
    c->path[old] = '/';
  memcpy(c->path + old + sep, name, len);
  c->path[old + sep + len] = '\0';
  c->starts[c->depth++] = old;
  return MR_OK;
}

mr_status mr_scope_pop(void) {
  scope_ctx *c = &tl_scope;
  if (c->depth == 0)
    return mr__error(MR_ERR_EMPTY_CONTEXT, "mr_scope_pop: no scope pushed on this thread");
  c->path[c->starts[--c->depth]] = '\0';
  return MR_OK;
}

const char *mr_scope_path(void) {
  scope_ctx *c = &tl_scope;
  return c->depth ? c->path : "";
}

void mr__scope_cleanup(int *token) {
  if (token && *token)
    mr_scope_pop();
}
