/* Profile pictures: the get and set IQs and their answers. */
#include "wa_picture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct picture_pending {
    wa_picture_cb cb;
    void *arg;
};

/* Copies attribute key of n into out; 0 when absent, -1 when too long. */
static int attr_copy(const wa_node *n, const char *key, char *out, size_t cap)
{
    const char *v = wa_node_attr_str(n, key);
    out[0] = '\0';
    if (!v)
        return 0;
    if (strlen(v) >= cap)
        return -1;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

static void on_picture_answer(void *arg, const wa_node *n)
{
    struct picture_pending *q = arg;
    const char *type = n ? wa_node_attr_str(n, "type") : NULL;
    const wa_node *pic = n ? wa_node_child(n, "picture") : NULL;
    struct wa_picture p;
    memset(&p, 0, sizeof p);
    if (!n) {
        q->cb(q->arg, NULL, 0, "connection lost");
    } else if (!type || strcmp(type, "result")) {
        const wa_node *err = wa_node_child(n, "error");
        const char *code = err ? wa_node_attr_str(err, "code") : NULL;
        const char *text = err ? wa_node_attr_str(err, "text") : NULL;
        int c = code ? atoi(code) : 0;
        q->cb(q->arg, NULL, c > 0 ? c : 500, text ? text : "the server refused");
    } else if (!pic) {
        q->cb(q->arg, &p, 200, NULL); /* a removal's answer carries none */
    } else if (attr_copy(pic, "id", p.id, sizeof p.id) < 0 ||
               attr_copy(pic, "type", p.type, sizeof p.type) < 0 ||
               attr_copy(pic, "url", p.url, sizeof p.url) < 0 ||
               attr_copy(pic, "direct_path", p.direct_path, sizeof p.direct_path) < 0 ||
               (p.url[0] && strncmp(p.url, "https://", 8))) {
        q->cb(q->arg, NULL, 500, "the server's picture is malformed");
    } else {
        q->cb(q->arg, &p, 200, NULL);
    }
    free(q);
}

/* Sends <iq xmlns=w:profile:picture type [target]> with child (both in a; a
 * freed). -1 when it cannot go. */
static int picture_iq(struct wa_client *c, wa_arena *a, const char *type, const char *target, wa_node *child,
                      wa_picture_cb cb, void *arg)
{
    struct picture_pending *q = calloc(1, sizeof *q);
    wa_jid j;
    int r = -1;
    if (q && a &&
        (!target ||
         (wa_jid_parse(a, target, &j) == WA_OK && j.user[0] &&
          (!strcmp(j.server, "g.us") || !strcmp(j.server, "s.whatsapp.net") || !strcmp(j.server, "lid"))))) {
        q->cb = cb, q->arg = arg;
        wa_node *iq = wa_node_new(a, "iq");
        wa_node_add_attr(a, iq, "xmlns", "w:profile:picture");
        wa_node_add_attr(a, iq, "type", type);
        if (target)
            wa_node_add_attr_jid(a, iq, "target", &j);
        if (child)
            wa_node_add_child(a, iq, child);
        r = wa_client_iq(c, a, iq, on_picture_answer, q);
    }
    wa_arena_free(a);
    if (r < 0)
        free(q);
    return r;
}

int wa_picture_get(struct wa_client *c, const char *jid, int preview, wa_picture_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    if (!a || !jid) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *p = wa_node_new(a, "picture");
    wa_node_add_attr(a, p, "type", preview ? "preview" : "image");
    wa_node_add_attr(a, p, "query", "url");
    return picture_iq(c, a, "get", jid, p, cb, arg);
}

int wa_picture_set(struct wa_client *c, const char *target, const uint8_t *jpeg, size_t len, wa_picture_cb cb,
                   void *arg)
{
    wa_arena *a = wa_arena_new();
    if (!a || (jpeg && (len == 0 || len > WA_PICTURE_MAX))) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *p = NULL;
    if (jpeg) { /* no child at all removes it */
        p = wa_node_new(a, "picture");
        wa_node_add_attr(a, p, "type", "image");
        wa_node_set_bytes(a, p, jpeg, len);
    }
    return picture_iq(c, a, "set", target, p, cb, arg);
}
