/* Runs CPU-heavy work (key derivation) on a short-lived thread so the
 * supervisor's loop never stalls; the completion runs back on the loop. */
#ifndef WAPI_OFFLOAD_H
#define WAPI_OFFLOAD_H
#include <event2/event.h>

int offload_init(struct event_base *base);
/* work(arg) runs on a thread; then done(arg) runs on the loop. */
int offload_run(void (*work)(void *), void (*done)(void *), void *arg);

#endif
