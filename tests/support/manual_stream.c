#include "manual_stream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* A vector clock: for each other stream, the highest sequence number of its events that work
 * here is ordered after, directly (a wait) or through other streams' waits. */
typedef struct manual_clock {
  struct {
    mr_stream *owner;
    unsigned long long seq;
  } v[MANUAL_STREAM_OWNERS];
  int n;
} manual_clock;

/* Raises c's entry for owner to seq (a new entry if there is room). */
static void clock_raise(manual_clock *c, mr_stream *owner, unsigned long long seq) {
  int k = 0;
  while (k < c->n && c->v[k].owner != owner)
    k++;
  if (k == c->n) {
    if (k == MANUAL_STREAM_OWNERS)
      return;
    c->v[c->n].owner = owner;
    c->v[c->n++].seq = 0;
  }
  if (seq > c->v[k].seq)
    c->v[k].seq = seq;
}

typedef struct manual_state {
  pthread_mutex_t mu;
  unsigned long long recorded;  /* sequence numbers handed out */
  unsigned long long completed; /* every seq <= completed is done */
  bool idle;                    /* no work in flight: events recorded now are complete */
  unsigned long waits;
  mr_stream *last_wait_owner;
  unsigned long long last_wait_seq;
  manual_clock clock; /* what this stream's work so far is ordered after */
} manual_state;

typedef struct manual_event {
  mr_stream *stream; /* last recorded on, or NULL: never recorded (complete) */
  unsigned long long seq;
  manual_clock clock; /* the recording stream's clock when recorded */
} manual_event;

static atomic_long g_live_events;

static manual_state *st_of(mr_stream *s) { return mr_stream_state(s); }

static mr_status ev_create(mr_stream *self, void **event) {
  (void)self;
  manual_event *e = calloc(1, sizeof *e);
  if (!e)
    return MR_ERR_OUT_OF_MEMORY;
  atomic_fetch_add(&g_live_events, 1);
  *event = e;
  return MR_OK;
}
static void ev_destroy(mr_stream *self, void *event) {
  (void)self;
  atomic_fetch_sub(&g_live_events, 1);
  free(event);
}
static mr_status ev_record(mr_stream *self, void *event) {
  manual_event *e = event;
  manual_state *m = st_of(self);
  pthread_mutex_lock(&m->mu);
  e->stream = self;
  e->seq = ++m->recorded;
  e->clock = m->clock;
  if (m->idle)
    m->completed = e->seq;
  pthread_mutex_unlock(&m->mu);
  return MR_OK;
}
static mr_status ev_query(mr_stream *self, void *event, bool *done) {
  (void)self;
  manual_event *e = event;
  if (!e->stream) {
    *done = true;
    return MR_OK;
  }
  manual_state *m = st_of(e->stream);
  pthread_mutex_lock(&m->mu);
  *done = m->completed >= e->seq;
  pthread_mutex_unlock(&m->mu);
  /* and what its stream waited for before it (the clock is transitive): a stream never gets
   * past a wait on work that is not done, whatever the test completed */
  for (int k = 0; k < e->clock.n && *done; k++) {
    manual_state *o = st_of(e->clock.v[k].owner);
    pthread_mutex_lock(&o->mu);
    *done = o->completed >= e->clock.v[k].seq;
    pthread_mutex_unlock(&o->mu);
  }
  return MR_OK;
}
/* Manual work completes only when the test says: nothing may block on it (a pool waiting here
 * would wait forever), so synchronizing is refused. */
static mr_status ev_sync(mr_stream *self, void *event) {
  bool done = false;
  ev_query(self, event, &done);
  if (done)
    return MR_OK;
  return mr_report_error(MR_ERR_UNSUPPORTED,
                         "manual stream: cannot wait for an event the test has not completed");
}

static mr_status ev_wait(mr_stream *self, mr_stream *owner, void *event) {
  manual_event *e = event;
  manual_state *m = st_of(self);
  pthread_mutex_lock(&m->mu);
  m->waits++;
  m->idle = false; /* its work now depends on the other stream's */
  m->last_wait_owner = e->stream ? e->stream : owner;
  m->last_wait_seq = e->seq;
  if (e->stream) {
    clock_raise(&m->clock, e->stream, e->seq);
    for (int k = 0; k < e->clock.n; k++)
      if (e->clock.v[k].owner != self)
        clock_raise(&m->clock, e->clock.v[k].owner, e->clock.v[k].seq);
  }
  pthread_mutex_unlock(&m->mu);
  return MR_OK;
}
static void destroy(mr_stream *self) {
  manual_state *m = st_of(self);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static const mr_stream_ops k_manual_ops = {
    .version = MR_STREAM_OPS_VERSION,
    .backend = "manual",
    .event_create = ev_create,
    .event_destroy = ev_destroy,
    .event_record = ev_record,
    .event_query = ev_query,
    .event_synchronize = ev_sync,
    .wait_event = ev_wait,
    .destroy = destroy,
};

mr_status manual_stream_create(mr_stream **out) {
  manual_state *m = calloc(1, sizeof *m);
  if (!m)
    return MR_ERR_OUT_OF_MEMORY;
  pthread_mutex_init(&m->mu, NULL);
  mr_status st = mr_stream_create_custom(out, &k_manual_ops, m, mr_device_host());
  if (st != MR_OK) {
    pthread_mutex_destroy(&m->mu);
    free(m);
  }
  return st;
}

void manual_stream_complete(mr_stream *s) {
  manual_state *m = st_of(s);
  pthread_mutex_lock(&m->mu);
  m->completed = m->recorded;
  m->idle = true;
  pthread_mutex_unlock(&m->mu);
}

void manual_stream_submit(mr_stream *s) {
  manual_state *m = st_of(s);
  pthread_mutex_lock(&m->mu);
  m->idle = false;
  pthread_mutex_unlock(&m->mu);
}

#define GETTER(type, name, field)                                                                  \
  type name(mr_stream *s) {                                                                        \
    manual_state *m = st_of(s);                                                                    \
    pthread_mutex_lock(&m->mu);                                                                    \
    type v = m->field;                                                                             \
    pthread_mutex_unlock(&m->mu);                                                                  \
    return v;                                                                                      \
  }
GETTER(unsigned long, manual_stream_waits, waits)
GETTER(mr_stream *, manual_stream_last_wait_owner, last_wait_owner)
GETTER(unsigned long long, manual_stream_last_wait_seq, last_wait_seq)
GETTER(unsigned long long, manual_stream_recorded, recorded)
GETTER(unsigned long long, manual_stream_completed, completed)

unsigned long long manual_stream_waited_seq(mr_stream *s, mr_stream *owner) {
  manual_state *m = st_of(s);
  pthread_mutex_lock(&m->mu);
  unsigned long long v = 0;
  for (int k = 0; k < m->clock.n; k++)
    if (m->clock.v[k].owner == owner)
      v = m->clock.v[k].seq;
  pthread_mutex_unlock(&m->mu);
  return v;
}

long manual_stream_live_events(void) { return atomic_load(&g_live_events); }

bool manual_stream_is(mr_stream *s) { return mr_stream_ops_of(s) == &k_manual_ops; }
