/* wapi: the supervisor. Starts everything and stops it: reads the
 * configuration, opens the listen sockets and the metrics memory, runs the
 * migrations in a child, starts the WhatsApp session (with its inbox and
 * outbox), webhook dispatch, the audit publisher and the control socket,
 * registers what workers may ask, keeps the workers running, and handles
 * the signals (a table) on a libevent loop that never blocks. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/ipc.h"
#include "common/log.h"
#include "access.h"
#include "actions.h"
#include "audit.h"
#include "chat_merges.h"
#include "placeholder.h"
#include "control.h"
#include "http_client.h"
#include "media.h"
#include "media_download.h"
#include "media_sweep.h"
#include "media_urlfetch.h"
#include "migrate.h"
#include "outbox.h"
#include "sdb.h"
#include "session.h"
#include "sup.h"
#include "webhooks.h"
#include "worker_table.h"

static pid_t migrate_pid;
static unsigned migrate_failures;
static struct event *migrate_timer, *tick_timer, *stop_timer;

/* key names the setting in errors: "listen" or "metrics.listen". */
static int open_listener(const char *key, const char *addr, const char *host, int port, char *err,
                         size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    const char *node = host[0] && strcmp(host, "*") ? host : NULL;
    int r = getaddrinfo(node, service, &hints, &res);
    if (r != 0) {
        snprintf(err, errlen, "%s %s: %s", key, addr, gai_strerror(r));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        snprintf(err, errlen, "%s %s: %s", key, addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int open_main_listener(const struct wapi_config *cfg, char *err, size_t errlen)
{
    return open_listener("listen", cfg->listen, cfg->listen_host, cfg->listen_port, err, errlen);
}

/* -1 with err empty when metrics.listen is not set (nothing to open). */
static int open_metrics_listener(const struct wapi_config *cfg, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!cfg->metrics.listen[0])
        return -1;
    return open_listener("metrics.listen", cfg->metrics.listen, cfg->metrics_host, cfg->metrics_port, err,
                         errlen);
}

static void start_migration(void);

static void on_migrate_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    start_migration();
}

/* Migrations block on the network, so they run in a child process; the loop
 * only learns the outcome from SIGCHLD. */
static void start_migration(void)
{
    if (S.migrated || migrate_pid > 0 || S.stopping)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork failed", LF_S("error", strerror(errno)));
        return;
    }
    if (pid == 0) {
        /* A fresh program (wapi --migrate, same options and environment),
         * not the forked image: threads of the supervisor (the media store's
         * scan, hashing) may have held a lock of the allocator or of a
         * library at fork time, which the child would wait on forever. */
        execv(S.self_exe, S.migrate_argv);
        log_warn("database migration failed", LF_S("error", "cannot run wapi --migrate"),
                 LF_S("why", strerror(errno)));
        _exit(1);
    }
    migrate_pid = pid;
}

static void on_migrate_exit(int status)
{
    migrate_pid = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        S.migrated = 1;
        migrate_failures = 0;
        log_info("database schema up to date", LF_I("version", migrations[n_migrations - 1].version));
        access_on_migrated();
        audit_kick();
        media_on_migrated();
        media_download_on_migrated();
        return;
    }
    migrate_failures++;
    unsigned delay = migrate_failures > 5 ? 30000 : 1000u << (migrate_failures - 1);
    if (delay > 30000)
        delay = 30000;
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(migrate_timer, &tv);
}

static void finish_stop(void)
{
    session_shutdown();
    control_close();
    log_info("stopped");
    exit(0);
}

static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (workers_alive()) {
        log_warn("workers still running at the deadline; killing them", LF_I("workers", workers_alive()));
        workers_signal_all(SIGKILL);
    }
    finish_stop();
}

static void sup_stop(enum sup_stopping how)
{
    if (S.stopping == STOP_FAST || S.stopping == how)
        return;
    S.stopping = how;
    if (S.listen_fd >= 0) {
        close(S.listen_fd); /* new connections go nowhere once the workers close theirs */
        S.listen_fd = -1;
    }
    if (S.metrics_listen_fd >= 0) {
        close(S.metrics_listen_fd);
        S.metrics_listen_fd = -1;
    }
    if (migrate_pid > 0)
        kill(migrate_pid, SIGTERM);
    struct timeval tv;
    if (how == STOP_GRACEFUL) {
        log_info("graceful stop", LF_I("timeout_s", S.cfg.shutdown_timeout));
        workers_drain_all();
        tv.tv_sec = S.cfg.shutdown_timeout;
        tv.tv_usec = 0;
    } else {
        log_info("fast stop");
        workers_signal_all(SIGINT);
        tv.tv_sec = 2;
        tv.tv_usec = 0;
    }
    evtimer_del(stop_timer);
    evtimer_add(stop_timer, &tv);
    if (!workers_alive())
        finish_stop();
}

static void set_config_text(void)
{
    struct sbuf b;
    sbuf_init(&b);
    config_serialize(&S.cfg, &b);
    free(S.config_text);
    S.config_text = sbuf_steal(&b);
}

static int sup_reload(char *err, size_t errlen)
{
    if (S.stopping) {
        snprintf(err, errlen, "stopping");
        return -1;
    }
    struct wapi_config next;
    if (config_load(&next, S.config_path, 1, CONFIG_WITH_ENV, err, errlen) < 0) {
        config_free(&next);
        log_error("reload refused: configuration invalid; keeping the one in force", LF_S("error", err));
        return -1;
    }
    /* A changed address is bound before anything is given up, so a failure
     * leaves both listeners as they were. */
    int new_listen = strcmp(next.listen, S.cfg.listen) != 0, lfd = -1;
    int new_metrics = strcmp(next.metrics.listen, S.cfg.metrics.listen) != 0, mfd = -1;
    if (new_listen && (lfd = open_main_listener(&next, err, errlen)) < 0) {
        config_free(&next);
        log_error("reload refused: cannot listen on the new address", LF_S("error", err));
        return -1;
    }
    if (new_metrics && (mfd = open_metrics_listener(&next, err, errlen)) < 0 && err[0]) {
        if (lfd >= 0)
            close(lfd);
        config_free(&next);
        log_error("reload refused: cannot listen on the new metrics address", LF_S("error", err));
        return -1;
    }
    if (new_listen) {
        close(S.listen_fd);
        S.listen_fd = lfd;
    }
    if (new_metrics) {
        if (S.metrics_listen_fd >= 0)
            close(S.metrics_listen_fd);
        S.metrics_listen_fd = mfd; /* -1 when metrics.listen became "" */
    }
    if (strcmp(next.log.level, S.cfg.log.level) != 0 || strcmp(next.log.file, S.cfg.log.file) != 0)
        log_init("supervisor", (enum log_level)log_level_parse(next.log.level), next.log.file);
    config_free(&S.cfg);
    S.cfg = next;
    set_config_text();
    S.generation++;
    S.want = config_workers(&S.cfg);
    log_info("configuration reloaded; starting a new worker generation", LF_I("generation", S.generation),
             LF_I("workers", S.want));
    workers_reconcile();
    return 0;
}

static void on_sigchld(void)
{
    int status;
    pid_t pid;
    /* PID 1 in a container inherits orphans: reap everything. */
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == migrate_pid)
            on_migrate_exit(status);
        else
            workers_on_exit(pid, status);
    }
    if (S.stopping && !workers_alive())
        finish_stop();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what, (void)arg;
    char err[512];
    switch (sig) {
    case SIGTERM:
    case SIGQUIT:
        sup_stop(STOP_GRACEFUL);
        break;
    case SIGINT:
        sup_stop(STOP_FAST);
        break;
    case SIGHUP:
        sup_reload(err, sizeof err);
        break;
    case SIGUSR1:
        log_reopen();
        workers_broadcast(IPC_REOPEN_LOGS);
        log_info("log files reopened");
        break;
    case SIGTTIN:
        if (S.want < MAX_WORKERS / 2)
            S.want++;
        log_info("worker count changed", LF_I("workers", S.want), LF_S("by", "SIGTTIN"));
        workers_reconcile();
        break;
    case SIGTTOU:
        if (S.want > 1)
            S.want--;
        log_info("worker count changed", LF_I("workers", S.want), LF_S("by", "SIGTTOU"));
        workers_reconcile();
        break;
    case SIGWINCH:
        log_info("stopping workers (SIGWINCH); SIGHUP starts them again");
        S.want = 0;
        workers_drain_all();
        break;
    case SIGCHLD:
        on_sigchld();
        break;
    }
}

static const int signal_table[] = {SIGTERM, SIGQUIT, SIGINT,   SIGHUP, SIGUSR1,
                                   SIGTTIN, SIGTTOU, SIGWINCH, SIGCHLD};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    workers_tick();
}

static void usage(void)
{
    fprintf(stderr, "usage: wapi [-c config] [-t] [--migrate] [--env-names] [-h]\n"
                    "  -c FILE      configuration file (default conf/wapi.conf, or $WAPI_CONFIG)\n"
                    "  -t           check the configuration and exit (0 valid, 2 invalid)\n"
                    "  --migrate    apply database migrations and exit\n"
                    "  --env-names  print every environment variable read, one per line\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"migrate", no_argument, 0, 'm'},
                                         {"env-names", no_argument, 0, 'e'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *path = getenv("WAPI_CONFIG");
    int test_only = 0, migrate_only = 0, c;
    while ((c = getopt_long(argc, argv, "c:th", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test_only = 1;
            break;
        case 'm':
            migrate_only = 1;
            break;
        case 'e':
            for (size_t i = 0; config_env_name(i); i++)
                printf("%s\n", config_env_name(i));
            return 0;
        case 'h':
            usage();
            return 0;
        default:
            usage();
            return 2;
        }
    }
    int optional = 0;
    if (!path) {
        path = "conf/wapi.conf";
        optional = 1; /* the defaults alone are a valid configuration */
    }
    log_init("supervisor", LOG_INFO, NULL);
    char err[1024];
    if (config_load(&S.cfg, path, optional, CONFIG_WITH_ENV, err, sizeof err) < 0) {
        log_error("configuration invalid", LF_S("error", err));
        return 2;
    }
    if (test_only) {
        fprintf(stderr, "configuration ok\n");
        return 0;
    }
    S.config_path = path;
    if (log_init("supervisor", (enum log_level)log_level_parse(S.cfg.log.level), S.cfg.log.file) < 0)
        fatal(2, "cannot open the log file", LF_S("file", S.cfg.log.file), LF_S("error", strerror(errno)));
    if (!S.cfg.database.url[0])
        fatal(2, "no database configured: set DATABASE_URL (or database.url)");
    if (migrate_only) {
        log_set_proc("migrate");
        int n = migrate_run(&S.cfg, err, sizeof err);
        if (n < 0)
            fatal(1, "database migration failed", LF_S("error", err));
        log_info("database schema up to date", LF_I("applied", n));
        return 0;
    }
    S.started_ms = now_ms();
    char exe[4000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        fatal(1, "cannot find my own executable");
    exe[n] = '\0';
    /* The migration child runs this program again with --migrate first. */
    snprintf(S.self_exe, sizeof S.self_exe, "%s", exe);
    S.migrate_argv = calloc((size_t)argc + 2, sizeof *S.migrate_argv);
    if (!S.migrate_argv)
        fatal(1, "out of memory");
    S.migrate_argv[0] = argv[0];
    S.migrate_argv[1] = "--migrate";
    for (int i = 1; i < argc; i++)
        S.migrate_argv[i + 1] = argv[i];
    char *slash = strrchr(exe, '/');
    *slash = '\0';
    snprintf(S.worker_bin, sizeof S.worker_bin, "%s/wapi-worker", exe);
    if (access(S.worker_bin, X_OK) != 0)
        fatal(1, "wapi-worker not found next to wapi", LF_S("path", S.worker_bin));
    if (mkdir_p(S.cfg.paths.run, 0700) < 0)
        fatal(1, "cannot create the run directory", LF_S("path", S.cfg.paths.run),
              LF_S("error", strerror(errno)));
    S.listen_fd = open_main_listener(&S.cfg, err, sizeof err);
    if (S.listen_fd < 0)
        fatal(1, "cannot listen", LF_S("error", err));
    S.metrics_listen_fd = open_metrics_listener(&S.cfg, err, sizeof err);
    if (S.metrics_listen_fd < 0 && err[0])
        fatal(1, "cannot listen for /metrics", LF_S("error", err));
    if ((S.metrics_fd = metrics_create(&S.shm)) < 0)
        fatal(1, "cannot create the metrics region", LF_S("error", strerror(errno)));
    set_config_text();
    S.generation = 1;
    S.want = config_workers(&S.cfg);

    S.base = event_base_new();
    if (!S.base)
        fatal(1, "cannot create the event loop");
    for (size_t i = 0; i < sizeof signal_table / sizeof signal_table[0]; i++) {
        struct event *ev = evsignal_new(S.base, signal_table[i], on_signal, NULL);
        if (!ev || evsignal_add(ev, NULL) < 0)
            fatal(1, "cannot install a signal handler");
    }
    signal(SIGPIPE, SIG_IGN);
    static const struct control_ops ops = {sup_reload};
    if (control_open(S.cfg.paths.run, &ops) < 0)
        fatal(1, "cannot open the control socket", LF_S("dir", S.cfg.paths.run),
              LF_S("error", strerror(errno)));
    migrate_timer = evtimer_new(S.base, on_migrate_timer, NULL);
    stop_timer = evtimer_new(S.base, on_stop_timer, NULL);
    tick_timer = event_new(S.base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval sec = {1, 0};
    evtimer_add(tick_timer, &sec);

    log_info("starting", LF_S("listen", S.cfg.listen), LF_S("metrics_listen", S.cfg.metrics.listen),
             LF_I("workers", S.want), LF_S("environment", S.cfg.environment));
    /* What workers may ask, and who answers. */
    static const struct {
        uint32_t type;
        worker_msg_fn fn;
    } handlers[] = {
        {IPC_SESSION_GET, session_ipc},   {IPC_SESSION_CMD, session_ipc},
        {IPC_QR_GET, session_ipc},        {IPC_EVENTS_SINCE, session_ipc},
        {IPC_ACTION, actions_ipc},        {IPC_OUTBOX_KICK, outbox_ipc_kick},
        {IPC_AUDIT_KICK, audit_ipc_kick}, {IPC_DOWNLOAD_KICK, media_download_ipc_kick},
    };
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        workers_handle(handlers[i].type, handlers[i].fn);
    workers_init();
    static struct db_params sdb_params;
    db_params_init(&sdb_params, &S.cfg, "wapi-supervisor");
    sdb_init(S.base, &sdb_params, 2);
    /* Media uploads and downloads; before any thread exists (libcurl's global set-up). */
    if (http_client_init(S.base) < 0)
        fatal(1, "cannot set up the HTTP client");
    session_init();
    webhooks_init();
    audit_init();
    chat_merges_init();
    placeholder_init();
    media_init(); /* registers its own IPC handlers (they pass descriptors) */
    media_urlfetch_init();
    media_sweep_init();
    start_migration();
    workers_reconcile();
    session_autostart();
    event_base_dispatch(S.base);
    return 0;
}
