/* The thread-local context: shared by src/context and the users of a quiet peek (mr_buffer). */
#ifndef MEMRES_CONTEXT_INTERNAL_H
#define MEMRES_CONTEXT_INTERNAL_H

#include "../alloc/internal.h"

/* The top of this thread's stream stack, or NULL, without recording an error. */
mr_stream *mr__context_stream_peek(void);

/* For guards (guard.c) on top of the stacks (context.c).
 * Push `n` items, one mask entry each, all tagged with a fresh tag of this thread (returned in
 * *tag, with the depth before the push in *base). All or nothing: on a bad item
 * (MR_ERR_INVALID_ARG) or no memory (MR_ERR_OUT_OF_MEMORY) nothing stays pushed. */
mr_status mr__context_push_items(const mr_guard_item *items, size_t n, uint64_t *tag, size_t *base);
/* Pop the `n` entries tagged `tag` that sit exactly on top of depth `base`. If the top of this
 * thread's mask is anything else: MR_ERR_GUARD_ORDER, with nothing popped. */
mr_status mr__context_pop_items(size_t base, size_t n, uint64_t tag);

#endif
