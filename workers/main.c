/* wapi-worker: one HTTP worker process, started by the supervisor with
 * fd 3 = its socketpair, fd 4 = the shared listen socket, fd 5 = the shared
 * metrics memory, and fd 6 = the shared metrics listener when metrics.listen
 * is set (absent otherwise). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/db_params.h"
#include "common/ipc.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/metrics.h"
#include "db.h"
#include "handlers.h"
#include "hashpool.h"
#include "http.h"
#include "sup_link.h"

static volatile sig_atomic_t sig_drain, sig_fast, sig_reopen;

static void on_signal(int sig)
{
    if (sig == SIGTERM || sig == SIGQUIT)
        sig_drain = 1;
    else if (sig == SIGINT)
        sig_fast = 1;
    else if (sig == SIGUSR1)
        sig_reopen = 1;
}

static const struct {
    int sig;
    void (*handler)(int);
} signal_table[] = {
    {SIGTERM, on_signal}, {SIGQUIT, on_signal}, {SIGINT, on_signal}, {SIGUSR1, on_signal}, {SIGPIPE, SIG_IGN},
    {SIGHUP, SIG_IGN},    {SIGTTIN, SIG_IGN},   {SIGTTOU, SIG_IGN},  {SIGWINCH, SIG_IGN},
};

static struct {
    struct wapi_config cfg;
    struct metrics_shm *shm;
    struct metrics_slot *m;
    h2o_loop_t *loop;
    h2o_timeout_t tick;
    h2o_timeout_entry_t tick_entry;
    uint64_t drain_deadline_ms;
    int draining;
} W;

static void start_drain(const char *why)
{
    if (W.draining)
        return;
    W.draining = 1;
    log_info("draining", LF_S("why", why), LF_I("connections", http_connections()));
    events_close_all();
    W.drain_deadline_ms = h2o_now(W.loop) + (uint64_t)W.cfg.shutdown_timeout * 1000;
    http_drain();
}

static void on_drain_cmd(void)
{
    start_drain("supervisor");
}

static void on_reopen_logs(void)
{
    http_flush_access_log();
    log_reopen();
}

static void on_lost(void)
{
    start_drain("supervisor gone");
}

static void leave(int status)
{
    http_flush_access_log();
    db_pool_shutdown();
    metrics_clear_gauges(W.m);
    exit(status);
}

static void on_tick(h2o_timeout_entry_t *e)
{
    (void)e;
    http_tick();
    sup_link_tick();
    events_tick();
    http_flush_access_log();
    if (W.draining) {
        if (http_drained()) {
            log_info("drained; exiting");
            leave(0);
        }
        if (h2o_now(W.loop) >= W.drain_deadline_ms) {
            log_warn("drain timed out; exiting", LF_I("connections", http_connections()));
            leave(0);
        }
    }
    h2o_timeout_link(W.loop, &W.tick, &W.tick_entry);
}

/* `wapi-worker --routes`: the router table as JSON lines, for tests and
 * docs that must stay in step with it. */
static int print_routes(void)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    char err[160];
    if (http_routes_check(worker_routes, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct sbuf line;
    sbuf_init(&line);
    for (const struct route *r = worker_routes; r->path; r++)
        for (int b = 0; b < 7; b++) {
            if (!(r->methods & (1 << b)))
                continue;
            sbuf_reset(&line);
            struct jsonw w;
            jw_init(&w, &line);
            jw_obj(&w);
            jw_kstr(&w, "method", names[b]);
            jw_kstr(&w, "path", r->path);
            jw_kstr(&w, "permission", authz_perm_name(r->perm));
            jw_kbool(&w, "session_only", r->flags & ROUTE_SESSION_ONLY);
            jw_kbool(&w, "signed_link", r->flags & ROUTE_SIGNED_LINK);
            jw_obj_end(&w);
            if (jw_finish(&w) < 0) {
                sbuf_free(&line);
                fprintf(stderr, "out of memory\n");
                return 1;
            }
            printf("%s\n", line.buf);
        }
    sbuf_free(&line);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--routes") == 0)
        return print_routes();
    log_init("worker", LOG_INFO, NULL);
    for (size_t i = 0; i < sizeof signal_table / sizeof signal_table[0]; i++) {
        struct sigaction sa = {0};
        sa.sa_handler = signal_table[i].handler;
        sigemptyset(&sa.sa_mask);
        sigaction(signal_table[i].sig, &sa, NULL); /* no SA_RESTART: the loop wakes up */
    }
    uint32_t slot, generation;
    char *text = NULL;
    if (sup_handshake(IPC_FD, &slot, &generation, &text) < 0)
        fatal(1, "handshake with the supervisor failed (wapi-worker is started by wapi)");
    char err[512];
    if (config_load_string(&W.cfg, text, err, sizeof err) < 0)
        fatal(1, "configuration from the supervisor rejected", LF_S("error", err));
    free(text);
    log_init("worker", (enum log_level)log_level_parse(W.cfg.log.level), W.cfg.log.file);
    if (!(W.shm = metrics_attach(IPC_METRICS_FD)) || slot >= METRICS_SLOTS)
        fatal(1, "cannot map the metrics region");
    W.m = &W.shm->slot[slot];
    __atomic_store_n(&W.m->pid, (int32_t)getpid(), __ATOMIC_RELAXED);
    W.loop = h2o_evloop_create();
    health_init(W.shm, &W.cfg);
    if (http_init(W.loop, &W.cfg, W.m, worker_routes) < 0)
        fatal(1, "the router table is invalid");
    auth_init(&W.cfg);
    webhooks_api_init(&W.cfg);
    media_api_init(W.loop, &W.cfg);
    /* Password hashing: over all workers, one CPU fewer than there are, so
     * requests always find a free one. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN), nhash = ncpu > 0 ? ncpu / config_workers(&W.cfg) : 1;
    int slots = ncpu > 1 ? (int)ncpu - 1 : 1;
    if (hashpool_init(W.loop, nhash < 1 ? 1 : nhash > 4 ? 4 : (int)nhash, W.cfg.paths.run, slots) < 0)
        fatal(1, "cannot start the password hashing threads");
    static struct db_params params;
    db_params_init(&params, &W.cfg, "wapi-worker");
    if (db_pool_init(W.loop, &params, W.cfg.database.pool, W.m) < 0)
        fatal(1, "cannot create the database pool");
    events_init(W.loop);
    struct sup_handlers sh = {on_drain_cmd, on_reopen_logs, on_lost, events_on_push};
    sup_link_start(W.loop, IPC_FD, &sh, W.m);
    http_start_accepting(IPC_LISTEN_FD);
    if (W.cfg.metrics.listen[0] && http_start_metrics_listener(IPC_METRICS_LISTEN_FD, h_metrics_listener) < 0)
        fatal(1, "metrics.listen is set but the supervisor passed no metrics listener");
    h2o_timeout_init(W.loop, &W.tick, 100);
    W.tick_entry.cb = on_tick;
    h2o_timeout_link(W.loop, &W.tick, &W.tick_entry);
    sup_notify(IPC_READY, NULL, 0);
    log_info("worker ready", LF_I("slot", slot), LF_I("generation", generation));
    for (;;) {
        h2o_evloop_run(W.loop, INT32_MAX);
        if (sig_fast) {
            log_info("fast stop");
            leave(0);
        }
        if (sig_drain) {
            sig_drain = 0;
            start_drain("signal");
        }
        if (sig_reopen) {
            sig_reopen = 0;
            on_reopen_logs();
        }
    }
}
