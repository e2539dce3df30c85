/* One chat per person: the database merges a LID-only chat into the
 * number's the moment the number is learned (migration 0033); this module
 * tells each merge as a chat.merged event (the event ids are the
 * supervisor's), at once when asked and every few seconds otherwise. */
#ifndef WAPI_CHAT_MERGES_H
#define WAPI_CHAT_MERGES_H

void chat_merges_init(void);
/* Tells the merges made so far (after a statement that may have made one). */
void chat_merges_kick(void);

#endif
