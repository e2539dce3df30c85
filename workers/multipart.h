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

#endif
