/* SPDX-License-Identifier: Apache-2.0
 *
 * fs.c -- filesystem helpers (see fs.h). */
#include "core/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tr_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int tr_fsync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return tr_fsync_dir(".");
    char dir[PATH_MAX];
    size_t n = slash == path ? 1 : (size_t)(slash - path); /* "/file": the root */
    if (n >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return tr_fsync_dir(dir);
}

/* Remove the entries of directory fd (owned: closed here), depth first. */
static int rm_entries(int fd) {
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int rc = 0, first = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        int dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            dir = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                  S_ISDIR(st.st_mode);
        }
        if (dir) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0 || rm_entries(sub)) {
                if (!first) first = errno;
                rc = -1;
            }
        }
        if (unlinkat(dirfd(d), de->d_name, dir ? AT_REMOVEDIR : 0) && errno != ENOENT) {
            if (!first) first = errno;
            rc = -1;
        }
    }
    closedir(d);
    if (rc) errno = first;
    return rc;
}

int tr_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st)) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = rm_entries(fd);
    int e = errno;
    if (rmdir(path)) {
        if (!rc) e = errno;
        rc = -1;
    }
    if (rc) errno = e;
    return rc;
}

int tr_mkdir_p(const char *path) {
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof p) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(p, path, n + 1);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) == 0) {
            if (tr_fsync_parent(p)) return -1;
        } else if (errno != EEXIST) {
            return -1;
        }
        p[i] = c;
    }
    struct stat st;
    if (stat(p, &st)) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}
