/*
 * wal.c -- the table store's write-ahead log (see wal.h for the format and rules).
 */
#include "table/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/tlog.h"

#define SUB "tbl-wal"
#define HDR 20
#define CKPT_MAGIC 0x504b4354u /* "TCKP" */

struct tbl_wal {
    char *dir;
    int dfd;          /* the directory, for fsync after create / rename */
    int fd;           /* segment being appended to; -1 before replay */
    uint64_t seg;     /* its number */
    uint64_t off;     /* its length */
    uint64_t next_lsn;
    uint64_t pending; /* bytes appended since the last rotation */
};

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) {
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static int sys_fail(tr_err *err, const char *what, const char *path) {
    return tr_err_set(err, TR_EIO, "table write-ahead log: %s %s: %s; check the disk and the "
                                   "data directory permissions", what, path, strerror(errno));
}

static void seg_path(const tbl_wal_t *w, uint64_t seg, char *out, size_t n) {
    snprintf(out, n, "%s/%016" PRIx64 ".wal", w->dir, seg);
}

int tbl_wal_open(const char *dir, tbl_wal_t **out, tr_err *err) {
    *out = NULL;
    if (mkdir(dir, 0755) && errno != EEXIST) return sys_fail(err, "cannot create", dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return sys_fail(err, "cannot open", dir);
    tbl_wal_t *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        close(dfd);
        return tr_err_set(err, TR_ENOMEM, "out of memory opening the table write-ahead log");
    }
    w->dfd = dfd;
    w->fd = -1;
    w->next_lsn = 1;
    *out = w;
    return 0;
}

void tbl_wal_close(tbl_wal_t *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    close(w->dfd);
    free(w->dir);
    free(w);
}

/* Sorted segment numbers in the directory. */
static int seg_list(tbl_wal_t *w, uint64_t **out, size_t *n, tr_err *err) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(w->dir);
    if (!d) return sys_fail(err, "cannot list", w->dir);
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strlen(e->d_name) != 20 || strcmp(e->d_name + 16, ".wal")) continue;
        uint64_t s = strtoull(e->d_name, &end, 16);
        if (end != e->d_name + 16 || !s) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            uint64_t *nl = realloc(*out, cap * sizeof *nl);
            if (!nl) {
                closedir(d);
                free(*out);
                *out = NULL;
                return tr_err_set(err, TR_ENOMEM, "out of memory listing the write-ahead log");
            }
            *out = nl;
        }
        (*out)[(*n)++] = s;
    }
    closedir(d);
    for (size_t i = 1; i < *n; i++) /* insertion sort: a handful of segments */
        for (size_t j = i; j > 0 && (*out)[j - 1] > (*out)[j]; j--) {
            uint64_t t = (*out)[j];
            (*out)[j] = (*out)[j - 1];
            (*out)[j - 1] = t;
        }
    return 0;
}

/* Replay one segment.  *bad_at = offset of the first bad record, or -1. */
static int seg_replay(tbl_wal_t *w, uint64_t seg, tbl_wal_fn fn, void *arg, long long *bad_at,
                      uint64_t *size, tr_err *err) {
    char path[4200];
    seg_path(w, seg, path, sizeof path);
    *bad_at = -1;
    FILE *f = fopen(path, "rb");
    if (!f) return sys_fail(err, "cannot open", path);
    struct stat st;
    if (fstat(fileno(f), &st)) {
        fclose(f);
        return sys_fail(err, "cannot stat", path);
    }
    *size = (uint64_t)st.st_size;
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t off = 0;
    int rc = 0;
    for (;;) {
        uint8_t h[HDR];
        size_t got = fread(h, 1, HDR, f);
        if (got == 0 && off == *size) break;
        if (got < HDR) {
            *bad_at = (long long)off;
            break;
        }
        uint32_t len = get32(h), crc = get32(h + 4);
        uint64_t lsn = get64(h + 12);
        if (len > TBL_WAL_MAX_RECORD || off + HDR + len > *size) {
            *bad_at = (long long)off;
            break;
        }
        if (len > cap) {
            uint8_t *nb = realloc(buf, len);
            if (!nb) {
                rc = tr_err_set(err, TR_ENOMEM, "out of memory replaying %s", path);
                break;
            }
            buf = nb;
            cap = len;
        }
        if (fread(buf, 1, len, f) != len) {
            *bad_at = (long long)off;
            break;
        }
        uint32_t c = tr_crc32c(0, h + 8, HDR - 8);
        c = tr_crc32c(c, buf, len);
        if (c != crc || h[9] || h[10] || h[11]) {
            *bad_at = (long long)off;
            break;
        }
        if (lsn >= w->next_lsn) w->next_lsn = lsn + 1;
        if ((rc = fn(arg, h[8], lsn, buf, len))) break;
        off += HDR + len;
    }
    free(buf);
    fclose(f);
    return rc;
}

int tbl_wal_replay(tbl_wal_t *w, uint64_t from_seg, tbl_wal_fn fn, void *arg, tr_err *err) {
    uint64_t *segs;
    size_t n;
    int rc = seg_list(w, &segs, &n, err);
    if (rc) return rc;
    uint64_t last = from_seg ? from_seg - 1 : 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (segs[i] > last) last = segs[i];
        if (segs[i] < from_seg) continue;
        long long bad;
        uint64_t size;
        rc = seg_replay(w, segs[i], fn, arg, &bad, &size, err);
        if (rc || bad < 0) continue;
        char path[4200];
        seg_path(w, segs[i], path, sizeof path);
        if (i + 1 < n) {
            rc = tr_err_set(err, TR_ECORRUPT,
                            "table write-ahead log %s is corrupt at offset %lld (a bad record "
                            "before newer segments); restore DATA/tables from a backup",
                            path, bad);
            break;
        }
        tr_warn(SUB, "%s: truncating a torn tail of %" PRIu64 " bytes at offset %lld (a write "
                     "interrupted by a crash, never acknowledged)", path, size - (uint64_t)bad,
                bad);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t)bad) || fdatasync(fd)) {
            rc = sys_fail(err, "cannot truncate", path);
        }
        if (fd >= 0) close(fd);
    }
    free(segs);
    if (rc) return rc;
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    w->seg = last;
    uint64_t s;
    return tbl_wal_rotate(w, &s, err);
}

int tbl_wal_append(tbl_wal_t *w, uint8_t type, const void *a, size_t an, const void *b,
                   size_t bn, uint64_t *lsn, tr_err *err) {
    if (w->fd < 0) return tr_err_set(err, TR_EINVAL, "table write-ahead log not replayed yet");
    if (an + bn > TBL_WAL_MAX_RECORD)
        return tr_err_set(err, TR_ETOOBIG, "a table transaction of %zu bytes is over the "
                                           "write-ahead log's record limit", an + bn);
    uint8_t h[HDR] = {0};
    put32(h, (uint32_t)(an + bn));
    h[8] = type;
    put64(h + 12, w->next_lsn);
    uint32_t c = tr_crc32c(0, h + 8, HDR - 8);
    if (an) c = tr_crc32c(c, a, an);
    if (bn) c = tr_crc32c(c, b, bn);
    put32(h + 4, c);
    struct iovec iov[3] = {{h, HDR}, {(void *)a, an}, {(void *)b, bn}};
    size_t total = HDR + an + bn, done = 0;
    int iovcnt = 3, first = 0;
    while (done < total) {
        ssize_t k = pwritev(w->fd, iov + first, iovcnt - first, (off_t)(w->off + done));
        if (k < 0) {
            if (errno == EINTR) continue;
            char path[4200];
            seg_path(w, w->seg, path, sizeof path);
            return sys_fail(err, "cannot write", path);
        }
        done += (size_t)k;
        while (first < iovcnt && (size_t)k >= iov[first].iov_len) {
            k -= (ssize_t)iov[first].iov_len;
            first++;
        }
        if (first < iovcnt) {
            iov[first].iov_base = (uint8_t *)iov[first].iov_base + k;
            iov[first].iov_len -= (size_t)k;
        }
    }
    w->off += total;
    w->pending += total;
    if (lsn) *lsn = w->next_lsn;
    w->next_lsn++;
    return 0;
}

int tbl_wal_sync(tbl_wal_t *w, tr_err *err) {
    if (w->fd >= 0 && fdatasync(w->fd)) {
        char path[4200];
        seg_path(w, w->seg, path, sizeof path);
        return sys_fail(err, "cannot sync", path);
    }
    return 0;
}

int tbl_wal_rotate(tbl_wal_t *w, uint64_t *seg, tr_err *err) {
    char path[4200];
    seg_path(w, w->seg + 1, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return sys_fail(err, "cannot create", path);
    if (fsync(w->dfd)) {
        close(fd);
        return sys_fail(err, "cannot sync the directory of", path);
    }
    if (w->fd >= 0) close(w->fd);
    w->fd = fd;
    w->seg++;
    w->off = 0;
    w->pending = 0;
    *seg = w->seg;
    return 0;
}

uint64_t tbl_wal_pending(const tbl_wal_t *w) { return w->pending; }
uint64_t tbl_wal_segment(const tbl_wal_t *w) { return w->seg; }

int tbl_wal_drop_before(tbl_wal_t *w, uint64_t seg, tr_err *err) {
    uint64_t *segs;
    size_t n;
    int rc = seg_list(w, &segs, &n, err);
    if (rc) return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        if (segs[i] >= seg) break;
        char path[4200];
        seg_path(w, segs[i], path, sizeof path);
        if (unlink(path) && errno != ENOENT) rc = sys_fail(err, "cannot remove", path);
    }
    free(segs);
    return rc;
}

int tbl_wal_ckpt_write(tbl_wal_t *w, const void *blob, size_t n, tr_err *err) {
    char tmp[4200], path[4200];
    snprintf(tmp, sizeof tmp, "%s/checkpoint.tmp", w->dir);
    snprintf(path, sizeof path, "%s/checkpoint", w->dir);
    uint8_t h[12];
    put32(h, CKPT_MAGIC);
    put32(h + 4, (uint32_t)n);
    put32(h + 8, tr_crc32c(0, blob, n));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return sys_fail(err, "cannot create", tmp);
    struct iovec iov[2] = {{h, sizeof h}, {(void *)blob, n}};
    ssize_t k = writev(fd, iov, 2);
    if (k != (ssize_t)(sizeof h + n) || fdatasync(fd)) {
        if (k >= 0 && k != (ssize_t)(sizeof h + n)) errno = EIO;
        close(fd);
        return sys_fail(err, "cannot write", tmp);
    }
    close(fd);
    if (rename(tmp, path)) return sys_fail(err, "cannot rename", tmp);
    if (fsync(w->dfd)) return sys_fail(err, "cannot sync the directory of", path);
    return 0;
}

int tbl_wal_ckpt_read(tbl_wal_t *w, uint8_t **blob, size_t *n, tr_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint", w->dir);
    *blob = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return TR_ENOTFOUND;
        return sys_fail(err, "cannot open", path);
    }
    uint8_t h[12];
    int rc = 0;
    if (fread(h, 1, sizeof h, f) != sizeof h || get32(h) != CKPT_MAGIC || get32(h + 4) > (1u << 24)) {
        rc = TR_ECORRUPT;
    } else {
        size_t len = get32(h + 4);
        uint8_t *b = malloc(len ? len : 1);
        if (!b) {
            rc = TR_ENOMEM;
        } else if (fread(b, 1, len, f) != len || tr_crc32c(0, b, len) != get32(h + 8)) {
            free(b);
            rc = TR_ECORRUPT;
        } else {
            *blob = b;
            *n = len;
        }
    }
    fclose(f);
    if (rc == TR_ECORRUPT)
        return tr_err_set(err, rc, "table checkpoint %s is corrupt (it is written to a temporary "
                                   "file and renamed, so this is disk damage); restore "
                                   "DATA/tables from a backup", path);
    if (rc) return tr_err_set(err, rc, "out of memory reading %s", path);
    return 0;
}
