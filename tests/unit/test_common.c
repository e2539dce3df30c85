/* The small shared helpers: RFC 3339 times, mkdir -p, whsec_ secrets, hex. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/fdio.h"
#include "common/hex.h"
#include "common/timefmt.h"
#include "common/whsec.h"
#include "t.h"

static void test_time(void)
{
    char b[RFC3339_LEN];
    struct timespec ts = {1796391930, 123456789}; /* 2026-12-04T13:45:30.123Z */
    rfc3339_ms(&ts, b, sizeof b);
    T_EQ_STR(b, "2026-12-04T13:45:30.123Z", "time: milliseconds, UTC, Z");
    rfc3339_s(ts.tv_sec, b, sizeof b);
    T_EQ_STR(b, "2026-12-04T13:45:30Z", "time: whole seconds");
    struct timespec epoch = {0, 999999};
    rfc3339_ms(&epoch, b, sizeof b);
    T_EQ_STR(b, "1970-01-01T00:00:00.000Z", "time: the epoch, milliseconds truncated");
    rfc3339_now_ms(b, sizeof b);
    T_CHECK(strlen(b) == 24 && b[10] == 'T' && b[23] == 'Z', "time: now has the same shape");
}

static void test_mkdir(void)
{
    char base[] = "/tmp/wapi-t-common-XXXXXX", p[256];
    T_CHECK(mkdtemp(base) != NULL, "mkdir: a scratch folder");
    snprintf(p, sizeof p, "%s/a/b/c", base);
    struct stat st;
    T_CHECK(mkdir_p(p, 0700) == 0 && stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700,
            "mkdir: makes every missing folder, with the mode");
    T_EQ_INT(mkdir_p(p, 0700), 0, "mkdir: what exists is fine");
    snprintf(p, sizeof p, "%s/file", base);
    FILE *f = fopen(p, "w");
    if (f)
        fclose(f);
    snprintf(p, sizeof p, "%s/file/below", base);
    T_CHECK(mkdir_p(p, 0700) == -1 && errno == ENOTDIR, "mkdir: a file in the way is an error");
    char *longp = malloc(5000);
    memset(longp, 'x', 4999);
    longp[0] = '/';
    longp[4999] = '\0';
    T_CHECK(mkdir_p(longp, 0700) == -1 && errno == ENAMETOOLONG, "mkdir: too long a path is refused");
    free(longp);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    T_EQ_INT(system(cmd), 0, "mkdir: scratch removed");
}

static void test_whsec(void)
{
    unsigned char key[WHSEC_KEY_MAX], in[WHSEC_KEY_MAX];
    char s[WHSEC_MAX_LEN + 1];
    for (int i = 0; i < WHSEC_KEY_MAX; i++)
        in[i] = (unsigned char)(i * 37 + 1);
    static const size_t lens[] = {24, 25, 26, 32, 63, 64};
    int ok = 1;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        ok &= whsec_encode(in, lens[i], s, sizeof s) == 0;
        ok &= whsec_decode(s, key) == (int)lens[i] && memcmp(key, in, lens[i]) == 0;
    }
    T_CHECK(ok, "whsec: 24 to 64 bytes round trip, whatever the padding");
    T_EQ_INT(whsec_encode(in, 23, s, sizeof s), -1, "whsec: 23 bytes is too short to make");
    T_EQ_INT(whsec_encode(in, 65, s, sizeof s), -1, "whsec: 65 bytes is too long to make");
    /* The Standard Webhooks example secret (24 bytes). */
    T_EQ_INT(whsec_decode("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key), 24,
             "whsec: the specification's example");
    static const char *const bad[] = {
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",       /* no prefix */
        "whsec_",                                 /* no key */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  /* not a multiple of 4 */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La",     /* 21 bytes */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!", /* not base64 */
        "whsec_"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "A", /* 66 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        T_EQ_INT(whsec_decode(bad[i], key), -1, "whsec: a secret outside the rule is refused");
}

static void test_hex(void)
{
    const unsigned char in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof in + 1];
    memset(out, 'x', sizeof out);
    hex_encode(out, in, sizeof in, 0);
    T_EQ_STR(out, "00017f80abff", "hex: lowercase, two digits a byte, NUL-terminated");
    hex_encode(out, in, sizeof in, 1);
    T_EQ_STR(out, "00017F80ABFF", "hex: uppercase");
    out[0] = 'x';
    hex_encode(out, in, 0, 0);
    T_EQ_STR(out, "", "hex: nothing is an empty string");
    unsigned char back[sizeof in];
    T_CHECK(hex_decode("00017f80ABff", back, sizeof back) == 0 && !memcmp(back, in, sizeof in),
            "hex_decode: both cases back to the bytes");
    const char *bad[] = {
        "00017f80abf", "00017f80abff0", " 0017f80abff", "+0017f80abff", "0x017f80abff", "00017f80abfg", NULL};
    int refused = 0;
    for (int i = 0; bad[i]; i++)
        refused += hex_decode(bad[i], back, sizeof back) == -1;
    T_EQ_INT(refused, 6, "hex_decode: a digit short or over, a space, a sign, 0x, a non-digit: refused");
    T_CHECK(hex_decode(NULL, back, 1) == -1 && hex_decode("", back, 0) == 0,
            "hex_decode: NULL refused, empty is empty");
}

static void test_fdio(void)
{
    char path[] = "/tmp/wapi-fdio-XXXXXX";
    int fd = mkstemp(path);
    static char big[1 << 20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    T_CHECK(fd >= 0 && fd_write_all(fd, big, sizeof big) == 0, "fd_write_all: a MiB written");
    char back[100];
    lseek(fd, 5, SEEK_SET);
    T_CHECK(fd_pread_all(fd, back, sizeof back, 1000) == (ssize_t)sizeof back &&
                !memcmp(back, big + 1000, sizeof back) && lseek(fd, 0, SEEK_CUR) == 5,
            "fd_pread_all: the bytes at the offset asked, the descriptor's own offset untouched");
    T_EQ_INT(fd_pread_all(fd, back, sizeof back, sizeof big - 10), 10, "fd_pread_all: short only at the end");
    T_EQ_INT(fd_pread_all(fd, back, sizeof back, sizeof big + 10), 0, "fd_pread_all: past the end, 0");
    close(fd);
    unlink(path);
    T_CHECK(fd_write_all(fd, big, 1) == -1 && fd_pread_all(fd, back, 1, 0) == -1,
            "a closed descriptor: -1 both ways");
    int p[2];
    if (pipe(p) == 0) {
        close(p[0]);
        signal(SIGPIPE, SIG_IGN);
        T_CHECK(fd_write_all(p[1], big, 10) == -1 && errno == EPIPE, "a pipe with no reader: -1, EPIPE");
        close(p[1]);
    }
}

int main(void)
{
    test_hex();
    test_fdio();
    test_time();
    test_mkdir();
    test_whsec();
    T_DONE();
}
