/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_zip.c -- deployment packages (fn/zip.c): arbitrary bytes stored as an uploaded zip.
 *
 * Each input goes through fn__code_store (unpack to a temp name, write the zip, renames; no
 * sync) into a package directory five levels below a private temp root.  Checked:
 *   - never a crash (ASan/UBSan);
 *   - nothing is written outside the package directory: every level between the temp root and
 *     it holds exactly the one entry it held before;
 *   - all or nothing: on success the package directory holds exactly code-<hex>.zip (the input,
 *     byte for byte) and code-<hex>/; on failure it is empty (no half package, no temp names);
 *   - every symbolic link of an accepted package that resolves at all (realpath, i.e. the
 *     kernel) resolves inside code-<hex>/, and so does the directory part of its target (which
 *     catches a dangling link aimed outside). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "fn/fn_int.h"
#include "fuzz.h"

#define LEVELS 5

static char levels[LEVELS + 1][3100];   /* levels[0] the temp root .. levels[LEVELS] pkg */

static void cleanup(void) { tr_rmtree(levels[0]); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    snprintf(levels[0], sizeof levels[0], "/tmp/fuzz_zip-XXXXXX");
    FUZZ_CHECK(mkdtemp(levels[0]) != NULL);
    atexit(cleanup);
    for (int i = 1; i <= LEVELS; i++) {
        char up[sizeof levels[0]];
        memcpy(up, levels[i - 1], sizeof up);
        snprintf(levels[i], sizeof levels[i], "%.3000s/l%d", up, i);
        FUZZ_CHECK(mkdir(levels[i], 0700) == 0);
    }
    return 0;
}

/* Names in dir (up to cap), count returned. */
static int list(const char *dir, char names[][300], int cap) {
    DIR *d = opendir(dir);
    FUZZ_CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (n < cap) snprintf(names[n], sizeof names[n], "%s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* Every link under dir that resolves must resolve under root. */
static void links_inside(const char *dir, const char *root) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (S_ISLNK(st.st_mode)) {
            /* the link itself, and (for a dangling one) the directory its target names */
            char tgt[PATH_MAX], via[2 * PATH_MAX + 2];
            ssize_t tl = readlink(p, tgt, sizeof tgt - 1);
            FUZZ_CHECK(tl > 0);
            tgt[tl] = 0;
            char *slash = strrchr(tgt, '/');
            if (slash) *slash = 0;
            snprintf(via, sizeof via, "%s/%s", dir, slash ? tgt : ".");
            const char *probe[2] = {p, via};
            for (int k = 0; k < 2; k++) {
                char real[PATH_MAX];
                if (!realpath(probe[k], real)) continue;
                size_t rl = strlen(root);
                if (strncmp(real, root, rl) || (real[rl] && real[rl] != '/')) {
                    fprintf(stderr, "link %s (via %s) resolves to %s, outside %s\n", p, probe[k],
                            real, root);
                    abort();
                }
            }
        } else if (S_ISDIR(st.st_mode)) {
            links_inside(p, root);
        }
    }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *pkg = levels[LEVELS];
    char hex[65], b64[45];
    fn__sha256(data, size, hex, b64);
    tr_err err;
    tr_err_clear(&err);
    int rc = fn__code_store(pkg, hex, data, size, 1, &err);
    FUZZ_CHECK(rc <= 0);
    FUZZ_CHECK(rc == 0 || err.msg[0]);

    char names[4][300];
    for (int i = 0; i < LEVELS; i++) {
        int n = list(levels[i], names, 4);
        if (n != 1) {
            fprintf(stderr, "%s holds %d entries (first '%s'): written outside the package\n",
                    levels[i], n, names[0]);
            abort();
        }
    }
    int n = list(pkg, names, 4);
    char zname[80], dname[80];
    snprintf(zname, sizeof zname, "code-%s.zip", hex);
    snprintf(dname, sizeof dname, "code-%s", hex);
    if (rc) {
        if (n) fprintf(stderr, "refused (%s) but left '%s'\n", err.msg, names[0]);
        FUZZ_CHECK(n == 0);
        return 0;
    }
    FUZZ_CHECK(n == 2);
    FUZZ_CHECK((!strcmp(names[0], zname) && !strcmp(names[1], dname)) ||
               (!strcmp(names[1], zname) && !strcmp(names[0], dname)));
    char p[PATH_MAX + 100];
    snprintf(p, sizeof p, "%s/%s", pkg, zname);
    struct stat st;
    FUZZ_CHECK(stat(p, &st) == 0 && (size_t)st.st_size == size);
    snprintf(p, sizeof p, "%s/%s", pkg, dname);
    char root[PATH_MAX];
    FUZZ_CHECK(realpath(p, root) != NULL);
    links_inside(p, root);
    /* clean up for the next input */
    FUZZ_CHECK(tr_rmtree(p) == 0);
    snprintf(p, sizeof p, "%s/%s", pkg, zname);
    FUZZ_CHECK(unlink(p) == 0);
    return 0;
}
