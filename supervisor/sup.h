/* The supervisor's shared state: one instance (sup.c), set up and changed
 * by main.c (start, reload, stop), read by the modules. */
#ifndef WAPI_SUP_H
#define WAPI_SUP_H
#include <event2/event.h>
#include <stdint.h>

#include "common/config.h"
#include "common/metrics.h"

enum sup_stopping { STOP_NONE, STOP_GRACEFUL, STOP_FAST };

struct sup {
    struct event_base *base;
    struct wapi_config cfg; /* the configuration in force */
    const char *config_path;
    char *config_text; /* cfg serialized, handed to new workers */
    unsigned generation;
    int listen_fd;
    int metrics_listen_fd; /* metrics.listen's socket, -1 when not set */
    int metrics_fd;        /* the shared metrics memory */
    struct metrics_shm *shm;
    char worker_bin[4096];
    char self_exe[4096]; /* this program, for the migration child */
    char **migrate_argv; /* {argv[0], "--migrate", the supervisor's own options} */
    int want;            /* workers wanted in the current generation */
    int migrated;
    enum sup_stopping stopping;
    uint64_t started_ms;
};

extern struct sup S;

/* A monotonic clock in milliseconds. */
uint64_t now_ms(void);

#endif
