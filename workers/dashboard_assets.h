/* The dashboard's files, embedded at build time by scripts/embed-assets.sh. */
#ifndef WAPI_WORKER_DASHBOARD_ASSETS_H
#define WAPI_WORKER_DASHBOARD_ASSETS_H
#include <stddef.h>

struct asset {
    const char *path; /* "/index.html", "/assets/app.js", ... */
    const char *type;
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted */
};

extern const struct asset dashboard_assets[];
extern const unsigned n_dashboard_assets;

#endif
