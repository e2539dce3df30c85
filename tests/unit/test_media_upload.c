/* The media host's answer to an upload (supervisor/media_upload.c): only a
 * JSON object with an https url and a direct path of plain URL text is
 * taken; everything else is refused and nothing is written out. */
#include "supervisor/media_upload.h"

#include <stdio.h>
#include <string.h>

#include "t.h"

static int parse(const char *body, char *url, char *path)
{
    url[0] = path[0] = '\0';
    return media_upload_parse_answer(body, strlen(body), url, path);
}

int main(void)
{
    char url[MEDIA_UPLOAD_PATH_MAX], path[MEDIA_UPLOAD_PATH_MAX];
    T_EQ_INT(parse("{\"url\":\"https://mmg.whatsapp.net/v/t62/x.enc?ccb=1&mms3=true\","
                   "\"direct_path\":\"/v/t62/x.enc?ccb=1\"}",
                   url, path),
             0, "a whole answer is taken");
    T_EQ_STR(url, "https://mmg.whatsapp.net/v/t62/x.enc?ccb=1&mms3=true", "... its url");
    T_EQ_STR(path, "/v/t62/x.enc?ccb=1", "... its direct path");
    T_EQ_INT(parse("{\"url\":\"https://h/x\",\"direct_path\":\"/x\",\"handle\":\"h\",\"ts\":1}", url, path),
             0, "other members are ignored");
    static const char *const bad[] = {
        "",
        "null",
        "[]",
        "{\"url\":\"https://h/x\"}",
        "{\"direct_path\":\"/x\"}",
        "{\"url\":\"http://h/x\",\"direct_path\":\"/x\"}",
        "{\"url\":\"https://h/x\",\"direct_path\":\"x\"}",
        "{\"url\":\"https://h/x y\",\"direct_path\":\"/x\"}",
        "{\"url\":\"https://h/x\",\"direct_path\":\"/x\\n\"}",
        "{\"url\":\"https://h/x\",\"direct_path\":\"/x\\u0000y\"}",
        "{\"url\":\"https://h/\\u00e9\",\"direct_path\":\"/x\"}",
        "{\"url\":1,\"direct_path\":\"/x\"}",
        "{\"url\":\"https://h/x\",\"direct_path\":\"/x\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char what[160];
        snprintf(what, sizeof what, "refused: %s", bad[i]);
        T_EQ_INT(parse(bad[i], url, path), -1, what);
        T_EQ_STR(url, "", "... nothing written");
    }
    char big[MEDIA_UPLOAD_PATH_MAX + 64];
    snprintf(big, sizeof big, "{\"url\":\"https://h/x\",\"direct_path\":\"/%0*d\"}", MEDIA_UPLOAD_PATH_MAX,
             0);
    T_EQ_INT(parse(big, url, path), -1, "refused: a direct path that does not fit");
    T_DONE();
}
