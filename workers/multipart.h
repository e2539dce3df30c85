/* multipart/form-data (RFC 7578) over a body held in memory: the parts'
 * names, file names and types are copied out (bounded), their contents
 * point into the body. Nothing is allocated. */
#ifndef WAPI_MULTIPART_H
#define WAPI_MULTIPART_H
#include <stddef.h>

#define MP_BOUNDARY_MAX 70 /* RFC 2046 */
#define MP_NAME_MAX 64
#define MP_FILENAME_MAX 1024
#define MP_TYPE_MAX 128
#define MP_MAX_PARTS 16
#define MP_KEPT_NAME_MAX 255 /* a file name as stored */

struct mp_part {
    char name[MP_NAME_MAX];         /* Content-Disposition name= */
    char filename[MP_FILENAME_MAX]; /* filename= (or filename*=UTF-8''…), decoded; "" when absent */
    int has_filename;
    char type[MP_TYPE_MAX]; /* the part's Content-Type; "" when absent */
    const char *data;       /* its bytes, inside the body */
    size_t len;
};

/* The boundary of a Content-Type "multipart/form-data; boundary=…" (quoted
 * or not) into out; 0, or -1 when ctype is not multipart/form-data with a
 * valid boundary. */
int multipart_boundary(const char *ctype, size_t n, char out[MP_BOUNDARY_MAX + 1]);
/* Splits body into parts (at most MP_MAX_PARTS): *nparts set, 0; or -1 with
 * *err (a static string) when the body is not well-formed. */
int multipart_parse(const char *body, size_t n, const char *boundary, struct mp_part *parts, int *nparts,
                    const char **err);

/* The fields of an upload form: the "file" part, and the small text fields
 * kind, file_name and sha256 copied out ("" when absent). 0, or -1 with
 * *bad naming the field that is repeated (file), too long or holds a NUL.
 * f->file is NULL when the form has none. */
struct mp_form {
    const struct mp_part *file;
    char kind[16], file_name[MP_FILENAME_MAX], sha256[65];
};
int multipart_form(const struct mp_part *parts, int n, struct mp_form *f, const char **bad);

/* %XX and '+' decoded in place (a query parameter); -1 on a bad escape or
 * an encoded NUL. */
int multipart_url_decode(char *s);
/* A file name as kept: its last path segment, spaces around it trimmed,
 * valid UTF-8 without control characters, at most MP_KEPT_NAME_MAX bytes
 * ("" for none, "." or ".."). -1 when it cannot be kept. */
int multipart_file_name(const char *in, char out[MP_KEPT_NAME_MAX + 1]);

#endif
