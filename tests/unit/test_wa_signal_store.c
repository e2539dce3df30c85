/* The Signal store against libsignal-protocol-c itself: two parties (each
 * with a store in its own directory) start a session from a prekey bundle,
 * exchange pkmsg and msg both ways; the used prekey disappears from
 * prekeys.bin; state survives a reopen only once flushed; a corrupt file is
 * refused; a changed remote identity is accepted and counted; a flush appends
 * a small batch to signal.log without rewriting signal.bin, a torn final
 * batch is dropped and cut off, damage elsewhere is refused and left alone,
 * compaction (and a crash inside it) reloads to the same state, the journal
 * stays bounded; padding and the Message protobuf round-trip. The store's
 * source is included for its internals (entries, the snapshot writer). */
#include "supervisor/wa/wa_signal_store.c"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/wa/wa_crypto.h"
#include "supervisor/wa/wa_message.h"
#include "supervisor/wa/wa_signal_crypto.h"
#include "supervisor/wa/wa_store.h"
#include "t.h"
#include "t_party.h"

static int roundtrip(struct party *from, const char *from_name, struct party *to, const char *to_name,
                     const char *text, int *type_out)
{
    uint8_t *padded, *ct, *pt;
    size_t plen, clen, tlen;
    int type;
    wa_msg_pad((const uint8_t *)text, strlen(text), &padded, &plen);
    int r = wa_msg_encrypt(from->sc, from->g, to_name, 0, padded, plen, &type, &ct, &clen);
    free(padded);
    if (r != 0)
        return r;
    r = wa_msg_decrypt(to->sc, to->g, from_name, 0, type, ct, clen, &pt, &tlen);
    free(ct);
    if (r != 0)
        return r;
    long n = wa_msg_unpad(pt, tlen);
    int ok = n == (long)strlen(text) && memcmp(pt, text, (size_t)n) == 0;
    free(pt);
    if (type_out)
        *type_out = type;
    return ok ? 0 : -999;
}

/* ---- journal helpers: the store's internals are in this file ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long long fsize(const char *dir, const char *name)
{
    char path[400];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static int fstat_of(const char *dir, const char *name, struct stat *sb)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    memset(sb, 0, sizeof *sb);
    return stat(path, sb);
}

static int same_file(const struct stat *x, const struct stat *y)
{
    return x->st_ino == y->st_ino && x->st_size == y->st_size && x->st_mtim.tv_sec == y->st_mtim.tv_sec &&
           x->st_mtim.tv_nsec == y->st_mtim.tv_nsec;
}

/* Whole file into a malloc'd buffer; NULL when absent. */
static uint8_t *slurp(const char *dir, const char *name, size_t *len)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    *len = p ? fread(p, 1, (size_t)n, f) : 0;
    fclose(f);
    return p;
}

static void spit(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* Same entries, same bytes, in any order. */
static int same_state(const struct wa_signal_store *x, const struct wa_signal_store *y)
{
    if (x->n != y->n)
        return 0;
    for (size_t i = 0; i < x->n; i++) {
        const struct entry *e = &x->e[i];
        const struct entry *o = find(y, e->kind, e->name, strlen(e->name), e->device);
        if (!o || o->len != e->len || memcmp(o->data, e->data, e->len) != 0)
            return 0;
    }
    return 1;
}

/* A second store opened on st's directory holds what st holds. */
static int disk_matches(const struct wa_signal_store *st, const struct party *p)
{
    char err[256];
    struct wa_prekey *pk = p->pk;
    size_t npk = p->npk;
    struct wa_signal_store *r = wa_signal_store_open(st->dir, &p->creds, &pk, &npk, err, sizeof err);
    if (!r) {
        printf("# reopen: %s\n", err);
        return 0;
    }
    int same = same_state(st, r);
    wa_signal_store_free(r);
    return same;
}

/* A synthetic session record: kind of bytes libsignal would store. */
static int syn_put(struct wa_signal_store *st, const char *name, int32_t dev, char fill, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    memset(d, fill, len);
    int r = put_entry(st, K_SESSION, name, strlen(name), dev, d, len, 1);
    free(d);
    return r;
}

/* The first byte of a synthetic record, 0 when absent. */
static char syn_get(const struct wa_signal_store *st, const char *name)
{
    const struct entry *x = find(st, K_SESSION, name, strlen(name), 0);
    return x && x->len ? (char)x->data[0] : 0;
}

static int syn_del(struct wa_signal_store *st, const char *name)
{
    struct entry *x = find(st, K_SESSION, name, strlen(name), 0);
    return x ? delete_entry(st, x) : -1;
}

static struct wa_prekey *syn_pk; /* the synthetic stores have no prekeys */
static size_t syn_npk;

static struct wa_signal_store *syn_open(const char *dir, const struct wa_creds *creds, char *err,
                                        size_t errlen)
{
    mkdir(dir, 0700);
    return wa_signal_store_open(dir, creds, &syn_pk, &syn_npk, err, errlen);
}

int main(void)
{
    char base[] = "/tmp/wapi-sigstore-XXXXXX";
    if (!mkdtemp(base))
        return 1;
    struct party a, b;
    char sd0[300];
    T_CHECK(party_new(&a, base, "alice", 5) == 0, "alice store opens on a fresh directory");
    T_CHECK(party_new(&b, base, "bob", 3) == 0, "bob store opens on a fresh directory");
    T_EQ_INT(wa_signal_store_session_count(a.st), 0, "no sessions at first");

    /* Bob starts a session from Alice's bundle (her prekey 2). */
    struct wa_bundle bun;
    bundle_of(&a, 1, &bun);
    struct wa_bundle bad = bun;
    bad.spk_sig[5] ^= 1;
    T_CHECK(wa_msg_session_from_bundle(b.sc, b.g, "15550001", 0, &bad) != 0,
            "bundle with a bad signed-prekey signature refused");
    T_EQ_INT(wa_msg_session_from_bundle(b.sc, b.g, "15550001", 0, &bun), 0, "session from a prekey bundle");
    int type = -1;
    T_EQ_INT(roundtrip(&b, "15550002", &a, "15550001", "hello alice", &type), 0,
             "pkmsg bob -> alice decrypts");
    T_EQ_INT(type, WA_ENC_PKMSG, "first message is a pkmsg");
    T_CHECK(wa_signal_store_dirty(a.st), "alice has unflushed changes after decrypting");
    T_EQ_INT(a.npk, 5, "used prekey still held until flush");

    /* Not flushed: a reopen sees the old state (the message could be decrypted again). */
    party_close(&a);
    T_EQ_INT(party_open(&a), 0, "alice reopens");
    T_EQ_INT(wa_signal_store_session_count(a.st), 0, "unflushed session is not on disk");

    /* Again, and flush this time. */
    party_close(&b);
    char err[256];
    T_EQ_INT(wa_signal_store_wipe(b.dir), 0, "bob's signal file wiped");
    T_EQ_INT(party_open(&b), 0, "bob reopens empty");
    T_EQ_INT(wa_msg_session_from_bundle(b.sc, b.g, "15550001", 0, &bun), 0, "bob starts over");
    T_EQ_INT(roundtrip(&b, "15550002", &a, "15550001", "hello again", NULL), 0, "pkmsg decrypts");
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "alice flushes");
    T_EQ_INT(wa_signal_store_flush(b.st, err, sizeof err), 0, "bob flushes");
    T_EQ_INT(a.npk, 4, "used prekey removed from memory");
    int gone = 1;
    for (size_t i = 0; i < a.npk; i++)
        gone &= a.pk[i].id != 2;
    T_CHECK(gone, "the used prekey is the one removed");
    struct wa_prekey *ondisk = NULL;
    size_t nd = 0;
    T_EQ_INT(wa_store_prekeys_load(a.dir, &ondisk, &nd, err, sizeof err), 1, "prekeys.bin reloads");
    T_EQ_INT(nd, 4, "prekeys.bin lost the used prekey durably");
    free(ondisk);

    party_close(&a);
    party_close(&b);
    T_EQ_INT(party_open(&a), 0, "alice reopens from disk");
    T_EQ_INT(party_open(&b), 0, "bob reopens from disk");
    T_CHECK(wa_signal_store_has_session(a.st, "15550002", 0), "alice's session with bob survived");
    T_EQ_INT(roundtrip(&a, "15550001", &b, "15550002", "reply from alice", &type), 0,
             "alice -> bob after reopen");
    T_EQ_INT(type, WA_ENC_MSG, "reply is a msg");
    T_EQ_INT(roundtrip(&b, "15550002", &a, "15550001", "and back", &type), 0, "bob -> alice msg");
    T_EQ_INT(type, WA_ENC_MSG, "bob's next is a msg");

    /* A replayed ciphertext is a duplicate. */
    uint8_t *pd, *ct, *pt;
    size_t pl, cl, tl;
    wa_msg_pad((const uint8_t *)"once", 4, &pd, &pl);
    wa_msg_encrypt(b.sc, b.g, "15550001", 0, pd, pl, &type, &ct, &cl);
    free(pd);
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, type, ct, cl, &pt, &tl), 0, "decrypts once");
    free(pt);
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, type, ct, cl, &pt, &tl), SG_ERR_DUPLICATE_MESSAGE,
             "the same ciphertext again is a duplicate");
    ct[cl / 2] ^= 0x40;
    T_CHECK(wa_msg_decrypt(a.sc, a.g, "15550002", 0, type, ct, cl, &pt, &tl) < 0,
            "tampered ciphertext fails");
    free(ct);
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "flush");

    /* A changed identity for a known address (bob reinstalled) is accepted and
     * counted, as WhatsApp's clients do; the new key replaces the old one. */
    struct party c;
    T_CHECK(party_new(&c, base, "mallory", 2) == 0, "third party");
    struct wa_bundle fresh;
    bundle_of(&a, 2, &fresh); /* an unused one-time prekey of alice's */
    T_EQ_INT(wa_msg_session_from_bundle(c.sc, c.g, "15550001", 0, &fresh), 0,
             "the new install builds a session to alice");
    T_EQ_INT((int)wa_signal_store_identity_changes(a.st), 0, "no identity change yet");
    T_EQ_INT(roundtrip(&c, "15550002", &a, "15550001", "i am bob, reinstalled", NULL), 0,
             "a message under a changed identity decrypts");
    T_EQ_INT((int)wa_signal_store_identity_changes(a.st), 1, "the identity change is counted");
    T_EQ_INT(roundtrip(&c, "15550002", &a, "15550001", "again", NULL), 0, "and later messages too");
    T_EQ_INT((int)wa_signal_store_identity_changes(a.st), 1, "the new key is now the known one");
    T_EQ_INT(wa_signal_store_reload(a.st, err, sizeof err), 0, "reload drops unflushed changes");

    /* ---- Savepoints: one message's changes undone alone, those before it
     * kept for the common flush. */
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "alice starts from a flushed state");
    uint8_t *e[3];
    size_t el[3];
    int et[3];
    for (int i = 0; i < 3; i++) {
        char txt[16];
        snprintf(txt, sizeof txt, "batch %d", i);
        wa_msg_pad((const uint8_t *)txt, strlen(txt), &pd, &pl);
        T_EQ_INT(wa_msg_encrypt(b.sc, b.g, "15550001", 0, pd, pl, &et[i], &e[i], &el[i]), 0, "bob encrypts");
        free(pd);
    }
    T_EQ_INT(wa_signal_store_rollback(a.st), -1, "no rollback without a mark");
    wa_signal_store_mark(a.st);
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, et[0], e[0], el[0], &pt, &tl), 0, "message 1 decrypts");
    free(pt);
    wa_signal_store_mark(a.st); /* message 1 is kept */
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, et[1], e[1], el[1], &pt, &tl), 0, "message 2 decrypts");
    free(pt);
    T_EQ_INT(wa_signal_store_rollback(a.st), 0, "message 2 rolled back");
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, et[1], e[1], el[1], &pt, &tl), 0,
             "message 2 decrypts again after its rollback");
    free(pt);
    wa_signal_store_mark(a.st);
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, et[2], e[2], el[2], &pt, &tl), 0, "message 3 decrypts");
    free(pt);
    T_EQ_INT(wa_signal_store_rollback(a.st), 0, "message 3 rolled back");
    /* A pkmsg from a reinstalled contact: identity changed, a prekey used, the
     * session replaced; all of it undone. */
    size_t npk0 = a.npk;
    uint64_t ic0 = wa_signal_store_identity_changes(a.st);
    wa_signal_store_mark(a.st);
    T_EQ_INT(roundtrip(&c, "15550002", &a, "15550001", "reinstalled once more", &type), 0,
             "a pkmsg under a changed identity decrypts");
    T_EQ_INT(type, WA_ENC_PKMSG, "it was a pkmsg");
    T_CHECK(wa_signal_store_identity_changes(a.st) == ic0 + 1, "the identity change is counted");
    T_EQ_INT(wa_signal_store_rollback(a.st), 0, "and rolled back");
    T_CHECK(wa_signal_store_identity_changes(a.st) == ic0, "the count too");
    wa_signal_store_unmark(a.st);
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "alice flushes what was kept");
    T_EQ_INT(a.npk, npk0, "the rolled-back pkmsg's prekey is still there");
    T_CHECK(disk_matches(a.st, &a), "disk holds what memory holds");
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, et[0], e[0], el[0], &pt, &tl), SG_ERR_DUPLICATE_MESSAGE,
             "message 1 was kept");
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, et[1], e[1], el[1], &pt, &tl), SG_ERR_DUPLICATE_MESSAGE,
             "message 2, decrypted again, was kept");
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, et[2], e[2], el[2], &pt, &tl), 0,
             "message 3 was not: it decrypts now");
    free(pt);
    T_EQ_INT(roundtrip(&b, "15550002", &a, "15550001", "bob's session survived", &type), 0,
             "bob's session is alice's again (the reinstall undone)");
    T_EQ_INT(type, WA_ENC_MSG, "a msg, on the old session");
    for (int i = 0; i < 3; i++)
        free(e[i]);
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "flush");
    /* Synthetic: puts, a delete and a re-put since the mark all undone; a
     * change pending from before the mark stays pending. */
    snprintf(sd0, sizeof sd0, "%s/savepoint", base);
    struct wa_signal_store *sp = syn_open(sd0, &a.creds, err, sizeof err);
    T_CHECK(sp != NULL, "a store for savepoints");
    syn_put(sp, "k1", 0, '1', 50);
    syn_put(sp, "k2", 0, '2', 50);
    T_EQ_INT(wa_signal_store_flush(sp, err, sizeof err), 0, "k1, k2 flushed");
    syn_put(sp, "k3", 0, '3', 50);
    wa_signal_store_mark(sp);
    syn_put(sp, "k1", 0, 'a', 60);
    syn_del(sp, "k2");
    syn_put(sp, "k4", 0, '4', 50);
    syn_put(sp, "k1", 0, 'b', 70);
    syn_del(sp, "k3");
    T_EQ_INT(wa_signal_store_rollback(sp), 0, "rollback");
    T_CHECK(syn_get(sp, "k1") == '1' && syn_get(sp, "k2") == '2' && syn_get(sp, "k3") == '3' &&
                syn_get(sp, "k4") == 0,
            "every key as at the mark");
    T_CHECK(wa_signal_store_dirty(sp) && find(sp, K_SESSION, "k3", 2, 0)->dirty &&
                !find(sp, K_SESSION, "k1", 2, 0)->dirty,
            "k3 still pending, k1 clean again");
    syn_put(sp, "k5", 0, '5', 50);
    T_EQ_INT(wa_signal_store_flush(sp, err, sizeof err), 0, "flush under the mark");
    syn_put(sp, "k5", 0, '6', 50);
    T_EQ_INT(wa_signal_store_rollback(sp), 0, "rollback after a flush");
    T_CHECK(syn_get(sp, "k5") == '5', "goes back to what was flushed, not past it");
    wa_signal_store_unmark(sp);
    T_CHECK(disk_matches(sp, &a), "disk matches memory");
    wa_signal_store_free(sp);

    /* ---- The journal, with real sessions: a flush appends one small batch
     * and leaves signal.bin alone; a reopen replays it. */
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "alice flushes after the reload");
    T_EQ_INT(compact(a.st, err, sizeof err), 0, "alice's journal folds into a snapshot");
    struct stat sn0, lg0, sn1, lg1;
    T_EQ_INT(fstat_of(a.dir, "signal.bin", &sn0), 0, "signal.bin exists after compaction");
    T_EQ_INT(fstat_of(a.dir, "signal.log", &lg0), 0, "signal.log exists after compaction");
    T_EQ_INT(lg0.st_size, 0, "the journal is empty after compaction");
    T_EQ_INT(roundtrip(&b, "15550002", &a, "15550001", "one more", NULL), 0, "bob -> alice after compaction");
    T_CHECK(wa_signal_store_dirty(a.st), "alice's session changed");
    usleep(20000); /* a rewrite would show in the mtime */
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "alice flushes one session change");
    fstat_of(a.dir, "signal.bin", &sn1);
    fstat_of(a.dir, "signal.log", &lg1);
    T_CHECK(same_file(&sn0, &sn1), "signal.bin is not rewritten by a flush");
    T_CHECK(lg1.st_size > 0 && lg1.st_size < 4096, "one small batch is appended to signal.log");
    printf("# one session change: batch of %lld bytes, snapshot of %lld bytes\n", (long long)lg1.st_size,
           (long long)sn1.st_size);
    T_CHECK(!wa_signal_store_dirty(a.st), "nothing pending after the flush");
    T_CHECK(disk_matches(a.st, &a), "snapshot + journal reload to the state in memory");
    party_close(&a);
    T_EQ_INT(party_open(&a), 0, "alice reopens from snapshot + journal");
    T_EQ_INT(roundtrip(&b, "15550002", &a, "15550001", "after replay", &type), 0,
             "bob -> alice after the replay");
    T_EQ_INT(type, WA_ENC_MSG, "still the same session (msg, not pkmsg)");
    T_EQ_INT(roundtrip(&a, "15550001", &b, "15550002", "alice after replay", NULL), 0,
             "alice -> bob after the replay");
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "alice flushes");
    T_EQ_INT(wa_signal_store_flush(b.st, err, sizeof err), 0, "bob flushes");
    /* A reload with a journal present: back to the flushed state. */
    T_EQ_INT(roundtrip(&b, "15550002", &a, "15550001", "to be forgotten", NULL), 0,
             "bob -> alice, not flushed");
    T_EQ_INT(wa_signal_store_reload(a.st, err, sizeof err), 0, "alice reloads snapshot + journal");
    T_CHECK(!wa_signal_store_dirty(a.st), "the reload dropped the pending change");
    T_CHECK(disk_matches(a.st, &a), "after the reload memory is what is on disk");

    /* ---- The journal, with synthetic entries whose values can be checked. */
    struct wa_signal_store *s;
    char sd[300];
    snprintf(sd, sizeof sd, "%s/torn", base);
    T_CHECK((s = syn_open(sd, &a.creds, err, sizeof err)) != NULL, "a fresh store opens");
    syn_put(s, "t1", 0, 'A', 100);
    syn_put(s, "gone", 0, 'G', 100);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "batch 1");
    long long l1 = fsize(sd, "signal.log");
    T_EQ_INT(fsize(sd, "signal.bin"), -1, "a small store has no snapshot yet, only the journal");
    syn_put(s, "t1", 0, 'B', 100);
    syn_put(s, "t2", 0, 'C', 100);
    syn_del(s, "gone");
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "batch 2");
    long long l2 = fsize(sd, "signal.log");
    T_CHECK(l1 > 0 && l2 > l1, "each flush appends");
    T_CHECK(disk_matches(s, &a), "both batches replay to the state in memory");
    wa_signal_store_free(s);
    /* A crash mid-append: the last batch loses its end. */
    char lp[400];
    snprintf(lp, sizeof lp, "%s/signal.log", sd);
    T_EQ_INT(truncate(lp, l2 - 5), 0, "the journal loses its last 5 bytes");
    T_CHECK((s = syn_open(sd, &a.creds, err, sizeof err)) != NULL, "a torn final batch still opens");
    if (!s)
        printf("# %s\n", err);
    T_CHECK(s && syn_get(s, "t1") == 'A' && syn_get(s, "t2") == 0 && syn_get(s, "gone") == 'G',
            "the state is that of the last intact batch");
    T_EQ_INT(fsize(sd, "signal.log"), l2 - 5, "opening leaves the torn batch in place");
    syn_put(s, "t3", 0, 'D', 100);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "the next flush works");
    long long l3 = fsize(sd, "signal.log");
    T_EQ_INT(l3 - l1, LOG_HEAD + 4 + 10 + 2 + 4 + 100 + LOG_TAIL,
             "the torn batch was cut off before the append");
    T_CHECK(disk_matches(s, &a), "the journal replays to the state in memory");
    wa_signal_store_free(s);
    T_CHECK((s = syn_open(sd, &a.creds, err, sizeof err)) != NULL, "reopens");
    T_CHECK(s && syn_get(s, "t1") == 'A' && syn_get(s, "t3") == 'D' && syn_get(s, "t2") == 0,
            "values after the repair");
    wa_signal_store_free(s);
    /* A torn batch whose header never reached the disk (zeros at the end). */
    size_t jl;
    uint8_t *j = slurp(sd, "signal.log", &jl);
    uint8_t *jz = calloc(jl + 300, 1);
    memcpy(jz, j, jl);
    spit(sd, "signal.log", jz, jl + 300);
    T_CHECK((s = syn_open(sd, &a.creds, err, sizeof err)) != NULL,
            "zeros after the last batch read as a torn append");
    T_CHECK(s && syn_get(s, "t3") == 'D', "with the state of the last batch");
    wa_signal_store_free(s);
    free(jz);
    spit(sd, "signal.log", j, jl);

    /* Damage that a crash cannot explain: reported, nothing written. */
    snprintf(sd, sizeof sd, "%s/damaged", base);
    T_CHECK((s = syn_open(sd, &a.creds, err, sizeof err)) != NULL, "another store");
    syn_put(s, "d1", 0, 'a', 200);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "batch 1");
    T_EQ_INT(compact(s, err, sizeof err), 0, "a snapshot");
    syn_put(s, "d1", 0, 'b', 200);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "batch 2");
    long long m1 = fsize(sd, "signal.log");
    syn_put(s, "d2", 0, 'c', 200);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "batch 3");
    syn_put(s, "d3", 0, 'd', 200);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "batch 4");
    size_t gl, sl;
    uint8_t *good = slurp(sd, "signal.log", &gl), *snap = slurp(sd, "signal.bin", &sl);
    T_CHECK(good && snap, "both files there");
    uint8_t *bad_log = malloc(gl);
    memcpy(bad_log, good, gl);
    bad_log[m1 + 40] ^= 0x01; /* inside batch 3, batch 4 after it */
    spit(sd, "signal.log", bad_log, gl);
    struct stat b0, j0, bb, jb;
    fstat_of(sd, "signal.bin", &b0);
    fstat_of(sd, "signal.log", &j0);
    err[0] = 0;
    struct wa_signal_store *dead = syn_open(sd, &a.creds, err, sizeof err);
    T_CHECK(dead == NULL, "a damaged batch followed by another is refused");
    T_CHECK(strstr(err, "signal.log is corrupt") != NULL, "the error names the journal as corrupt");
    printf("# %s\n", err);
    wa_signal_store_free(dead);
    /* The open store finds the same on reload, and then writes nothing. */
    T_EQ_INT(wa_signal_store_reload(s, err, sizeof err), -1, "a reload reports the damage");
    syn_put(s, "d4", 0, 'e', 200);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), -1, "a flush after a failed reload refuses to write");
    fstat_of(sd, "signal.bin", &bb);
    fstat_of(sd, "signal.log", &jb);
    size_t curl;
    uint8_t *cur = slurp(sd, "signal.log", &curl);
    T_CHECK(same_file(&b0, &bb) && same_file(&j0, &jb), "signal.bin and signal.log left as they were");
    T_CHECK(cur && curl == gl && memcmp(cur, bad_log, gl) == 0, "the damaged journal's bytes untouched");
    free(cur);
    /* Garbage between two intact batches. */
    uint8_t *ins = malloc(gl + 40);
    memcpy(ins, good, (size_t)m1);
    memset(ins + m1, 0x5a, 40);
    memcpy(ins + m1 + 40, good + m1, gl - (size_t)m1);
    spit(sd, "signal.log", ins, gl + 40);
    T_CHECK((dead = syn_open(sd, &a.creds, err, sizeof err)) == NULL && strstr(err, "corrupt"),
            "garbage between batches is refused");
    wa_signal_store_free(dead);
    free(ins);
    /* A bad snapshot with a good journal. */
    spit(sd, "signal.log", good, gl);
    snap[sl / 2] ^= 0x80;
    spit(sd, "signal.bin", snap, sl);
    T_CHECK((dead = syn_open(sd, &a.creds, err, sizeof err)) == NULL && strstr(err, "signal.bin is corrupt"),
            "a damaged snapshot is refused even with a good journal");
    wa_signal_store_free(dead);
    snap[sl / 2] ^= 0x80;
    spit(sd, "signal.bin", snap, sl);
    T_EQ_INT(wa_signal_store_reload(s, err, sizeof err), 0, "repaired files reload");
    T_CHECK(syn_get(s, "d1") == 'b' && syn_get(s, "d3") == 'd' && syn_get(s, "d4") == 0,
            "to the last flushed state");
    syn_put(s, "d4", 0, 'e', 200);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "and flushes again");
    wa_signal_store_free(s);
    free(good);
    free(snap);
    free(bad_log);
    free(j);

    /* Compaction: a crash between the new snapshot and emptying the journal
     * replays batches the snapshot already holds; deletions and re-puts
     * included, that must give the snapshot back. */
    snprintf(sd, sizeof sd, "%s/compact", base);
    T_CHECK((s = syn_open(sd, &a.creds, err, sizeof err)) != NULL, "a store for compaction");
    syn_put(s, "k1", 0, '1', 300);
    syn_put(s, "k2", 0, '2', 300);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "puts");
    syn_del(s, "k1");
    syn_put(s, "k2", 0, '3', 300);
    syn_put(s, "k3", 0, '4', 300);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "a delete and puts");
    syn_put(s, "k1", 0, '5', 300);
    syn_del(s, "k3");
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "a re-put and a delete");
    long long before = fsize(sd, "signal.log");
    T_EQ_INT(write_signal(s, err, sizeof err), 0,
             "the snapshot of a compaction, the journal not yet emptied");
    T_EQ_INT(fsize(sd, "signal.log"), before, "journal still full");
    T_CHECK(disk_matches(s, &a), "replaying batches already in the snapshot changes nothing");
    syn_put(s, "k2", 0, '6', 300);
    T_EQ_INT(wa_signal_store_flush(s, err, sizeof err), 0, "a later batch behind them");
    T_CHECK(disk_matches(s, &a), "old batches then the new one give the state in memory");
    T_CHECK(syn_get(s, "k1") == '5' && syn_get(s, "k2") == '6' && syn_get(s, "k3") == 0,
            "values as expected");
    /* Compaction triggered by size. */
    struct stat c0, c1;
    fstat_of(sd, "signal.bin", &c0);
    int compacted = 0, rounds = 0;
    for (; rounds < 200 && !compacted; rounds++) {
        long long pre = fsize(sd, "signal.log");
        syn_put(s, "big", 0, (char)('a' + rounds % 26), 20000);
        if (wa_signal_store_flush(s, err, sizeof err) < 0)
            break;
        compacted = fsize(sd, "signal.log") < pre;
    }
    fstat_of(sd, "signal.bin", &c1);
    T_CHECK(compacted, "the journal is compacted once past its bound");
    printf("# compacted after %d flushes of 20 KB\n", rounds);
    T_CHECK(c1.st_ino != c0.st_ino, "with a new signal.bin");
    T_CHECK(fsize(sd, "signal.log") == 0, "and an empty journal");
    T_CHECK(disk_matches(s, &a), "the store loads identically after compaction");
    wa_signal_store_free(s);

    /* Many flushes keep the journal bounded. */
    snprintf(sd, sizeof sd, "%s/bounded", base);
    T_CHECK((s = syn_open(sd, &a.creds, err, sizeof err)) != NULL, "a store for many flushes");
    for (int i = 0; i < 20; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "155500%02d", i);
        syn_put(s, nm, 0, 'x', 1500);
    }
    long long maxlog = 0, bound_seen = 0;
    int fails = 0, compactions = 0;
    for (int i = 0; i < 1000; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "155500%02d", i % 20);
        long long pre = fsize(sd, "signal.log");
        syn_put(s, nm, 0, (char)('a' + i % 26), 1500);
        fails += wa_signal_store_flush(s, err, sizeof err) < 0;
        long long now = fsize(sd, "signal.log");
        compactions += now < pre;
        if (now > maxlog)
            maxlog = now;
        if ((long long)log_bound(s) > bound_seen)
            bound_seen = (long long)log_bound(s);
    }
    T_EQ_INT(fails, 0, "1000 flushes succeed");
    T_CHECK(compactions >= 2, "the journal was compacted along the way");
    T_CHECK(maxlog > 0 && maxlog <= bound_seen, "after each flush the journal is within its bound");
    printf("# 1000 flushes: journal at most %lld bytes (bound %lld), %d compactions\n", maxlog, bound_seen,
           compactions);
    T_CHECK(disk_matches(s, &a), "the store loads identically after 1000 flushes");
    wa_signal_store_free(s);
    T_EQ_INT(wa_signal_store_wipe(sd), 0, "wipe");
    T_CHECK(fsize(sd, "signal.log") == -1 && fsize(sd, "signal.bin") == -1,
            "wipe removes the journal and the snapshot");

    /* Cost of a flush with 1,000 stored sessions of 3 KB: the whole rewrite
     * of before against one appended batch. Printed, not asserted. */
    snprintf(sd, sizeof sd, "%s/metric", base);
    if ((s = syn_open(sd, &a.creds, err, sizeof err)) != NULL) {
        for (int i = 0; i < 1000; i++) {
            char nm[32];
            snprintf(nm, sizeof nm, "1555%06d", i);
            syn_put(s, nm, 0, 'm', 3000);
        }
        wa_signal_store_flush(s, err, sizeof err); /* large: compacts into signal.bin at once */
        enum { ROUNDS = 30 };
        double t0 = now_ms();
        long long l0 = fsize(sd, "signal.log");
        for (int i = 0; i < ROUNDS; i++) {
            char nm[32];
            snprintf(nm, sizeof nm, "1555%06d", (i * 37) % 1000);
            syn_put(s, nm, 0, (char)('a' + i % 26), 3000);
            wa_signal_store_flush(s, err, sizeof err);
        }
        double t_append = (now_ms() - t0) / ROUNDS;
        long long per_batch = (fsize(sd, "signal.log") - l0) / ROUNDS;
        t0 = now_ms();
        for (int i = 0; i < ROUNDS; i++)
            write_signal(s, err, sizeof err);
        double t_full = (now_ms() - t0) / ROUNDS;
        printf("METRIC signal_store_flush sessions=1000 record_bytes=3000 journal_append_ms=%.3f "
               "journal_bytes_per_flush=%lld full_rewrite_ms=%.3f full_rewrite_bytes=%lld speedup=%.1fx\n",
               t_append, per_batch, t_full, fsize(sd, "signal.bin"), t_append > 0 ? t_full / t_append : 0.0);
        wa_signal_store_free(s);
    }

    /* Corrupt file: refused, not replaced. */
    party_close(&a);
    char path[400];
    snprintf(path, sizeof path, "%s/signal.bin", a.dir);
    FILE *f = fopen(path, "r+b");
    fseek(f, 20, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 20, SEEK_SET);
    fputc(ch ^ 0xff, f);
    fclose(f);
    struct stat s1, s2;
    stat(path, &s1);
    err[0] = 0;
    struct wa_signal_store *bad_st = wa_signal_store_open(a.dir, &a.creds, &a.pk, &a.npk, err, sizeof err);
    T_CHECK(bad_st == NULL, "corrupt signal.bin is refused");
    T_CHECK(strstr(err, "corrupt") != NULL, "the error says corrupt");
    stat(path, &s2);
    T_CHECK(s1.st_size == s2.st_size && s1.st_mtime == s2.st_mtime, "corrupt file left as it was");
    truncate(path, 30);
    T_CHECK(wa_signal_store_open(a.dir, &a.creds, &a.pk, &a.npk, err, sizeof err) == NULL,
            "truncated file refused");

    /* Padding. */
    uint8_t x[3] = {'a', 2, 2};
    T_EQ_INT(wa_msg_unpad(x, 3), 1, "unpad 2");
    uint8_t y[3] = {'a', 1, 2};
    T_EQ_INT(wa_msg_unpad(y, 3), -1, "inconsistent padding refused");
    uint8_t z[2] = {'a', 9};
    T_EQ_INT(wa_msg_unpad(z, 2), -1, "padding longer than the data refused");
    T_EQ_INT(wa_msg_unpad(z, 0), -1, "empty refused");

    /* Protobuf. */
    uint8_t *m;
    size_t ml;
    struct wa_msg_content mc;
    wa_msg_build_text("hi there", NULL, NULL, NULL, NULL, &m, &ml);
    T_EQ_INT(wa_msg_parse(m, ml, &mc), 0, "conversation parses");
    T_CHECK(mc.kind == WA_MSG_TEXT && mc.text && !strcmp(mc.text, "hi there") && !mc.reply_to,
            "conversation text");
    T_EQ_STR(mc.subtype, "conversation", "subtype conversation");
    wa_msg_content_free(&mc);
    free(m);
    wa_msg_build_text("quoted", "3EB0ABC", "1555@s.whatsapp.net", NULL, "1666@s.whatsapp.net", &m, &ml);
    T_EQ_INT(wa_msg_parse(m, ml, &mc), 0, "reply in deviceSentMessage parses");
    T_EQ_STR(mc.text, "quoted", "reply text");
    T_EQ_STR(mc.reply_to, "3EB0ABC", "reply_to");
    T_EQ_STR(mc.dsm_dest, "1666@s.whatsapp.net", "deviceSentMessage destination");
    wa_msg_content_free(&mc);
    free(m);
    /* reactionMessage{key{id "X1"}, text "👍"} by hand: field 46 = tag 0x72 0x02. */
    const uint8_t react[] = {0xf2, 0x02, 0x0c, 0x0a, 0x04, 0x1a, 0x02, 'X',
                             '1',  0x12, 0x04, 0xf0, 0x9f, 0x91, 0x8d};
    T_EQ_INT(wa_msg_parse(react, sizeof react, &mc), 0, "reaction parses");
    T_CHECK(mc.kind == WA_MSG_REACTION && mc.target && !strcmp(mc.target, "X1"), "reaction target");
    wa_msg_content_free(&mc);
    /* protocolMessage{key{id "R"}, type 0} */
    const uint8_t revoke[] = {0x62, 0x07, 0x0a, 0x03, 0x1a, 0x01, 'R', 0x10, 0x00};
    T_EQ_INT(wa_msg_parse(revoke, sizeof revoke, &mc), 0, "revoke parses");
    T_CHECK(mc.kind == WA_MSG_REVOKE && mc.target && !strcmp(mc.target, "R"), "revoke target");
    wa_msg_content_free(&mc);
    /* imageMessage{url ""} (field 3) is media, an image. */
    const uint8_t img[] = {0x1a, 0x02, 0x0a, 0x00};
    T_EQ_INT(wa_msg_parse(img, sizeof img, &mc), 0, "image parses");
    T_CHECK(mc.kind == WA_MSG_MEDIA && mc.media && mc.media->type == WA_MT_IMAGE && mc.subtype &&
                !strcmp(mc.subtype, "imageMessage") && !mc.media->has_media_key,
            "image is media/imageMessage, without a key");
    wa_msg_content_free(&mc);
    /* locationMessage{} (field 5) without coordinates is no place: unsupported, by name. */
    const uint8_t loc[] = {0x2a, 0x00};
    T_EQ_INT(wa_msg_parse(loc, sizeof loc, &mc), 0, "location parses");
    T_CHECK(mc.kind == WA_MSG_UNSUPPORTED && mc.subtype && !strcmp(mc.subtype, "locationMessage"),
            "a location without coordinates is unsupported/locationMessage");
    wa_msg_content_free(&mc);
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    T_EQ_INT(wa_msg_parse(junk, sizeof junk, &mc), -1, "junk is no Message");

    /* Many entries (a busy account's groups: a sender key per member
     * device): each found by its key, also after deletions move the others,
     * and after a flush and reopen. */
    {
        char bd[300], nm[64];
        snprintf(bd, sizeof bd, "%s/big", base);
        struct wa_signal_store *bs = syn_open(bd, &a.creds, err, sizeof err);
        T_CHECK(bs != NULL, "a store for 20,000 entries");
        int put_ok = 1;
        for (int i = 0; bs && i < 20000; i++) {
            snprintf(nm, sizeof nm, "big%05d", i);
            put_ok &= syn_put(bs, nm, 0, (char)('A' + i % 26), 16) == 0;
        }
        T_CHECK(put_ok, "20,000 put");
        int found = 1;
        for (int i = 0; bs && i < 20000; i++) {
            snprintf(nm, sizeof nm, "big%05d", i);
            found &= syn_get(bs, nm) == (char)('A' + i % 26);
        }
        T_CHECK(found && !find(bs, K_SESSION, "big20000", 8, 0) && !find(bs, K_SESSION, "big00001", 8, 1),
                "each found by name and device; absent keys are not");
        int del_ok = 1;
        for (int i = 0; bs && i < 20000; i += 97) {
            snprintf(nm, sizeof nm, "big%05d", i);
            del_ok &= syn_del(bs, nm) == 0;
        }
        int after = 1;
        for (int i = 0; bs && i < 20000; i++) {
            snprintf(nm, sizeof nm, "big%05d", i);
            after &= (syn_get(bs, nm) != 0) == (i % 97 != 0);
        }
        T_CHECK(del_ok && after,
                "after deleting every 97th, the others are still found and the deleted are not");
        T_EQ_INT(bs ? wa_signal_store_flush(bs, err, sizeof err) : -1, 0, "flushed");
        wa_signal_store_free(bs);
        bs = syn_open(bd, &a.creds, err, sizeof err);
        int reopened = bs != NULL;
        for (int i = 0; bs && i < 20000; i++) {
            snprintf(nm, sizeof nm, "big%05d", i);
            reopened &= (syn_get(bs, nm) != 0) == (i % 97 != 0);
        }
        T_CHECK(reopened, "and the same after a reopen");
        wa_signal_store_free(bs);
    }

    party_free(&a);
    party_free(&b);
    party_free(&c);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    if (system(cmd) != 0)
        return 1;
    T_DONE();
}
