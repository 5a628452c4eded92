/* The thread-local context: shared by src/context and the users of a quiet peek (mr_buffer). */
#ifndef MEMRES_CONTEXT_INTERNAL_H
#define MEMRES_CONTEXT_INTERNAL_H

#include "../alloc/internal.h"

/* The top of this thread's stream stack, or NULL, without recording an error. */
mr_stream *mr__context_stream_peek(void);

#endif
