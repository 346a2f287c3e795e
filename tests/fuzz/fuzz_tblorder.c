/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_tblorder.c -- Query order of sort keys around and past LMDB's key limit (table/tbl.h).
 *
 * Input:
 *   byte 0   flags: bit 0 key format 1 (else 0), bit 1 a 600-byte partition key (else "x"),
 *            bit 2 query backward
 *   byte 1   common prefix length / 4 of the binary sort keys (0..1020 bytes, capped so keys
 *            stay within 1024 bytes)
 *   byte 2   key condition: % 8 = none, =, <, <=, >, >=, BETWEEN, begins_with
 *   byte 3   bounds: the keys at indexes (b % n) and (b / 16 % n) of the sorted keys
 *   byte 4   Limit (0: none, else 1..15 by % 16)
 *   then     keys: a length byte L (% 16) and L tail bytes each, up to 40 keys (duplicates
 *            collapse)
 * Every key is put into an empty table of that key format (emptied again after); the Query is
 * paged through with Limit and ExclusiveStartKey and must return exactly the keys the condition
 * selects, in bytewise order (reversed when backward), each once.  begins_with uses the first
 * bound minus its last byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "fuzz.h"
#include "table/tbl.h"
#include "table/tbl_int.h"

#define MAXK 40
#define KEYMAX 1024

typedef struct fkey {
    size_t n;
    uint8_t b[KEYMAX];
} fkey_t;

static tbl_t *db;
static char *db_dir;
static fkey_t keys[MAXK], got[MAXK + 1];

static int kcmp(const void *a, const void *b) {
    const fkey_t *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = m ? memcmp(x->b, y->b, m) : 0;
    if (c) return c < 0 ? -1 : 1;
    return (x->n > y->n) - (x->n < y->n);
}

static json_t *bav(const fkey_t *k) {
    tr_buf t = TR_BUF_INIT;
    tr_buf_base64(&t, k->b, k->n);
    json_t *av = json_pack("{s:s%}", "B", t.data ? t.data : "", t.len);
    tr_buf_free(&t);
    return av;
}

static void unbav(const json_t *av, fkey_t *k) {
    json_t *s = json_object_get(av, "B");
    FUZZ_CHECK(s);
    uint8_t *tmp = malloc(tr_base64_decoded_max(json_string_length(s)) + 1);
    long n = tr_base64_decode(json_string_value(s), json_string_length(s), tmp);
    FUZZ_CHECK(n >= 0 && n <= KEYMAX);
    memcpy(k->b, tmp, (size_t)n);
    k->n = (size_t)n;
    free(tmp);
}

static int selects(int op, const fkey_t *v, const fkey_t *a, const fkey_t *b) {
    int c = kcmp(v, a);
    switch (op) {
    case 0: return 1;
    case 1: return c == 0;
    case 2: return c < 0;
    case 3: return c <= 0;
    case 4: return c > 0;
    case 5: return c >= 0;
    case 6: return c >= 0 && kcmp(v, b) <= 0;
    default: return v->n >= a->n && !memcmp(v->b, a->b, a->n);
    }
}

/* LeakSanitizer reads this at exit: OpenSSL keeps per-thread state (the engine's threads draw
 * random table ids and hash long keys) that it frees at thread exit, after libFuzzer's leak check
 * has run.  Nothing of ours is suppressed. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcrypto.so\n"; }

/* At exit: close the engine, remove its files and directory. */
static void db_done(void) {
    tbl_close(db);
    db = NULL;
    char p[64];
    snprintf(p, sizeof p, "%s/data.mdb", db_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", db_dir);
    unlink(p);
    rmdir(db_dir);
    free(db_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    db_dir = strdup("/tmp/fuzz_tblorder.XXXXXX");
    FUZZ_CHECK(db_dir && mkdtemp(db_dir));
    tbl_opts_t o = {0};
    o.no_sync = 1;
    o.ttl_interval_ms = -1;
    o.map_size = (size_t)4 << 30;
    tr_err e = {0, ""};
    FUZZ_CHECK(tbl_open(db_dir, &o, &db, &e) == 0);
    atexit(db_done);
    for (int kf = 0; kf < 2; kf++) { /* one table per key format; emptied after each input */
        tbl_attrdef_t a[2] = {{"h", TBL_T_S}, {"r", TBL_T_B}};
        tbl_table_info_t d = {.name = kf ? "fz1" : "fz0",
                              .hash = "h",
                              .range = "r",
                              .attrs = a,
                              .n_attrs = 2,
                              .billing = TBL_BILLING_PAY_PER_REQUEST};
        tbl__key_format_new = kf;
        FUZZ_CHECK(tbl_table_create(db, &d, NULL, &e) == 0);
    }
    tbl__key_format_new = TBL__KEY_FORMAT;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!db) LLVMFuzzerInitialize(NULL, NULL);
    if (size < 5) return 0;
    int flags = data[0], op = data[2] % 8, limit = data[4] % 16;
    size_t plen = (size_t)data[1] * 4;
    if (plen > KEYMAX - 15) plen = KEYMAX - 15;
    size_t n = 0, i = 5;
    while (i < size && n < MAXK) {
        size_t l = data[i++] % 16;
        if (l > size - i) l = size - i;
        memset(keys[n].b, 0xAB, plen);
        memcpy(keys[n].b + plen, data + i, l);
        keys[n].n = plen + l;
        i += l;
        n++;
    }
    if (!n || (plen == 0 && keys[0].n == 0 && n == 1)) return 0;
    qsort(keys, n, sizeof keys[0], kcmp);
    size_t u = 0;   /* distinct, non-empty (an empty B key is invalid) */
    for (size_t k = 0; k < n; k++)
        if (keys[k].n && (!u || kcmp(&keys[u - 1], &keys[k]))) keys[u++] = keys[k];
    n = u;
    if (!n) return 0;

    const char *name = flags & 1 ? "fz1" : "fz0";
    tr_err e = {0, ""};
    char *hs = malloc(601);
    memset(hs, 'p', 600);
    hs[flags & 2 ? 600 : 1] = 0;
    json_t *hv = json_pack("{s:s}", "S", hs);
    free(hs);
    for (size_t k = 0; k < n; k++) { /* in input order would need the unsorted copy: reversed */
        json_t *it = json_pack("{s:O,s:o}", "h", hv, "r", bav(&keys[n - 1 - k]));
        tbl_write_t w = {.op = TBL_OP_PUT, .table = name, .item = it};
        FUZZ_CHECK(tbl_sync_write(db, &w, 1, &e) == 0);
        json_decref(it);
    }

    static const char *conds[] = {"h = :h",
                                  "h = :h AND r = :a",
                                  "h = :h AND r < :a",
                                  "h = :h AND r <= :a",
                                  "h = :h AND r > :a",
                                  "h = :h AND r >= :a",
                                  "h = :h AND r BETWEEN :a AND :b",
                                  "h = :h AND begins_with(r, :a)"};
    fkey_t lo = keys[data[3] % n], hi = keys[data[3] / 16 % n];
    if (kcmp(&lo, &hi) > 0) {
        fkey_t t = lo;
        lo = hi;
        hi = t;
    }
    if (op == 7 && lo.n > 1) lo.n--;
    json_t *vals = json_pack("{s:O,s:o,s:o}", ":h", hv, ":a", bav(&lo), ":b", bav(&hi));
    if (op != 6) json_object_del(vals, ":b");
    if (op == 0) json_object_del(vals, ":a");
    tbl_expr_t *kc = NULL;
    FUZZ_CHECK(tbl_expr_parse(TBL_EXPR_KEY_CONDITION, conds[op], NULL, vals, NULL, &kc, &e) == 0);
    size_t gn = 0;
    int pages = 0;
    json_t *start = NULL;
    do {
        tbl_query_t q = {.table = name,
                         .keycond_expr = kc,
                         .backward = flags & 4 ? 1 : 0,
                         .limit = (uint32_t)limit,
                         .start_key = start};
        FUZZ_CHECK(tbl_query(db, &q, &e) == 0);
        size_t k;
        json_t *it;
        json_array_foreach(q.items, k, it) {
            FUZZ_CHECK(gn <= n);
            unbav(json_object_get(it, "r"), &got[gn++]);
        }
        json_decref(start);
        start = q.last_key ? json_incref(q.last_key) : NULL;
        tbl_query_free(&q);
        FUZZ_CHECK(++pages <= (int)n + 2);
    } while (start);
    size_t w = 0;
    for (size_t k = 0; k < n; k++) {
        const fkey_t *x = &keys[flags & 4 ? n - 1 - k : k];
        if (!selects(op, x, &lo, &hi)) continue;
        FUZZ_CHECK(w < gn && kcmp(&got[w], x) == 0);
        w++;
    }
    FUZZ_CHECK(w == gn);

    tbl_expr_free(kc);
    json_decref(vals);
    for (size_t k = 0; k < n; k++) {
        json_t *key = json_pack("{s:O,s:o}", "h", hv, "r", bav(&keys[k]));
        tbl_write_t w = {.op = TBL_OP_DELETE, .table = name, .key = key};
        FUZZ_CHECK(tbl_sync_write(db, &w, 1, &e) == 0);
        json_decref(key);
    }
    json_decref(hv);
    return 0;
}
