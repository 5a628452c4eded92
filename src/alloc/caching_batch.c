/* The caching pool's batches: blocks freed on one stream that share one completion event, and the
 * pool's idle events that batches reuse. A batch is open while the stream frees into it and
 * sealed once an event recorded on the stream after those frees closes it; caching_core.c
 * settles sealed batches whose events are complete. All with the pool mutex held. */
#include "caching_internal.h"

#include <stdlib.h>

mr_event *mr__event_take(mr__pool *p, mr_stream *s) {
  for (size_t i = p->nevents; i-- > 0;) {
    mr_event *e = p->events[i];
    if (e->backend->ops == s->ops) {
      p->events[i] = p->events[--p->nevents];
      return e;
    }
  }
  mr_event *e = NULL;
  if (mr_event_create(&e, s) != MR_OK)
    return NULL;
  return e;
}

void mr__event_put(mr__pool *p, mr_event *e) {
  if (!e)
    return;
  if (p->nevents == p->cap_events) {
    size_t cap = p->cap_events ? p->cap_events * 2 : 16;
    mr_event **n = realloc(p->events, cap * sizeof *n);
    if (!n) {
      mr_event_destroy(e);
      return;
    }
    p->events = n;
    p->cap_events = cap;
  }
  p->events[p->nevents++] = e;
}

mr__batch *mr__batch_open(mr__pool *p, mr__pstream *ps) {
  if (!ps->open) {
    mr__batch *bt = calloc(1, sizeof *bt);
    if (!bt)
      return NULL;
    bt->seq = ++p->batch_seq;
    ps->open = bt;
  }
  return ps->open;
}

/* Closes ps's open batch with event e, recorded on ps's stream after every free in the batch
 * (the batch then owns it), or with one recorded now when e is NULL. On failure the batch stays
 * open (its blocks stay the stream's own) and the status is returned. */
mr_status mr__seal_with(mr__pool *p, mr__pstream *ps, mr_event *e) {
  mr__batch *bt = ps->open;
  if (!bt || !ps->stream || !bt->count) {
    mr__event_put(p, e);
    if (bt && ps->stream) {
      free(bt);
      ps->open = NULL;
    }
    return MR_OK;
  }
  if (!e) {
    if (!(e = mr__event_take(p, ps->stream)))
      return mr_last_status();
    mr_status st = mr_event_record(e, ps->stream);
    if (st != MR_OK) {
      mr__event_put(p, e);
      return st;
    }
  }
  bt->event = e;
  ps->open = NULL;
  if (ps->sealed_tail)
    ps->sealed_tail->next = bt;
  else
    ps->sealed_head = bt;
  ps->sealed_tail = bt;
  return MR_OK;
}

/* Records the event that closes ps's open batch (see mr__seal_with). */
mr_status mr__seal(mr__pool *p, mr__pstream *ps) { return mr__seal_with(p, ps, NULL); }
