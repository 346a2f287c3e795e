/* SPDX-License-Identifier: Apache-2.0
 *
 * logs.c -- `tributary logs FUNCTION [--follow]`: a function's log from the data directory.
 *
 * The functions engine writes DATA/functions/<name>/logs/function.log (format in fn.h: one line
 * per output line, "<ISO time>\t<request id>\t<text>", with START/END/REPORT lines) and rotates
 * it to function.log.1.  This command needs no server: it reads the file.  --follow polls every
 * 100 ms; when the file is replaced (rotation) it finishes the old one and reopens.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

static volatile sig_atomic_t stop;
static void on_sig(int s) {
    (void)s;
    stop = 1;
}

static void usage(FILE *o) {
    fprintf(o, "usage: tributary logs FUNCTION [--data DIR] [--follow] [--lines N]\n"
               "  Print a function's log (stdout/stderr of every invocation with its request id,\n"
               "  and AWS's START/END/REPORT lines).\n\n"
               "  --data DIR   data directory of the server (default ./tributary-data)\n"
               "  -f, --follow keep printing new lines until interrupted\n"
               "  -n, --lines N  start with the last N lines (default: the whole file)\n");
}

/* Copy fd from its current offset to stdout; returns bytes copied. */
static long long pump(int fd) {
    char buf[65536];
    long long total = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        if (fwrite(buf, 1, (size_t)r, stdout) != (size_t)r) return -1;
        total += r;
    }
    fflush(stdout);
    return total;
}

/* Position fd at the start of its last n lines. */
static void seek_last_lines(int fd, long n) {
    off_t end = lseek(fd, 0, SEEK_END), pos = end;
    long seen = 0;
    char buf[8192];
    while (pos > 0) {
        off_t start = pos > (off_t)sizeof buf ? pos - (off_t)sizeof buf : 0;
        ssize_t r = pread(fd, buf, (size_t)(pos - start), start);
        if (r <= 0) break;
        for (ssize_t i = r - 1; i >= 0; i--) {
            if (buf[i] != '\n') continue;
            if (start + i == end - 1) continue;   /* the final newline */
            if (++seen == n) {
                lseek(fd, start + i + 1, SEEK_SET);
                return;
            }
        }
        pos = start;
    }
    lseek(fd, 0, SEEK_SET);
}

int cli_logs_main(int argc, char **argv) {
    const char *data = "./tributary-data";
    int follow = 0;
    long lines = -1;
    static const struct option lo[] = {{"data", required_argument, 0, 'd'},
                                       {"follow", no_argument, 0, 'f'},
                                       {"lines", required_argument, 0, 'n'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "fn:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'f': follow = 1; break;
        case 'n': {
            char *end;
            lines = strtol(optarg, &end, 10);
            if (*end || lines < 0) {
                fprintf(stderr, "tributary logs: --lines %s is not a count\n", optarg);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    if (!*name || strchr(name, '/') || name[0] == '.') {
        fprintf(stderr, "tributary logs: \"%s\" is not a function name\n", name);
        return 2;
    }
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/functions/%s", data, name);
    snprintf(path, sizeof path, "%s/logs/function.log", dir);
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr,
                "tributary logs: no function \"%s\" in %s (%s); check the name with "
                "`aws lambda list-functions` and pass the server's --data\n",
                name, data, strerror(errno));
        return 1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && !follow) {
        if (errno == ENOENT) return 0;   /* never invoked: empty log */
        fprintf(stderr, "tributary logs: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (fd >= 0 && lines >= 0) seek_last_lines(fd, lines);
    if (fd >= 0 && pump(fd) < 0) return 1;
    if (!follow) {
        close(fd);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_DFL);
    ino_t ino = 0;
    if (fd >= 0 && fstat(fd, &st) == 0) ino = st.st_ino;
    while (!stop) {
        usleep(100 * 1000);
        if (fd >= 0 && pump(fd) < 0) break;
        if (stat(path, &st) == 0 && (fd < 0 || st.st_ino != ino)) {
            /* rotated or created: finish the old file, continue with the new one */
            if (fd >= 0) {
                pump(fd);
                close(fd);
            }
            fd = open(path, O_RDONLY | O_CLOEXEC);
            ino = st.st_ino;
            if (fd >= 0) pump(fd);
        }
        if (stat(dir, &st) != 0) break;   /* the function was deleted */
    }
    if (fd >= 0) close(fd);
    return 0;
}
