/* The allocator object, shared by src/alloc (and src/context, which reads device/kind). */
#ifndef MEMRES_ALLOC_INTERNAL_H
#define MEMRES_ALLOC_INTERNAL_H

#include "../stream/internal.h"

#define MR_NAME_MAX 48

struct mr_allocator {
  mr__rc rc; /* first, as in mr_stream: a context stack releases either through one address */
  const mr_allocator_ops *ops;
  void *state;
  mr_stream *stream;    /* bound stream (retained), or NULL */
  mr_allocator *parent; /* for a view: the allocator whose state it shares (retained) */
  mr_device device;
  char name[MR_NAME_MAX];
};

/* Destroys an allocator whose last reference is gone. */
void mr__allocator_destroy(mr_allocator *a);

/* Fill a stats struct the caller sized: copies min(struct_size, sizeof) bytes of src. */
void mr__stats_copy_out(mr_stats *out, const mr_stats *src);

/* Lock-free counters for the plain allocators (host, pinned, device, fault). */
typedef struct mr__counters {
  atomic_uint_fast64_t in_use, peak, live, allocs, frees, failed;
} mr__counters;

void mr__counters_alloc(mr__counters *c, size_t bytes);
void mr__counters_free(mr__counters *c, size_t bytes);
void mr__counters_fill(mr__counters *c, mr_stats *s);

#endif
