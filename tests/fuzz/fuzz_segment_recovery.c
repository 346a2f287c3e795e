/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_segment_recovery.c -- shard recovery (log/shard.c) over arbitrary segment files.
 *
 * Input: byte 0 picks the layout, the rest is file content.
 *   - bit 0 clear: the rest is the shard's only segment, 00000000000000000000.seg (the newest:
 *     torn tails are cut, damage followed by intact frames becomes a hole);
 *   - bit 0 set: bytes 1-2 (little-endian) split the rest in two segments: the first part is
 *     the sealed segment 0, the second the newest, named after the first seq in its header
 *     (or 1000 when that is not above 0).
 * Checked: open never crashes (it may fail with an error); reading everything as a consumer does
 * (continuing at next_seq) terminates, returns ascending seqs, and every record returned is a
 * whole frame with a good CRC-32C; an append after recovery is durable and read back after a
 * reopen; sequence numbers never go backwards across that reopen. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/crc32c.h"
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

static void put_file(uint64_t first, const uint8_t *b, size_t n) {
    char p[600];
    snprintf(p, sizeof p, "%s/%020llu.seg", g_dir, (unsigned long long)first);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, b, n) == (ssize_t)n);
    close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    setenv("TRIBUTARY_LOG", "off", 0); /* every input is damage: ERROR lines by the thousand */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/fuzz_segrec.XXXXXX", base);
    FUZZ_CHECK(mkdtemp(g_dir) != NULL);
    atexit(remove_dir);
    return 0;
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Read everything as a consumer; check every record; return the count (*last: last seq). */
static uint64_t read_all(slog_shard_t *sh, uint64_t *last) {
    slog_read_t rd = {0};
    tr_err err;
    uint64_t next = 0, count = 0, prev = 0;
    int have = 0;
    for (int guard = 0;; guard++) {
        FUZZ_CHECK(guard < 100000);
        if (slog_shard_read(sh, next, 64, 1 << 20, &rd, &err) != 0) break;
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
            FUZZ_CHECK(r->seq >= next);
            prev = r->seq;
            have = 1;
            /* pk and data sit in the raw frame bytes: check the frame as stored */
            const uint8_t *f = (const uint8_t *)r->pk - SLOG_FRAME_HDR;
            uint32_t len = get32(f);
            FUZZ_CHECK(len == (uint32_t)SLOG_FRAME_HDR + r->pk_len + r->data_len);
            FUZZ_CHECK(r->data == (const uint8_t *)r->pk + r->pk_len);
            FUZZ_CHECK(get32(f + 4) == tr_crc32c(0, f + 8, len - 8));
            count++;
        }
        FUZZ_CHECK(rd.next_seq == rd.recs[rd.n - 1].seq + 1);
        next = rd.next_seq;
    }
    slog_read_free(&rd);
    if (last) *last = prev;
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1u << 20)) return 0;
    clear_dir();
    const uint8_t *b = data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) && n >= 2) {
        size_t cut = (size_t)(b[0] | b[1] << 8);
        b += 2;
        n -= 2;
        if (cut > n) cut = n;
        uint64_t second = 0;
        if (n - cut >= 16)
            for (int i = 0; i < 8; i++) second |= (uint64_t)b[cut + 8 + i] << (8 * i);
        if (second == 0 || second > (1ull << 40)) second = 1000;
        put_file(0, b, cut);
        put_file(second, b + cut, n - cut);
    } else {
        put_file(0, b, n);
    }
    slog_shard_opts_t o = {0, 0, 1, 0};
    slog_shard_t *sh = NULL;
    tr_err err;
    if (slog_shard_open(g_dir, &o, &sh, &err) != 0) return 0;
    read_all(sh, NULL);
    uint64_t end = slog_shard_end(sh), first;
    slog_rec_in_t rec = {"fz", 2, (const uint8_t *)"after recovery", 14};
    FUZZ_CHECK(slog_shard_append(sh, &rec, 1, 1, &first, &err) == 0);
    FUZZ_CHECK(first == end);
    FUZZ_CHECK(slog_shard_sync(sh, &err) == 0);
    slog_shard_close(sh);
    sh = NULL;
    FUZZ_CHECK(slog_shard_open(g_dir, &o, &sh, &err) == 0);
    FUZZ_CHECK(slog_shard_end(sh) == end + 1);
    slog_read_t rd = {0};
    FUZZ_CHECK(slog_shard_read(sh, end, 1, 1 << 20, &rd, &err) == 0);
    FUZZ_CHECK(rd.n == 1 && rd.recs[0].seq == end && rd.recs[0].data_len == 14 &&
               memcmp(rd.recs[0].data, "after recovery", 14) == 0);
    slog_read_free(&rd);
    uint64_t last;
    FUZZ_CHECK(read_all(sh, &last) >= 1 && last == end);
    slog_shard_close(sh);
    return 0;
}
