/* media_conn: the request's shape, answers read strictly, the cache (one
 * query for callers asking at once, reused until near its TTL, asked again
 * after a host refused it or the connection dropped), and the upload and
 * download URLs. wa_client_iq is a stand-in that keeps the query and lets the
 * test answer it. */
#include "supervisor/wa/wa_mediaconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/wa/wa_client.h"
#include "t.h"

static int connected = 1, queries;
static wa_iq_cb pending_cb;
static void *pending_arg;
static char sent_xmlns[16], sent_type[16], sent_child[32];

int wa_client_iq(struct wa_client *c, wa_arena *a, wa_node *iq, wa_iq_cb cb, void *arg)
{
    (void)c, (void)a;
    if (!connected)
        return -1;
    queries++;
    snprintf(sent_xmlns, sizeof sent_xmlns, "%s", wa_node_attr_str(iq, "xmlns"));
    snprintf(sent_type, sizeof sent_type, "%s", wa_node_attr_str(iq, "type"));
    snprintf(sent_child, sizeof sent_child, "%s",
             iq->content == WA_CONTENT_LIST && iq->nchildren == 1 ? iq->children[0]->tag : "?");
    pending_cb = cb;
    pending_arg = arg;
    return 0;
}

/* An answer: <iq type=T><media_conn auth ttl [auth_ttl]><host hostname/>...</media_conn></iq>. */
static wa_node *answer(wa_arena *a, const char *type, const char *auth, const char *ttl, const char *auth_ttl,
                       const char *const *hosts)
{
    wa_node *iq = wa_node_new(a, "iq"), *mc = wa_node_new(a, "media_conn");
    wa_node_add_attr(a, iq, "type", type);
    if (auth)
        wa_node_add_attr(a, mc, "auth", auth);
    if (ttl)
        wa_node_add_attr(a, mc, "ttl", ttl);
    if (auth_ttl)
        wa_node_add_attr(a, mc, "auth_ttl", auth_ttl);
    for (; hosts && *hosts; hosts++) {
        wa_node *h = wa_node_new(a, "host");
        wa_node_add_attr(a, h, "hostname", *hosts);
        wa_node_add_child(a, mc, h);
    }
    wa_node_add_child(a, iq, mc);
    return iq;
}

static int calls, last_ok;
static char last_err[200], last_host0[WA_MEDIACONN_HOST_MAX];
static int order[8], norder;

static void got(void *arg, const struct wa_mediaconn *mc, const char *err)
{
    calls++;
    if (norder < 8)
        order[norder++] = (int)(intptr_t)arg;
    last_ok = mc != NULL;
    snprintf(last_err, sizeof last_err, "%s", err ? err : "");
    snprintf(last_host0, sizeof last_host0, "%s", mc ? mc->hosts[0] : "");
}

static void reply(wa_node *n)
{
    wa_iq_cb cb = pending_cb;
    pending_cb = NULL;
    cb(pending_arg, n);
}

int main(void)
{
    wa_arena *a = wa_arena_new();
    struct wa_mediaconn mc;
    char err[200];
    const char *two[] = {"mmg.whatsapp.net", "media-fra3-1.cdn.whatsapp.net", NULL};

    wa_node *rq = wa_mediaconn_request(a);
    T_CHECK(rq && !strcmp(wa_node_attr_str(rq, "xmlns"), "w:m") &&
                !strcmp(wa_node_attr_str(rq, "type"), "set") && rq->content == WA_CONTENT_LIST &&
                rq->nchildren == 1 && !strcmp(rq->children[0]->tag, "media_conn") &&
                rq->children[0]->nattrs == 0,
            "the request: <iq xmlns=w:m type=set><media_conn/></iq>");

    T_CHECK(wa_mediaconn_parse(answer(a, "result", "AbC+/=x", "300", NULL, two), 1000, &mc, err,
                               sizeof err) == 0 &&
                mc.nhosts == 2 && !strcmp(mc.hosts[0], "mmg.whatsapp.net") &&
                !strcmp(mc.hosts[1], "media-fra3-1.cdn.whatsapp.net") && !strcmp(mc.auth, "AbC+/=x") &&
                mc.expires_ms == 1000 + 300000,
            "an answer: auth, hosts in order, expiry = now + ttl");
    T_CHECK(wa_mediaconn_parse(answer(a, "result", "tok", "3600", "60", two), 0, &mc, err, sizeof err) == 0 &&
                mc.expires_ms == 60000,
            "a shorter auth_ttl wins");
    T_CHECK(wa_mediaconn_parse(answer(a, "result", "tok", "999999999", NULL, two), 0, &mc, err, sizeof err) ==
                    0 &&
                mc.expires_ms == 7LL * 24 * 3600 * 1000,
            "a TTL over a week is taken as a week");
    struct {
        const char *type, *auth, *ttl, *const *hosts, *why;
    } bad[] = {
        {"error", "tok", "300", two, "refused"},
        {"result", NULL, "300", two, "auth"},
        {"result", "", "300", two, "auth"},
        {"result", "to k", "300", two, "auth"},
        {"result", "tok", NULL, two, "ttl"},
        {"result", "tok", "0", two, "ttl"},
        {"result", "tok", "-5", two, "ttl"},
        {"result", "tok", "12x", two, "ttl"},
        {"result", "tok", "300", NULL, "host"},
        {"result", "tok", "300", (const char *const[]){"evil.host/path?", NULL}, "host"},
        {"result", "tok", "300", (const char *const[]){"a b", NULL}, "host"},
    };
    int bad_ok = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int r = wa_mediaconn_parse(answer(a, bad[i].type, bad[i].auth, bad[i].ttl, NULL, bad[i].hosts), 0,
                                   &mc, err, sizeof err);
        if (r == -1 && strstr(err, bad[i].why))
            bad_ok++;
        else
            printf("# case %zu: r=%d err=%s\n", i, r, err);
    }
    T_CHECK(bad_ok == (int)(sizeof bad / sizeof *bad),
            "refused with a reason: an error answer, no/empty/spaced auth, no/zero/negative/garbled ttl, no "
            "host, "
            "a host with path characters or a space");
    T_CHECK(wa_mediaconn_parse(NULL, 0, &mc, err, sizeof err) == -1, "no answer at all: refused");

    /* URLs */
    uint8_t sha[32];
    for (int i = 0; i < 32; i++)
        sha[i] = (uint8_t)(0xF8 + i); /* gives '+' and '/' in plain base64 */
    char url[1024];
    T_CHECK(
        wa_media_upload_url(url, sizeof url, "mmg.whatsapp.net", WA_MEDIA_IMAGE, sha, "A+b/c=") == 0 &&
            !strcmp(url, "https://mmg.whatsapp.net/mms/image/-Pn6-_z9_v8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhc"
                         "?auth=A%2Bb%2Fc%3D&token=-Pn6-_z9_v8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhc"),
        "upload URL: base64url token without padding, in the path and the query; the auth percent-encoded");
    int paths = 0;
    paths += wa_media_upload_url(url, sizeof url, "h", WA_MEDIA_VIDEO, sha, "a") == 0 &&
             strstr(url, "/mms/video/");
    paths += wa_media_upload_url(url, sizeof url, "h", WA_MEDIA_AUDIO, sha, "a") == 0 &&
             strstr(url, "/mms/audio/");
    paths += wa_media_upload_url(url, sizeof url, "h", WA_MEDIA_DOCUMENT, sha, "a") == 0 &&
             strstr(url, "/mms/document/");
    paths += wa_media_upload_url(url, sizeof url, "h", WA_MEDIA_HISTORY, sha, "a") == 0 &&
             strstr(url, "/mms/md-msg-hist/");
    paths += wa_media_upload_url(url, sizeof url, "h", WA_MEDIA_APPSTATE, sha, "a") == 0 &&
             strstr(url, "/mms/md-app-state/");
    T_CHECK(paths == 5, "upload paths by kind");
    T_CHECK(wa_media_upload_url(url, 60, "mmg.whatsapp.net", WA_MEDIA_IMAGE, sha, "tok") == -1 &&
                wa_media_upload_url(url, sizeof url, "mmg.whatsapp.net", WA_MEDIA_KINDS, sha, "tok") == -1 &&
                wa_media_upload_url(url, sizeof url, "h/x", WA_MEDIA_IMAGE, sha, "tok") == -1,
            "upload URL: too small a buffer, an unknown kind, a bad host: -1");
    T_CHECK(wa_media_download_url(url, sizeof url, "mmg.whatsapp.net",
                                  "/v/t62.7118-24/1_2.enc?ccb=11-4&oh=x&oe=y") == 0 &&
                !strcmp(url, "https://mmg.whatsapp.net/v/t62.7118-24/1_2.enc?ccb=11-4&oh=x&oe=y"),
            "download URL: host + direct path");
    T_CHECK(wa_media_download_url(url, sizeof url, "h", "v/x") == -1 &&
                wa_media_download_url(url, sizeof url, "h", "/a b") == -1 &&
                wa_media_download_url(url, sizeof url, "h", "/a\r\nX: y") == -1 &&
                wa_media_download_url(url, sizeof url, "h", NULL) == -1 &&
                wa_media_download_url(url, 20, "h", "/0123456789abcdef") == -1,
            "download URL: a relative path, a space, CR/LF, none, too long: -1");

    /* The cache. */
    struct wa_client *c = NULL;
    T_CHECK(wa_mediaconn_get(c, 1000, got, (void *)1) == 0 &&
                wa_mediaconn_get(c, 1001, got, (void *)2) == 0 &&
                wa_mediaconn_get(c, 1002, got, (void *)3) == 0 && queries == 1 && calls == 0,
            "three callers at once: one query, nobody answered yet");
    T_CHECK(!strcmp(sent_xmlns, "w:m") && !strcmp(sent_type, "set") && !strcmp(sent_child, "media_conn"),
            "the query sent is the request");
    wa_mediaconn_forget(got, (void *)2);
    reply(answer(a, "result", "tok1", "60", NULL, two));
    T_CHECK(calls == 2 && last_ok && order[0] == 1 && order[1] == 3 &&
                !strcmp(last_host0, "mmg.whatsapp.net"),
            "the answer reaches the callers in the order they asked, not the one that left");
    calls = norder = 0;
    T_CHECK(wa_mediaconn_get(c, 30000, got, (void *)4) == 0 && calls == 1 && last_ok && queries == 1,
            "within the TTL: answered at once from the cache, no query");
    T_CHECK(wa_mediaconn_get(c, 1000 + 60000 - 4000, got, (void *)5) == 0 && queries == 2 && calls == 1,
            "less than 5 s before expiry: asked again (the TTL counts from the question)");
    reply(answer(a, "result", "tok2", "60", NULL, two));
    T_CHECK(calls == 2 && last_ok, "and answered");
    wa_mediaconn_invalidate();
    calls = 0;
    T_CHECK(wa_mediaconn_get(c, 60000, got, (void *)6) == 0 && queries == 3 && calls == 0,
            "after a host refused the token: asked again");
    reply(NULL);
    T_CHECK(calls == 1 && !last_ok && strstr(last_err, "connection dropped"),
            "a dropped connection: an error");
    calls = 0;
    T_CHECK(wa_mediaconn_get(c, 60001, got, (void *)7) == 0 && queries == 4,
            "and the next caller asks again");
    reply(answer(a, "error", NULL, NULL, NULL, NULL));
    T_CHECK(calls == 1 && !last_ok && strstr(last_err, "refused"), "an error answer: an error");
    connected = 0;
    calls = 0;
    T_CHECK(wa_mediaconn_get(c, 60002, got, (void *)8) == -1 && calls == 0, "not connected: -1, no callback");
    wa_arena_free(a);
    T_DONE();
}
