/* wapictl doctor: is this installation ready to go live? One line per
 * check, "ok" or what is wrong and what to do; exit 1 when any check
 * fails. Network checks go through whatsapp.proxy when it is set (libcurl
 * does the proxy, the TLS and its verification as the server does). */
#include "doctor.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/db_params.h"
#include "common/proxy_url.h"
#include "ctl_sock.h"
#include "supervisor/migrate.h"

#define NET_TIMEOUT_S 10L
#define MAX_SKEW_S 30
#define MIN_FREE_BYTES (200LL << 20)

static int failures;

static void line(int ok, const char *check, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void line(int ok, const char *check, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("%-4s %-15s %s\n", ok > 0 ? "ok" : ok == 0 ? "FAIL" : "warn", check, msg);
    if (ok == 0)
        failures++;
}

/* host and port of a ws:// or wss:// URL; tls set for wss. */
static int url_host(const char *url, char *host, size_t hl, int *port, int *tls)
{
    const char *p = !strncmp(url, "wss://", 6) ? url + 6 : !strncmp(url, "ws://", 5) ? url + 5 : NULL;
    if (!p)
        return -1;
    *tls = url[2] == 's';
    *port = *tls ? 443 : 80;
    size_t n = strcspn(p, "/:");
    if (!n || n >= hl)
        return -1;
    memcpy(host, p, n);
    host[n] = '\0';
    if (p[n] == ':')
        *port = atoi(p + n + 1);
    return *port > 0 && *port < 65536 ? 0 : -1;
}

static size_t on_header(char *b, size_t size, size_t n, void *arg)
{
    time_t *date = arg;
    size_t len = size * n;
    if (len > 5 && !strncasecmp(b, "Date:", 5)) {
        char v[64];
        size_t k = len - 5 < sizeof v - 1 ? len - 5 : sizeof v - 1;
        memcpy(v, b + 5, k);
        v[k] = '\0';
        *date = curl_getdate(v, NULL);
    }
    return len;
}

static size_t on_body(char *b, size_t size, size_t n, void *arg)
{
    (void)b, (void)arg;
    return size * n;
}

/* TCP (and TLS) to host:port, through the proxy when set; with date, an
 * HTTPS HEAD whose Date header is kept. 0 ok, else err filled. */
static int reach(const struct wapi_config *cfg, const char *host, int port, int tls, time_t *date, double *ms,
                 char *err, size_t errlen)
{
    CURL *e = curl_easy_init();
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char url[600], ebuf[CURL_ERROR_SIZE] = "";
    int v6 = strchr(host, ':') != NULL;
    snprintf(url, sizeof url, "%s://%s%s%s:%d/", tls ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "",
             port);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, NET_TIMEOUT_S);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 2 * NET_TIMEOUT_S);
    const char *cafile = getenv("SSL_CERT_FILE"), *cadir = getenv("SSL_CERT_DIR");
    if (cafile && *cafile)
        curl_easy_setopt(e, CURLOPT_CAINFO, cafile);
    if (cadir && *cadir)
        curl_easy_setopt(e, CURLOPT_CAPATH, cadir);
    if (cfg->whatsapp.proxy[0])
        curl_easy_setopt(e, CURLOPT_PROXY, cfg->whatsapp.proxy);
    if (date) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, date);
    } else {
        curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    CURLcode rc = curl_easy_perform(e);
    double t = 0;
    curl_easy_getinfo(e, tls ? CURLINFO_APPCONNECT_TIME : CURLINFO_CONNECT_TIME, &t);
    *ms = t * 1000;
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

static void check_network(const struct wapi_config *cfg)
{
    char host[256], err[CURL_ERROR_SIZE + 64];
    int port, tls;
    struct proxy_url px;
    char pname[320] = "";
    proxy_url_parse(cfg->whatsapp.proxy, &px, err, sizeof err); /* checked when the config loaded */
    if (px.kind != PROXY_NONE)
        proxy_url_redacted(&px, pname, sizeof pname);
    if (url_host(cfg->whatsapp.url, host, sizeof host, &port, &tls) < 0) {
        line(0, "endpoint", "whatsapp.url \"%s\" is no ws:// or wss:// URL", cfg->whatsapp.url);
        return;
    }
    if (px.kind == PROXY_SOCKS5H || px.kind == PROXY_HTTP) {
        line(1, "dns", "%s is resolved by the proxy %s", host, pname);
    } else {
        struct addrinfo hints = {0}, *ai = NULL;
        hints.ai_socktype = SOCK_STREAM;
        int g = getaddrinfo(host, NULL, &hints, &ai);
        if (g)
            line(0, "dns", "cannot resolve %s: %s — check the pod's DNS (or use a socks5h:// proxy)", host,
                 gai_strerror(g));
        else
            line(1, "dns", "%s resolves", host);
        if (ai)
            freeaddrinfo(ai);
    }
    double ms = 0;
    if (reach(cfg, host, port, tls, NULL, &ms, err, sizeof err) < 0)
        line(0, "endpoint", "%s:%d: %s%s%s — check egress (NetworkPolicy, firewall)%s", host, port, err,
             pname[0] ? " through " : "", pname, tls ? " and the CA store" : "");
    else
        line(1, "endpoint", "%s %s:%d in %.0f ms%s%s", tls ? "TLS to" : "TCP to", host, port, ms,
             pname[0] ? " through " : "", pname);
    /* The media hosts: WhatsApp names them in media_conn; mmg.whatsapp.net
     * is always among them. Only checked against the real service. */
    if (!strcmp(host, "web.whatsapp.com")) {
        if (reach(cfg, "mmg.whatsapp.net", 443, 1, NULL, &ms, err, sizeof err) < 0)
            line(0, "media-hosts", "mmg.whatsapp.net:443: %s — media uploads and downloads will fail", err);
        else
            line(1, "media-hosts", "TLS to mmg.whatsapp.net:443 in %.0f ms", ms);
    } else {
        line(-1, "media-hosts", "not checked: whatsapp.url is not WhatsApp's (%s)", host);
    }
    time_t date = 0;
    if (tls && reach(cfg, host, port, 1, &date, &ms, err, sizeof err) == 0 && date > 0) {
        long skew = (long)(time(NULL) - date);
        if (labs(skew) > MAX_SKEW_S)
            line(0, "clock",
                 "%+ld s from %s's clock — fix the node's time (NTP): login and pairing fail on a "
                 "wrong clock",
                 skew, host);
        else
            line(1, "clock", "%+ld s from %s's clock", skew, host);
    } else {
        line(-1, "clock", "not compared (no HTTPS Date from %s)", host);
    }
}

static void check_dir(const char *what, const char *path, int need_private)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        line(errno == ENOENT ? -1 : 0, what, "%s: %s%s", path, strerror(errno),
             errno == ENOENT ? " (made at the first start)" : "");
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        line(0, what, "%s is not a folder", path);
        return;
    }
    if (access(path, R_OK | W_OK | X_OK) < 0) {
        line(0, what, "%s is not writable by uid %d — fix the volume's ownership (fsGroup)", path,
             (int)getuid());
        return;
    }
    struct statvfs vfs;
    if (statvfs(path, &vfs) == 0) {
        long long avail = (long long)vfs.f_bavail * (long long)vfs.f_frsize;
        long long total = (long long)vfs.f_blocks * (long long)vfs.f_frsize;
        int low = avail < MIN_FREE_BYTES || (total > 0 && avail * 20 < total);
        line(!low, what, "%s: %.1f GiB free of %.1f GiB%s%s", path, avail / 1073741824.0,
             total / 1073741824.0,
             need_private && (st.st_mode & 077) ? "; readable by others (want 0700)" : "",
             low ? " — grow the volume or free space" : "");
    }
}

static void check_sessions(const struct wapi_config *cfg)
{
    check_dir("session-volume", cfg->paths.sessions, 1);
    char p[4200];
    snprintf(p, sizeof p, "%s/creds.bin", cfg->paths.sessions);
    struct stat st;
    if (stat(p, &st) < 0)
        line(-1, "session-store", "not linked yet (no creds.bin): scan the QR code or use a pairing code");
    else if (st.st_mode & 077)
        line(0, "session-store", "%s is readable by others — chmod 600 (it holds the account's keys)", p);
    else if (access(p, R_OK) < 0)
        line(0, "session-store", "%s is not readable by uid %d", p, (int)getuid());
    else
        line(1, "session-store", "linked (creds.bin, %lld bytes, private)", (long long)st.st_size);
    check_dir("media-volume", cfg->paths.media, 0);
}

static void check_database(const struct wapi_config *cfg)
{
    struct db_params dp;
    db_params_init(&dp, cfg, "wapictl-doctor");
    PGconn *c = PQconnectdbParams(dp.keys, dp.values, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        msg[strcspn(msg, "\n")] = '\0';
        line(0, "database", "cannot connect: %s — check DATABASE_URL", msg);
        PQfinish(c);
        return;
    }
    line(1, "database", "connected (PostgreSQL %d.%d)", PQserverVersion(c) / 10000,
         PQserverVersion(c) % 10000);
    int want = migrations[n_migrations - 1].version;
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM wapi_schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        line(0, "migrations", "none applied yet — start wapi (it migrates at start) or run wapi --migrate");
    else if (atoi(PQgetvalue(r, 0, 0)) < want)
        line(0, "migrations", "at %s, this build needs %d — start wapi (it migrates at start)",
             PQgetvalue(r, 0, 0), want);
    else
        line(1, "migrations", "up to date (%d)", want);
    PQclear(r);
    PQfinish(c);
}

/* The running server's view, when there is one. */
static void check_server(const struct wapi_config *cfg, const char *sock)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(path, sizeof path, "%s", sock ? sock : "");
    if (!sock)
        snprintf(path, sizeof path, "%s/wapi.sock", cfg->paths.run);
    int fd = ctl_connect(path);
    if (fd < 0) {
        line(-1, "server", "not running (%s)", path);
        return;
    }
    char buf[8192];
    size_t total = 0;
    ssize_t r;
    if (write(fd, "session status\n", 15) == 15)
        while (total < sizeof buf - 1 && (r = read(fd, buf + total, sizeof buf - 1 - total)) > 0)
            total += (size_t)r;
    close(fd);
    buf[total] = '\0';
    const char *st = strstr(buf, "\"state\":\"");
    char state[32] = "?";
    if (st)
        sscanf(st + 9, "%31[^\"]", state);
    static const struct {
        const char *state, *advice;
    } advice[] = {
        {"outdated",
         "WhatsApp refuses whatsapp.version: set WAPI_WHATSAPP_VERSION to the current web version"},
        {"banned", "the number is banned by WhatsApp; nothing here can undo it"},
        {"logged_out", "the phone removed this device: link again (QR or pairing code)"},
        {"locked", "another wapi holds this session in the database: run one pod per number (Recreate)"},
    };
    for (size_t i = 0; i < sizeof advice / sizeof *advice; i++)
        if (!strcmp(state, advice[i].state)) {
            line(0, "session", "%s — %s", state, advice[i].advice);
            return;
        }
    line(!strcmp(state, "connected") ? 1 : -1, "session", "%s (running, whatsapp.version %s)", state,
         cfg->whatsapp.version);
}

int ctl_doctor(const char *config_path, const char *sock, int argc, char **argv)
{
    (void)argv;
    if (argc > 0) {
        fprintf(stderr, "usage: wapictl doctor\n");
        return 2;
    }
    struct wapi_config cfg;
    char err[1024];
    if (config_load(&cfg, config_path ? config_path : "conf/wapi.conf", config_path == NULL, CONFIG_WITH_ENV,
                    err, sizeof err) < 0) {
        printf("FAIL %-15s %s\n", "config", err);
        return 1;
    }
    line(1, "config", "loaded (%s)", cfg.environment);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    check_network(&cfg);
    check_sessions(&cfg);
    check_database(&cfg);
    check_server(&cfg, sock);
    curl_global_cleanup();
    config_free(&cfg);
    printf("%s\n", failures ? "doctor: something needs fixing (FAIL lines above)" : "doctor: ready");
    return failures ? 1 : 0;
}
