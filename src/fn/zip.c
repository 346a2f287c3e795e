/* SPDX-License-Identifier: Apache-2.0
 *
 * zip.c -- deployment packages: content hash, durable storage, safe unpacking (libzip).
 *
 * A package is stored as DIR/code-<sha256 hex>.zip and unpacked into DIR/code-<hex>/, both
 * written under temporary names (code-<hex>.zip.tmp-<id>, code-<hex>.tmp-<id>), made durable
 * with ONE syncfs(2) of the file system (not one fsync per file: a 60,000-file package costs
 * one sync, not 60,000), then renamed into place and the directory fsync'd once.  A
 * half-unpacked tree is never used; a crash leaves only temporary names, which the code GC
 * (fn.c) removes.  The unpacked tree is derived data: if it is missing fn__code_ensure rebuilds
 * it from the zip.
 *
 * Containment: every entry name is checked before anything is written -- no absolute path, no
 * "..", no backslash -- and at most FN_MAX_ZIP_ENTRIES entries.  Regular files and directories
 * are all written before any symbolic link is created, so no file write can pass through a
 * link; a link's own parent directories must be real directories (not links), so no link is
 * created through another.  Once all links exist, each is resolved the way the kernel would
 * resolve it -- component by component, following links (also links to links, at most 40),
 * ".." from the package root refused -- and the package is refused if any leaves the tree
 * (dangling links inside are allowed, as AWS allows them).  Modes keep only the rwx bits of
 * the Unix attributes (no setuid); entries without Unix attributes get 0644 (0755 for a file
 * named bootstrap, as zips made on Windows lose the bit).  The bytes written are counted
 * against FN_MAX_UNZIPPED whatever the headers claim.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "core/digest.h"
#include "core/fs.h"

#include "core/buf.h"
#include "core/mem.h"
#include "core/tlog.h"
#include "core/uuid.h"
#include "fn/fn_int.h"

#define ZIP__MAX_LINKS 40            /* as the kernel's MAXSYMLINKS */

int (*fn__fault)(const char *step) = NULL;

void fn__sha256(const uint8_t *p, size_t n, char hex[65], char b64[45]) {
    uint8_t md[32];
    tr_sha256(p, n, md);
    tr_hex(md, 32, hex);
    tr_buf b = TR_BUF_INIT;
    tr_buf_base64(&b, md, 32);
    snprintf(b64, 45, "%s", b.data);
    tr_buf_free(&b);
}

/* ---- entry names and links ----------------------------------------------------------------- */

/* Is `name` a safe relative path?  Empty components and "." are tolerated, ".." never. */
static int entry_name_ok(const char *name) {
    if (!name || !*name || name[0] == '/' || strchr(name, '\\')) return 0;
    const char *p = name;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!e) break;
        p = e + 1;
    }
    return 1;
}

/* Drop the last component of the relative path cur (in place). */
static void path_pop(char *cur) {
    char *s = strrchr(cur, '/');
    if (s) *s = 0;
    else cur[0] = 0;
}

/* Resolve root/rel as the kernel would (following every link on the way, rel's last component
 * too) and tell whether it stays inside root: 1 inside (or dangling inside: the rest of the path
 * past a missing component is walked lexically), 0 it leaves root (".." above it, an absolute
 * target), a loop (more than ZIP__MAX_LINKS links) or a path too long to follow. */
static int resolves_inside(const char *root, const char *rel) {
    char todo[FN__PATH], cur[FN__PATH] = "", path[2 * FN__PATH + 2], tgt[FN__PATH];
    if (snprintf(todo, sizeof todo, "%s", rel) >= (int)sizeof todo) return 0;
    size_t pos = 0;
    int links = 0, missing = 0;
    while (todo[pos]) {
        char *p = todo + pos;
        char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        pos += n + (e ? 1 : 0);
        if (n == 0 || (n == 1 && p[0] == '.')) continue;
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (!cur[0]) return 0;
            path_pop(cur);
            continue;
        }
        size_t cl = strlen(cur);
        if (cl + 1 + n >= sizeof cur) return 0;
        if (!missing) {
            snprintf(path, sizeof path, "%s/%s%s%.*s", root, cur, cl ? "/" : "", (int)n, p);
            struct stat st;
            if (lstat(path, &st) != 0) {
                missing = 1;   /* the kernel stops here (ENOENT, ENOTDIR): lexical from now */
            } else if (S_ISLNK(st.st_mode)) {
                if (++links > ZIP__MAX_LINKS) return 0;
                ssize_t tl = readlink(path, tgt, sizeof tgt - 1);
                if (tl <= 0) return 0;
                tgt[tl] = 0;
                if (tgt[0] == '/') return 0;
                /* todo = target "/" rest */
                size_t rest = strlen(todo + pos);
                if ((size_t)tl + 1 + rest >= sizeof todo) return 0;
                memmove(todo + tl + 1, todo + pos, rest + 1);
                memcpy(todo, tgt, (size_t)tl);
                todo[tl] = '/';
                pos = 0;
                continue;
            }
        }
        if (cl) cur[cl++] = '/';
        memcpy(cur + cl, p, n);
        cur[cl + n] = 0;
    }
    return 1;
}

/* Is every parent directory of root/rel a real directory (no link on the way)? */
static int parents_real(const char *root, const char *rel) {
    char path[FN__PATH];
    if (snprintf(path, sizeof path, "%s/%s", root, rel) >= (int)sizeof path) return 0;
    size_t rl = strlen(root);
    for (char *p = path + rl + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        struct stat st;
        int ok = lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
        *p = '/';
        if (!ok) return 0;
    }
    return 1;
}

static int mkdirs(const char *root, const char *rel, int last_too) {
    char path[FN__PATH];
    size_t rl = strlen(root);
    if (rl + 1 + strlen(rel) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, root, rl);
    path[rl] = '/';
    strcpy(path + rl + 1, rel);
    for (char *p = path + rl + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int fe = FN__FAULT("unpack.mkdir");
        if (fe) {
            errno = fe;
            return -1;
        }
        if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (last_too && mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* An entry could not be created: the zip's fault (conflicting entries) or the disk's. */
static int entry_fail(tr_err *err, int e, const char *what, const char *name, const char *target) {
    if (e == EEXIST || e == ENOTDIR || e == EISDIR || e == ELOOP || e == ENAMETOOLONG ||
        e == ENOTEMPTY)
        return tr_err_set(err, TR_EINVAL,
                          "Could not unzip uploaded file: entry '%.200s' conflicts with another "
                          "entry of the package (%s); rebuild the zip",
                          name, strerror(e));
    return tr_err_set(err, TR_EIO, "cannot %s %s in %s: %s", what, name, target, strerror(e));
}

/* ---- unpack -------------------------------------------------------------------------------- */

int fn__zip_unpack(const uint8_t *zipb, size_t n, const char *target, tr_err *err) {
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(zipb, n, 0, &ze);
    if (!src) {
        zip_error_fini(&ze);
        return tr_err_set(err, TR_ENOMEM, "out of memory reading the zip");
    }
    zip_t *z = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!z) {
        zip_source_free(src);
        int rc = tr_err_set(err, TR_EINVAL,
                            "Could not unzip uploaded file. Please check your file, then try to "
                            "upload again. (%s)",
                            zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    int rc = 0, made = 0;
    uint64_t total = 0;
    char *buf = tr_xmalloc(1 << 16);
    zip_int64_t count = zip_get_num_entries(z, 0);
    if (count > FN_MAX_ZIP_ENTRIES) {
        rc = tr_err_set(err, TR_EINVAL,
                        "Could not unzip uploaded file: the package has %lld entries; at most %d "
                        "are accepted (package fewer files, e.g. bundle them)",
                        (long long)count, FN_MAX_ZIP_ENTRIES);
        goto leave;
    }
    int fe = FN__FAULT("unpack.mkdir");
    if (fe || mkdir(target, 0755) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot create %s: %s", target, strerror(fe ? fe : errno));
        goto leave;
    }
    made = 1;
    /* pass 0: validate names; 1: dirs and files; 2: symlinks; 3: where the links lead */
    for (int pass = 0; pass < 4 && !rc; pass++) {
        for (zip_int64_t i = 0; i < count && !rc; i++) {
            const char *name = zip_get_name(z, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
            zip_uint8_t opsys;
            zip_uint32_t attr;
            if (zip_file_get_external_attributes(z, (zip_uint64_t)i, 0, &opsys, &attr) != 0) {
                opsys = ZIP_OPSYS_DOS;
                attr = 0;
            }
            mode_t umode = opsys == ZIP_OPSYS_UNIX ? (mode_t)(attr >> 16) : 0;
            size_t nl = name ? strlen(name) : 0;
            int is_dir = nl && name[nl - 1] == '/';
            int is_link = !is_dir && opsys == ZIP_OPSYS_UNIX && S_ISLNK(umode);
            if (pass == 0) {
                if (!entry_name_ok(name))
                    rc =
                        tr_err_set(err, TR_EINVAL,
                                   "Could not unzip uploaded file: entry '%.200s' is an absolute "
                                   "path or climbs out of the package ('..'); rebuild the zip with "
                                   "relative paths",
                                   name ? name : "");
                continue;
            }
            if (pass == 3) {
                if (is_link && !resolves_inside(target, name))
                    rc = tr_err_set(err, TR_EINVAL,
                                    "Could not unzip uploaded file: symbolic link '%.200s' leads "
                                    "outside the package (or loops); package the file itself",
                                    name);
                continue;
            }
            if (pass == 1 && is_link) continue;
            if (pass == 2 && !is_link) continue;
            if (is_dir) {
                if (mkdirs(target, name, 1)) rc = entry_fail(err, errno, "create", name, target);
                continue;
            }
            if (mkdirs(target, name, 0)) {
                rc = entry_fail(err, errno, "create the directories of", name, target);
                continue;
            }
            char path[FN__PATH];
            if (snprintf(path, sizeof path, "%s/%s", target, name) >= (int)sizeof path) {
                rc = entry_fail(err, ENAMETOOLONG, "create", name, target);
                continue;
            }
            zip_file_t *zf = zip_fopen_index(z, (zip_uint64_t)i, 0);
            if (!zf) {
                rc = tr_err_set(err, TR_EINVAL,
                                "Could not unzip uploaded file: entry '%.200s' cannot be read (%s)",
                                name, zip_strerror(z));
                continue;
            }
            if (is_link) {
                char tgt[1024];
                zip_int64_t r = zip_fread(zf, tgt, sizeof tgt - 1);
                zip_fclose(zf);
                if (r <= 0 || memchr(tgt, 0, (size_t)r) || tgt[0] == '/') {
                    tgt[r > 0 ? r : 0] = 0;
                    rc = tr_err_set(err, TR_EINVAL,
                                    "Could not unzip uploaded file: symbolic link '%.200s' has an "
                                    "empty, absolute or unreadable target ('%.200s'); package the "
                                    "file itself",
                                    name, tgt);
                    continue;
                }
                tgt[r] = 0;
                if (!parents_real(target, name)) {
                    rc = tr_err_set(err, TR_EINVAL,
                                    "Could not unzip uploaded file: symbolic link '%.200s' is "
                                    "placed below another link; rebuild the zip",
                                    name);
                    continue;
                }
                struct stat st;
                if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode)) unlink(path);
                fe = FN__FAULT("unpack.link");
                if (fe || symlink(tgt, path) != 0)
                    rc = entry_fail(err, fe ? fe : errno, "create the link", name, target);
                continue;
            }
            mode_t mode = umode & 0777;
            if (!mode) {
                const char *base = strrchr(name, '/');
                base = base ? base + 1 : name;
                mode = strcmp(base, "bootstrap") ? 0644 : 0755;
            }
            mode |= 0400;   /* the owner must at least read it */
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
            if (fd < 0) {
                zip_fclose(zf);
                rc = entry_fail(err, errno, "create", name, target);
                continue;
            }
            zip_int64_t r;
            while ((r = zip_fread(zf, buf, 1 << 16)) > 0) {
                total += (uint64_t)r;
                if (total > FN_MAX_UNZIPPED) {
                    rc = tr_err_set(err, TR_EINVAL, "Unzipped size must be smaller than %d bytes",
                                    FN_MAX_UNZIPPED);
                    break;
                }
                fe = FN__FAULT("unpack.write");
                if (fe || write(fd, buf, (size_t)r) != r) {
                    rc = tr_err_set(err, TR_EIO, "cannot write %s: %s", path,
                                    fe      ? strerror(fe)
                                    : errno ? strerror(errno)
                                            : "short write");
                    break;
                }
            }
            if (!rc && r < 0)
                rc = tr_err_set(err, TR_EINVAL,
                                "Could not unzip uploaded file: entry '%.200s' is damaged (%s)",
                                name, zip_file_strerror(zf));
            if (fchmod(fd, mode) != 0 && !rc)
                rc = tr_err_set(err, TR_EIO, "cannot set the mode of %s: %s", path,
                                strerror(errno));
            close(fd);
            zip_fclose(zf);
        }
    }
leave:
    free(buf);
    zip_discard(z);
    if (rc && made) tr_rmtree(target);
    return rc;
}

/* ---- storage ------------------------------------------------------------------------------- */

static int read_file(const char *path, uint8_t **out, size_t *n) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    uint8_t *b = tr_xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    *out = b;
    *n = got;
    return 0;
}

/* Make everything written under dir durable: one syncfs of its file system. */
static int sync_fs(const char *dir, tr_err *err) {
    int fe = FN__FAULT("sync");
    int fd = fe ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 ? syncfs(fd) : -1;
    int e = fe ? fe : errno;
    if (fd >= 0) close(fd);
    if (rc != 0) return tr_err_set(err, TR_EIO, "cannot sync %s: %s", dir, strerror(e));
    return 0;
}

/* Write n bytes to path (created, exclusive); 0 or -1 with errno. */
static int write_new(const char *path, const uint8_t *p, size_t n) {
    int fe = FN__FAULT("zip.write");
    if (fe) {
        errno = fe;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            close(fd);
            unlink(path);
            errno = e;
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(path);
        errno = e;
        return -1;
    }
    return 0;
}

/* rename, treating "the other store of the same content got there first" as done. */
static int rename_dir_into_place(const char *from, const char *to) {
    int fe = FN__FAULT("dir.rename");
    if (fe) {
        errno = fe;
        return -1;
    }
    if (rename(from, to) == 0) return 0;
    struct stat st;
    if ((errno == ENOTEMPTY || errno == EEXIST) && stat(to, &st) == 0 && S_ISDIR(st.st_mode)) {
        tr_rmtree(from);   /* identical content (same hash) already unpacked */
        return 0;
    }
    return -1;
}

int fn__code_store(const char *dir, const char *hex, const uint8_t *zip, size_t n, int no_sync,
                   tr_err *err) {
    char zpath[FN__PATH], ztmp[FN__PATH + 32], udir[FN__PATH], utmp[FN__PATH + 32];
    snprintf(zpath, sizeof zpath, "%s/code-%s.zip", dir, hex);
    snprintf(udir, sizeof udir, "%s/code-%s", dir, hex);
    struct stat st;
    if (stat(zpath, &st) == 0 && (size_t)st.st_size == n && stat(udir, &st) == 0) {
        /* already stored (the same content: the name is its hash), maybe by a store still
         * running: make sure its names are durable before our caller commits */
        if (!no_sync && tr_fsync_dir(dir) != 0)
            return tr_err_set(err, TR_EIO, "cannot sync the directory %s: %s", dir,
                              strerror(errno));
        return 0;
    }

    /* unpack first: a bad zip leaves nothing behind */
    char id[37];
    tr_uuid_v4(id);
    snprintf(utmp, sizeof utmp, "%s/code-%s.tmp-%.8s", dir, hex, id);
    snprintf(ztmp, sizeof ztmp, "%s/code-%s.zip.tmp-%.8s", dir, hex, id);
    int rc = fn__zip_unpack(zip, n, utmp, err);
    if (rc) return rc;
    if (write_new(ztmp, zip, n) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot write %s: %s", ztmp, strerror(errno));
        goto fail;
    }
    /* one sync for every file and directory of the package and the zip */
    if (!no_sync && (rc = sync_fs(dir, err))) goto fail;
    int fe = FN__FAULT("zip.rename");
    if (fe || rename(ztmp, zpath) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot rename %s: %s", ztmp, strerror(fe ? fe : errno));
        goto fail;
    }
    if (rename_dir_into_place(utmp, udir) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot rename %s: %s", utmp, strerror(errno));
        goto fail;   /* the zip stays: same content as any other store of this hex */
    }
    fe = FN__FAULT("dir.fsync");
    if (fe || (!no_sync && tr_fsync_dir(dir) != 0)) {
        rc = tr_err_set(err, TR_EIO, "cannot sync the directory %s: %s", dir,
                        strerror(fe ? fe : errno));
        return rc;   /* in place but not durable: the caller's GC removes it unless referenced */
    }
    return 0;
fail:
    unlink(ztmp);
    tr_rmtree(utmp);
    return rc;
}

int fn__code_ensure(const char *dir, const char *hex, int no_sync, tr_err *err) {
    char zpath[FN__PATH], udir[FN__PATH];
    snprintf(zpath, sizeof zpath, "%s/code-%s.zip", dir, hex);
    snprintf(udir, sizeof udir, "%s/code-%s", dir, hex);
    struct stat st;
    if (stat(udir, &st) == 0) return 0;
    uint8_t *b;
    size_t n;
    if (read_file(zpath, &b, &n) != 0)
        return tr_err_set(err, TR_ECORRUPT, "code package %s is missing: %s", zpath,
                          strerror(errno));
    char utmp[FN__PATH + 16];
    snprintf(utmp, sizeof utmp, "%s.tmp", udir);
    tr_rmtree(utmp);
    int rc = fn__zip_unpack(b, n, utmp, err);
    free(b);
    if (!rc && !no_sync) rc = sync_fs(dir, err);
    if (!rc && rename(utmp, udir) != 0)
        rc = tr_err_set(err, TR_EIO, "cannot rename %s: %s", utmp, strerror(errno));
    if (rc) tr_rmtree(utmp);
    if (!rc && !no_sync && tr_fsync_dir(dir) != 0)
        rc = tr_err_set(err, TR_EIO, "cannot sync the directory %s: %s", dir, strerror(errno));
    return rc;
}
