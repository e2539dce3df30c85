/* Sender keys as wapi makes and reads them, for the interop test with
 * Baileys' own group cipher (tests/wa/t_group_cipher_interop.mjs):
 *
 *   wa_group_tool send DIR GROUP NAME DEVICE TEXT...
 *       a new store in DIR; our key for GROUP as NAME.DEVICE; each TEXT as a
 *       padded Message (conversation) in an skmsg. One JSON line:
 *       {"skdm":hex,"skmsg":[hex...]}
 *   wa_group_tool recv DIR GROUP NAME DEVICE SKDM SKMSG...
 *       a new store in DIR takes the sender's key (hex) and decrypts each
 *       skmsg (hex). One JSON line: {"texts":[text or {"error":code}...]}
 * Exit 0, 2 when the store or the key could not be made, 1 on bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "supervisor/wa/wa_group_cipher.h"
#include "tests/unit/t_party.h"

static void khex(struct jsonw *w, const uint8_t *p, size_t n)
{
    char *h = malloc(2 * n + 1);
    hex_encode(h, p, n, 0);
    jw_str(w, h);
    free(h);
}

/* Hex into a malloc'd buffer; NULL when it is not hex. */
static uint8_t *unhex(const char *s, size_t *n)
{
    size_t len = strlen(s);
    uint8_t *b = malloc(len / 2 + 1);
    if (!b || len % 2 || hex_decode(s, b, len / 2) < 0) {
        free(b);
        return NULL;
    }
    *n = len / 2;
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 7 || (strcmp(argv[1], "send") && strcmp(argv[1], "recv"))) {
        fprintf(stderr, "usage: wa_group_tool send|recv DIR GROUP NAME DEVICE ...\n");
        return 1;
    }
    const char *group = argv[3], *name = argv[4];
    int32_t dev = atoi(argv[5]);
    struct party p;
    if (party_new(&p, argv[2], "store", 1) < 0)
        return 2;
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_obj(&w);
    if (!strcmp(argv[1], "send")) {
        uint8_t *skdm = NULL;
        size_t sl = 0;
        if (wa_gc_own_skdm(p.sc, p.g, group, name, dev, &skdm, &sl) != 0)
            return 2;
        jw_key(&w, "skdm");
        khex(&w, skdm, sl);
        free(skdm);
        jw_key(&w, "skmsg");
        jw_arr(&w);
        for (int i = 6; i < argc; i++) {
            uint8_t *msg = NULL, *pd = NULL, *ct = NULL;
            size_t ml = 0, pl = 0, cl = 0;
            if (wa_msg_build_text(argv[i], NULL, NULL, NULL, NULL, &msg, &ml) != 0 ||
                wa_msg_pad(msg, ml, &pd, &pl) < 0 ||
                wa_gc_encrypt(p.sc, p.g, group, name, dev, pd, pl, &ct, &cl) != 0)
                return 2;
            khex(&w, ct, cl);
            free(msg);
            free(pd);
            free(ct);
        }
        jw_arr_end(&w);
    } else {
        size_t kl = 0;
        uint8_t *k = unhex(argv[6], &kl);
        if (!k || wa_gc_process_skdm(p.sc, p.g, group, name, dev, k, kl) != 0)
            return 2;
        free(k);
        jw_key(&w, "texts");
        jw_arr(&w);
        for (int i = 7; i < argc; i++) {
            size_t cl = 0, pl = 0;
            uint8_t *ct = unhex(argv[i], &cl), *pt = NULL;
            int r = ct ? wa_gc_decrypt(p.sc, p.g, group, name, dev, ct, cl, &pt, &pl) : -1;
            struct wa_msg_content mc;
            long ul = r == 0 ? wa_msg_unpad(pt, pl) : -1;
            if (r == 0 && ul >= 0 && wa_msg_parse(pt, (size_t)ul, &mc) == 0) {
                jw_str(&w, mc.text);
                wa_msg_content_free(&mc);
            } else {
                jw_obj(&w);
                jw_key(&w, "error");
                jw_int(&w, r ? r : -1);
                jw_obj_end(&w);
            }
            free(ct);
            free(pt);
        }
        jw_arr_end(&w);
    }
    jw_obj_end(&w);
    jw_finish(&w);
    printf("%s\n", b.buf);
    sbuf_free(&b);
    party_free(&p);
    return 0;
}
