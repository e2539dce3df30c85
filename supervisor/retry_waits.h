/* A message that did not decrypt is acked with a retry receipt only once its
 * wait for the sender's resend is on record (wa_retry_waits, stored with the
 * incoming batch; the resend ends it). A wait older than
 * whatsapp.retry_wait_seconds becomes a placeholder through the inbox, which
 * then asks our phone for the message: swept every few seconds. */
#ifndef WAPI_RETRY_WAITS_H
#define WAPI_RETRY_WAITS_H
void retry_waits_init(void);
#endif
