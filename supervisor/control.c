#include "control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/jsonw.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "media.h"
#include "media_sweep.h"
#include "session.h"
#include "snapshot.h"
#include "sup.h"
#include "worker_table.h"

#define MAX_LINE 4096

static struct control_ops C_ops;

static struct evconnlistener *listener;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static void send_line(struct bufferevent *bev, struct sbuf *b)
{
    sbuf_addc(b, '\n');
    if (!b->oom)
        bufferevent_write(bev, b->buf, b->len);
    sbuf_free(b);
}

static void reply_error(struct bufferevent *bev, const char *msg)
{
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kbool(&w, "ok", 0);
    jw_kstr(&w, "error", msg);
    jw_obj_end(&w);
    if (jw_finish(&w) == 0)
        send_line(bev, &b);
    else
        sbuf_free(&b);
}

/* A reply is one line {"ok":true,...}: reply_begin() opens it, the command
 * adds its members, reply_end() sends it. */
static void reply_begin(struct jsonw *w, struct sbuf *b)
{
    sbuf_init(b);
    jw_init(w, b);
    jw_obj(w);
    jw_kbool(w, "ok", 1);
}

/* -1 when the reply could not be written (an error went instead). */
static int reply_end(struct bufferevent *bev, struct jsonw *w, struct sbuf *b)
{
    jw_obj_end(w);
    if (jw_finish(w) == 0) {
        send_line(bev, b);
        return 0;
    }
    sbuf_free(b);
    reply_error(bev, "out of memory");
    return -1;
}

static void cmd_status(struct bufferevent *bev, const char *arg)
{
    (void)arg;
    struct sbuf b;
    struct jsonw w;
    reply_begin(&w, &b);
    jw_kint(&w, "pid", getpid());
    jw_kuint(&w, "generation", S.generation);
    jw_kint(&w, "workers_wanted", S.want);
    jw_kbool(&w, "migrated", S.migrated);
    jw_key(&w, "uptime_s");
    jw_double(&w, "%.1f", (double)(now_ms() - S.started_ms) / 1000.0);
    jw_kstr(&w, "listen", S.cfg.listen);
    jw_key(&w, "workers");
    workers_status_json(&w);
    reply_end(bev, &w, &b);
}

static void reply_uint(struct bufferevent *bev, const char *key, uint64_t v)
{
    struct sbuf b;
    struct jsonw w;
    reply_begin(&w, &b);
    jw_kuint(&w, key, v);
    reply_end(bev, &w, &b);
}

static void cmd_reload(struct bufferevent *bev, const char *arg)
{
    (void)arg;
    char err[512];
    if (C_ops.reload(err, sizeof err) < 0)
        reply_error(bev, err);
    else
        reply_uint(bev, "generation", S.generation);
}

static void cmd_workers(struct bufferevent *bev, const char *arg)
{
    char *end;
    long n = strtol(arg, &end, 10);
    if (!*arg || *end || n < 1 || n > MAX_WORKERS / 2) {
        reply_error(bev, "usage: workers N (1..32)");
        return;
    }
    S.want = (int)n;
    log_info("worker count changed", LF_I("workers", n), LF_S("by", "control socket"));
    workers_reconcile();
    reply_uint(bev, "workers_wanted", (uint64_t)S.want);
}

static void cmd_session(struct bufferevent *bev, const char *arg)
{
    struct sbuf b;
    struct jsonw w;
    reply_begin(&w, &b);
    if (session_command(arg, &w) < 0) {
        jw_finish(&w); /* unfinished: nothing to send */
        sbuf_free(&b);
        reply_error(bev, "usage: session [status|start|stop|logout|qr]");
        return;
    }
    reply_end(bev, &w, &b);
}

/* `snapshot`: the session store for `wapictl backup`. One JSON line
 * {"ok":true,"files":N,"bytes":M}, then the files ("SIZE RELPATH\n" and the
 * bytes each). Copied synchronously here, so it is consistent with respect
 * to the loop's own store writes; the bytes go out by reference and are
 * wiped once sent. */
static void cmd_snapshot(struct bufferevent *bev, const char *arg)
{
    if (*arg) {
        reply_error(bev, "usage: snapshot");
        return;
    }
    struct sbuf data;
    sbuf_init(&data);
    unsigned files;
    size_t bytes;
    char err[512];
    uint64_t t0 = now_ms();
    if (snapshot_dir(S.cfg.paths.sessions, &data, &files, &bytes, err, sizeof err) < 0) {
        log_error("session store snapshot failed", LF_S("error", err));
        reply_error(bev, err);
        return;
    }
    struct sbuf rb;
    struct jsonw w;
    reply_begin(&w, &rb);
    jw_kuint(&w, "files", files);
    jw_kuint(&w, "bytes", bytes);
    size_t len = data.len;
    char *buf = sbuf_steal(&data);
    if (reply_end(bev, &w, &rb) < 0 || len == 0 ||
        evbuffer_add_reference(bufferevent_get_output(bev), buf, len, snapshot_wipe_free, NULL) < 0)
        snapshot_wipe_free(buf, len, NULL);
    log_info("session store snapshot taken for a backup", LF_I("files", files),
             LF_I("bytes", (long long)bytes), LF_I("ms", (long long)(now_ms() - t0)));
}

/* `media [status]`: the store's figures and the last sweep; `media sweep`
 * starts a sweep now (its outcome shows in status and in the log). */
static void cmd_media(struct bufferevent *bev, const char *arg)
{
    struct sbuf b;
    struct jsonw w;
    if (!strcmp(arg, "sweep")) {
        const char *why;
        if (media_sweep_start("control socket", &why) < 0) {
            reply_error(bev, why);
            return;
        }
        reply_begin(&w, &b);
        jw_kstr(&w, "sweep", "started");
        reply_end(bev, &w, &b);
        return;
    }
    if (*arg && strcmp(arg, "status") != 0) {
        reply_error(bev, "usage: media [status|sweep]");
        return;
    }
    reply_begin(&w, &b);
    media_status_json(&w);
    jw_key(&w, "sweep");
    media_sweep_status_json(&w);
    reply_end(bev, &w, &b);
}

static const struct {
    const char *name;
    void (*fn)(struct bufferevent *, const char *arg);
} commands[] = {
    {"status", cmd_status},   {"reload", cmd_reload},     {"workers", cmd_workers},
    {"session", cmd_session}, {"snapshot", cmd_snapshot}, {"media", cmd_media},
};

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
    if (!line) {
        if (evbuffer_get_length(in) > MAX_LINE) {
            reply_error(bev, "command too long");
            bufferevent_disable(bev, EV_READ);
        }
        return;
    }
    bufferevent_disable(bev, EV_READ); /* one command per connection */
    char *sp = strchr(line, ' ');
    const char *argp = "";
    if (sp) {
        *sp = '\0';
        argp = sp + 1;
    }
    size_t i;
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(line, commands[i].name) == 0)
            break;
    if (i == sizeof commands / sizeof commands[0])
        reply_error(bev, "unknown command (status, reload, workers N, session ..., snapshot, media ...)");
    else
        commands[i].fn(bev, argp);
    free(line);
}

static void on_written(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (!(bufferevent_get_enabled(bev) & EV_READ))
        bufferevent_free(bev);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what, (void)arg;
    bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l, (void)sa, (void)len, (void)arg;
    struct ucred cred;
    socklen_t cl = sizeof cred;
    /* The socket file is owner-only already; the credential check also
     * covers a directory with looser permissions. */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || (cred.uid != getuid() && cred.uid != 0)) {
        close(fd);
        return;
    }
    struct bufferevent *bev = bufferevent_socket_new(S.base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, on_read, on_written, on_event, NULL);
    struct timeval tv = {5, 0};
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_enable(bev, EV_READ);
}

int control_open(const char *run_dir, const struct control_ops *ops)
{
    C_ops = *ops;
    struct sockaddr_un sun = {0};
    sun.sun_family = AF_UNIX;
    if ((size_t)snprintf(sock_path, sizeof sock_path, "%s/wapi.sock", run_dir) >= sizeof sock_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock_path);
    unlink(sock_path);
    mode_t old = umask(0077);
    listener = evconnlistener_new_bind(S.base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                       16, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (!listener)
        return -1;
    chmod(sock_path, 0600);
    return 0;
}

void control_close(void)
{
    if (listener) {
        evconnlistener_free(listener);
        listener = NULL;
        unlink(sock_path);
    }
}
