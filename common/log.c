#include "log.h"

#include "timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jsonw.h"
#include "sbuf.h"

static struct {
    char proc[32];
    enum log_level level;
    char path[4096];
    int fd;
} L = {"wapi", LOG_INFO, "", 2};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int log_init(const char *proc, enum log_level level, const char *path)
{
    log_set_proc(proc);
    L.level = level;
    if (path && *path) {
        snprintf(L.path, sizeof L.path, "%s", path);
        int fd = open_log(path);
        if (fd < 0)
            return -1;
        if (L.fd > 2)
            close(L.fd);
        L.fd = fd;
    }
    return 0;
}

void log_set_level(enum log_level level)
{
    L.level = level;
}

void log_set_proc(const char *proc)
{
    snprintf(L.proc, sizeof L.proc, "%s", proc);
}

int log_reopen(void)
{
    if (!L.path[0])
        return 0;
    int fd = open_log(L.path);
    if (fd < 0)
        return -1;
    int old = L.fd;
    L.fd = fd;
    if (old > 2)
        close(old);
    return 0;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

int log_enabled(enum log_level level)
{
    return level >= L.level;
}

void log_timestamp(char *buf, unsigned long size)
{
    rfc3339_now_ms(buf, size);
}

void log_write_raw(const char *line, unsigned long len)
{
    /* One write per line: lines from several processes never interleave. */
    while (len > 0) {
        ssize_t n = write(L.fd, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        line += n;
        len -= (unsigned long)n;
    }
}

void log_emit(enum log_level level, const char *msg, ...)
{
    if (level < L.level)
        return;
    int saved = errno;
    char ts[40];
    log_timestamp(ts, sizeof ts);
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kstr(&w, "ts", ts);
    jw_kstr(&w, "level", level_names[level]);
    jw_kstr(&w, "proc", L.proc);
    jw_kint(&w, "pid", getpid());
    jw_kstr(&w, "msg", msg);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        int type = va_arg(ap, int);
        jw_key(&w, key);
        if (type == 's') {
            jw_str(&w, va_arg(ap, const char *));
        } else if (type == 'i') {
            jw_int(&w, va_arg(ap, long long));
        } else if (type == 'f') {
            jw_double(&w, "%.6g", va_arg(ap, double));
        } else {
            jw_null(&w);
            break; /* unknown type: the rest of the list cannot be trusted */
        }
    }
    va_end(ap);
    jw_obj_end(&w);
    if (jw_finish(&w) == 0) {
        sbuf_addc(&b, '\n');
        if (!b.oom)
            log_write_raw(b.buf, b.len);
    }
    sbuf_free(&b);
    errno = saved;
}
