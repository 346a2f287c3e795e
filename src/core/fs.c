/* fs.c -- filesystem helpers (see fs.h). */
#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
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
