/* Configuration: defaults < conf/wapi.conf (libconfig) < environment.
 * Every key is described once in the table in config.c. */
#ifndef WAPI_CONFIG_H
#define WAPI_CONFIG_H
#include <stddef.h>

#include "sbuf.h"

struct wapi_config {
    char *listen; /* "host:port"; PORT replaces the port */
    int workers;  /* 0 = auto (number of CPUs) */
    int shutdown_timeout;
    char *base_url;
    char *secret;
    char *environment; /* NODE_ENV */
    struct {
        char *url, *password;
        int pool;
    } database;
    struct {
        char *sessions, *media, *run;
    } paths;
    struct {
        char *level, *file;
    } log;
    struct {
        char *registration;
        char *trusted_origins; /* comma-separated */
    } auth;
    struct {
        int max_connections, max_header_size, max_body_size, idle_timeout, request_timeout;
    } http;
    struct {
        char *url, *origin, *root_key, *version;
        char *proxy; /* "socks5://", "socks5h://" or "http://" URL, or "": the connection and media traffic */
        char *presence; /* "available" or "unavailable": what contacts see of us once connected */
        int autostart;
        int reject_calls; /* turn every call down at once (it is still told as call.received) */
        char *history;    /* "off", "recent" or "full": history asked for at pairing, and imported */
        /* how long a message not decrypted waits for its sender's resend
         * before it is stored as a placeholder and our phone is asked */
        int retry_wait_seconds;
    } whatsapp;
    struct {
        char *proxy; /* as whatsapp.proxy, for webhook deliveries alone; "" = direct */
        int allow_private;
        int max_attempts, retry_base_ms,
            timeout_ms; /* delivery: attempts before dead, backoff base, per try */
    } webhooks;
    struct {
        char *listen; /* "host:port" of a listener for /metrics alone; "" = /metrics on the main one */
    } metrics;
    struct {
        int rate_per_minute;     /* messages a minute for the account; 0 = no limit */
        int min_gap_per_chat_ms; /* between two messages to one chat; 0 = none */
        int typing;              /* "composing" before a text, for a time that grows with it */
    } sending;
    struct {
        int max_upload_bytes;         /* the largest file POST /api/media takes */
        int retention_days;           /* 0 = keep */
        int url_ttl_seconds;          /* signed links live this long */
        long long max_store_bytes;    /* 0 = no limit */
        char *auto_download;          /* "image,video,…": kinds downloaded when received; "" = none */
        long long max_download_bytes; /* received files larger are not downloaded */
    } media;
    /* derived */
    char listen_host[256];
    int listen_port;
    char metrics_host[256]; /* when metrics.listen is set */
    int metrics_port;
    int production;
};

enum config_source { CONFIG_WITH_ENV, CONFIG_NO_ENV };

/* Loads defaults, then the file (if path is not NULL; a missing file is an
 * error unless optional), then the environment. On error returns -1 and
 * writes "where: key: what was expected" into err. cfg is always left in a
 * state config_free() can release. */
int config_load(struct wapi_config *cfg, const char *path, int optional, enum config_source src, char *err,
                size_t errlen);
/* Parses the text config_serialize() produced (no environment overlay). */
int config_load_string(struct wapi_config *cfg, const char *text, char *err, size_t errlen);
/* Writes the effective configuration as libconfig text (secrets included:
 * it travels only over the workers' private sockets). */
void config_serialize(const struct wapi_config *cfg, struct sbuf *out);
void config_free(struct wapi_config *cfg);
/* Each environment name read, one per call; returns NULL past the end. */
const char *config_env_name(size_t i);
/* The number of workers to run: cfg->workers or the CPU count. */
int config_workers(const struct wapi_config *cfg);

#endif
