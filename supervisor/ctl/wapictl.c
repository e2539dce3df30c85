/* wapictl: talks to a running wapi over its control socket. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/config.h"
#include "backup.h"
#include "ctl_sock.h"
#include "doctor.h"
#include "user_add.h"

static void usage(void)
{
    fprintf(
        stderr,
        "usage: wapictl [-c config] [-s socket] COMMAND\n"
        "commands:\n"
        "  status       supervisor and worker state (JSON)\n"
        "  reload       re-read the configuration, start a new worker generation\n"
        "  workers N    run N workers\n"
        "  session [status|start|stop|logout|qr]   the WhatsApp session\n"
        "  media [status|sweep]                    the media store; sweep: remove unused files now\n"
        "  user add EMAIL [--name NAME] [--admin]  create a user (password on stdin)\n"
        "  backup --output FILE|- [--no-gzip]      archive of the session and media stores (server running)\n"
        "  restore --input FILE|- [--force]        load such an archive (server stopped)\n"
        "  doctor       is this installation ready: network (through the proxy), clock, volumes,\n"
        "               session store, database and migrations, the running session (exit 1 on a FAIL)\n");
}

int main(int argc, char **argv)
{
    const char *path = getenv("WAPI_CONFIG"), *sock = NULL;
    int c;
    while ((c = getopt(argc, argv, "+c:s:h")) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 's':
            sock = optarg;
            break;
        case 'h':
            usage();
            return 0;
        default:
            usage();
            return 2;
        }
    }
    if (optind >= argc) {
        usage();
        return 2;
    }
    if (strcmp(argv[optind], "user") == 0) /* straight to PostgreSQL, no running server needed */
        return ctl_user(path, argc - optind - 1, argv + optind + 1);
    if (strcmp(argv[optind], "backup") == 0)
        return ctl_backup(path, sock, argc - optind - 1, argv + optind + 1);
    if (strcmp(argv[optind], "restore") == 0)
        return ctl_restore(path, sock, argc - optind - 1, argv + optind + 1);
    if (strcmp(argv[optind], "doctor") == 0)
        return ctl_doctor(path, sock, argc - optind - 1, argv + optind + 1);
    char sockpath[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (!sock) {
        struct wapi_config cfg;
        char err[1024];
        if (config_load(&cfg, path ? path : "conf/wapi.conf", path == NULL, CONFIG_WITH_ENV, err,
                        sizeof err) < 0) {
            fprintf(stderr, "wapictl: %s\n", err);
            return 2;
        }
        snprintf(sockpath, sizeof sockpath, "%s/wapi.sock", cfg.paths.run);
        config_free(&cfg);
        sock = sockpath;
    }
    char line[1024] = "";
    for (int i = optind; i < argc; i++) {
        if (strlen(line) + strlen(argv[i]) + 2 >= sizeof line) {
            fprintf(stderr, "wapictl: command too long\n");
            return 2;
        }
        strcat(line, argv[i]);
        strcat(line, i + 1 < argc ? " " : "\n");
    }
    int fd = ctl_connect(sock);
    if (fd < 0) {
        fprintf(stderr, "wapictl: cannot reach wapi at %s: %s\n", sock, strerror(errno));
        return 1;
    }
    size_t len = strlen(line);
    if (write(fd, line, len) != (ssize_t)len) {
        fprintf(stderr, "wapictl: write: %s\n", strerror(errno));
        return 1;
    }
    char buf[65536];
    size_t total = 0;
    ssize_t r;
    while (total < sizeof buf - 1 && (r = read(fd, buf + total, sizeof buf - 1 - total)) > 0)
        total += (size_t)r;
    close(fd);
    buf[total] = '\0';
    fputs(buf, stdout);
    return strstr(buf, "\"ok\":true") == buf + 1 ? 0 : 1;
}
