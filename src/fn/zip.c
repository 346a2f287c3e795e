/*
 * zip.c -- deployment packages: content hash, durable storage, safe unpacking (libzip).
 *
 * A package is stored as DIR/code-<sha256 hex>.zip (written to a temp name, fsync'd, renamed,
 * directory fsync'd) and unpacked into DIR/code-<hex>/ through DIR/code-<hex>.tmp/ and a rename,
 * so a half-unpacked tree is never used.  The unpacked tree is derived data: if it is missing
 * (crash between the two steps) fn__code_ensure rebuilds it from the zip.
 *
 * Zip-slip safety: every entry name is checked before anything is written -- no absolute path,
 * no "..", no backslash, no NUL -- and regular files and directories are all written before any
 * symbolic link is created, so no write can pass through a link.  Links are created last and
 * only when their target, resolved lexically from the link's directory, stays inside the tree.
 * Modes keep only the rwx bits of the Unix attributes (no setuid); entries without Unix
 * attributes get 0644 (0755 for a file named bootstrap, as zips made on Windows lose the bit).
 * The bytes written are counted against FN_MAX_UNZIPPED whatever the headers claim.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "core/fs.h"

#include "core/buf.h"
#include "core/tlog.h"
#include "fn/fn_int.h"

void fn__sha256(const uint8_t *p, size_t n, char hex[65], char b64[45]) {
    uint8_t md[32];
    unsigned len = 32;
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    tr_hex(md, 32, hex);
    tr_buf b = TR_BUF_INIT;
    tr_buf_base64(&b, md, 32);
    snprintf(b64, 45, "%s", b.data);
    tr_buf_free(&b);
}

/* ---- entry names --------------------------------------------------------------------------- */

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

/* Does a link at `link` (relative path in the tree) pointing to `target` stay inside? */
static int link_target_ok(const char *link, const char *target) {
    if (!*target || target[0] == '/') return 0;
    int depth = 0;
    for (const char *p = link; *p; p++)
        if (*p == '/' && p[1]) depth++;   /* directories above the link */
    /* walk the target's components */
    const char *p = target;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0) return 0;
        } else if (n && !(n == 1 && p[0] == '.')) {
            depth++;
        }
        if (!e) break;
        p = e + 1;
    }
    return 1;
}

static int sync_dir_entry(const char *p, const struct stat *sb, int type, struct FTW *w) {
    (void)sb, (void)w;
    return type == FTW_D ? tr_fsync_dir(p) : 0;
}

static int mkdirs(const char *root, const char *rel, int last_too) {
    char path[FN__PATH];
    size_t rl = strlen(root);
    if (rl + 1 + strlen(rel) >= sizeof path) return -1;
    memcpy(path, root, rl);
    path[rl] = '/';
    strcpy(path + rl + 1, rel);
    for (char *p = path + rl + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (last_too && mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
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
    int rc = 0;
    uint64_t total = 0;
    char *buf = malloc(1 << 16);
    if (!buf) abort();
    zip_int64_t count = zip_get_num_entries(z, 0);
    if (mkdir(target, 0755) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot create %s: %s", target, strerror(errno));
        goto leave;
    }
    /* pass 0: validate names; pass 1: dirs and files; pass 2: symlinks */
    for (int pass = 0; pass < 3 && !rc; pass++) {
        for (zip_int64_t i = 0; i < count && !rc; i++) {
            const char *name = zip_get_name(z, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
            zip_uint8_t opsys;
            zip_uint32_t attr;
            if (zip_file_get_external_attributes(z, (zip_uint64_t)i, 0, &opsys, &attr) != 0) {
                opsys = ZIP_OPSYS_DOS;
                attr = 0;
            }
            mode_t umode = opsys == ZIP_OPSYS_UNIX ? (mode_t)(attr >> 16) : 0;
            int is_link = opsys == ZIP_OPSYS_UNIX && S_ISLNK(umode);
            size_t nl = name ? strlen(name) : 0;
            int is_dir = nl && name[nl - 1] == '/';
            if (pass == 0) {
                if (!entry_name_ok(name))
                    rc = tr_err_set(err, TR_EINVAL,
                                    "Could not unzip uploaded file: entry '%.200s' is an absolute "
                                    "path or climbs out of the package ('..'); rebuild the zip with "
                                    "relative paths",
                                    name ? name : "");
                continue;
            }
            if (pass == 1 && is_link) continue;
            if (pass == 2 && !is_link) continue;
            if (is_dir) {
                if (mkdirs(target, name, 1))
                    rc = tr_err_set(err, TR_EIO, "cannot create directory %s in %s: %s", name,
                                    target, strerror(errno));
                continue;
            }
            zip_file_t *zf = zip_fopen_index(z, (zip_uint64_t)i, 0);
            if (!zf) {
                rc = tr_err_set(err, TR_EINVAL,
                                "Could not unzip uploaded file: entry '%.200s' cannot be read (%s)",
                                name, zip_strerror(z));
                continue;
            }
            if (mkdirs(target, name, 0)) {
                zip_fclose(zf);
                rc = tr_err_set(err, TR_EIO, "cannot create directories for %s in %s: %s", name,
                                target, strerror(errno));
                continue;
            }
            char path[FN__PATH];
            snprintf(path, sizeof path, "%s/%s", target, name);
            if (is_link) {
                char tgt[1024];
                zip_int64_t r = zip_fread(zf, tgt, sizeof tgt - 1);
                zip_fclose(zf);
                if (r < 0) r = 0;
                tgt[r] = 0;
                if (!link_target_ok(name, tgt)) {
                    rc = tr_err_set(err, TR_EINVAL,
                                    "Could not unzip uploaded file: symbolic link '%.200s' points "
                                    "outside the package ('%.200s'); package the file itself",
                                    name, tgt);
                    continue;
                }
                unlink(path);
                if (symlink(tgt, path) != 0)
                    rc = tr_err_set(err, TR_EIO, "cannot create link %s: %s", path, strerror(errno));
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
                rc = tr_err_set(err, TR_EIO, "cannot create %s: %s", path, strerror(errno));
                continue;
            }
            zip_int64_t r;
            while ((r = zip_fread(zf, buf, 1 << 16)) > 0) {
                total += (uint64_t)r;
                if (total > FN_MAX_UNZIPPED) {
                    rc = tr_err_set(err, TR_ETOOBIG,
                                    "Unzipped size must be smaller than %d bytes",
                                    FN_MAX_UNZIPPED);
                    break;
                }
                if (write(fd, buf, (size_t)r) != r) {
                    rc = tr_err_set(err, TR_EIO, "cannot write %s: %s", path, strerror(errno));
                    break;
                }
            }
            if (!rc && r < 0)
                rc = tr_err_set(err, TR_EINVAL,
                                "Could not unzip uploaded file: entry '%.200s' is damaged (%s)",
                                name, zip_file_strerror(zf));
            fchmod(fd, mode);
            if (!rc && fsync(fd) != 0)
                rc = tr_err_set(err, TR_EIO, "cannot sync %s: %s", path, strerror(errno));
            close(fd);
            zip_fclose(zf);
        }
    }
leave:
    free(buf);
    zip_discard(z);
    /* the files are synced; now the directories that name them */
    if (!rc && nftw(target, sync_dir_entry, 16, FTW_PHYS) != 0)
        rc = tr_err_set(err, TR_EIO, "cannot sync the directories of %s: %s", target,
                        strerror(errno));
    if (rc) fn__rmtree(target);
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
    uint8_t *b = malloc((size_t)st.st_size + 1);
    if (!b) abort();
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

int fn__code_store(const char *dir, const char *hex, const uint8_t *zip, size_t n, tr_err *err) {
    char zpath[FN__PATH], tmp[FN__PATH + 32], udir[FN__PATH], utmp[FN__PATH + 32];
    snprintf(zpath, sizeof zpath, "%s/code-%s.zip", dir, hex);
    snprintf(udir, sizeof udir, "%s/code-%s", dir, hex);
    struct stat st;
    if (stat(zpath, &st) == 0 && (size_t)st.st_size == n && stat(udir, &st) == 0) return 0;

    /* unpack first: a bad zip leaves nothing behind */
    char id[37];
    fn__uuid(id);
    snprintf(utmp, sizeof utmp, "%s/code-%s.tmp-%.8s", dir, hex, id);
    int rc = fn__zip_unpack(zip, n, utmp, err);
    if (rc) return rc;

    snprintf(tmp, sizeof tmp, "%s/code-%s.zip.tmp-%.8s", dir, hex, id);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = tr_err_set(err, TR_EIO, "cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, zip + off, n - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    if (off != n || fsync(fd) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto fail;
    }
    close(fd);
    if (rename(tmp, zpath) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        goto fail;
    }
    if (stat(udir, &st) == 0) {
        fn__rmtree(utmp);   /* same content already unpacked */
    } else if (rename(utmp, udir) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot rename %s: %s", utmp, strerror(errno));
        goto fail;
    }
    if (tr_fsync_dir(dir) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot sync the directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    fn__rmtree(utmp);
    return rc;
}

int fn__code_ensure(const char *dir, const char *hex, tr_err *err) {
    char zpath[FN__PATH], udir[FN__PATH];
    snprintf(zpath, sizeof zpath, "%s/code-%s.zip", dir, hex);
    snprintf(udir, sizeof udir, "%s/code-%s", dir, hex);
    struct stat st;
    if (stat(udir, &st) == 0) return 0;
    uint8_t *b;
    size_t n;
    if (read_file(zpath, &b, &n) != 0)
        return tr_err_set(err, TR_ECORRUPT, "code package %s is missing: %s", zpath, strerror(errno));
    char utmp[FN__PATH + 16];
    snprintf(utmp, sizeof utmp, "%s.tmp", udir);
    fn__rmtree(utmp);
    int rc = fn__zip_unpack(b, n, utmp, err);
    free(b);
    if (!rc && rename(utmp, udir) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot rename %s: %s", utmp, strerror(errno));
        fn__rmtree(utmp);
    }
    if (!rc && tr_fsync_dir(dir) != 0)
        rc = tr_err_set(err, TR_EIO, "cannot sync the directory %s: %s", dir, strerror(errno));
    return rc;
}
