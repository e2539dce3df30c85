/* Small helpers for the JSON REST endpoints (messages, chats, webhooks):
 * the body, query parameters, cursors, and row JSON. */
#ifndef WAPI_WORKER_REST_H
#define WAPI_WORKER_REST_H
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "common/jsonw.h"
#include "common/sbuf.h"
#include "http.h"

#define REST_BODY_MAX 65536

/* An RFC 3339 UTC timestamp in SQL (NULL stays NULL). */
#define REST_TS(col) "to_char((" col ")::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The body as a JSON object, or NULL after answering 400/413. */
yajl_val rest_body(struct rq *rq, size_t max);
/* The value of query parameter name (not decoded beyond %XX), or -1 when
 * absent; 0..outlen-1 bytes copied, -2 when longer than outlen-1. */
int rest_query(struct rq *rq, const char *name, char *out, size_t outlen);
/* limit=1..max (default def); -1 after answering 400. */
int rest_limit(struct rq *rq, int def, int max);
/* cursor: opaque base64url of "n" or "n:text". Returns 0 absent, 1 read,
 * -1 after answering 400. */
int rest_cursor(struct rq *rq, int64_t *n, char *text, size_t textlen);
/* Writes the value "<base64url(n or n:text)>" (null when too long). */
void rest_add_cursor(struct jsonw *w, const char *n, const char *text);
/* limit= and a numeric cursor= together: 1 with a cursor, 0 without, -1
 * after answering 400. */
int rest_page(struct rq *rq, int def, int max, int *limit, int64_t *cur);
/* Answers 200 {data:[...], next_cursor} from res rows first.. (column json_col
 * holds each item's JSON). limit < 0: every row, no cursor key. Otherwise the
 * query asked for limit + 1 rows; when it got them, the cursor is made of the
 * last row shown: num_col and text_col (-1 or NULL value: none). */
void rest_answer_page(struct rq *rq, const PGresult *res, int first, int limit, int json_col, int num_col,
                      int text_col);
/* The database said no: 503. */
void rest_db_error(struct rq *rq, const char *err);
/* The first column of a one-row result, or NULL after answering 503 (no
 * result) or 404 with `missing` (no row). Borrowed from res. */
const char *rest_one_row(struct rq *rq, const PGresult *res, const char *err, const char *missing);
/* A message id as wapi and WhatsApp write them: 1..128 of [A-Za-z0-9._:-]. */
int rest_id_ok(const char *s, size_t n);
/* A JID to read by: 3..128 of [A-Za-z0-9._:@-] with exactly one '@'. */
int rest_jid_ok(const char *s, size_t n);

#endif
