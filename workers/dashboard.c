/* GET / : the dashboard shell (a placeholder page until the app lands). */
#include "handlers.h"

static const char page[] =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>wapi</title>\n</head>\n<body>\n<main>\n<h1>wapi</h1>\n"
    "<p>Self-hosted WhatsApp HTTP API. The server is running.</p>\n"
    "<ul>\n<li><a href=\"/healthz\">/healthz</a> liveness</li>\n<li><a href=\"/readyz\">/readyz</a> readiness</li>\n"
    "<li><a href=\"/metrics\">/metrics</a> Prometheus metrics</li>\n</ul>\n</main>\n</body>\n</html>\n";

void h_dashboard(struct rq *rq)
{
    http_send(rq, 200, "text/html; charset=utf-8", page, sizeof page - 1);
}
