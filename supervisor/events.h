/* The supervisor's live event log: every event (session, messages, ...) gets
 * a stable id, lands in a ring the workers can read back (SSE resume with
 * Last-Event-ID), and is pushed to every worker. The supervisor is the only
 * producer, so ids are monotonic: milliseconds since 1970 times 1000, plus
 * a counter within a millisecond, and they keep growing across restarts. */
#ifndef WAPI_EVENTS_H
#define WAPI_EVENTS_H
#include <stdint.h>

#include "common/sbuf.h"

/* An id for an event about to be published (store it with the data it
 * describes, in the same statement, before publishing). */
uint64_t events_next_id(void);
/* Publishes {"id","type","at","data":data_json}; data_json is one JSON value. */
void events_publish(uint64_t id, const char *type, const char *data_json);
/* Lines "id\ttype\tjson\n" after `after` into body (bounded by the IPC frame);
 * after == 0: only the latest session.status (and session.qr when want_qr). */
void events_since(uint64_t after, int want_qr, struct sbuf *body);

#endif
