/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_segment_reader.c -- damage a READER meets (log/shard.c rd_damage): byte flips in a sealed
 * segment that the shard trusts from its intact .idx, so nothing is scanned at open.
 *
 * Input: byte 0 picks the number of records (20-83), byte 1 their sizes, byte 2 the segment
 * size; then up to 6 flips of 3 bytes each (u16 position, scaled to the first segment's size,
 * and an XOR mask).  The shard is written through the API (one append + sync per record, so
 * segments roll and sealed ones get their .idx), the flips are applied to the first segment,
 * and the shard is read as a consumer does, then reopened (rescan with the recorded .dmg) and
 * read again.
 * Checked: open and reads succeed and terminate; every record returned is the one appended
 * under its seq (contents regenerated from the seq), in ascending order; every record whose
 * frame no flip touched is returned -- exactly the damaged records may be missing -- both
 * before and after the reopen, when the damaged frames' headers are intact or only one frame
 * is hit (damaged length or seq fields in several frames close together may also cost the
 * intact frames between them: the resync's chain rule, see shard.c); an append after all that
 * gets the next seq. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "log/shard.h"

static char g_dir[256];

static void clear_dir(void) {
    DIR *d = opendir(g_dir);
    struct dirent *de;
    char p[600];
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", g_dir, de->d_name);
        unlink(p);
    }
    if (d) closedir(d);
}

static void remove_dir(void) {
    clear_dir();
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    setenv("TRIBUTARY_LOG", "off", 0);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/fuzz_segrd.XXXXXX", base);
    FUZZ_CHECK(mkdtemp(g_dir) != NULL);
    atexit(remove_dir);
    return 0;
}

#define MAXREC 84

static uint8_t g_sizes; /* input byte 1 */

static void gen(uint64_t seq, char pk[16], uint16_t *pk_len, uint8_t *data, uint32_t *data_len) {
    *pk_len = (uint16_t)snprintf(pk, 16, "k%llu", (unsigned long long)seq);
    *data_len = (uint32_t)((seq * 37 + g_sizes) % 300);
    for (uint32_t i = 0; i < *data_len; i++) data[i] = (uint8_t)(seq * 131 + i * 7);
}

/* Read everything; check contents and order; mark what was returned in got[]. */
static void read_all(slog_shard_t *sh, uint64_t n, uint8_t *got) {
    slog_read_t rd = {0};
    tr_err err;
    uint64_t next = 0, prev = 0;
    int have = 0;
    memset(got, 0, n);
    for (int guard = 0;; guard++) {
        FUZZ_CHECK(guard < 100000);
        FUZZ_CHECK(slog_shard_read(sh, next, 7, 1 << 20, &rd, &err) == 0);
        if (rd.n == 0) {
            if (rd.next_seq > next && rd.next_seq < slog_shard_end(sh)) {
                next = rd.next_seq;
                continue;
            }
            break;
        }
        for (size_t i = 0; i < rd.n; i++) {
            const slog_rec_t *r = &rd.recs[i];
            FUZZ_CHECK(!have || r->seq > prev);
            FUZZ_CHECK(r->seq < n);
            prev = r->seq;
            have = 1;
            char pk[16];
            uint8_t data[300];
            uint16_t pl;
            uint32_t dl;
            gen(r->seq, pk, &pl, data, &dl);
            FUZZ_CHECK(r->pk_len == pl && r->data_len == dl);
            FUZZ_CHECK(!memcmp(r->pk, pk, pl) && !memcmp(r->data, data, dl));
            got[r->seq] = 1;
        }
        next = rd.next_seq;
    }
    slog_read_free(&rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3 || size > 64) return 0;
    clear_dir();
    uint64_t n = 20 + data[0] % 64;
    g_sizes = data[1];
    slog_shard_opts_t o = {1024 + (uint64_t)data[2] * 16, 0, 1, 0};
    slog_shard_t *sh = NULL;
    tr_err err;
    FUZZ_CHECK(slog_shard_open(g_dir, &o, &sh, &err) == 0);
    uint64_t flen[MAXREC];
    for (uint64_t s = 0; s < n; s++) {
        char pk[16];
        uint8_t d[300];
        slog_rec_in_t r;
        gen(s, pk, &r.pk_len, d, &r.data_len);
        r.pk = pk;
        r.data = d;
        uint64_t first;
        FUZZ_CHECK(slog_shard_append(sh, &r, 1, (int64_t)s, &first, &err) == 0 && first == s);
        FUZZ_CHECK(slog_shard_sync(sh, &err) == 0);
        flen[s] = (uint64_t)SLOG_FRAME_HDR + r.pk_len + r.data_len;
    }
    slog_shard_close(sh);
    char seg0[600], seg1[600];
    snprintf(seg0, sizeof seg0, "%s/%020d.seg", g_dir, 0);
    struct stat st;
    FUZZ_CHECK(stat(seg0, &st) == 0);
    uint64_t size0 = (uint64_t)st.st_size, cnt0 = 0, off = SLOG_SEG_HDR;
    while (cnt0 < n && off < size0) off += flen[cnt0++];
    snprintf(seg1, sizeof seg1, "%s/%020llu.seg", g_dir, (unsigned long long)cnt0);
    if (off != size0 || stat(seg1, &st) != 0) return 0; /* one segment only: not sealed */

    /* the flips, and the frames they land in */
    uint8_t hit[MAXREC] = {0};
    int nhit = 0, headers_hit = 0;
    int fd = open(seg0, O_RDWR);
    FUZZ_CHECK(fd >= 0);
    for (size_t i = 3; i + 3 <= size && i < 3 + 6 * 3; i += 3) {
        uint64_t pos = ((uint64_t)(data[i] | data[i + 1] << 8) * size0) >> 16;
        uint8_t x = data[i + 2] ? data[i + 2] : 1, c;
        FUZZ_CHECK(pread(fd, &c, 1, (off_t)pos) == 1);
        c ^= x;
        FUZZ_CHECK(pwrite(fd, &c, 1, (off_t)pos) == 1);
        uint64_t a = SLOG_SEG_HDR;
        for (uint64_t s = 0; s < cnt0; s++) {
            if (pos >= a && pos < a + flen[s]) {
                nhit += !hit[s];
                hit[s] = 1;
                if (pos < a + SLOG_FRAME_HDR) headers_hit = 1;
            }
            a += flen[s];
        }
    }
    close(fd);
    int exact = nhit <= 1 || !headers_hit;

    uint8_t got[MAXREC];
    for (int round = 0; round < 2; round++) {
        FUZZ_CHECK(slog_shard_open(g_dir, &o, &sh, &err) == 0);
        FUZZ_CHECK(slog_shard_end(sh) == n);
        read_all(sh, n, got);
        for (uint64_t s = 0; s < n; s++)
            if (s >= cnt0 || (exact && !hit[s])) FUZZ_CHECK(got[s]);
        if (round == 1) {
            slog_rec_in_t r = {"z", 1, (const uint8_t *)"after", 5};
            uint64_t first;
            FUZZ_CHECK(slog_shard_append(sh, &r, 1, 1000, &first, &err) == 0 && first == n);
            FUZZ_CHECK(slog_shard_sync(sh, &err) == 0);
        }
        slog_shard_close(sh);
    }
    return 0;
}
