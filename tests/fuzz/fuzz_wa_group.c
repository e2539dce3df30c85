/* libFuzzer target for the readers of the server's group and picture
 * answers: arbitrary bytes decoded as a node are read as a <group> (the
 * metadata), a w:gp2 notification, an IQ answer of a w:g2 change, a
 * w:profile:picture answer, a <call>, an about text (usync status) and a
 * block list. No crash, no leak; what is read stays within
 * its bounds. */
#include "supervisor/wa/wa_tokens.c"
#include "supervisor/wa/wa_binary.c"
#include "supervisor/wa/wa_group.c"
#include "supervisor/wa/wa_picture.c"
#include "supervisor/wa/wa_call.c"
#include "supervisor/wa/wa_actions.c"
#include "supervisor/wa/wa_profile.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Nothing is sent from here. */
int wa_client_iq(struct wa_client *c, wa_arena *a, wa_node *iq, wa_iq_cb cb, void *arg)
{
    (void)c, (void)a, (void)iq, (void)cb, (void)arg;
    return -1;
}

const struct wa_creds *wa_client_creds(const struct wa_client *c)
{
    (void)c;
    return NULL;
}

const char *wa_client_new_id(struct wa_client *c, char *buf, size_t len)
{
    (void)c;
    snprintf(buf, len, "X");
    return buf;
}

int wa_client_send_node(struct wa_client *c, const wa_node *n)
{
    (void)c, (void)n;
    return -1;
}

enum wa_state wa_client_state(const struct wa_client *c)
{
    (void)c;
    return WA_CONNECTED;
}

static void on_info(void *arg, const struct wa_group_info *g, int code, const char *why)
{
    (void)arg, (void)why;
    if (g && (code != 200 || g->n > MAX_PARTICIPANTS || strlen(g->jid) >= sizeof g->jid || !g->subject))
        abort();
}

static void on_change_answer(void *arg, const wa_node *answer, int code, const char *why)
{
    (void)arg, (void)answer;
    if (code != 200 && !why)
        abort();
}

static void on_pic(void *arg, const struct wa_picture *p, int code, const char *why)
{
    (void)arg;
    if (p && (code != 200 || (p->url[0] && strncmp(p->url, "https://", 8))))
        abort();
    if (!p && !why)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wa_arena *a = wa_arena_new();
    wa_node *n;
    if (!a)
        abort();
    if (wa_frame_decode(data, size, NULL, a, &n) == WA_OK) {
        struct wa_group_info g;
        if (wa_group_parse(n, &g) == 0)
            wa_group_info_free(&g);
        for (uint32_t i = 0; n->content == WA_CONTENT_LIST && i < n->nchildren; i++)
            if (wa_group_parse(n->children[i], &g) == 0)
                wa_group_info_free(&g);
        struct wa_group_event ev;
        if (wa_group_event_parse(n, &ev) == 0) {
            if (ev.n && !ev.participants)
                abort();
            wa_group_event_free(&ev);
        }
        /* the answers' readers, each with the pending record they free */
        struct pending *q = pending_new(on_info, NULL, NULL);
        on_answer(q, n);
        q = pending_new(on_info, NULL, NULL);
        on_participating(q, n);
        q = pending_new(NULL, on_change_answer, NULL);
        on_change(q, n);
        struct picture_pending *pp = calloc(1, sizeof *pp);
        if (!pp)
            abort();
        pp->cb = on_pic;
        on_picture_answer(pp, n);
        struct wa_call call;
        if (wa_call_parse(n, &call) == 0 &&
            (!call.status || !call.call_id[0] || strlen(call.from) >= sizeof call.from))
            abort();
        char *about;
        int64_t at;
        int ar = wa_about_parse(n, &about, &at);
        if (ar == 1 && (!about || strlen(about) > WA_ABOUT_MAX))
            abort();
        if (ar == 1)
            free(about);
        static char bl[64][96];
        int nb = wa_blocklist_parse(n, bl, 64);
        for (int i = 0; i < nb; i++)
            if (!strchr(bl[i], '@'))
                abort();
    }
    wa_arena_free(a);
    return 0;
}
