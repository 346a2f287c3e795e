/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_obj_list.c -- the object engine's listing parameters (obj/obj.h): continuation tokens,
 * prefixes, delimiters and start-after markers as a client sends them, over a small bucket.
 *
 * Input: fields separated by '\n': token, prefix, delimiter, start-after, version-id-marker;
 * the first byte of the input (mod 8) is max-keys.  Checked:
 *   - obj_token_decode never crashes; a token it accepts is "k"/"p" + the lower-case hex of the
 *     key it returns (n bytes, no NUL), so decoding is exact;
 *   - obj_list and obj_list_versions never crash and return 0 or TR_EINVAL (bad token); a page
 *     has at most max-keys entries, its keys are in byte order, each starts with the prefix.
 * The bucket lives in a temporary directory made once (LLVMFuzzerInitialize), removed at exit. */
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "fuzz.h"
#include "obj/obj.h"
#include "obj/obj_int.h"

static obj_t *g_o;
static char g_dir[64];

static void cleanup(void) {
    obj_close(g_o);
    tr_rmtree(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    strcpy(g_dir, "/tmp/fuzz_obj_list.XXXXXX");
    if (!mkdtemp(g_dir)) abort();
    tr_err e;
    if (obj_open(g_dir, NULL, &g_o, &e) || obj_bucket_create(g_o, "fuzz", NULL, &e) ||
        obj_versioning_set(g_o, "fuzz", OBJ_VERS_ENABLED, &e))
        abort();
    const char *keys[] = {"a",   "a/b",  "a/b/c",      "a/c", "ab",   "b/",
                          "b/x", "\xff", "\xff\xff/z", "x.y", "\x01", "a/\xc3\xa9"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        for (int v = 0; v < 2; v++) {
            obj_put_t *p;
            if (obj_put_begin(g_o, "fuzz", keys[i], NULL, &p, &e) || obj_put_write(p, "x", 1, &e) ||
                obj_put_commit(p, NULL, &e))
                abort();
        }
        if (i % 3 == 0 && obj_delete(g_o, "fuzz", keys[i], NULL, NULL, &e)) abort();
    }
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_o) LLVMFuzzerInitialize(NULL, NULL);
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    char *f[5] = {0};
    char *cur = s;
    for (int i = 0; i < 5 && cur; i++) {
        f[i] = cur;
        char *nl = strchr(cur, '\n');
        if (nl) *nl = 0;
        cur = nl ? nl + 1 : NULL;
    }
    int kind;
    char *key;
    size_t n;
    if (f[0] && obj_token_decode(f[0], &kind, &key, &n) == 0) {
        FUZZ_CHECK(kind == 'k' || kind == 'p');
        FUZZ_CHECK(strlen(key) == n && n > 0 && n <= OBJ_KEY_MAX);
        char *hex = malloc(2 * n + 1);
        obj__hex((const uint8_t *)key, n, hex);
        FUZZ_CHECK(!strcmp(hex, f[0] + 1));
        free(hex);
        free(key);
    }
    int max = size ? data[0] % 8 : 1;
    for (int versions = 0; versions < 2; versions++) {
        obj_list_opts_t q = {.token = f[0],
                             .prefix = f[1],
                             .delimiter = f[2],
                             .start_after = f[3],
                             .version_id_marker = f[4],
                             .max_keys = max};
        obj_list_page_t *pg = NULL;
        tr_err e;
        int rc = versions ? obj_list_versions(g_o, "fuzz", &q, &pg, &e)
                          : obj_list(g_o, "fuzz", &q, &pg, &e);
        FUZZ_CHECK(rc == 0 || rc == TR_EINVAL);
        if (rc) continue;
        FUZZ_CHECK(pg->n + pg->np <= (size_t)max);
        size_t pn = f[1] ? strlen(f[1]) : 0;
        for (size_t i = 0; i < pg->n; i++) {
            FUZZ_CHECK(!pn || !strncmp(pg->items[i]->key, f[1], pn));
            if (i) FUZZ_CHECK(strcmp(pg->items[i - 1]->key, pg->items[i]->key) <= 0);
        }
        for (size_t i = 1; i < pg->np; i++)
            FUZZ_CHECK(strcmp(pg->prefixes[i - 1], pg->prefixes[i]) < 0);
        obj_list_page_free(pg);
    }
    free(s);
    return 0;
}
