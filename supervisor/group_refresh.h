/* At each connect, the groups we are in as WhatsApp lists them: their chats
 * take the current subjects (a group renamed, or joined, while we were away
 * shows its name even before its first message). */
#ifndef WAPI_GROUP_REFRESH_H
#define WAPI_GROUP_REFRESH_H

#include "wa/wa_client.h"

/* Asks once; the answer is applied when it comes. Failures are logged. */
void group_refresh(struct wa_client *c);

#endif
