/* Messages stored as placeholders (they could not be decrypted): our phone
 * is asked to send each again, once it is committed and again at each
 * connect while it stays unfilled (the ask, or its answer, may have been
 * lost to a restart). Its answer fills the placeholder through the inbox. */
#ifndef WAPI_PLACEHOLDER_H
#define WAPI_PLACEHOLDER_H

/* Asks for message id in chat (from_me: we sent it; sender: its sender,
 * named as participant in a group). Failures are logged: the next connect
 * asks again. */
void placeholder_ask(const char *id, const char *chat, int from_me, const char *sender);
/* Connected: asks for the placeholders of the last day still unfilled
 * (newest first, at most PLACEHOLDER_ASK_MAX). */
void placeholder_connected(void);

#define PLACEHOLDER_ASK_MAX 100
/* Starts the sweep of messages that waited too long for their sender's
 * resend (whatsapp.retry_wait_seconds): each becomes a placeholder. */
void placeholder_init(void);

#endif
