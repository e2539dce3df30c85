/* Polls and votes (supervisor/wa/wa_message.c): the vote key and its
 * additional data against a vector made apart with node's crypto
 * (hkdfSync('sha256', secret, empty salt, pollId ‖ creator ‖ voter ‖
 * "Poll Vote", 32); createCipheriv('aes-256-gcm') with setAAD(pollId ‖ 0 ‖
 * voter)), opening that vote, refusing it when anything differs, and a poll
 * and a vote written by wapi read back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "supervisor/wa/wa_crypto.h"
#include "supervisor/wa/wa_message.h"
#include "t.h"

/* secret = bytes 0..31, poll 3EB0C0FFEE0001 by 15550001111@s.whatsapp.net,
 * voter 15550002222@lid, IV a0a1..ab, the vote: Red and Green. */
static const char PID[] = "3EB0C0FFEE0001", CREATOR[] = "15550001111@s.whatsapp.net",
                  VOTER[] = "15550002222@lid";
static const char KEY_HEX[] = "b270a7562606139912fc5bf16290d209bbe921ec3ce2d0cd0e0efa99bae8a7a7";
static const char CT_HEX[] =
    "a2548bf968a60a65ca7532674641c26295bb2e55aa55722eb2f6d8d73462466804646a5d7ec6d8e4094c3b371e4c68bf1854"
    "6af6040401e3d4c9596b3755b0e8c59d163d71abcbec930fe2d6b8585e05d32b788c";

static void sum(const char *s, uint8_t out[32])
{
    wa_crypto_sha256((const uint8_t *)s, strlen(s), out);
}

static int opens(const uint8_t *secret, const char *pid, const char *creator, const char *voter,
                 const struct wa_msg_poll_vote *v, size_t *n, uint8_t **sums)
{
    return wa_msg_poll_vote_open(secret, pid, creator, voter, v, sums, n);
}

int main(void)
{
    uint8_t secret[32], key[32], want[32], *ad = NULL;
    size_t adlen = 0;
    for (int i = 0; i < 32; i++)
        secret[i] = (uint8_t)i;
    hex_decode(KEY_HEX, want, sizeof want);
    T_EQ_INT(wa_msg_poll_vote_key(secret, PID, CREATOR, VOTER, key, &ad, &adlen), 0, "vote key derived");
    T_CHECK(!memcmp(key, want, 32),
            "the key equals node's HKDF-SHA256 of the secret (no salt, the four parts)");
    char ad_want[64];
    size_t al = (size_t)snprintf(ad_want, sizeof ad_want, "%s%c%s", PID, 0, VOTER);
    T_CHECK(adlen == sizeof PID - 1 + 1 + sizeof VOTER - 1 && !memcmp(ad, ad_want, al),
            "additional data: poll id, a zero byte, the voter");
    free(ad);

    struct wa_msg_poll_vote v = {0};
    v.payload_len = strlen(CT_HEX) / 2;
    v.payload = malloc(v.payload_len);
    hex_decode(CT_HEX, v.payload, v.payload_len);
    hex_decode("a0a1a2a3a4a5a6a7a8a9aaab", v.iv, sizeof v.iv);
    uint8_t *sums = NULL, red[32], green[32];
    size_t n = 0;
    sum("Red", red);
    sum("Green", green);
    T_EQ_INT(opens(secret, PID, CREATOR, VOTER, &v, &n, &sums), 0, "node's vote opens");
    T_CHECK(n == 2 && !memcmp(sums, red, 32) && !memcmp(sums + 32, green, 32),
            "it lists SHA-256 of Red and of Green, in order");
    free(sums);
    T_EQ_INT(opens(secret, PID, CREATOR, "15550002222@s.whatsapp.net", &v, &n, &sums), -1,
             "not for the voter's phone number when sealed for the LID");
    T_EQ_INT(opens(secret, PID, "15550001111@lid", VOTER, &v, &n, &sums), -1, "not for another creator JID");
    T_EQ_INT(opens(secret, "3EB0C0FFEE0002", CREATOR, VOTER, &v, &n, &sums), -1, "not for another poll");
    secret[0] ^= 1;
    T_EQ_INT(opens(secret, PID, CREATOR, VOTER, &v, &n, &sums), -1, "not with another secret");
    secret[0] ^= 1;
    v.payload[v.payload_len - 1] ^= 0x01;
    T_EQ_INT(opens(secret, PID, CREATOR, VOTER, &v, &n, &sums), -1, "not with a bit of the tag flipped");
    v.payload[v.payload_len - 1] ^= 0x01;
    v.iv[0] ^= 1;
    T_EQ_INT(opens(secret, PID, CREATOR, VOTER, &v, &n, &sums), -1, "not with another IV");
    v.iv[0] ^= 1;
    size_t full = v.payload_len;
    v.payload_len = 15;
    T_EQ_INT(opens(secret, PID, CREATOR, VOTER, &v, &n, &sums), -1,
             "a payload shorter than a tag is refused");
    v.payload_len = full;
    free(v.payload);

    /* wapi's own: a poll and a vote, read back */
    char *opts[] = {"Red", "Blue"};
    struct wa_msg_poll p = {
        .question = "Colour?", .options = opts, .noptions = 2, .multiple = 0, .has_secret = 1};
    memcpy(p.secret, secret, 32);
    uint8_t *msg = NULL;
    size_t ml = 0;
    struct wa_msg_content mc;
    T_EQ_INT(wa_msg_build_poll(&p, "3EB0REPLY", NULL, &msg, &ml), 0, "a single-choice poll is built");
    T_EQ_INT(wa_msg_parse(msg, ml, &mc), 0, "and parses");
    T_CHECK(mc.kind == WA_MSG_POLL && mc.poll && !strcmp(mc.poll->question, "Colour?") &&
                mc.poll->noptions == 2 && !mc.poll->multiple && mc.poll->has_secret &&
                !memcmp(mc.poll->secret, secret, 32) && mc.reply_to && !strcmp(mc.reply_to, "3EB0REPLY") &&
                !strcmp(mc.subtype, "pollCreationMessageV3"),
            "read back: V3, question, options, one choice, its secret, the reply");
    struct wa_msg_stanza st;
    T_CHECK(wa_msg_stanza_type(msg, ml, &st) == 0 && !strcmp(st.type, "poll") && st.polltype &&
                !strcmp(st.polltype, "creation") && !st.mediatype && !st.hide_on_failure,
            "a poll goes as type poll, polltype creation");
    wa_msg_content_free(&mc);
    free(msg);
    p.has_secret = 0;
    T_EQ_INT(wa_msg_build_poll(&p, NULL, NULL, &msg, &ml), -1, "no poll is built without its secret");

    const char *choice[] = {"Blue"};
    T_EQ_INT(
        wa_msg_build_poll_vote(secret, CREATOR, PID, 0, CREATOR, VOTER, choice, 1, 1700000000000, &msg, &ml),
        0, "a vote is built");
    T_EQ_INT(wa_msg_parse(msg, ml, &mc), 0, "and parses");
    T_CHECK(mc.kind == WA_MSG_POLL_VOTE && mc.vote && !strcmp(mc.vote->poll_id, PID) &&
                !mc.vote->poll_from_me && mc.vote->ts_ms == 1700000000000,
            "read back: the poll's id, not ours, its time");
    uint8_t blue[32];
    sum("Blue", blue);
    T_CHECK(mc.vote && opens(secret, PID, CREATOR, VOTER, mc.vote, &n, &sums) == 0 && n == 1 &&
                !memcmp(sums, blue, 32),
            "and opens to Blue's sum");
    free(sums);
    T_CHECK(wa_msg_stanza_type(msg, ml, &st) == 0 && !strcmp(st.type, "poll") && !strcmp(st.polltype, "vote"),
            "a vote goes as type poll, polltype vote");
    wa_msg_content_free(&mc);
    free(msg);
    T_DONE();
}
