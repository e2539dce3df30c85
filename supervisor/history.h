/* History sync, the supervisor's side: the jobs our phone's history sync
 * notifications left in wa_history_jobs (stored with their incoming batch,
 * before the ack; common/sql/0037_history_sync.sql) are run one at a time.
 * A job's blob is downloaded like media (the "WhatsApp History Keys" kind,
 * through a temporary file, its sums verified) or taken from the inline
 * payload, decoded as it streams (wa/wa_history.h) and imported on a
 * connection of its own in ONE transaction per chunk: batches of chats,
 * messages (parsed and written as live ones are, without their events),
 * push names and phone number -> LID mappings, then the job marked done
 * with its history.progress (and history.completed) event, then COMMIT.
 * Only after the commit is the hist_sync receipt sent (receipted_at), so a
 * crash at any point replays the chunk, which adds nothing twice. A blob
 * that cannot be read is retried a few times and then failed (the job keeps
 * the error); the receipt goes then too. */
#ifndef WAPI_HISTORY_H
#define WAPI_HISTORY_H

#include <event2/event.h>

struct wa_client;
/* The session's client (media_conn, receipts); the runner opens a database
 * connection of its own (one transaction per chunk). */
void history_init(struct event_base *base, struct wa_client *c);
/* Something may be due: a job stored, the connection came up. */
void history_kick(void);

/* Tries before a blob that is not what it should be (sums, zlib,
 * protobuf) is given up; a network failure is tried longer. */
#define HISTORY_MAX_CORRUPT 3
#define HISTORY_MAX_ATTEMPTS 12

#endif
