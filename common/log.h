/* JSON-lines logging: one object per line with ts, level, proc, pid, msg and
 * typed fields. Never pass secrets as fields. */
#ifndef WAPI_LOG_H
#define WAPI_LOG_H
#include <stdlib.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Fields follow msg as (key, type, value) triples, terminated by NULL:
 *   log_info("worker exited", LF_I("pid", pid), LF_S("why", why));  */
#define LF_S(k, v) (k), 's', (const char *)(v)
#define LF_I(k, v) (k), 'i', (long long)(v)
#define LF_F(k, v) (k), 'f', (double)(v)

/* proc names the process ("supervisor", "worker"); path may be NULL or ""
 * for stderr. Returns -1 if the file cannot be opened (stderr is kept). */
int log_init(const char *proc, enum log_level level, const char *path);
void log_set_level(enum log_level level);
void log_set_proc(const char *proc);
int log_reopen(void);
int log_level_parse(const char *s); /* -1 when unknown */
int log_enabled(enum log_level level);
void log_emit(enum log_level level, const char *msg, ...);

#define log_debug(msg, ...) log_emit(LOG_DEBUG, (msg), ##__VA_ARGS__, (const char *)0)
#define log_info(msg, ...) log_emit(LOG_INFO, (msg), ##__VA_ARGS__, (const char *)0)
#define log_warn(msg, ...) log_emit(LOG_WARN, (msg), ##__VA_ARGS__, (const char *)0)
#define log_error(msg, ...) log_emit(LOG_ERROR, (msg), ##__VA_ARGS__, (const char *)0)
/* Start-up only: log and exit with the given status. */
#define fatal(status, msg, ...)                                                                    \
    do {                                                                                           \
        log_emit(LOG_ERROR, (msg), ##__VA_ARGS__, (const char *)0);                                \
        exit(status);                                                                              \
    } while (0)

/* Appends a line built elsewhere (e.g. the access log) as one write. */
void log_write_raw(const char *line, unsigned long len);
/* RFC 3339 UTC timestamp with milliseconds into buf (>= 32 bytes). */
void log_timestamp(char *buf, unsigned long size);

#endif
