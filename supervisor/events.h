/* The supervisor's live event log: every event (session, messages, ...) gets
 * a stable id, lands in a ring the workers can read back (SSE resume with
 * Last-Event-ID), and is pushed to every worker. The supervisor is the only
 * producer, so ids are unique and grow: milliseconds since 1970 times 1000,
 * plus a counter within a millisecond, across restarts too.
 *
 * An id is taken before the statement that makes its event durable, so
 * events are published in the order their commits end, not always in id
 * order. Each published event therefore also gets a publication number
 * (seq, this process only): workers and resuming readers follow seq, so no
 * event is skipped for arriving "late". */
#ifndef WAPI_EVENTS_H
#define WAPI_EVENTS_H
#include <stdint.h>

#include "common/sbuf.h"

/* An id for an event about to be published (store it with the data it
 * describes, in the same statement, before publishing). */
uint64_t events_next_id(void);
/* n consecutive ids (the first returned) for events to be made in one
 * statement; ids left unused are simply skipped. */
uint64_t events_reserve(unsigned n);
/* Publishes {"id","type","at","data":data_json}; data_json is one JSON value. */
void events_publish(uint64_t id, const char *type, const char *data_json);
/* Lines "id\tseq\ttype\tjson\n" into body (bounded by the IPC frame), in
 * publication order: those published after seq after_seq when it is not 0;
 * else after the event with id after_id (or, when that one is no longer in
 * the ring, those with a greater id); both 0: only the latest
 * session.status (and session.qr when want_qr). */
void events_since(uint64_t after_id, uint64_t after_seq, int want_qr, struct sbuf *body);

#endif
