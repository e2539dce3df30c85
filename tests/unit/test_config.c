/* Configuration: defaults, file errors with file:line, environment overlay,
 * *_FILE, production checks, and the round trip to workers. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/config.h"
#include "tests/unit/t.h"

static char dir[] = "/tmp/wapi-test-config-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void clear_env(void)
{
    for (size_t i = 0; config_env_name(i); i++) {
        char f[128];
        unsetenv(config_env_name(i));
        snprintf(f, sizeof f, "%s_FILE", config_env_name(i));
        unsetenv(f);
    }
}

static int load(struct wapi_config *c, const char *path, char *err)
{
    return config_load(c, path, 0, CONFIG_WITH_ENV, err, 512);
}

int main(void)
{
    char err[512];
    struct wapi_config c;
    mkdtemp(dir);
    clear_env();

    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), 0, "defaults load");
    T_EQ_STR(c.listen, "0.0.0.0:3000", "default listen");
    T_EQ_INT(c.listen_port, 3000, "default port");
    T_EQ_INT(c.workers, 0, "workers auto");
    T_CHECK(config_workers(&c) >= 1, "auto resolves to CPUs");
    T_EQ_INT(c.shutdown_timeout, 25, "default shutdown_timeout");
    T_EQ_STR(c.paths.sessions, "var/sessions", "default sessions path");
    T_EQ_INT(c.whatsapp.autostart, 1, "default autostart");
    T_EQ_STR(c.metrics.listen, "", "default metrics.listen: none (/metrics on the main listener)");
    T_EQ_INT(c.metrics_port, 0, "no metrics port by default");
    config_free(&c);

    T_EQ_INT(load(&c, "conf/wapi.conf", err), 0, "the shipped conf/wapi.conf is valid");
    config_free(&c);

    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), 0, "media: defaults load");
    T_CHECK(c.media.max_upload_bytes == 64 << 20 && c.media.max_store_bytes == 0 &&
                c.media.retention_days == 0 && c.media.url_ttl_seconds == 86400,
            "media: 64 MiB uploads, no quota, kept forever, links for 24 h by default");
    config_free(&c);
    const char *p =
        write_file("m.conf", "media = { max_store_bytes = 21474836480L; retention_days = 30; };\n");
    T_EQ_INT(load(&c, p, err), 0, "media: a quota above 2^31 from the file");
    T_CHECK(c.media.max_store_bytes == 21474836480LL && c.media.retention_days == 30,
            "media: ... read whole");
    struct sbuf ser;
    sbuf_init(&ser);
    config_serialize(&c, &ser);
    config_free(&c);
    T_EQ_INT(config_load_string(&c, ser.buf, err, sizeof err), 0,
             "media: the 64-bit value survives serializing");
    T_CHECK(c.media.max_store_bytes == 21474836480LL, "media: ... unchanged");
    config_free(&c);
    sbuf_free(&ser);
    setenv("WAPI_MEDIA_MAX_STORE_BYTES", "5000000000", 1);
    setenv("WAPI_MEDIA_MAX_UPLOAD_BYTES", "1048576", 1);
    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), 0, "media: from the environment");
    T_CHECK(c.media.max_store_bytes == 5000000000LL && c.media.max_upload_bytes == 1048576,
            "media: ... both");
    config_free(&c);
    setenv("WAPI_MEDIA_MAX_UPLOAD_BYTES", "0", 1);
    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), -1,
             "media: a zero upload limit refused");
    T_CHECK(strstr(err, "WAPI_MEDIA_MAX_UPLOAD_BYTES") && strstr(err, "1..1073741824"),
            "media: ... naming it and the range");
    config_free(&c);
    unsetenv("WAPI_MEDIA_MAX_UPLOAD_BYTES");

    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), 0, "history: defaults load");
    T_EQ_STR(c.whatsapp.history, "recent", "history: recent by default");
    config_free(&c);
    setenv("WAPI_WHATSAPP_HISTORY", "full", 1);
    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), 0,
             "history: full from the environment");
    T_EQ_STR(c.whatsapp.history, "full", "history: ... read");
    config_free(&c);
    setenv("WAPI_WHATSAPP_HISTORY", "everything", 1);
    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), -1,
             "history: an unknown value refused");
    T_CHECK(strstr(err, "WAPI_WHATSAPP_HISTORY") && strstr(err, "off") && strstr(err, "recent") &&
                strstr(err, "full"),
            "history: ... naming it and the choices");
    config_free(&c);
    unsetenv("WAPI_WHATSAPP_HISTORY");

    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), 0, "auto_download: defaults load");
    T_CHECK(!strcmp(c.media.auto_download, "image,video,audio,voice,document,sticker") &&
                c.media.max_download_bytes == 64 << 20,
            "auto_download: every kind, up to 64 MiB, by default");
    config_free(&c);
    setenv("WAPI_MEDIA_AUTO_DOWNLOAD", " image, voice ", 1);
    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), 0,
             "auto_download: a list from the env");
    T_CHECK(!strcmp(c.media.auto_download, "image,voice"), "auto_download: ... normalised");
    config_free(&c);
    setenv("WAPI_MEDIA_AUTO_DOWNLOAD", "", 1);
    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), 0,
             "auto_download: empty (none) loads");
    T_CHECK(!strcmp(c.media.auto_download, ""), "auto_download: ... empty");
    config_free(&c);
    setenv("WAPI_MEDIA_AUTO_DOWNLOAD", "image,gif", 1);
    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), -1,
             "auto_download: an unknown kind refused");
    T_CHECK(strstr(err, "WAPI_MEDIA_AUTO_DOWNLOAD") && strstr(err, "\"gif\""),
            "auto_download: ... naming it");
    config_free(&c);
    unsetenv("WAPI_MEDIA_AUTO_DOWNLOAD");
    p = write_file(
        "ad.conf",
        "media = { auto_download = [\"video\", \"sticker\"]; max_download_bytes = 2000000000L; };\n");
    T_EQ_INT(load(&c, p, err), 0, "auto_download: a list and a 64-bit limit from the file");
    T_CHECK(!strcmp(c.media.auto_download, "video,sticker") && c.media.max_download_bytes == 2000000000LL,
            "auto_download: ... read");
    config_free(&c);
    setenv("WAPI_MEDIA_MAX_DOWNLOAD_BYTES", "0", 1);
    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), -1, "max_download_bytes: 0 refused");
    config_free(&c);
    unsetenv("WAPI_MEDIA_MAX_DOWNLOAD_BYTES");
    setenv("WAPI_MEDIA_MAX_STORE_BYTES", "-1", 1);
    T_EQ_INT(config_load(&c, NULL, 0, CONFIG_WITH_ENV, err, sizeof err), -1,
             "media: a negative quota refused");
    config_free(&c);
    unsetenv("WAPI_MEDIA_MAX_STORE_BYTES");

    p = write_file("a.conf",
                   "workers = 3;\nlog = { level = \"debug\"; };\n"
                   "auth = { trusted_origins = [\"https://a.example\", \"https://b.example\"]; };\n");
    T_EQ_INT(load(&c, p, err), 0, "file loads");
    T_EQ_INT(c.workers, 3, "workers from file");
    T_EQ_STR(c.log.level, "debug", "nested key from file");
    T_EQ_STR(c.auth.trusted_origins, "https://a.example,https://b.example", "list from file");
    config_free(&c);

    p = write_file("b.conf", "workers = 2;\n\nbogus = 1;\n");
    T_EQ_INT(load(&c, p, err), -1, "unknown key refused");
    T_CHECK(strstr(err, "b.conf:3: bogus: unknown key") != NULL, "unknown key error names file:line and key");
    config_free(&c);

    p = write_file("c.conf", "http = {\n  max_connections = \"many\";\n};\n");
    T_EQ_INT(load(&c, p, err), -1, "wrong type refused");
    T_CHECK(strstr(err, "c.conf:2: http.max_connections: expected an integer") != NULL,
            "type error names file:line, key and expectation");
    config_free(&c);

    p = write_file("d.conf", "log = { level = \"loud\"; };\n");
    T_EQ_INT(load(&c, p, err), -1, "bad enum refused");
    T_CHECK(strstr(err, "expected one of \"debug\" \"info\" \"warn\" \"error\"") != NULL,
            "enum error lists choices");
    config_free(&c);

    p = write_file("e.conf", "workers = 3\nlisten = ;\n");
    T_EQ_INT(load(&c, p, err), -1, "syntax error refused");
    T_CHECK(strstr(err, "e.conf:2") != NULL, "syntax error has file:line");
    config_free(&c);

    p = write_file("f.conf", "nosuch = { x = 1; };\n");
    T_EQ_INT(load(&c, p, err), -1, "unknown section refused");
    config_free(&c);

    T_EQ_INT(config_load(&c, "/nonexistent/wapi.conf", 0, CONFIG_WITH_ENV, err, sizeof err), -1,
             "missing file refused when named");
    config_free(&c);
    T_EQ_INT(config_load(&c, "/nonexistent/wapi.conf", 1, CONFIG_WITH_ENV, err, sizeof err), 0,
             "missing default file is fine");
    config_free(&c);

    /* Environment overlay. */
    p = write_file("g.conf", "workers = 3;\n");
    setenv("WAPI_WORKERS", "5", 1);
    setenv("PORT", "8081", 1);
    setenv("DATABASE_URL", "postgresql://u@h/db", 1);
    setenv("WAPI_AUTH_TRUSTED_ORIGINS", " https://x.example , https://y.example,", 1);
    setenv("WAPI_WEBHOOKS_ALLOW_PRIVATE", "yes", 1);
    T_EQ_INT(load(&c, p, err), 0, "env overlay loads");
    T_EQ_INT(c.workers, 5, "env beats file");
    T_EQ_STR(c.listen, "0.0.0.0:8081", "PORT replaces the port");
    T_EQ_STR(c.database.url, "postgresql://u@h/db", "DATABASE_URL");
    T_EQ_STR(c.auth.trusted_origins, "https://x.example,https://y.example", "list from env, trimmed");
    T_EQ_INT(c.webhooks.allow_private, 1, "bool from env");
    config_free(&c);
    clear_env();

    setenv("WAPI_WORKERS", "lots", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "bad env value refused");
    T_CHECK(strstr(err, "environment WAPI_WORKERS (workers): expected \"auto\" or an integer") != NULL,
            "env error names the variable and expectation");
    config_free(&c);
    setenv("WAPI_WORKERS", "0", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "workers 0 refused");
    config_free(&c);
    clear_env();
    setenv("PORT", "70000", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "PORT out of range refused");
    config_free(&c);
    clear_env();

    const char *sf = write_file("secret.txt", "0123456789abcdef0123456789abcdef-long\n");
    setenv("BETTER_AUTH_SECRET_FILE", sf, 1);
    T_EQ_INT(load(&c, NULL, err), 0, "*_FILE loads");
    T_EQ_STR(c.secret, "0123456789abcdef0123456789abcdef-long", "*_FILE value without the newline");
    config_free(&c);
    setenv("BETTER_AUTH_SECRET", "x", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "NAME and NAME_FILE together refused");
    config_free(&c);
    clear_env();
    setenv("DATABASE_AUTH_TOKEN_FILE", "/nonexistent/token", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "unreadable *_FILE refused");
    T_CHECK(strstr(err, "DATABASE_AUTH_TOKEN_FILE") != NULL, "unreadable *_FILE named");
    config_free(&c);
    clear_env();

    /* Production strictness. */
    setenv("NODE_ENV", "production", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "production without a secret refuses to start");
    T_CHECK(strstr(err, "BETTER_AUTH_SECRET") != NULL, "the error names BETTER_AUTH_SECRET");
    config_free(&c);
    setenv("BETTER_AUTH_SECRET", "short", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "production with a short secret refuses to start");
    config_free(&c);
    setenv("BETTER_AUTH_SECRET", "0123456789abcdef0123456789abcdef", 1);
    T_EQ_INT(load(&c, NULL, err), 0, "production with a 32-character secret starts");
    T_EQ_INT(c.production, 1, "production flag");
    config_free(&c);
    clear_env();
    setenv("NODE_ENV", "staging", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "unknown NODE_ENV refused");
    config_free(&c);
    clear_env();

    setenv("BETTER_AUTH_URL", "localhost:3000", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "base URL without scheme refused");
    config_free(&c);
    clear_env();
    setenv("WAPI_WHATSAPP_ROOT_KEY", "abcd", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "short root key refused");
    config_free(&c);
    clear_env();
    setenv("WAPI_LISTEN", "[::1]:4000", 1);
    T_EQ_INT(load(&c, NULL, err), 0, "IPv6 listen");
    T_EQ_STR(c.listen_host, "::1", "IPv6 host");
    T_EQ_INT(c.listen_port, 4000, "IPv6 port");
    config_free(&c);
    setenv("WAPI_LISTEN", "nohostport", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "listen without port refused");
    config_free(&c);
    clear_env();

    /* metrics.listen: "" or "host:port", not the main listener's port. */
    p = write_file("m.conf", "metrics = {\n  listen = \"127.0.0.1:9464\";\n};\n");
    T_EQ_INT(load(&c, p, err), 0, "metrics.listen from file");
    T_EQ_STR(c.metrics.listen, "127.0.0.1:9464", "metrics.listen value");
    T_EQ_STR(c.metrics_host, "127.0.0.1", "metrics host");
    T_EQ_INT(c.metrics_port, 9464, "metrics port");
    config_free(&c);
    setenv("WAPI_METRICS_LISTEN", "[::1]:9465", 1);
    T_EQ_INT(load(&c, p, err), 0, "WAPI_METRICS_LISTEN loads");
    T_EQ_STR(c.metrics.listen, "[::1]:9465", "env beats file for metrics.listen");
    T_EQ_STR(c.metrics_host, "::1", "IPv6 metrics host");
    T_EQ_INT(c.metrics_port, 9465, "IPv6 metrics port");
    config_free(&c);
    setenv("WAPI_METRICS_LISTEN", "", 1);
    T_EQ_INT(load(&c, p, err), 0, "empty WAPI_METRICS_LISTEN loads");
    T_EQ_STR(c.metrics.listen, "", "empty WAPI_METRICS_LISTEN turns the file's listener off");
    T_EQ_INT(c.metrics_port, 0, "no metrics port when off");
    config_free(&c);
    setenv("WAPI_METRICS_LISTEN", "9464", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "metrics.listen without a host refused");
    T_CHECK(strstr(err, "environment WAPI_METRICS_LISTEN (metrics.listen): expected \"host:port\"") != NULL,
            "metrics.listen env error names the variable, key and expectation");
    config_free(&c);
    setenv("WAPI_METRICS_LISTEN", "0.0.0.0:70000", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "metrics.listen port out of range refused");
    config_free(&c);
    setenv("WAPI_METRICS_LISTEN", "127.0.0.1:3000", 1);
    T_EQ_INT(load(&c, NULL, err), -1, "metrics.listen on the main listener's port refused");
    T_CHECK(strstr(err, "metrics.listen (WAPI_METRICS_LISTEN)") != NULL, "the clash names metrics.listen");
    config_free(&c);
    setenv("WAPI_LISTEN", "127.0.0.1:3000", 1);
    setenv("WAPI_METRICS_LISTEN", "127.0.0.2:3000", 1);
    T_EQ_INT(load(&c, NULL, err), 0, "same port on another address is fine");
    config_free(&c);
    clear_env();
    p = write_file("n.conf", "workers = 2;\nmetrics = {\n  listen = \"localhost\";\n};\n");
    T_EQ_INT(load(&c, p, err), -1, "metrics.listen without a port refused (file)");
    T_CHECK(strstr(err, "n.conf:3: metrics.listen: expected \"host:port\" with a port 1..65535") != NULL,
            "metrics.listen file error names file:line, key and expectation");
    config_free(&c);
    p = write_file("o.conf", "metrics = { listen = 9464; };\n");
    T_EQ_INT(load(&c, p, err), -1, "metrics.listen as a number refused");
    T_CHECK(strstr(err, "o.conf:1: metrics.listen: expected") != NULL, "type error names metrics.listen");
    config_free(&c);

    /* Round trip: what workers receive is what the supervisor validated. */
    setenv("BETTER_AUTH_SECRET", "quote\"back\\slash\ttab-0123456789abcdef0123", 1);
    setenv("WAPI_AUTH_TRUSTED_ORIGINS", "https://a.example,https://b.example", 1);
    setenv("WAPI_WORKERS", "7", 1);
    setenv("WAPI_METRICS_LISTEN", "[::]:9464", 1);
    T_EQ_INT(load(&c, "conf/wapi.conf", err), 0, "load for round trip");
    struct sbuf s1, s2;
    sbuf_init(&s1);
    sbuf_init(&s2);
    config_serialize(&c, &s1);
    struct wapi_config d;
    T_EQ_INT(config_load_string(&d, s1.buf, err, sizeof err), 0, "serialized text parses");
    config_serialize(&d, &s2);
    T_EQ_STR(s1.buf, s2.buf, "serialize -> parse -> serialize is stable");
    T_EQ_STR(d.secret, c.secret, "secret with escapes survives");
    T_EQ_INT(d.workers, 7, "workers survive");
    T_EQ_STR(d.metrics.listen, "[::]:9464", "metrics.listen survives");
    T_EQ_INT(d.metrics_port, 9464, "metrics port derived again");
    config_free(&c);
    config_free(&d);
    sbuf_free(&s1);
    sbuf_free(&s2);
    clear_env();

    int seen_db = 0, seen_port = 0, seen_node = 0, count = 0;
    for (size_t i = 0; config_env_name(i); i++, count++) {
        seen_db |= !strcmp(config_env_name(i), "DATABASE_URL");
        seen_port |= !strcmp(config_env_name(i), "PORT");
        seen_node |= !strcmp(config_env_name(i), "NODE_ENV");
    }
    T_CHECK(seen_db && seen_port && seen_node && count > 20, "env names list the seed's names");
    T_DONE();
}
