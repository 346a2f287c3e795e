/* SPDX-License-Identifier: Apache-2.0
 *
 * shard_recover.c -- how a shard log is opened: recovery (scanning segments, resynchronising
 * past damage, .dmg files of known holes), the shard state file, and slog__shard_load.
 *
 * Split out of shard.c, which keeps segments, .idx files, open/close, the writer, readers,
 * retention and directory removal; the on-disk formats and the contract are described in
 * shard.h and at the top of shard.c.  The types and small helpers both files use are in
 * shard_int.h.  Readers that find damage at run time re-scan with the functions here
 * (slog__seg_scan, slog__rs_search), so recovery and readers draw the same line between damage
 * and intact records.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/tlog.h"
#include "log/shard_int.h"

/* ---- recovery ------------------------------------------------------------------------------- */

/* Scanning.  A segment is read front to back in SLOG_SCAN_BUF windows; every frame must have a
 * plausible header, a good CRC and the seq after its predecessor.  The first frame that fails
 * is either a torn tail (nothing intact after it: only possible at the end of the newest
 * segment, where it is cut off) or DAMAGE: intact frames follow.  Damage is never cut off.
 * seg_resync searches the bytes after the bad frame for the offset where intact frames resume;
 * the range in between becomes a hole of the segment (slog_hole_t): its bytes stay in the file
 * untouched (evidence), readers jump over it, and the loss is reported loudly (tr_error and
 * the counters of slog_shard_health).
 *
 * A record's payload may itself look like a frame (a stored copy of a segment, say), so one
 * frame with a good CRC is not enough to resume at.  A candidate must: parse; carry a seq no
 * smaller than the one expected, below the seq limit (the next segment's first) and no more
 * ahead of it than the damaged bytes could have held (26 bytes a record); arrive no earlier
 * than the last intact record; and start a CHAIN of frames (consecutive seqs, good CRCs,
 * non-decreasing arrivals) that runs exactly to the end of the file, or to a torn tail of the
 * newest segment, or on for SLOG_RESYNC_CHAIN frames (more damage follows; the scan resyncs
 * again there).  The earliest such candidate wins.  Exception, tried first: when the bad
 * frames' headers are intact (lengths and consecutive seqs parse) and lead to an intact frame
 * with the next seq, that frame is the resume point, chain or not (see slog__rs_search).  A
 * forged payload therefore has to predict its own seq and chain into the real frames after it. */

#define SLOG_RESYNC_CHAIN 8

/* Whether b[q..n) starts a believable frame after damage that began `dist` bytes earlier,
 * where seq `seq` was expected (see above).  Fills *h. */
static int rs_frame_ok(const uint8_t *b, uint64_t n, uint64_t q, uint64_t dist, uint64_t seq,
                       uint64_t limit, int64_t last_arr, slog_frame_hdr_t *h) {
    if (n - q < SLOG_FRAME_HDR || slog__frame_parse(b + q, n - q, h)) return 0;
    if (h->seq < seq || h->seq >= limit || h->seq - seq > dist / SLOG_FRAME_HDR) return 0;
    if (h->arrival < last_arr) return 0;
    return slog__frame_crc_ok(b + q, h->len);
}

/* Whether the frame h at b[q..n) starts a believable chain (see above). */
static int rs_chain_ok(const uint8_t *b, uint64_t n, uint64_t q, slog_frame_hdr_t h, uint64_t limit,
                       int is_last) {
    for (uint64_t k = 1;; k++) {
        uint64_t seq = h.seq + 1;
        int64_t arr = h.arrival;
        q += h.len;
        if (q == n) return 1; /* runs to the end of the file */
        slog_frame_hdr_t nh;
        if (n - q >= SLOG_FRAME_HDR && !slog__frame_parse(b + q, n - q, &nh) && nh.seq == seq &&
            seq < limit && nh.arrival >= arr && slog__frame_crc_ok(b + q, nh.len)) {
            h = nh;
            continue;
        }
        if (k >= SLOG_RESYNC_CHAIN) return 1; /* long enough; more damage follows */
        if (!is_last) return 0;
        /* newest segment: believable if the rest is a torn tail (nothing believable in it) */
        for (uint64_t r = q + 1; r + SLOG_FRAME_HDR <= n; r++)
            if (rs_frame_ok(b, n, r, r - q, seq, limit, arr, &nh)) return 0;
        return 1;
    }
}

/* b[0..n) are the bytes from the start of damage (where seq `seq` was expected) to the end of
 * the searched range: the offset q of the first believable frame after b[0] (see above), its
 * header in *h.  0 when there is none.  Used by recovery (seg_resync) and by readers
 * (rd_damage), so both draw the same line between damage and intact records. */
uint64_t slog__rs_search(const uint8_t *b, uint64_t n, uint64_t seq, uint64_t limit,
                         int64_t last_arr, int is_last, slog_frame_hdr_t *h) {
    /* The damaged frames' own lengths, while their headers still parse with consecutive seqs,
     * up to an intact frame carrying the next seq: exactly those frames are damaged (bodies or
     * checksums).  No chain is needed there -- the intact frame sits at a real frame boundary,
     * where a payload cannot plant a forgery -- so damage a few frames further on does not
     * cost the intact frames in between. */
    slog_frame_hdr_t d;
    uint64_t o = 0, s = seq;
    while (n - o > SLOG_FRAME_HDR && !slog__frame_parse(b + o, n - o, &d) && d.seq == s &&
           d.len < n - o) {
        o += d.len;
        s++;
        if (rs_frame_ok(b, n, o, o, seq, limit, last_arr, h) && h->seq == s) return o;
    }
    for (uint64_t q = 1; q + SLOG_FRAME_HDR <= n; q++)
        if (rs_frame_ok(b, n, q, q, seq, limit, last_arr, h) &&
            rs_chain_ok(b, n, q, *h, limit, is_last))
            return q;
    return 0;
}

/* Damage at file offset `from` (seq `seq` expected there): find where intact frames resume.
 * *found = 0 when nowhere; else *at and *h describe the first intact frame.  TR_EIO, TR_ENOMEM,
 * TR_ECORRUPT (remainder too large to search). */
static int seg_resync(slog_shard_t *sh, slog_seg_t *seg, int fd, uint64_t from, uint64_t size,
                      uint64_t seq, uint64_t limit, int64_t last_arr, int is_last, uint64_t *at,
                      slog_frame_hdr_t *h, int *found, tr_err *err) {
    *found = 0;
    uint64_t n = size - from;
    if (n <= SLOG_FRAME_HDR) return 0;
    if (n > SLOG_RESYNC_MAX)
        return tr_err_set(err, TR_ECORRUPT,
                          "segment %s is damaged at offset %llu and the %llu "
                          "bytes after it are too many to search for intact records; Fix: move "
                          "the segment out of %s and restart (its records are lost)",
                          seg->path, (unsigned long long)from, (unsigned long long)n, sh->dir);
    uint8_t *b = malloc((size_t)n);
    if (!b)
        return tr_err_set(err, TR_ENOMEM,
                          "out of memory searching damaged %s for intact "
                          "records; Fix: free memory and restart",
                          seg->path);
    int r = slog__full_pread(sh->io, fd, b, (size_t)n, from);
    int rc = 0;
    if (r != 0) {
        rc = r < 0 ? slog__io_err(err, errno, "read", seg->path, SLOG_FIX_DISK)
                   : tr_err_set(err, TR_EIO,
                                "%s shrank while being scanned; Fix: make sure only "
                                "one server uses %s",
                                seg->path, sh->dir);
        goto out;
    }
    uint64_t q = slog__rs_search(b, n, seq, limit, last_arr, is_last, h);
    if (q) {
        *at = from + q;
        *found = 1;
    }
out:
    free(b);
    return rc;
}

/* The `why` of the gap left by missing newest segment file(s): it runs to DIR/state's mark, a
 * reservation, so how many of its numbers were handed out (records lost) is unknown. */
static const char k_newest_missing[] = "the newest segment file(s) are missing";

/* Count a damaged or missing range (slog_shard_health) and say so loudly.  `by` is NULL for
 * recovery, else who found it ("a reader"). */
void slog__hole_report(slog_shard_t *sh, const slog_seg_t *seg, const slog_hole_t *h,
                       const char *why, const char *by) {
    unsigned long long off = h->off, off_end = h->off_end, seq = h->seq, seq_end = h->seq_end;
    if (by) atomic_fetch_add(&sh->h_read_skips, 1);
    if (off == off_end) {
        atomic_fetch_add(&sh->h_missing, 1);
        if (why == k_newest_missing) { /* not counted in h_lost: the number is unknown */
            tr_error("slog",
                     "shard %s: MISSING DATA after %s: sequence numbers [%llu, %llu) are "
                     "in no segment file (%s): the records they held are lost -- how many is "
                     "unknown, the range also holds numbers reserved ahead and never handed "
                     "out. Sequence numbers are not reused; readers skip the gap. Fix: restore "
                     "the missing .seg files from a backup (stop the server first) if you have "
                     "them",
                     sh->dir, seg->path, seq, seq_end, why);
            return;
        }
        atomic_fetch_add(&sh->h_lost, seq_end - seq);
        tr_error("slog",
                 "shard %s: MISSING DATA after %s%s%s: records [%llu, %llu) are in no "
                 "segment file (%s). Sequence numbers are not reused; readers skip the gap. Fix: "
                 "restore the missing .seg file from a backup (stop the server first) if you "
                 "have one",
                 sh->dir, seg->path, by ? ", found by " : "", by ? by : "", seq, seq_end, why);
        return;
    }
    atomic_fetch_add(&sh->h_lost, seq_end - seq);
    atomic_fetch_add(&sh->h_ranges, 1);
    atomic_fetch_add(&sh->h_bytes, off_end - off);
    tr_error("slog",
             "shard %s: DAMAGED DATA in %s%s%s: bytes [%llu, %llu) are unreadable (%s); "
             "records [%llu, %llu) (%llu) are lost, every intact record before and after is kept "
             "and served (readers skip exactly the damaged range; the bytes are left in place as "
             "evidence). Fix: the disk is corrupting data: check dmesg and the drive's SMART "
             "status, and replace the drive",
             sh->dir, seg->path, by ? ", found by " : "", by ? by : "", off, off_end, why, seq,
             seq_end, seq_end - seq);
}

/* Recovery: record a damaged range [off, off_end) losing records [seq, seq_end), and say so
 * loudly.  Only while no reader can see the segment (holes are appended in place). */
static int seg_hole_add(slog_shard_t *sh, slog_seg_t *seg, uint64_t off, uint64_t off_end,
                        uint64_t seq, uint64_t seq_end, const char *why, tr_err *err) {
    slog_hole_t *h = realloc(seg->holes, (seg->nholes + 1) * sizeof *h);
    if (!h)
        return tr_err_set(err, TR_ENOMEM, "out of memory opening %s; Fix: free memory", sh->dir);
    seg->holes = h;
    seg->holes[seg->nholes++] = (slog_hole_t){off, off_end, seq, seq_end};
    slog__hole_report(sh, seg, &seg->holes[seg->nholes - 1], why, NULL);
    return 0;
}

/*
 * DIR/<first>.dmg, the damage sidecar of a segment: the holes recovery chose, so that every
 * later open makes the SAME choice.  Without it a later scan could pick another resume point
 * (bytes appended after the first recovery change which chains look believable) and cut off
 * records acknowledged since.  Written durably (tmp, fdatasync, rename, directory fsync) before
 * recovery changes the file or anything is appended; a known hole is used only where the scan
 * finds a bad frame at its start (a segment restored from a backup loses its holes).
 * Little-endian:
 *
 *     0          8      12     16
 *     +----------+------+------+---------------------------------------------+
 *     | TRSDMG01 | n    | crc  | n x (off u64, off_end u64, seq u64, seq_end u64)
 *     +----------+------+------+---------------------------------------------+
 *     crc = CRC32C of bytes 0..8 followed by the entries.
 */
#define SLOG_DMG_HDR 16
#define SLOG_DMG_ENT 32
#define SLOG_DMG_MAX 65536
static const char dmg_magic[8] = {'T', 'R', 'S', 'D', 'M', 'G', '0', '1'};

/* The holes in DIR/<first>.dmg (*n == 0 when absent or unusable: then recovery searches). */
static slog_hole_t *dmg_load(slog_shard_t *sh, const slog_seg_t *seg, size_t *n) {
    char path[PATH_MAX];
    slog__seg_idx_path(seg, path, ".dmg");
    *n = 0;
    int fd = sh->io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return NULL;
    struct stat st;
    uint8_t *b = NULL;
    slog_hole_t *h = NULL;
    if (sh->io->fstat(fd, &st) != 0 || st.st_size < SLOG_DMG_HDR ||
        (st.st_size - SLOG_DMG_HDR) % SLOG_DMG_ENT != 0 ||
        (st.st_size - SLOG_DMG_HDR) / SLOG_DMG_ENT > SLOG_DMG_MAX)
        goto bad;
    size_t len = (size_t)st.st_size, k = (len - SLOG_DMG_HDR) / SLOG_DMG_ENT;
    if (!(b = malloc(len)) || slog__full_pread(sh->io, fd, b, len, 0) != 0) goto bad;
    if (memcmp(b, dmg_magic, 8) != 0 || slog__get32(b + 8) != k ||
        slog__get32(b + 12) != tr_crc32c(tr_crc32c(0, b, 8), b + SLOG_DMG_HDR, len - SLOG_DMG_HDR))
        goto bad;
    if (k && !(h = malloc(k * sizeof *h))) goto bad;
    for (size_t i = 0; i < k; i++) {
        const uint8_t *e = b + SLOG_DMG_HDR + i * SLOG_DMG_ENT;
        h[i] = (slog_hole_t){slog__get64(e), slog__get64(e + 8), slog__get64(e + 16),
                             slog__get64(e + 24)};
        if (h[i].off_end <= h[i].off || h[i].seq_end < h[i].seq ||
            (i && h[i].off < h[i - 1].off_end))
            goto bad;
    }
    *n = k;
    free(b);
    sh->io->close(fd);
    return h;
bad:
    tr_warn("slog",
            "shard %s: damage record %s is unreadable; recovery searches the segment "
            "again",
            sh->dir, path);
    free(h);
    free(b);
    sh->io->close(fd);
    return NULL;
}

/* Replace `path` by a file holding b[0..len), durably: write `tmp`, fdatasync it, rename it over
 * `path`, fsync the directory (no syncs with no_sync), so a crash leaves the old or the new
 * file.  0, or -1 with errno and *what naming the step that failed; tmp is removed then. */
static int file_replace(slog_shard_t *sh, const char *tmp, const char *path, const void *b,
                        size_t len, const char **what) {
    *what = "create";
    int fd = sh->io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) goto fail;
    *what = "write";
    if (slog__full_pwrite(sh->io, fd, b, len, 0) != 0) goto fail;
    *what = "fdatasync";
    if (!sh->no_sync && sh->io->fdatasync(fd) != 0) goto fail;
    sh->io->close(fd);
    fd = -1;
    *what = "rename";
    if (sh->io->rename(tmp, path) != 0) goto fail;
    *what = "fsync directory after writing";
    if (!sh->no_sync && sh->io->fsync(sh->dirfd) != 0) goto fail;
    return 0;
fail:;
    int e = errno;
    if (fd >= 0) sh->io->close(fd);
    sh->io->unlink(tmp);
    errno = e;
    return -1;
}

/* Make DIR/<first>.dmg hold exactly seg's byte holes (remove it when there are none). */
int slog__dmg_store(slog_shard_t *sh, const slog_seg_t *seg, const slog_hole_t *known,
                    size_t nknown, tr_err *err) {
    char path[PATH_MAX], tmp[PATH_MAX];
    slog__seg_idx_path(seg, path, ".dmg");
    slog__seg_idx_path(seg, tmp, ".dmg.tmp");
    size_t k = 0;
    for (size_t i = 0; i < seg->nholes; i++) k += seg->holes[i].off_end > seg->holes[i].off;
    int same = k == nknown;
    for (size_t i = 0, j = 0; same && i < seg->nholes; i++) {
        const slog_hole_t *h = &seg->holes[i];
        if (h->off_end == h->off) continue;
        same = !memcmp(h, &known[j++], sizeof *h);
    }
    if (same) return 0;
    if (k == 0) {
        if (sh->io->unlink(path) != 0 && errno != ENOENT)
            return slog__io_err(err, errno, "delete", path, "check the directory's permissions");
        return 0;
    }
    size_t len = SLOG_DMG_HDR + k * SLOG_DMG_ENT;
    uint8_t *b = calloc(1, len);
    if (!b)
        return tr_err_set(err, TR_ENOMEM, "out of memory opening %s; Fix: free memory", sh->dir);
    memcpy(b, dmg_magic, 8);
    slog__put32(b + 8, (uint32_t)k);
    for (size_t i = 0, j = 0; i < seg->nholes; i++) {
        const slog_hole_t *h = &seg->holes[i];
        if (h->off_end == h->off) continue;
        uint8_t *e = b + SLOG_DMG_HDR + j++ * SLOG_DMG_ENT;
        slog__put64(e, h->off);
        slog__put64(e + 8, h->off_end);
        slog__put64(e + 16, h->seq);
        slog__put64(e + 24, h->seq_end);
    }
    slog__put32(b + 12, tr_crc32c(tr_crc32c(0, b, 8), b + SLOG_DMG_HDR, len - SLOG_DMG_HDR));
    const char *what;
    int rc = file_replace(sh, tmp, path, b, len, &what);
    int e = errno;
    free(b);
    if (rc)
        return slog__io_err(err, e, what, tmp,
                            SLOG_FIX_DISK " (the shard cannot be opened without recording its "
                                          "damage)");
    return 0;
}

/* Scan seg's frames from its header to `size`, checking length, CRC and seq continuity (seqs
 * below `limit`), and build its index.  Damage followed by intact frames becomes a hole (see
 * above); the scan stops at a bad frame with nothing believable after it (res->why says why).
 * TR_EIO / TR_ENOMEM / TR_ECORRUPT. */
int slog__seg_scan(slog_shard_t *sh, slog_seg_t *seg, int fd, uint64_t size, uint64_t limit,
                   int is_last, slog_scan_res_t *res, tr_err *err) {
    size_t nknown = 0, ki = 0;
    slog_hole_t *known = dmg_load(sh, seg, &nknown);
    uint8_t *b = malloc(SLOG_SCAN_BUF);
    if (!b) {
        free(known);
        return tr_err_set(err, TR_ENOMEM, "out of memory scanning %s; Fix: free memory", seg->path);
    }
    uint64_t pos = SLOG_SEG_HDR, boff = SLOG_SEG_HDR, seq = seg->first_seq;
    size_t blen = 0; /* b[0..blen) holds the file bytes at [boff, boff + blen) */
    int64_t last_arr = -1;
    const char *why = NULL;
    int rc = 0, force_ix = 0;
    seg->nix = 0;
    while (pos < size) {
        size_t have = (size_t)(boff + blen - pos);
        if (have < SLOG_FRAME_MAX && boff + blen < size) {
            memmove(b, b + (pos - boff), have);
            boff = pos;
            blen = have;
            size_t want = (size_t)slog__min64(SLOG_SCAN_BUF - blen, size - (boff + blen));
            int r = slog__full_pread(sh->io, fd, b + blen, want, boff + blen);
            if (r != 0) {
                rc = r < 0 ? slog__io_err(err, errno, "read", seg->path, SLOG_FIX_DISK)
                           : tr_err_set(err, TR_EIO,
                                        "%s shrank while being scanned; Fix: make "
                                        "sure only one server uses %s",
                                        seg->path, sh->dir);
                goto out;
            }
            blen += want;
            have = blen;
        }
        const uint8_t *p = b + (pos - boff);
        slog_frame_hdr_t h;
        if (have < SLOG_FRAME_HDR) why = "short frame header";
        else if ((why = slog__frame_parse(p, size - pos, &h)) != NULL) {
        } else if (!slog__frame_crc_ok(p, h.len)) why = "checksum mismatch";
        else if (h.seq != seq) why = "sequence number does not follow its predecessor";
        else if (h.seq >= limit) why = "sequence number past the next segment's first";
        else if (h.arrival < last_arr) why = "arrival time goes backwards";
        if (why) {
            uint64_t at = 0, at_seq = 0;
            int found = 0;
            while (ki < nknown && known[ki].off < pos) ki++;
            if (ki < nknown && known[ki].off == pos && known[ki].seq == seq &&
                known[ki].off_end <= size && known[ki].seq_end <= limit) {
                at = known[ki].off_end; /* the choice an earlier open made and recorded */
                at_seq = known[ki].seq_end;
                found = 1;
            } else {
                slog_frame_hdr_t rh;
                rc = seg_resync(sh, seg, fd, pos, size, seq, limit, last_arr, is_last, &at, &rh,
                                &found, err);
                if (rc) goto out;
                at_seq = rh.seq;
            }
            if (!found) break;
            if ((rc = seg_hole_add(sh, seg, pos, at, seq, at_seq, why, err)) != 0) goto out;
            pos = boff = at;
            blen = 0;
            seq = at_seq;
            why = NULL;
            force_ix = 1;
            continue;
        }
        if (force_ix ||
            slog__ix_due(seg->nix > 0, seg->nix ? &seg->ix[seg->nix - 1] : NULL, seq, pos)) {
            if (slog__ix_reserve(seg, seg->nix + 1)) {
                rc = tr_err_set(err, TR_ENOMEM, "out of memory indexing %s; Fix: free memory",
                                seg->path);
                goto out;
            }
            seg->ix[seg->nix++] = (slog_ix_t){seq, pos, h.arrival};
            force_ix = 0;
        }
        last_arr = h.arrival;
        pos += h.len;
        seq++;
    }
    res->end_off = pos;
    res->end_seq = seq;
    res->last_arrival = last_arr;
    res->why = why;
    rc = slog__dmg_store(sh, seg, known, nknown, err);
out:
    free(known);
    free(b);
    return rc;
}

/* A damaged segment header: reported, then the frames behind it are scanned as usual (the
 * first seq comes from the file name). */
static void seg_header_damage(slog_shard_t *sh, const slog_seg_t *seg, const char *bad) {
    atomic_fetch_add(&sh->h_ranges, 1);
    atomic_fetch_add(&sh->h_bytes, SLOG_SEG_HDR);
    tr_error("slog",
             "shard %s: DAMAGED DATA in %s: the segment header is bad (%s); its records "
             "are recovered from the frames behind it (first seq %llu from the file name). Fix: "
             "the disk is corrupting data: check dmesg and the drive's SMART status",
             sh->dir, seg->path, bad, (unsigned long long)seg->first_seq);
}

/* A sealed (not newest) segment: header, then .idx or a scan; it covers the seqs up to
 * next_first, whatever is missing or damaged becomes a hole. */
int slog__load_sealed(slog_shard_t *sh, slog_seg_t *seg, uint64_t next_first, tr_err *err) {
    int fd = sh->io->open(seg->path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return slog__io_err(err, errno, "open", seg->path,
                            "check the file's permissions and the open-file limit (ulimit -n)");
    struct stat st;
    int rc = 0, ioerr;
    if (sh->io->fstat(fd, &st) != 0) {
        rc = slog__io_err(err, errno, "stat", seg->path, SLOG_FIX_DISK);
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    const char *bad = slog__seg_header_check(sh, seg, fd, size, &ioerr);
    if (ioerr) {
        rc = slog__io_err(err, ioerr, "read header of", seg->path, SLOG_FIX_DISK);
        goto out;
    }
    char dpath[PATH_MAX];
    slog__seg_idx_path(seg, dpath, ".dmg");
    int dfd = sh->io->open(dpath, O_RDONLY | O_CLOEXEC, 0);
    if (dfd >= 0) sh->io->close(dfd);
    if (bad) seg_header_damage(sh, seg, bad);
    else if (dfd < 0 && slog__idx_load(sh, seg, size)) { /* .dmg: scan, whatever .idx says */
        if (seg->pub_end == next_first) goto out;
        free(seg->ix); /* inconsistent with its neighbour: trust the data, not the index */
        seg->ix = NULL;
        seg->nix = seg->ixcap = 0;
    }
    slog_scan_res_t r = {SLOG_SEG_HDR, seg->first_seq, -1, NULL};
    if (size > SLOG_SEG_HDR &&
        (rc = slog__seg_scan(sh, seg, fd, size, next_first, 0, &r, err)) != 0)
        goto out;
    if (r.end_seq > next_first) { /* cannot happen: the scan stops at the limit */
        rc = tr_err_set(err, TR_ECORRUPT,
                        "segment %s overlaps the next one; Fix: move the "
                        "foreign segment out of %s and restart",
                        seg->path, sh->dir);
        goto out;
    }
    if (r.why) /* damaged up to its end */
        rc = seg_hole_add(sh, seg, r.end_off, size, r.end_seq, next_first, r.why, err);
    else if (r.end_seq != next_first)
        rc = seg_hole_add(sh, seg, r.end_off, r.end_off, r.end_seq, next_first,
                          size > SLOG_SEG_HDR ? "a segment file between them is missing"
                                              : "the file is shorter than its header",
                          err);
    if (rc) goto out;
    seg->pub_size = seg->w_size = size < SLOG_SEG_HDR ? SLOG_SEG_HDR : size;
    seg->pub_end = next_first;
    seg->pub_last_arrival = r.last_arrival;
    slog__idx_write(sh, seg); /* not for a segment with holes: see slog__idx_write */
out:
    sh->io->close(fd); /* reopened lazily by the first read */
    return rc;
}

/* The newest segment: repair a torn header, scan, cut a torn tail.  Keeps it open. */
static int load_last(slog_shard_t *sh, slog_seg_t *seg, tr_err *err) {
    int fd = sh->io->open(seg->path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return slog__io_err(err, errno, "open", seg->path,
                            "check the file's permissions and the open-file limit (ulimit -n)");
    seg->fd = fd; /* closed by slog__seg_unref on any failure */
    struct stat st;
    int ioerr;
    if (sh->io->fstat(fd, &st) != 0)
        return slog__io_err(err, errno, "stat", seg->path, SLOG_FIX_DISK);
    uint64_t size = (uint64_t)st.st_size;
    const char *bad = slog__seg_header_check(sh, seg, fd, size, &ioerr);
    if (ioerr) return slog__io_err(err, ioerr, "read header of", seg->path, SLOG_FIX_DISK);
    if (bad && size <= SLOG_SEG_HDR) {
        /* The header is made durable before any frame is written, so a bad header with no
         * frames behind it is a crash during the segment's creation. */
        uint8_t hdr[SLOG_SEG_HDR];
        slog__seg_header(hdr, seg->first_seq);
        tr_warn("slog",
                "shard %s: newest segment %s has a torn header (%llu bytes: %s), left by "
                "a crash while it was being created; rewriting it as an empty segment",
                sh->dir, seg->path, (unsigned long long)size, bad);
        if (slog__full_pwrite(sh->io, fd, hdr, sizeof hdr, 0) != 0 ||
            sh->io->ftruncate(fd, SLOG_SEG_HDR) != 0 ||
            (!sh->no_sync && sh->io->fdatasync(fd) != 0))
            return slog__io_err(err, errno, "repair header of", seg->path, SLOG_FIX_DISK);
        size = SLOG_SEG_HDR;
    } else if (bad) {
        seg_header_damage(sh, seg, bad); /* frames follow: damage, not a torn write */
    }
    slog_scan_res_t r;
    int rc = slog__seg_scan(sh, seg, fd, size, UINT64_MAX, 1, &r, err);
    if (rc) return rc;
    if (r.why) {
        tr_warn("slog",
                "shard %s: torn tail in %s: dropped %llu bytes at offset %llu (%s; records "
                "from seq %llu on; no intact record follows). Expected after a crash or power "
                "loss (such records were never acknowledged); without one it means the disk lost "
                "data",
                sh->dir, seg->path, (unsigned long long)(size - r.end_off),
                (unsigned long long)r.end_off, r.why, (unsigned long long)r.end_seq);
        if (sh->io->ftruncate(fd, (off_t)r.end_off) != 0 ||
            (!sh->no_sync && sh->io->fdatasync(fd) != 0))
            return slog__io_err(err, errno, "truncate torn tail of", seg->path, SLOG_FIX_DISK);
    }
    char ipath[PATH_MAX];
    slog__seg_idx_path(seg, ipath, ".idx");
    sh->io->unlink(ipath); /* a stale .idx of a segment that was rolled then recovered */
    seg->pub_size = seg->w_size = r.end_off;
    seg->pub_end = r.end_seq;
    seg->pub_last_arrival = r.last_arrival;
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* 20 decimal digits -> *v.  0 if s is not exactly that. */
static int parse20(const char *s, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 20; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    *v = x;
    return 1;
}

static int u64_push(uint64_t **a, size_t *n, size_t *cap, uint64_t v) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        uint64_t *p = realloc(*a, c * sizeof *p);
        if (!p) return TR_ENOMEM;
        *a = p;
        *cap = c;
    }
    (*a)[(*n)++] = v;
    return 0;
}

/* List DIR: segment and index first seqs, ascending.  Removes leftover .idx.tmp files. */
static int dir_list(slog_shard_t *sh, uint64_t **segs, size_t *nseg, uint64_t **idxs, size_t *nidx,
                    tr_err *err) {
    size_t cs = 0, ci = 0;
    DIR *d = opendir(sh->dir);
    if (!d) return slog__io_err(err, errno, "list directory", sh->dir, "check its permissions");
    int rc = 0;
    struct dirent *de;
    for (;;) {
        errno = 0;
        if (!(de = readdir(d))) break;
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        uint64_t v;
        if (len < 24 || !parse20(nm, &v)) continue;
        if (!strcmp(nm + 20, ".seg")) rc = u64_push(segs, nseg, &cs, v);
        else if (!strcmp(nm + 20, ".idx")) rc = u64_push(idxs, nidx, &ci, v);
        else if (!strcmp(nm + 20, ".idx.tmp") || !strcmp(nm + 20, ".dmg.tmp"))
            unlinkat(dirfd(d), nm, 0);
        if (rc) break;
    }
    int e = errno;
    closedir(d);
    if (rc)
        return tr_err_set(err, TR_ENOMEM, "out of memory listing %s; Fix: free memory", sh->dir);
    if (!de && e) return slog__io_err(err, e, "list directory", sh->dir, SLOG_FIX_DISK);
    if (*nseg) qsort(*segs, *nseg, sizeof **segs, cmp_u64);
    if (*nidx) qsort(*idxs, *nidx, sizeof **idxs, cmp_u64);
    return 0;
}

/* ---- shard state file ----------------------------------------------------------------------- */

/*
 * DIR/state remembers how far the shard's numbering went, so that a deleted or lost segment
 * file can never make sequence numbers restart lower (little-endian, 32 bytes):
 *
 *     0          8          16             24     28     32
 *     +----------+----------+--------------+------+------+
 *     | TRSHST01 | hwm u64  | newest u64   | crc  | 0    |
 *     +----------+----------+--------------+------+------+
 *     hwm    = no seq at or past it was ever handed out (a reservation: rewritten, before the
 *              first frame past it is written, to the seq reached + SLOG_STATE_STEP);
 *     newest = first seq of the newest segment created;
 *     crc    = CRC32C of bytes 0..24.
 *
 * Written as DIR/state.tmp, fdatasync'd, renamed over DIR/state, directory fsync'd: so it is
 * always the old or the new one.  Costs two fsyncs per segment roll and per SLOG_STATE_STEP
 * records.  At open: if the newest segment on disk is older than `newest`, the newest files are
 * missing: the loss is reported and numbering continues at hwm.
 */
#define SLOG_STATE_LEN 32
static const char state_magic[8] = {'T', 'R', 'S', 'H', 'S', 'T', '0', '1'};

int slog__state_write(slog_shard_t *sh, uint64_t hwm, uint64_t newest, tr_err *err) {
    char path[PATH_MAX], tmp[PATH_MAX];
    snprintf(path, sizeof path, "%s/state", sh->dir);
    snprintf(tmp, sizeof tmp, "%s/state.tmp", sh->dir);
    uint8_t b[SLOG_STATE_LEN] = {0};
    memcpy(b, state_magic, 8);
    slog__put64(b + 8, hwm);
    slog__put64(b + 16, newest);
    slog__put32(b + 24, tr_crc32c(0, b, 24));
    const char *what;
    if (file_replace(sh, tmp, path, b, sizeof b, &what) != 0) {
        int e = errno;
        sh->st_dirty = 1;
        return slog__io_err(err, e, what, tmp, SLOG_FIX_DISK);
    }
    if (sh->hwm_fn && hwm > sh->hwm) {
        int rc = sh->hwm_fn(sh->hwm_arg, hwm, err);
        if (rc) {
            sh->st_dirty = 1;
            return rc;
        }
    }
    sh->hwm = hwm;
    sh->st_newest = newest;
    sh->st_dirty = 0;
    return 0;
}

/* 1 and the figures when DIR/state is there and intact, 0 when absent, -1 when damaged. */
static int state_read(slog_shard_t *sh, uint64_t *hwm, uint64_t *newest) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/state", sh->dir);
    int fd = sh->io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    uint8_t b[SLOG_STATE_LEN];
    int r = slog__full_pread(sh->io, fd, b, sizeof b, 0);
    sh->io->close(fd);
    if (r != 0 || memcmp(b, state_magic, 8) != 0 || slog__get32(b + 24) != tr_crc32c(0, b, 24))
        return -1;
    *hwm = slog__get64(b + 8);
    *newest = slog__get64(b + 16);
    return 1;
}

/* Load every segment of an existing shard, or create the first one. */
int slog__shard_load(slog_shard_t *sh, uint64_t first_seq, tr_err *err) {
    uint64_t *firsts = NULL, *idxs = NULL;
    size_t n = 0, nidx = 0;
    uint64_t st_hwm = 0, st_newest = 0;
    int rc = dir_list(sh, &firsts, &n, &idxs, &nidx, err);
    if (rc) goto out;
    int st = state_read(sh, &st_hwm, &st_newest);
    if (st < 0)
        tr_error("slog",
                 "shard %s: the state file %s/state is damaged or unreadable; it is "
                 "rewritten from the segments, but a missing newest segment cannot be detected "
                 "this time. Fix: check the disk",
                 sh->dir, sh->dir);
    if (n == 0) {
        if (st > 0) { /* it had segments: all gone */
            if (sh->min_next > st_hwm) st_hwm = sh->min_next;
            first_seq = st_hwm > first_seq ? st_hwm : first_seq;
            atomic_fetch_add(&sh->h_missing, 1);
            tr_error("slog",
                     "shard %s: MISSING DATA: no segment file is left, but the shard had "
                     "handed out sequence numbers below %llu (its newest segment started at "
                     "%llu). Numbering continues at %llu, so no number is reused. Fix: restore "
                     "the .seg files from a backup (stop the server first) if you have one",
                     sh->dir, (unsigned long long)st_hwm, (unsigned long long)st_newest,
                     (unsigned long long)first_seq);
        } else if (st == 0 && sh->min_next > first_seq) { /* the directory itself went */
            first_seq = sh->min_next;
            atomic_fetch_add(&sh->h_missing, 1);
            tr_error("slog",
                     "shard %s: MISSING DATA: the shard directory holds no segment file "
                     "and no state file, but the shard had handed out sequence numbers below "
                     "%llu (as recorded outside the directory): the directory was deleted or "
                     "emptied, and its records are lost. Numbering continues at %llu, so no "
                     "number is reused. Fix: restore the shard directory from a backup (stop the "
                     "server first) if you have one",
                     sh->dir, (unsigned long long)first_seq, (unsigned long long)first_seq);
        }
        if ((rc = slog__seg_create(sh, first_seq, err)) != 0) goto out;
        sh->begin = sh->pub_end = sh->w_next = first_seq;
        sh->pub_last_arrival = sh->w_last_arrival = -1;
        tr_debug("slog", "shard %s: created, first seq %llu", sh->dir,
                 (unsigned long long)first_seq);
        rc = slog__state_write(sh, slog__sat_add(first_seq, SLOG_STATE_STEP), first_seq, err);
        goto out;
    }
    if (slog__segs_reserve(sh, n + 1)) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory opening %s; Fix: free memory", sh->dir);
        goto out;
    }
    int64_t last_arr = -1;
    for (size_t i = 0; i < n; i++) {
        slog_seg_t *seg = slog__seg_new(sh, firsts[i]);
        if (!seg) {
            rc = tr_err_set(err, TR_ENOMEM, "out of memory opening %s; Fix: free memory", sh->dir);
            goto out;
        }
        sh->segs[sh->nsegs++] = seg; /* no reader can see the shard yet: no lock */
        rc = i + 1 < n ? slog__load_sealed(sh, seg, firsts[i + 1], err) : load_last(sh, seg, err);
        if (rc) goto out;
        if (seg->pub_last_arrival >= 0) last_arr = seg->pub_last_arrival;
        else if (i + 1 < n) seg->pub_last_arrival = last_arr; /* keeps them non-decreasing */
    }
    slog_seg_t *last = slog__seg_active(sh);
    sh->begin = sh->segs[0]->first_seq;
    sh->pub_end = sh->w_next = last->pub_end;
    sh->pub_last_arrival = sh->w_last_arrival = last_arr;
    if (st > 0 && last->first_seq < st_newest) {
        /* The newest segment file(s) are gone: what they held is a gap after `last`, and
         * numbering goes on past every number they may have handed out. */
        uint64_t resume = st_hwm > sh->pub_end ? st_hwm : sh->pub_end;
        if (sh->min_next > resume) resume = sh->min_next;
        if ((rc = seg_hole_add(sh, last, last->pub_size, last->pub_size, last->pub_end, resume,
                               k_newest_missing, err)) != 0)
            goto out;
        last->pub_end = resume;
        if (last->pub_last_arrival < 0) last->pub_last_arrival = last_arr;
        if ((rc = slog__seg_create(sh, resume, err)) != 0) goto out;
        sh->pub_end = sh->w_next = resume;
    }
    /* .idx files without a sealed segment: left by a trim interrupted by a crash. */
    for (size_t i = 0; i < nidx; i++) {
        if (bsearch(&idxs[i], firsts, n - 1, sizeof *firsts, cmp_u64)) continue;
        if (idxs[i] == last->first_seq) continue; /* already removed by load_last */
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%020llu.idx", sh->dir, (unsigned long long)idxs[i]);
        sh->io->unlink(p);
    }
    if (st <= 0 || st_newest != slog__seg_active(sh)->first_seq || sh->pub_end >= st_hwm) {
        /* A disk that is full or read-only now must not cost the reads: the mark is needed
         * only before the next number is handed out, and slog__state_write left st_dirty set, so
         * the next append writes it first (and fails, as it should, while it cannot). */
        tr_err werr;
        tr_err_clear(&werr);
        if (slog__state_write(sh, slog__sat_add(sh->pub_end, SLOG_STATE_STEP),
                              slog__seg_active(sh)->first_seq, &werr) != 0)
            tr_warn("slog",
                    "shard %s: cannot write its sequence high-water mark (%s); its records "
                    "are served, appends wait until the mark can be written",
                    sh->dir, werr.msg);
    } else {
        sh->hwm = st_hwm;
        sh->st_newest = st_newest;
    }
    tr_debug("slog", "shard %s: opened, %zu segments, seqs [%llu, %llu)", sh->dir, n,
             (unsigned long long)sh->begin, (unsigned long long)sh->pub_end);
out:
    free(firsts);
    free(idxs);
    return rc;
}
