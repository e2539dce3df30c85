/* Sender keys: a sender's key handed over in a distribution message,
 * group messages decrypted by a member, duplicates and missing keys told
 * apart, keys kept across a flush and reopen (and undone by a rollback), a
 * replaced key; and the Message fields that carry them (SKDM, mentions). */
#include <stdlib.h>
#include <string.h>

#include "proto/e2e.pb-c.h"
#include "supervisor/wa/wa_group_cipher.h"
#include "t.h"
#include "t_party.h"

#define GROUP "120363012345678901@g.us"

/* Encrypts text (padded) as alice in GROUP; 0 or an SG code. */
static int seal(struct party *a, const char *text, uint8_t **ct, size_t *cl)
{
    uint8_t *pd;
    size_t pl;
    if (wa_msg_pad((const uint8_t *)text, strlen(text), &pd, &pl) < 0)
        return -1;
    int r = wa_gc_encrypt(a->sc, a->g, GROUP, "15550001", 3, pd, pl, ct, cl);
    free(pd);
    return r;
}

/* Decrypts as p from alice (15550001.3); 1 when the text matches, else the SG code. */
static int opens(struct party *p, const uint8_t *ct, size_t cl, const char *text)
{
    uint8_t *pt = NULL;
    size_t tl = 0;
    int r = wa_gc_decrypt(p->sc, p->g, GROUP, "15550001", 3, ct, cl, &pt, &tl);
    if (r != 0)
        return r;
    long ul = wa_msg_unpad(pt, tl);
    int same = ul == (long)strlen(text) && memcmp(pt, text, (size_t)ul) == 0;
    free(pt);
    return same ? 1 : -1000;
}

int main(void)
{
    char base[] = "/tmp/wapi-groupcipher-XXXXXX";
    if (!mkdtemp(base))
        return 1;
    struct party a, b, c;
    char err[256];
    T_CHECK(party_new(&a, base, "alice", 1) == 0 && party_new(&b, base, "bob", 1) == 0 &&
                party_new(&c, base, "carol", 1) == 0,
            "three stores");

    uint8_t *skdm = NULL, *skdm2 = NULL, *ct = NULL, *ct2 = NULL, *ct3 = NULL;
    size_t sl = 0, sl2 = 0, cl = 0, cl2 = 0, cl3 = 0;
    T_EQ_INT(wa_gc_own_skdm(a.sc, a.g, GROUP, "15550001", 3, &skdm, &sl), 0, "alice makes her sender key");
    T_CHECK(sl > 64 && skdm[0] == 0x33, "its distribution message is versioned (3) and carries the keys");
    T_EQ_INT(wa_signal_store_sender_key_count(a.st), 1, "alice's store holds her key");
    T_EQ_INT(wa_gc_own_skdm(a.sc, a.g, GROUP, "15550001", 3, &skdm2, &sl2), 0, "asked again");
    T_CHECK(sl2 == sl && memcmp(skdm, skdm2, 20) == 0, "the same key, not a new one, while it exists");
    free(skdm2);
    skdm2 = NULL;

    T_EQ_INT(seal(&a, "before anyone has the key", &ct, &cl), 0, "alice encrypts for the group");
    T_EQ_INT(opens(&b, ct, cl, "before anyone has the key"), SG_ERR_NO_SESSION,
             "bob without her key: no session (a retry receipt asks for it)");
    T_EQ_INT(wa_gc_process_skdm(b.sc, b.g, GROUP, "15550001", 3, skdm, sl), 0, "bob takes her key");
    T_EQ_INT(wa_gc_process_skdm(b.sc, b.g, GROUP, "15550001", 3, skdm, sl), 0,
             "the same key again is harmless");
    T_EQ_INT(opens(&b, ct, cl, "before anyone has the key"), 1,
             "the message sent before bob had the key decrypts now (its iteration is in the key)");
    T_EQ_INT(opens(&b, ct, cl, "before anyone has the key"), SG_ERR_DUPLICATE_MESSAGE,
             "the same skmsg again is a duplicate");
    T_EQ_INT(seal(&a, "two", &ct2, &cl2), 0, "second message");
    T_EQ_INT(seal(&a, "three", &ct3, &cl3), 0, "third message");
    T_EQ_INT(opens(&b, ct3, cl3, "three"), 1, "out of order: the third first");
    T_EQ_INT(opens(&b, ct2, cl2, "two"), 1, "then the second (a skipped key was kept)");
    T_EQ_INT(opens(&c, ct2, cl2, "two"), SG_ERR_NO_SESSION, "carol never got the key");
    T_CHECK(wa_gc_process_skdm(c.sc, c.g, GROUP, "15550001", 3, skdm, sl / 2) != 0,
            "a truncated distribution message is refused");
    uint8_t tampered[1024];
    memcpy(tampered, ct3, cl3);
    tampered[cl3 - 1] ^= 1;
    T_CHECK(wa_gc_process_skdm(c.sc, c.g, GROUP, "15550001", 3, skdm, sl) == 0 &&
                opens(&c, tampered, cl3, "three") < 0 && opens(&c, ct3, cl3, "three") == 1,
            "carol takes the key; a bad signature fails, the real one decrypts");
    T_CHECK(opens(&b, ct, cl / 3, "x") < 0, "a truncated skmsg fails");
    T_CHECK(wa_gc_decrypt(b.sc, b.g, "other@g.us", "15550001", 3, ct2, cl2, &(uint8_t *){NULL},
                          &(size_t){0}) == SG_ERR_NO_SESSION,
            "keys are per group: the same sender in another group has none");

    /* Durable only once flushed; a rollback undoes a taken key. */
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "alice flushes");
    T_EQ_INT(wa_signal_store_flush(b.st, err, sizeof err), 0, "bob flushes");
    party_close(&a);
    party_close(&b);
    T_EQ_INT(party_open(&a), 0, "alice reopens");
    T_EQ_INT(party_open(&b), 0, "bob reopens");
    T_EQ_INT(wa_signal_store_sender_key_count(b.st), 1, "bob's copy of her key is on disk");
    free(ct);
    T_EQ_INT(seal(&a, "after the restart", &ct, &cl), 0, "alice encrypts with her stored key");
    T_EQ_INT(opens(&b, ct, cl, "after the restart"), 1, "bob decrypts with his stored copy");
    T_EQ_INT(opens(&b, ct2, cl2, "two"), SG_ERR_DUPLICATE_MESSAGE, "and still knows what he had read");

    wa_signal_store_mark(c.st);
    T_EQ_INT(wa_signal_store_drop_sender_key(c.st, GROUP, "15550001", 3), 0,
             "carol forgets the key (marked)");
    T_EQ_INT(wa_signal_store_rollback(c.st), 0, "rolled back");
    wa_signal_store_unmark(c.st);
    T_EQ_INT(opens(&c, ct, cl, "after the restart"), 1, "the rollback brought the key back");

    /* A new key (a member left): the old one is gone, the new one needs a new distribution. */
    T_EQ_INT(wa_signal_store_drop_sender_key(a.st, GROUP, "15550001", 3), 0, "alice drops her key");
    T_EQ_INT(wa_signal_store_sender_key_count(a.st), 0, "none left");
    T_EQ_INT(wa_gc_own_skdm(a.sc, a.g, GROUP, "15550001", 3, &skdm2, &sl2), 0, "a new key");
    T_CHECK(!(sl2 == sl && memcmp(skdm2, skdm, sl) == 0), "different from the old one");
    free(ct3);
    T_EQ_INT(seal(&a, "for the new members only", &ct3, &cl3), 0, "encrypted with the new key");
    T_CHECK(opens(&b, ct3, cl3, "for the new members only") < 0, "bob's old copy cannot read it");
    T_EQ_INT(wa_gc_process_skdm(b.sc, b.g, GROUP, "15550001", 3, skdm2, sl2), 0, "bob gets the new key");
    T_EQ_INT(opens(&b, ct3, cl3, "for the new members only"), 1, "and reads it");
    /* A sender repeats its distribution message at its chain's current
     * iteration (a retry's resend carries one) while earlier messages are
     * still on their way: taking it again must not make those look read. */
    uint8_t *late1 = NULL, *late2 = NULL, *again = NULL;
    size_t ll1 = 0, ll2 = 0, al = 0;
    T_CHECK(seal(&a, "on its way 1", &late1, &ll1) == 0 && seal(&a, "on its way 2", &late2, &ll2) == 0,
            "two more messages, not yet delivered");
    T_EQ_INT(wa_gc_own_skdm(a.sc, a.g, GROUP, "15550001", 3, &again, &al), 0,
             "alice hands her key again, at its current iteration");
    T_EQ_INT(wa_gc_process_skdm(b.sc, b.g, GROUP, "15550001", 3, again, al), 0, "bob takes it");
    T_EQ_INT(opens(&b, late2, ll2, "on its way 2"), 1, "the later one still decrypts");
    T_EQ_INT(opens(&b, late1, ll1, "on its way 1"), 1,
             "and so does the earlier one: the repeated key did not move bob's chain past it");
    free(late1);
    free(late2);
    free(again);

    /* The Message fields: a distribution message riding with a text, mentions. */
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__SenderKeyDistributionMessage sk = WAPI__E2E__SENDER_KEY_DISTRIBUTION_MESSAGE__INIT;
    Wapi__E2e__ExtendedTextMessage ext = WAPI__E2E__EXTENDED_TEXT_MESSAGE__INIT;
    Wapi__E2e__ContextInfo ci = WAPI__E2E__CONTEXT_INFO__INIT;
    char *ments[] = {"15550002@s.whatsapp.net", "", "98765@lid"};
    sk.groupid = GROUP;
    sk.has_axolotlsenderkeydistributionmessage = 1;
    sk.axolotlsenderkeydistributionmessage = (ProtobufCBinaryData){sl2, skdm2};
    ci.n_mentionedjid = 3;
    ci.mentionedjid = ments;
    ci.stanzaid = "3EB0QUOTED";
    ext.text = "hi @15550002";
    ext.contextinfo = &ci;
    m.senderkeydistributionmessage = &sk;
    m.extendedtextmessage = &ext;
    uint8_t buf[2048];
    size_t n = wapi__e2e__message__pack(&m, buf);
    struct wa_msg_content mc;
    T_EQ_INT(wa_msg_parse(buf, n, &mc), 0, "a text with a key distribution and mentions parses");
    T_CHECK(mc.kind == WA_MSG_TEXT && mc.text && !strcmp(mc.text, "hi @15550002"), "its text");
    T_CHECK(mc.skdm && mc.skdm_len == sl2 && !memcmp(mc.skdm, skdm2, sl2) && mc.skdm_group &&
                !strcmp(mc.skdm_group, GROUP),
            "the key distribution is taken out");
    T_CHECK(mc.nmentions == 2 && !strcmp(mc.mentions[0], "15550002@s.whatsapp.net") &&
                !strcmp(mc.mentions[1], "98765@lid"),
            "mentions kept in order, the empty one left out");
    T_CHECK(mc.reply_to && !strcmp(mc.reply_to, "3EB0QUOTED"), "the reply still read from the same context");
    wa_msg_content_free(&mc);
    m.extendedtextmessage = NULL;
    n = wapi__e2e__message__pack(&m, buf);
    T_EQ_INT(wa_msg_parse(buf, n, &mc), 0, "a bare key distribution parses");
    T_CHECK(mc.kind == WA_MSG_NONE && mc.skdm_len == sl2, "nothing to store, the key to take");
    wa_msg_content_free(&mc);
    sk.axolotlsenderkeydistributionmessage.len = 0;
    n = wapi__e2e__message__pack(&m, buf);
    T_CHECK(wa_msg_parse(buf, n, &mc) == 0 && mc.skdm == NULL, "an empty key distribution is ignored");
    wa_msg_content_free(&mc);

    /* Mentions on the way out: a text with them is an extendedTextMessage
     * whose context lists them, read back the same. */
    uint8_t *out = NULL;
    size_t ol = 0;
    T_EQ_INT(wa_msg_build_text("hi @1555 @98765", NULL, NULL, "15550002@s.whatsapp.net\n98765@lid", NULL,
                               &out, &ol),
             0, "a text with mentions builds");
    T_CHECK(wa_msg_parse(out, ol, &mc) == 0 && mc.kind == WA_MSG_TEXT &&
                !strcmp(mc.subtype, "extendedTextMessage") && mc.nmentions == 2 &&
                !strcmp(mc.mentions[0], "15550002@s.whatsapp.net") && !strcmp(mc.mentions[1], "98765@lid") &&
                !mc.reply_to,
            "and parses back with both mentions, no reply");
    wa_msg_content_free(&mc);
    free(out);
    T_EQ_INT(wa_msg_build_text("plain", NULL, NULL, "", NULL, &out, &ol), 0, "no mentions");
    T_CHECK(wa_msg_parse(out, ol, &mc) == 0 && !strcmp(mc.subtype, "conversation") && mc.nmentions == 0,
            "stays a plain conversation");
    wa_msg_content_free(&mc);
    free(out);
    uint8_t *with = NULL;
    size_t wl = 0;
    T_EQ_INT(wa_msg_build_text("body", "3EB0Q", NULL, NULL, NULL, &out, &ol), 0, "a reply");
    T_EQ_INT(wa_msg_append_skdm(out, ol, GROUP, skdm2, sl2, &with, &wl), 0,
             "with our key appended (a group resend)");
    T_CHECK(wa_msg_parse(with, wl, &mc) == 0 && mc.kind == WA_MSG_TEXT && !strcmp(mc.text, "body") &&
                !strcmp(mc.reply_to, "3EB0Q") && mc.skdm_len == sl2 && !memcmp(mc.skdm, skdm2, sl2),
            "the same message, now carrying the key");
    wa_msg_content_free(&mc);
    free(out);
    free(with);

    free(skdm);
    free(skdm2);
    free(ct);
    free(ct2);
    free(ct3);
    party_free(&a);
    party_free(&b);
    party_free(&c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    if (system(cmd) != 0)
        return 1;
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed != 0;
}
