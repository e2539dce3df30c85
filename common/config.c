#include "config.h"
#include "proxy_url.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum ktype { K_STR, K_INT, K_I64, K_BOOL, K_ENUM, K_LIST, K_WORKERS, K_ADDR };

struct key {
    const char *path; /* "section.key" */
    const char *env;
    enum ktype type;
    size_t off;
    const char *def;
    long long min, max;         /* K_INT, K_I64, K_WORKERS */
    const char *const *choices; /* K_ENUM */
};

static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const registrations[] = {"open", "invite", "closed", NULL};
static const char *const environments[] = {"development", "production", "test", NULL};
static const char *const presences[] = {"unavailable", "available", NULL};
static const char *const histories[] = {"off", "recent", "full", NULL};

#define O(f) offsetof(struct wapi_config, f)
/* Sections stay contiguous: config_serialize() opens a group per run. */
static const struct key keys[] = {
    {"listen", "WAPI_LISTEN", K_STR, O(listen), "0.0.0.0:3000", 0, 0, NULL},
    {"workers", "WAPI_WORKERS", K_WORKERS, O(workers), "auto", 1, 64, NULL},
    {"shutdown_timeout", "WAPI_SHUTDOWN_TIMEOUT", K_INT, O(shutdown_timeout), "25", 1, 3600, NULL},
    {"base_url", "BETTER_AUTH_URL", K_STR, O(base_url), "http://localhost:3000", 0, 0, NULL},
    {"secret", "BETTER_AUTH_SECRET", K_STR, O(secret), "", 0, 0, NULL},
    {"environment", "NODE_ENV", K_ENUM, O(environment), "development", 0, 0, environments},
    {"database.url", "DATABASE_URL", K_STR, O(database.url), "", 0, 0, NULL},
    {"database.password", "DATABASE_AUTH_TOKEN", K_STR, O(database.password), "", 0, 0, NULL},
    {"database.pool", "WAPI_DATABASE_POOL", K_INT, O(database.pool), "4", 1, 64, NULL},
    {"paths.sessions", "WAPI_PATHS_SESSIONS", K_STR, O(paths.sessions), "var/sessions", 0, 0, NULL},
    {"paths.media", "WAPI_PATHS_MEDIA", K_STR, O(paths.media), "var/media", 0, 0, NULL},
    {"paths.run", "WAPI_PATHS_RUN", K_STR, O(paths.run), "var/run", 0, 0, NULL},
    {"log.level", "WAPI_LOG_LEVEL", K_ENUM, O(log.level), "info", 0, 0, levels},
    {"log.file", "WAPI_LOG_FILE", K_STR, O(log.file), "", 0, 0, NULL},
    {"auth.registration", "WAPI_AUTH_REGISTRATION", K_ENUM, O(auth.registration), "invite", 0, 0,
     registrations},
    {"auth.trusted_origins", "WAPI_AUTH_TRUSTED_ORIGINS", K_LIST, O(auth.trusted_origins), "", 0, 0, NULL},
    {"http.max_connections", "WAPI_HTTP_MAX_CONNECTIONS", K_INT, O(http.max_connections), "4096", 1, 1000000,
     NULL},
    {"http.max_header_size", "WAPI_HTTP_MAX_HEADER_SIZE", K_INT, O(http.max_header_size), "16384", 1024,
     262144, NULL},
    {"http.max_body_size", "WAPI_HTTP_MAX_BODY_SIZE", K_INT, O(http.max_body_size), "16777216", 1024,
     1073741824, NULL},
    {"http.idle_timeout", "WAPI_HTTP_IDLE_TIMEOUT", K_INT, O(http.idle_timeout), "60", 1, 3600, NULL},
    {"http.request_timeout", "WAPI_HTTP_REQUEST_TIMEOUT", K_INT, O(http.request_timeout), "15", 1, 3600,
     NULL},
    {"whatsapp.url", "WAPI_WHATSAPP_URL", K_STR, O(whatsapp.url), "wss://web.whatsapp.com/ws/chat", 0, 0,
     NULL},
    {"whatsapp.origin", "WAPI_WHATSAPP_ORIGIN", K_STR, O(whatsapp.origin), "https://web.whatsapp.com", 0, 0,
     NULL},
    {"whatsapp.root_key", "WAPI_WHATSAPP_ROOT_KEY", K_STR, O(whatsapp.root_key),
     "142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b", 0, 0, NULL},
    {"whatsapp.version", "WAPI_WHATSAPP_VERSION", K_STR, O(whatsapp.version), "2.3000.1045649367", 0, 0,
     NULL},
    {"whatsapp.autostart", "WAPI_WHATSAPP_AUTOSTART", K_BOOL, O(whatsapp.autostart), "true", 0, 0, NULL},
    {"whatsapp.proxy", "WAPI_WHATSAPP_PROXY", K_STR, O(whatsapp.proxy), "", 0, 0, NULL},
    {"whatsapp.presence", "WAPI_WHATSAPP_PRESENCE", K_ENUM, O(whatsapp.presence), "unavailable", 0, 0,
     presences},
    {"whatsapp.reject_calls", "WAPI_WHATSAPP_REJECT_CALLS", K_BOOL, O(whatsapp.reject_calls), "false", 0, 0,
     NULL},
    {"whatsapp.history", "WAPI_WHATSAPP_HISTORY", K_ENUM, O(whatsapp.history), "recent", 0, 0, histories},
    {"whatsapp.retry_wait_seconds", "WAPI_WHATSAPP_RETRY_WAIT_SECONDS", K_INT, O(whatsapp.retry_wait_seconds),
     "60", 1, 86400, NULL},
    {"webhooks.proxy", "WAPI_WEBHOOKS_PROXY", K_STR, O(webhooks.proxy), "", 0, 0, NULL},
    {"webhooks.allow_private", "WAPI_WEBHOOKS_ALLOW_PRIVATE", K_BOOL, O(webhooks.allow_private), "false", 0,
     0, NULL},
    {"webhooks.max_attempts", "WAPI_WEBHOOKS_MAX_ATTEMPTS", K_INT, O(webhooks.max_attempts), "8", 1, 50,
     NULL},
    {"webhooks.retry_base_ms", "WAPI_WEBHOOKS_RETRY_BASE_MS", K_INT, O(webhooks.retry_base_ms), "5000", 10,
     3600000, NULL},
    {"webhooks.timeout_ms", "WAPI_WEBHOOKS_TIMEOUT_MS", K_INT, O(webhooks.timeout_ms), "10000", 100, 120000,
     NULL},
    {"metrics.listen", "WAPI_METRICS_LISTEN", K_ADDR, O(metrics.listen), "", 0, 0, NULL},
    {"sending.rate_per_minute", "WAPI_SENDING_RATE_PER_MINUTE", K_INT, O(sending.rate_per_minute), "0", 0,
     60000, NULL},
    {"sending.min_gap_per_chat_ms", "WAPI_SENDING_MIN_GAP_PER_CHAT_MS", K_INT, O(sending.min_gap_per_chat_ms),
     "0", 0, 3600000, NULL},
    {"sending.typing", "WAPI_SENDING_TYPING", K_BOOL, O(sending.typing), "false", 0, 0, NULL},
    {"media.max_upload_bytes", "WAPI_MEDIA_MAX_UPLOAD_BYTES", K_INT, O(media.max_upload_bytes), "67108864", 1,
     1073741824, NULL},
    {"media.max_store_bytes", "WAPI_MEDIA_MAX_STORE_BYTES", K_I64, O(media.max_store_bytes), "0", 0,
     (long long)1 << 50, NULL},
    {"media.retention_days", "WAPI_MEDIA_RETENTION_DAYS", K_INT, O(media.retention_days), "0", 0, 36500,
     NULL},
    {"media.url_ttl_seconds", "WAPI_MEDIA_URL_TTL_SECONDS", K_INT, O(media.url_ttl_seconds), "86400", 60,
     31536000, NULL},
    {"media.auto_download", "WAPI_MEDIA_AUTO_DOWNLOAD", K_LIST, O(media.auto_download),
     "image,video,audio,voice,document,sticker", 0, 0, NULL},
    {"media.max_download_bytes", "WAPI_MEDIA_MAX_DOWNLOAD_BYTES", K_I64, O(media.max_download_bytes),
     "67108864", 1, (long long)1 << 31, NULL},
};
#undef O
#define NKEYS (sizeof keys / sizeof keys[0])

const char *config_env_name(size_t i)
{
    if (i < NKEYS)
        return keys[i].env;
    if (i == NKEYS)
        return "PORT";
    return NULL;
}

static char **str_at(struct wapi_config *cfg, const struct key *k)
{
    return (char **)((char *)cfg + k->off);
}

static int *int_at(struct wapi_config *cfg, const struct key *k)
{
    return (int *)((char *)cfg + k->off);
}

static long long *i64_at(struct wapi_config *cfg, const struct key *k)
{
    return (long long *)((char *)cfg + k->off);
}

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const struct key *find_key(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

/* What a key accepts, for error messages. */
static void expectation(const struct key *k, char *buf, size_t len)
{
    switch (k->type) {
    case K_STR:
        snprintf(buf, len, "a string");
        break;
    case K_INT:
    case K_I64:
        snprintf(buf, len, "an integer %lld..%lld", k->min, k->max);
        break;
    case K_BOOL:
        snprintf(buf, len, "true or false");
        break;
    case K_LIST:
        snprintf(buf, len, "a list of strings");
        break;
    case K_WORKERS:
        snprintf(buf, len, "\"auto\" or an integer %lld..%lld", k->min, k->max);
        break;
    case K_ADDR:
        snprintf(buf, len, "\"host:port\" with a port 1..65535, or \"\" for none");
        break;
    case K_ENUM: {
        size_t o = (size_t)snprintf(buf, len, "one of");
        for (const char *const *c = k->choices; *c && o < len; c++)
            o += (size_t)snprintf(buf + o, len - o, " \"%s\"", *c);
        break;
    }
    }
}

static int parse_i64(const char *s, long long min, long long max, long long *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, long long min, long long max, int *out)
{
    long long v;
    if (parse_i64(s, min, max, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int set_str(char **slot, const char *v)
{
    char *d = strdup(v);
    if (!d)
        return -1;
    free(*slot);
    *slot = d;
    return 0;
}

/* "host:port" or "[v6]:port" into host (brackets dropped) and port. */
static int split_hostport(const char *l, char *host, size_t hostlen, int *port)
{
    const char *colon;
    if (l[0] == '[') {
        const char *rb = strchr(l, ']');
        colon = rb && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = strrchr(l, ':');
    }
    size_t hlen = colon ? (size_t)(colon - l) : 0;
    if (!colon || hlen >= hostlen || parse_int(colon + 1, 1, 65535, port) < 0)
        return -1;
    if (l[0] == '[')
        snprintf(host, hostlen, "%.*s", (int)(hlen - 2), l + 1);
    else
        snprintf(host, hostlen, "%.*s", (int)hlen, l);
    return 0;
}

/* Sets a key from its text form (defaults and the environment). */
static int set_from_text(struct wapi_config *cfg, const struct key *k, const char *v)
{
    switch (k->type) {
    case K_STR:
        return set_str(str_at(cfg, k), v);
    case K_ADDR: {
        char host[256];
        int port;
        if (*v && split_hostport(v, host, sizeof host, &port) < 0)
            return -1;
        return set_str(str_at(cfg, k), v);
    }
    case K_INT:
        return parse_int(v, k->min, k->max, int_at(cfg, k));
    case K_I64:
        return parse_i64(v, k->min, k->max, i64_at(cfg, k));
    case K_WORKERS:
        if (strcmp(v, "auto") == 0) {
            *int_at(cfg, k) = 0;
            return 0;
        }
        return parse_int(v, k->min, k->max, int_at(cfg, k));
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
            *int_at(cfg, k) = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
            *int_at(cfg, k) = 0;
        else
            return -1;
        return 0;
    case K_ENUM:
        for (const char *const *c = k->choices; *c; c++)
            if (strcmp(*c, v) == 0)
                return set_str(str_at(cfg, k), v);
        return -1;
    case K_LIST: {
        /* Normalise "a, b ,c" to "a,b,c"; commas cannot appear inside an origin. */
        size_t n = strlen(v);
        char *d = malloc(n + 1), *o = d;
        if (!d)
            return -1;
        const char *p = v;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            const char *s = p;
            while (*p && *p != ',')
                p++;
            const char *e = p;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e > s) {
                if (o != d)
                    *o++ = ',';
                memcpy(o, s, (size_t)(e - s));
                o += e - s;
            }
        }
        *o = '\0';
        free(*str_at(cfg, k));
        *str_at(cfg, k) = d;
        return 0;
    }
    }
    return -1;
}

/* A value for the key from a libconfig setting; -1 when the type is wrong. */
static int set_from_setting(struct wapi_config *cfg, const struct key *k, config_setting_t *s)
{
    int t = config_setting_type(s);
    char num[32];
    switch (k->type) {
    case K_STR:
    case K_ENUM:
    case K_ADDR:
        if (t != CONFIG_TYPE_STRING)
            return -1;
        return set_from_text(cfg, k, config_setting_get_string(s));
    case K_INT:
    case K_I64:
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return -1;
        snprintf(num, sizeof num, "%lld", config_setting_get_int64(s));
        return set_from_text(cfg, k, num);
    case K_WORKERS:
        if (t == CONFIG_TYPE_STRING)
            return strcmp(config_setting_get_string(s), "auto") == 0 ? set_from_text(cfg, k, "auto") : -1;
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return -1;
        snprintf(num, sizeof num, "%lld", config_setting_get_int64(s));
        return set_from_text(cfg, k, num);
    case K_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return -1;
        *int_at(cfg, k) = config_setting_get_bool(s);
        return 0;
    case K_LIST: {
        if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY)
            return -1;
        struct sbuf b;
        sbuf_init(&b);
        int n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
            config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            const char *v =
                e && config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;
            if (!v || strchr(v, ',') || !*v) {
                sbuf_free(&b);
                return -1;
            }
            if (i)
                sbuf_addc(&b, ',');
            sbuf_adds(&b, v);
        }
        char *d = sbuf_steal(&b);
        free(*str_at(cfg, k));
        *str_at(cfg, k) = d;
        return 0;
    }
    }
    return -1;
}

static int walk(struct wapi_config *cfg, config_setting_t *group, const char *prefix, const char *file,
                char *err, size_t errlen)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);
        char path[128];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name ? name : "?");
        int line = (int)config_setting_source_line(s);
        if (config_setting_type(s) == CONFIG_TYPE_GROUP) {
            if (*prefix) {
                errf(err, errlen, "%s:%d: %s: unknown section (sections nest one level)", file, line, path);
                return -1;
            }
            int known = 0;
            for (size_t j = 0; j < NKEYS; j++)
                if (strncmp(keys[j].path, path, strlen(path)) == 0 && keys[j].path[strlen(path)] == '.')
                    known = 1;
            if (!known) {
                errf(err, errlen, "%s:%d: %s: unknown section", file, line, path);
                return -1;
            }
            if (walk(cfg, s, path, file, err, errlen) < 0)
                return -1;
            continue;
        }
        const struct key *k = find_key(path);
        if (!k) {
            errf(err, errlen, "%s:%d: %s: unknown key", file, line, path);
            return -1;
        }
        if (set_from_setting(cfg, k, s) < 0) {
            char exp[160];
            expectation(k, exp, sizeof exp);
            errf(err, errlen, "%s:%d: %s: expected %s", file, line, path, exp);
            return -1;
        }
    }
    return 0;
}

/* NAME_FILE: the value is the file's content without the trailing newline. */
static char *read_value_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(65537);
    ssize_t total = 0, n;
    while (buf && total < 65536 && (n = read(fd, buf + total, (size_t)(65536 - total))) > 0)
        total += n;
    close(fd);
    if (!buf)
        return NULL;
    buf[total] = '\0';
    while (total > 0 && (buf[total - 1] == '\n' || buf[total - 1] == '\r'))
        buf[--total] = '\0';
    return buf;
}

/* Reads NAME or NAME_FILE: 1 found (*out owned by caller), 0 absent, -1 error. */
static int env_value(const char *name, char **out, char *err, size_t errlen)
{
    char fname[96];
    snprintf(fname, sizeof fname, "%s_FILE", name);
    const char *v = getenv(name), *f = getenv(fname);
    if (v && f) {
        errf(err, errlen, "environment: both %s and %s are set; use one", name, fname);
        return -1;
    }
    if (f) {
        *out = read_value_file(f);
        if (!*out) {
            errf(err, errlen, "environment %s: cannot read %s: %s", fname, f, strerror(errno));
            return -1;
        }
        return 1;
    }
    if (!v)
        return 0;
    *out = strdup(v);
    return *out ? 1 : -1;
}

static int is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* A host that binds every address, so it collides with any other on the same port. */
static int any_host(const char *h)
{
    return !*h || !strcmp(h, "*") || !strcmp(h, "0.0.0.0") || !strcmp(h, "::");
}

/* Cross-key checks and derived values, after every layer is applied. */
static int finish(struct wapi_config *cfg, enum config_source src, char *err, size_t errlen)
{
    if (split_hostport(cfg->listen, cfg->listen_host, sizeof cfg->listen_host, &cfg->listen_port) < 0) {
        errf(err, errlen, "listen: expected \"host:port\" with a port 1..65535, got \"%s\"", cfg->listen);
        return -1;
    }
    if (src == CONFIG_WITH_ENV) {
        char *port = NULL;
        int r = env_value("PORT", &port, err, errlen);
        if (r < 0)
            return -1;
        if (r > 0) {
            int p;
            int bad = parse_int(port, 1, 65535, &p) < 0;
            free(port);
            if (bad) {
                errf(err, errlen, "environment PORT: expected an integer 1..65535");
                return -1;
            }
            cfg->listen_port = p;
            char buf[300];
            snprintf(buf, sizeof buf, strchr(cfg->listen_host, ':') ? "[%s]:%d" : "%s:%d", cfg->listen_host,
                     p);
            if (set_str(&cfg->listen, buf) < 0)
                return -1;
        }
    }
    cfg->metrics_host[0] = '\0';
    cfg->metrics_port = 0;
    if (cfg->metrics.listen[0]) {
        /* Valid: checked when the key was set. */
        split_hostport(cfg->metrics.listen, cfg->metrics_host, sizeof cfg->metrics_host, &cfg->metrics_port);
        if (cfg->metrics_port == cfg->listen_port &&
            (!strcmp(cfg->metrics_host, cfg->listen_host) || any_host(cfg->metrics_host) ||
             any_host(cfg->listen_host))) {
            errf(err, errlen, "metrics.listen (WAPI_METRICS_LISTEN): \"%s\" takes the port of listen \"%s\"",
                 cfg->metrics.listen, cfg->listen);
            return -1;
        }
    }
    if (strncmp(cfg->base_url, "http://", 7) && strncmp(cfg->base_url, "https://", 8)) {
        errf(err, errlen, "base_url (BETTER_AUTH_URL): expected an http:// or https:// URL, got \"%s\"",
             cfg->base_url);
        return -1;
    }
    if (!is_hex(cfg->whatsapp.root_key, 64)) {
        errf(err, errlen, "whatsapp.root_key (WAPI_WHATSAPP_ROOT_KEY): expected 64 hex digits");
        return -1;
    }
    unsigned a, b;
    unsigned long long c;
    char tail;
    if (sscanf(cfg->whatsapp.version, "%u.%u.%llu%c", &a, &b, &c, &tail) != 3) {
        errf(err, errlen, "whatsapp.version (WAPI_WHATSAPP_VERSION): expected \"2.3000.N\", got \"%s\"",
             cfg->whatsapp.version);
        return -1;
    }
    struct proxy_url px;
    char perr[200];
    if (proxy_url_parse(cfg->whatsapp.proxy, &px, perr, sizeof perr) < 0) {
        errf(err, errlen, "whatsapp.proxy (WAPI_WHATSAPP_PROXY): %s", perr);
        return -1;
    }
    if (proxy_url_parse(cfg->webhooks.proxy, &px, perr, sizeof perr) < 0) {
        errf(err, errlen, "webhooks.proxy (WAPI_WEBHOOKS_PROXY): %s", perr);
        return -1;
    }
    /* The kinds of received media downloaded without being asked. */
    static const char *const kinds[] = {"image", "video", "audio", "voice", "document", "sticker"};
    for (const char *p = cfg->media.auto_download; *p;) {
        size_t n = strcspn(p, ",");
        size_t i = 0;
        while (i < sizeof kinds / sizeof kinds[0] && (strlen(kinds[i]) != n || strncmp(kinds[i], p, n)))
            i++;
        if (i == sizeof kinds / sizeof kinds[0]) {
            errf(err, errlen,
                 "media.auto_download (WAPI_MEDIA_AUTO_DOWNLOAD): \"%.*s\" is no media kind; expected a list "
                 "of image, video, audio, voice, document, sticker (empty: none)",
                 (int)(n > 40 ? 40 : n), p);
            return -1;
        }
        p += n + (p[n] == ',');
    }
    cfg->production = strcmp(cfg->environment, "production") == 0;
    if (cfg->production && strlen(cfg->secret) < 32) {
        errf(err, errlen,
             "secret (BETTER_AUTH_SECRET): production (NODE_ENV=production) needs a secret of at least 32 "
             "characters; generate one with: openssl rand -base64 32");
        return -1;
    }
    return 0;
}

static void defaults(struct wapi_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++)
        if (set_from_text(cfg, &keys[i], keys[i].def) < 0)
            abort(); /* a bad default is a programming error caught by the unit tests */
}

static int load_file(struct wapi_config *cfg, const char *path, const char *text, char *err, size_t errlen)
{
    config_t lc;
    config_init(&lc);
    int ok = text ? config_read_string(&lc, text) : config_read_file(&lc, path);
    if (ok != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        else
            errf(err, errlen, "%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : path,
                 config_error_line(&lc), config_error_text(&lc));
        config_destroy(&lc);
        return -1;
    }
    int r = walk(cfg, config_root_setting(&lc), "", path, err, errlen);
    config_destroy(&lc);
    return r;
}

int config_load(struct wapi_config *cfg, const char *path, int optional, enum config_source src, char *err,
                size_t errlen)
{
    defaults(cfg);
    if (path && !(optional && access(path, F_OK) != 0))
        if (load_file(cfg, path, NULL, err, errlen) < 0)
            return -1;
    if (src == CONFIG_WITH_ENV) {
        for (size_t i = 0; i < NKEYS; i++) {
            char *v = NULL;
            int r = env_value(keys[i].env, &v, err, errlen);
            if (r < 0)
                return -1;
            if (r == 0)
                continue;
            int bad = set_from_text(cfg, &keys[i], v) < 0;
            free(v);
            if (bad) {
                char exp[160];
                expectation(&keys[i], exp, sizeof exp);
                errf(err, errlen, "environment %s (%s): expected %s", keys[i].env, keys[i].path, exp);
                return -1;
            }
        }
    }
    return finish(cfg, src, err, errlen);
}

int config_load_string(struct wapi_config *cfg, const char *text, char *err, size_t errlen)
{
    defaults(cfg);
    if (load_file(cfg, "(supervisor)", text, err, errlen) < 0)
        return -1;
    return finish(cfg, CONFIG_NO_ENV, err, errlen);
}

static void add_conf_str(struct sbuf *out, const char *s)
{
    sbuf_addc(out, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sbuf_addf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            sbuf_addf(out, "\\x%02x", c);
        else
            sbuf_addc(out, (char)c);
    }
    sbuf_addc(out, '"');
}

void config_serialize(const struct wapi_config *cfg, struct sbuf *out)
{
    char section[64] = "";
    struct wapi_config *c = (struct wapi_config *)cfg; /* read-only use of the accessors */
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *dot = strchr(k->path, '.');
        char sec[64] = "";
        if (dot)
            snprintf(sec, sizeof sec, "%.*s", (int)(dot - k->path), k->path);
        if (strcmp(sec, section) != 0) {
            if (section[0])
                sbuf_adds(out, "};\n");
            if (sec[0])
                sbuf_addf(out, "%s = {\n", sec);
            snprintf(section, sizeof section, "%s", sec);
        }
        sbuf_addf(out, "%s%s = ", sec[0] ? "  " : "", dot ? dot + 1 : k->path);
        switch (k->type) {
        case K_STR:
        case K_ENUM:
        case K_ADDR:
            add_conf_str(out, *str_at(c, k));
            break;
        case K_INT:
            sbuf_addf(out, "%d", *int_at(c, k));
            break;
        case K_I64:
            sbuf_addf(out, "%lldL", *i64_at(c, k));
            break; /* L: libconfig's 64-bit integer */
        case K_WORKERS:
            if (*int_at(c, k) == 0)
                sbuf_adds(out, "\"auto\"");
            else
                sbuf_addf(out, "%d", *int_at(c, k));
            break;
        case K_BOOL:
            sbuf_adds(out, *int_at(c, k) ? "true" : "false");
            break;
        case K_LIST: {
            sbuf_addc(out, '[');
            const char *p = *str_at(c, k);
            int first = 1;
            while (*p) {
                const char *e = strchr(p, ',');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                char item[1024];
                snprintf(item, sizeof item, "%.*s", (int)n, p);
                if (!first)
                    sbuf_addc(out, ',');
                add_conf_str(out, item);
                first = 0;
                p += n + (e ? 1 : 0);
            }
            sbuf_addc(out, ']');
            break;
        }
        }
        sbuf_adds(out, ";\n");
    }
    if (section[0])
        sbuf_adds(out, "};\n");
}

void config_free(struct wapi_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == K_STR || keys[i].type == K_ENUM || keys[i].type == K_LIST ||
            keys[i].type == K_ADDR) {
            free(*str_at(cfg, &keys[i]));
            *str_at(cfg, &keys[i]) = NULL;
        }
    }
}

int config_workers(const struct wapi_config *cfg)
{
    if (cfg->workers > 0)
        return cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}
