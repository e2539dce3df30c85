/* GET / (the dashboard's app shell), GET /assets/... (its CSS and
 * JavaScript modules), GET /docs and GET /api/openapi.json (the API
 * reference and its document), embedded in the binary; revalidated by ETag. */
#include <string.h>

#include "dashboard_assets.h"
#include "handlers.h"

static const struct asset *find(const char *path, size_t len)
{
    for (unsigned i = 0; i < n_dashboard_assets; i++)
        if (strlen(dashboard_assets[i].path) == len && memcmp(dashboard_assets[i].path, path, len) == 0)
            return &dashboard_assets[i];
    return NULL;
}

static void serve(struct rq *rq, const struct asset *a)
{
    if (!a) {
        http_error(rq, 404, NULL, "no such file", NULL);
        return;
    }
    http_add_header(rq, "etag", a->etag);
    http_add_header(rq, "cache-control", "no-cache");
    ssize_t i = h2o_find_header(&rq->req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (i >= 0) {
        h2o_iovec_t v = rq->req->headers.entries[i].value;
        size_t el = strlen(a->etag);
        /* A list of tags, possibly weak: any equal one will do. */
        for (size_t p = 0; p + el <= v.len; p++)
            if (memcmp(v.base + p, a->etag, el) == 0) {
                http_send(rq, 304, NULL, "", 0);
                return;
            }
    }
    http_send(rq, 200, a->type, (const char *)a->data, a->len);
}

void h_dashboard(struct rq *rq)
{
    serve(rq, find("/index.html", 11));
}

void h_asset(struct rq *rq)
{
    h2o_iovec_t p = rq->req->path_normalized;
    serve(rq, find(p.base, p.len));
}

void h_docs(struct rq *rq)
{
    serve(rq, find("/docs.html", 10));
}

void h_openapi(struct rq *rq)
{
    serve(rq, find("/openapi.json", 13));
}
