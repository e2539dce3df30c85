/* Runs CPU-heavy work (key derivation) on a short-lived thread so the
 * supervisor's loop never stalls; the completion runs back on the loop. */
#ifndef WAPI_WA_OFFLOAD_H
#define WAPI_WA_OFFLOAD_H
#include <event2/event.h>

/* Once per loop (later calls do nothing). */
int wa_offload_init(struct event_base *base);
/* work(arg) runs on a thread; then done(arg) runs on the loop. */
int wa_offload_run(void (*work)(void *), void (*done)(void *), void *arg);

#endif
