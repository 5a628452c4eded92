/* A test stream backend whose events complete only when the test says so. */
#ifndef MEMRES_TEST_MANUAL_STREAM_H
#define MEMRES_TEST_MANUAL_STREAM_H

#include <memres/memres.h>

/* A stream whose work never completes by itself. It starts busy: every event recorded on it
 * stays pending until manual_stream_complete(), which completes everything recorded so far and
 * leaves the stream idle: events recorded while it is idle are complete at once (as on a real
 * stream with nothing in flight; a pool records its events lazily, after the frees they cover).
 * manual_stream_submit() makes it busy again (work in flight), as does making it wait on an
 * event. An event is complete only once the events its stream waited on before it (directly or
 * through other streams) are complete too, as on a GPU. Synchronizing on a pending event
 * (mr_event_synchronize, mr_stream_synchronize) returns MR_ERR_UNSUPPORTED instead of blocking
 * forever. Thread-safe. */
mr_status manual_stream_create(mr_stream **out);
/* Complete all work on s so far: every event recorded before this call is done (once what s
 * waited on is), and s is idle. */
void manual_stream_complete(mr_stream *s);
/* Work is in flight on s again: events recorded from now on stay pending until the next
 * manual_stream_complete(s). */
void manual_stream_submit(mr_stream *s);
/* How many times another stream was made to wait on an event (wait_event) with s as waiter,
 * and the owner stream and sequence number of the last such wait. */
unsigned long manual_stream_waits(mr_stream *s);
mr_stream *manual_stream_last_wait_owner(mr_stream *s);
unsigned long long manual_stream_last_wait_seq(mr_stream *s);
/* The highest sequence number of `owner`'s events that work on s is now ordered after (0: none):
 * s waited on it, or on an event of a stream that had (a vector clock). An event recorded on
 * owner when manual_stream_recorded(owner) was n has sequence number n + 1 and covers everything
 * done on owner before it. Tracks up to MANUAL_STREAM_OWNERS owners a stream. */
#define MANUAL_STREAM_OWNERS 8
unsigned long long manual_stream_waited_seq(mr_stream *s, mr_stream *owner);
/* Number of events recorded on s so far / completed so far. */
unsigned long long manual_stream_recorded(mr_stream *s);
unsigned long long manual_stream_completed(mr_stream *s);
/* Number of live backend events (created and not destroyed), over all manual streams. */
long manual_stream_live_events(void);
/* true if the stream is a manual one. */
bool manual_stream_is(mr_stream *s);

#endif
