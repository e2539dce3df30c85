/* The baseline for `make bench`: the smallest libh2o evloop server built from
 * the same libraries, with the same process model (N forked processes sharing
 * one listen socket). With DIR, h2o's own file handler also serves DIR's files
 * under /files/ (the baseline for GET /api/media/{id}).
 * usage: hello-h2o PORT [PROCESSES [DIR]] */
#include <h2o.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    static h2o_generator_t gen = {NULL, NULL};
    static h2o_iovec_t body = {"{\"status\":\"ok\"}", 15};
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_start_response(req, &gen);
    h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock)
        h2o_accept(&accept_ctx, sock);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: hello-h2o PORT [PROCESSES [DIR]]\n");
        return 2;
    }
    int procs = argc > 2 ? atoi(argv[2]) : 1;
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)atoi(argv[1]));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 4096)) {
        perror("listen");
        return 1;
    }
    for (int i = 1; i < procs; i++)
        if (fork() == 0)
            break;
    h2o_config_init(&config);
    h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    if (argc > 3)
        h2o_file_register(h2o_config_register_path(host, "/files", 0), argv[3], NULL, NULL, 0);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof *h);
    h->on_req = on_req;
    h2o_context_init(&ctx, h2o_evloop_create(), &config);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;
    h2o_socket_t *ls = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(ls, on_accept);
    while (h2o_evloop_run(ctx.loop, INT32_MAX) == 0)
        ;
    return 0;
}
