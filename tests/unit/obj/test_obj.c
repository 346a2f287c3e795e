/* SPDX-License-Identifier: Apache-2.0
 *
 * test_obj.c -- the object engine (src/obj/obj.h): buckets, streaming put / get with ranges,
 * versioning as S3 (unversioned, Enabled, Suspended; delete markers, the "null" version),
 * preconditions at commit, listing against a brute-force oracle at every page size, copy, crash
 * safety (a child process dies at the engine's fault points; reopen shows nothing partial and
 * collects the bodies), and constant memory for a 200 MB object.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "obj/obj.h"
#include "obj/obj_int.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------------------------- */

/* 0: every body in a file (the layout assertions hold); 1: small bodies inline (the default). */
static int g_inline;
/* 1: no fsyncs (the tests of semantics that do not crash: listing, versioning; fast on a busy
 * disk).  The crash, precondition and big-object tests sync as the server does. */
static int g_no_sync;

static obj_t *open_obj(const char *dir) {
    obj_t *o;
    tr_err e;
    obj_opts_t oo = {.inline_max = g_inline ? 0 : -1, .no_sync = g_no_sync};
    tu_ok(obj_open(dir, &oo, &o, &e), e);
    return o;
}

static void put_opts(obj_t *o, const char *b, const char *k, const char *body,
                     const obj_put_opts_t *opts, obj_put_result_t *res) {
    obj_put_t *p;
    tr_err e;
    tu_ok(obj_put_begin(o, b, k, opts, &p, &e), e);
    tu_ok(obj_put_write(p, body, strlen(body), &e), e);
    tu_ok(obj_put_commit(p, res, &e), e);
}

static void put(obj_t *o, const char *b, const char *k, const char *body, obj_put_result_t *res) {
    put_opts(o, b, k, body, NULL, res);
}

/* The body of bucket/key (version vid) as a malloc'ed string, or NULL with *rc set. */
static char *get_str(obj_t *o, const char *b, const char *k, const char *vid, int *rc) {
    obj_get_opts_t g = {.version_id = vid};
    obj_reader_t *r;
    tr_err e;
    *rc = obj_get(o, b, k, &g, &r, NULL, &e);
    if (*rc) return NULL;
    char *s = calloc(1, r->length + 1);
    size_t n = 0;
    long got;
    while ((got = obj_reader_read(r, s + n, r->length - n + 1, &e)) > 0) n += (size_t)got;
    assert_true(got == 0);
    assert_int_equal(n, r->length);
    obj_reader_close(r);
    return s;
}

static void assert_body(obj_t *o, const char *b, const char *k, const char *vid, const char *want) {
    int rc;
    char *s = get_str(o, b, k, vid, &rc);
    if (!s) fail_msg("get %s/%s@%s: %s", b, k, vid ? vid : "-", tr_err_name(rc));
    assert_string_equal(s, want);
    free(s);
}

static int count_files(const char *dir) {
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* Body files under objects/ and tmp/. */
static void count_bodies(const char *root, int *objects, int *tmp) {
    char p[4096];
    *objects = 0;
    for (int i = 0; i < 256; i++) {
        snprintf(p, sizeof p, "%s/objects/%02x", root, i);
        *objects += count_files(p);
    }
    snprintf(p, sizeof p, "%s/tmp", root);
    *tmp = count_files(p);
}

/* ---- buckets -------------------------------------------------------------------------------- */

static void test_bucket_names(void **state) {
    (void)state;
    tr_err e;
    const char *good[] = {"abc", "my-bucket.logs", "a1b", "123", "a.b.c", "1.2.3", NULL};
    const char *bad[] = {"ab",        "Abc",      "a_b",         "-abc",    "abc-",
                         ".abc",      "a..b",     "192.168.1.1", "xn--abc", "sthree-x",
                         "x-s3alias", "b--ol-s3", "bad!name",    "",        NULL};
    for (int i = 0; good[i]; i++) tu_ok(obj_bucket_name_check(good[i], &e), e);
    for (int i = 0; bad[i]; i++)
        if (obj_bucket_name_check(bad[i], &e) != TR_EINVAL) fail_msg("accepted \"%s\"", bad[i]);
    char longn[65];
    memset(longn, 'a', 64);
    longn[64] = 0;
    tu_fails(obj_bucket_name_check(longn, &e), TR_EINVAL, e, "3 to 63");
}

static void test_buckets(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "beta", "eu-west-1", &e), e);
    tu_ok(obj_bucket_create(o, "alpha", NULL, &e), e);
    tu_fails(obj_bucket_create(o, "alpha", NULL, &e), TR_EEXISTS, e, "already exists");
    tu_fails(obj_bucket_create(o, "Bad", NULL, &e), TR_EINVAL, e, NULL);
    obj_bucket_info_t *bl;
    size_t n;
    tu_ok(obj_bucket_list(o, &bl, &n, &e), e);
    assert_int_equal(n, 2);
    assert_string_equal(bl[0].name, "alpha");
    assert_string_equal(bl[1].name, "beta");
    free(bl);
    char *t;
    size_t tn;
    tu_ok(obj_conf_get(o, "beta", OBJ_CONF_LOCATION, &t, &tn, &e), e);
    assert_string_equal(t, "eu-west-1");
    free(t);
    tu_fails(obj_conf_get(o, "alpha", OBJ_CONF_CORS, &t, &tn, &e), TR_ENOTFOUND, e, NULL);
    tu_ok(obj_conf_set(o, "alpha", OBJ_CONF_CORS, "<CORS/>", 7, &e), e);
    tu_ok(obj_conf_get(o, "alpha", OBJ_CONF_CORS, &t, &tn, &e), e);
    assert_string_equal(t, "<CORS/>");
    free(t);
    tu_ok(obj_conf_set(o, "alpha", OBJ_CONF_CORS, NULL, 0, &e), e);
    tu_fails(obj_conf_get(o, "alpha", OBJ_CONF_CORS, &t, &tn, &e), TR_ENOTFOUND, e, NULL);
    int vs;
    tu_ok(obj_versioning_get(o, "alpha", &vs, &e), e);
    assert_int_equal(vs, OBJ_VERS_NONE);
    tu_fails(obj_versioning_set(o, "alpha", OBJ_VERS_NONE, &e), TR_EINVAL, e, NULL);
    tu_ok(obj_versioning_set(o, "alpha", OBJ_VERS_ENABLED, &e), e);
    tu_ok(obj_versioning_get(o, "alpha", &vs, &e), e);
    assert_int_equal(vs, OBJ_VERS_ENABLED);
    tu_fails(obj_versioning_get(o, "gamma", &vs, &e), TR_ENOBUCKET, e, "does not exist");

    /* not empty while a version or a delete marker is left */
    obj_put_result_t r;
    put(o, "alpha", "k", "v", &r);
    tu_fails(obj_bucket_delete(o, "alpha", &e), TR_EINUSE, e, "not empty");
    obj_del_result_t d;
    tu_ok(obj_delete(o, "alpha", "k", NULL, &d, &e), e); /* a delete marker */
    tu_fails(obj_bucket_delete(o, "alpha", &e), TR_EINUSE, e, "not empty");
    tu_ok(obj_delete(o, "alpha", "k", r.version_id, NULL, &e), e);
    tu_ok(obj_delete(o, "alpha", "k", d.version_id, NULL, &e), e);
    tu_ok(obj_bucket_delete(o, "alpha", &e), e);
    tu_fails(obj_bucket_head(o, "alpha", NULL, &e), TR_ENOBUCKET, e, NULL);
    tu_fails(obj_bucket_delete(o, "alpha", &e), TR_ENOBUCKET, e, NULL);
    /* re-created: empty, configuration gone, unversioned */
    tu_ok(obj_bucket_create(o, "alpha", NULL, &e), e);
    tu_ok(obj_versioning_get(o, "alpha", &vs, &e), e);
    assert_int_equal(vs, OBJ_VERS_NONE);
    obj_close(o);
    /* durable across reopen */
    o = open_obj(*state);
    tu_ok(obj_bucket_head(o, "beta", NULL, &e), e);
    tu_ok(obj_bucket_head(o, "alpha", NULL, &e), e);
    obj_close(o);
}

/* ---- put / get ------------------------------------------------------------------------------ */

static void test_put_get_range(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bk1", NULL, &e), e);
    obj_put_t *p;
    obj_kv_t meta[] = {{"color", "blue"}, {"n", "1"}};
    obj_put_opts_t po = {.content_type = "text/plain",
                         .cache_control = "no-cache",
                         .meta = meta,
                         .nmeta = 2,
                         .tags = "a=1&b=2",
                         .expect_size = 11};
    tu_ok(obj_put_begin(o, "bk1", "dir/hello.txt", &po, &p, &e), e);
    tu_ok(obj_put_write(p, "hello", 5, &e), e);
    tu_ok(obj_put_write(p, " ", 1, &e), e);
    tu_ok(obj_put_write(p, "world", 5, &e), e);
    obj_put_result_t r;
    tu_ok(obj_put_commit(p, &r, &e), e);
    assert_string_equal(r.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
    assert_string_equal(r.version_id, "null");
    assert_int_equal(r.size, 11);
    assert_body(o, "bk1", "dir/hello.txt", NULL, "hello world");

    obj_info_t *in;
    tu_ok(obj_head(o, "bk1", "dir/hello.txt", NULL, &in, NULL, &e), e);
    assert_string_equal(in->content_type, "text/plain");
    assert_string_equal(in->cache_control, "no-cache");
    assert_string_equal(in->content_encoding, "");
    assert_string_equal(in->storage_class, "STANDARD");
    assert_string_equal(in->tags, "a=1&b=2");
    assert_int_equal(in->meta_n, 2);
    assert_string_equal(in->meta, "color");
    assert_string_equal(in->meta + 6, "blue");
    assert_int_equal(in->size, 11);
    assert_true(in->is_latest);
    obj_info_free(in);

    struct {
        int kind;
        uint64_t a, b;
        const char *want; /* NULL: TR_ERANGE */
    } rg[] = {
        {OBJ_RANGE_FROM_TO, 0, 4, "hello"},
        {OBJ_RANGE_FROM_TO, 6, 100, "world"},
        {OBJ_RANGE_FROM, 10, 0, "d"},
        {OBJ_RANGE_SUFFIX, 0, 3, "rld"},
        {OBJ_RANGE_SUFFIX, 0, 50, "hello world"},
        {OBJ_RANGE_FROM, 11, 0, NULL},
        {OBJ_RANGE_FROM_TO, 11, 20, NULL},
        {OBJ_RANGE_SUFFIX, 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof rg / sizeof *rg; i++) {
        obj_get_opts_t g = {.range = {rg[i].kind, rg[i].a, rg[i].b}};
        obj_reader_t *rd;
        if (!rg[i].want) {
            tu_fails(obj_get(o, "bk1", "dir/hello.txt", &g, &rd, NULL, &e), TR_ERANGE, e, NULL);
            continue;
        }
        tu_ok(obj_get(o, "bk1", "dir/hello.txt", &g, &rd, NULL, &e), e);
        assert_true(rd->ranged);
        char buf[64] = {0};
        /* the adapter's path: sendfile of fd[offset, offset+length), or mem when inline */
        if (rd->fd < 0) memcpy(buf, rd->mem, rd->length);
        else
            assert_int_equal(pread(rd->fd, buf, rd->length, (off_t)rd->offset),
                             (ssize_t)rd->length);
        assert_string_equal(buf, rg[i].want);
        obj_reader_close(rd);
    }

    /* misses */
    obj_reader_t *rd;
    tu_fails(obj_get(o, "bk1", "nope", NULL, &rd, NULL, &e), TR_ENOTFOUND, e, NULL);
    tu_fails(obj_get(o, "nob", "x", NULL, &rd, NULL, &e), TR_ENOBUCKET, e, NULL);
    obj_get_opts_t gv = {.version_id = "0123456789abcdef0123456789abcdef"};
    tu_fails(obj_get(o, "bk1", "dir/hello.txt", &gv, &rd, NULL, &e), TR_ENOVERSION, e, NULL);
    gv.version_id = "zz";
    tu_fails(obj_get(o, "bk1", "dir/hello.txt", &gv, &rd, NULL, &e), TR_EINVAL, e, NULL);
    tu_fails(obj_put_begin(o, "nob", "x", NULL, &p, &e), TR_ENOBUCKET, e, NULL);
    tu_fails(obj_put_begin(o, "bk1", "", NULL, &p, &e), TR_EINVAL, e, NULL);

    /* empty object */
    put(o, "bk1", "empty", "", &r);
    assert_string_equal(r.etag, "d41d8cd98f00b204e9800998ecf8427e");
    assert_body(o, "bk1", "empty", NULL, "");

    /* a long key (folded in storage) round-trips */
    char lk[OBJ_KEY_MAX + 1];
    memset(lk, 'k', OBJ_KEY_MAX);
    lk[OBJ_KEY_MAX] = 0;
    put(o, "bk1", lk, "long", &r);
    assert_body(o, "bk1", lk, NULL, "long");
    lk[OBJ_KEY_MAX - 1] = 'j';
    tu_fails(obj_get(o, "bk1", lk, NULL, &rd, NULL, &e), TR_ENOTFOUND, e, NULL);
    obj_close(o);
    o = open_obj(*state);
    assert_body(o, "bk1", "dir/hello.txt", NULL, "hello world");
    obj_close(o);
}

static void test_put_refused_stores_nothing(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bk1", NULL, &e), e);
    put(o, "bk1", "k", "old", NULL);
    uint8_t md5[16] = {0};
    obj_put_opts_t po = {.content_md5 = md5, .expect_size = -1};
    obj_put_t *p;
    tu_ok(obj_put_begin(o, "bk1", "k", &po, &p, &e), e);
    tu_ok(obj_put_write(p, "new", 3, &e), e);
    tu_fails(obj_put_commit(p, NULL, &e), TR_ECORRUPT, e, "MD5");
    obj_put_opts_t ps = {.expect_size = 10};
    tu_ok(obj_put_begin(o, "bk1", "k", &ps, &p, &e), e);
    tu_ok(obj_put_write(p, "new", 3, &e), e);
    tu_fails(obj_put_commit(p, NULL, &e), TR_EINVAL, e, "announced");
    tu_ok(obj_put_begin(o, "bk1", "k", NULL, &p, &e), e);
    tu_ok(obj_put_write(p, "new", 3, &e), e);
    obj_put_abort(p);
    /* a bucket deleted between begin and commit */
    tu_ok(obj_bucket_create(o, "bk2", NULL, &e), e);
    tu_ok(obj_put_begin(o, "bk2", "k", NULL, &p, &e), e);
    tu_ok(obj_bucket_delete(o, "bk2", &e), e);
    tu_ok(obj_put_write(p, "x", 1, &e), e);
    tu_fails(obj_put_commit(p, NULL, &e), TR_ENOBUCKET, e, NULL);
    assert_body(o, "bk1", "k", NULL, "old");
    int ob, tmp;
    count_bodies(*state, &ob, &tmp);
    if (!g_inline) assert_int_equal(ob, 1);
    if (!g_inline) assert_int_equal(tmp, 0);
    obj_close(o);
}

/* ---- versioning ----------------------------------------------------------------------------- */

static obj_list_page_t *versions_all(obj_t *o, const char *b) {
    obj_list_page_t *pg;
    tr_err e;
    tu_ok(obj_list_versions(o, b, NULL, &pg, &e), e);
    return pg;
}

static void test_unversioned(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bkt", NULL, &e), e);
    put(o, "bkt", "k", "one", NULL);
    put(o, "bkt", "k", "two", NULL);
    assert_body(o, "bkt", "k", NULL, "two");
    assert_body(o, "bkt", "k", "null", "two");
    obj_list_page_t *pg = versions_all(o, "bkt");
    assert_int_equal(pg->n, 1);
    assert_string_equal(pg->items[0]->version_id, "null");
    obj_list_page_free(pg);
    int ob, tmp;
    count_bodies(*state, &ob, &tmp);
    if (!g_inline) assert_int_equal(ob, 1); /* the replaced body was collected */
    obj_del_result_t d;
    tu_ok(obj_delete(o, "bkt", "k", NULL, &d, &e), e);
    assert_false(d.delete_marker);
    int rc;
    assert_null(get_str(o, "bkt", "k", NULL, &rc));
    assert_int_equal(rc, TR_ENOTFOUND);
    pg = versions_all(o, "bkt");
    assert_int_equal(pg->n, 0);
    obj_list_page_free(pg);
    count_bodies(*state, &ob, &tmp);
    if (!g_inline) assert_int_equal(ob, 0);
    tu_ok(obj_delete(o, "bkt", "k", NULL, &d, &e), e); /* deleting nothing succeeds */
    tu_fails(obj_delete(o, "bkt", "k", "bad", &d, &e), TR_EINVAL, e, "version id");
    obj_close(o);
}

static void test_versioning_enabled(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bkt", NULL, &e), e);
    put(o, "bkt", "k", "v0", NULL); /* before versioning: the null version */
    tu_ok(obj_versioning_set(o, "bkt", OBJ_VERS_ENABLED, &e), e);
    obj_put_result_t r1, r2;
    put(o, "bkt", "k", "v1", &r1);
    put(o, "bkt", "k", "v2", &r2);
    assert_int_equal(strlen(r1.version_id), OBJ_VID_LEN);
    assert_string_not_equal(r1.version_id, r2.version_id);
    assert_body(o, "bkt", "k", NULL, "v2");
    assert_body(o, "bkt", "k", r1.version_id, "v1");
    assert_body(o, "bkt", "k", "null", "v0");

    obj_del_result_t d;
    tu_ok(obj_delete(o, "bkt", "k", NULL, &d, &e), e);
    assert_true(d.delete_marker);
    assert_int_equal(strlen(d.version_id), OBJ_VID_LEN);
    obj_reader_t *rd;
    int dm = 0;
    tu_fails(obj_get(o, "bkt", "k", NULL, &rd, &dm, &e), TR_ENOTFOUND, e, "delete marker");
    assert_true(dm);
    obj_get_opts_t g = {.version_id = d.version_id};
    dm = 0;
    tu_fails(obj_get(o, "bkt", "k", &g, &rd, &dm, &e), TR_EINVAL, e, "delete marker");
    assert_true(dm);
    obj_info_t *in;
    tu_ok(obj_head(o, "bkt", "k", d.version_id, &in, &dm, &e), e);
    assert_true(in->delete_marker);
    assert_true(in->is_latest);
    obj_info_free(in);
    tu_ok(obj_head(o, "bkt", "k", r1.version_id, &in, &dm, &e), e);
    assert_false(in->is_latest);
    obj_info_free(in);
    assert_body(o, "bkt", "k", r2.version_id, "v2");

    obj_list_page_t *pg;
    tu_ok(obj_list(o, "bkt", NULL, &pg, &e), e);
    assert_int_equal(pg->n, 0);
    obj_list_page_free(pg);
    pg = versions_all(o, "bkt");
    assert_int_equal(pg->n, 4); /* marker, v2, v1, null: newest first */
    assert_true(pg->items[0]->delete_marker && pg->items[0]->is_latest);
    assert_string_equal(pg->items[1]->version_id, r2.version_id);
    assert_false(pg->items[1]->is_latest);
    assert_string_equal(pg->items[2]->version_id, r1.version_id);
    assert_string_equal(pg->items[3]->version_id, "null");
    obj_list_page_free(pg);

    /* removing the marker by id makes v2 current again */
    tu_ok(obj_delete(o, "bkt", "k", d.version_id, &d, &e), e);
    assert_true(d.delete_marker);
    assert_body(o, "bkt", "k", NULL, "v2");
    /* removing the current version by id makes v1 current */
    tu_ok(obj_delete(o, "bkt", "k", r2.version_id, &d, &e), e);
    assert_false(d.delete_marker);
    assert_body(o, "bkt", "k", NULL, "v1");
    tu_ok(obj_delete(o, "bkt", "k", r2.version_id, &d, &e), e); /* gone already: success */
    assert_string_equal(d.version_id, "");
    /* a delete marker on a key that never existed (S3 makes one) */
    tu_ok(obj_delete(o, "bkt", "ghost", NULL, &d, &e), e);
    assert_true(d.delete_marker);
    obj_close(o);
    o = open_obj(*state);
    assert_body(o, "bkt", "k", NULL, "v1");
    assert_body(o, "bkt", "k", "null", "v0");
    obj_close(o);
}

static void test_versioning_suspended(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bkt", NULL, &e), e);
    tu_ok(obj_versioning_set(o, "bkt", OBJ_VERS_ENABLED, &e), e);
    obj_put_result_t r1;
    put(o, "bkt", "k", "v1", &r1);
    tu_ok(obj_versioning_set(o, "bkt", OBJ_VERS_SUSPENDED, &e), e);
    obj_put_result_t rn;
    put(o, "bkt", "k", "n1", &rn);
    assert_string_equal(rn.version_id, "null");
    tu_ok(obj_versioning_set(o, "bkt", OBJ_VERS_ENABLED, &e), e);
    obj_put_result_t r2;
    put(o, "bkt", "k", "v2", &r2); /* stack: v2, null(n1), v1 */
    tu_ok(obj_versioning_set(o, "bkt", OBJ_VERS_SUSPENDED, &e), e);
    put(o, "bkt", "k", "n2", &rn); /* replaces the null version wherever it is: n2, v2, v1 */
    obj_list_page_t *pg = versions_all(o, "bkt");
    assert_int_equal(pg->n, 3);
    assert_string_equal(pg->items[0]->version_id, "null");
    assert_string_equal(pg->items[1]->version_id, r2.version_id);
    assert_string_equal(pg->items[2]->version_id, r1.version_id);
    obj_list_page_free(pg);
    assert_body(o, "bkt", "k", NULL, "n2");
    /* DELETE while suspended: the null version becomes a delete marker with id null */
    obj_del_result_t d;
    tu_ok(obj_delete(o, "bkt", "k", NULL, &d, &e), e);
    assert_true(d.delete_marker);
    assert_string_equal(d.version_id, "null");
    pg = versions_all(o, "bkt");
    assert_int_equal(pg->n, 3);
    assert_true(pg->items[0]->delete_marker);
    assert_string_equal(pg->items[0]->version_id, "null");
    obj_list_page_free(pg);
    int rc;
    assert_null(get_str(o, "bkt", "k", NULL, &rc));
    assert_int_equal(rc, TR_ENOTFOUND);
    assert_body(o, "bkt", "k", r2.version_id, "v2");
    int ob, tmp;
    count_bodies(*state, &ob, &tmp);
    if (!g_inline) assert_int_equal(ob, 2); /* v1, v2: n1 and n2 were collected */
    obj_close(o);
}

/* ---- preconditions -------------------------------------------------------------------------- */

typedef struct race {
    obj_t *o;
    int wins, conflicts;
    pthread_mutex_t mu;
} race_t;

static void *race_put(void *arg) {
    race_t *r = arg;
    obj_put_opts_t po = {.if_none_match = "*", .expect_size = -1};
    obj_put_t *p;
    tr_err e;
    if (obj_put_begin(r->o, "bkt", "lock", &po, &p, &e)) return NULL;
    obj_put_write(p, "me", 2, &e);
    int rc = obj_put_commit(p, NULL, &e);
    pthread_mutex_lock(&r->mu);
    if (rc == 0) r->wins++;
    if (rc == TR_ECONDITION) r->conflicts++;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void test_preconditions(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bkt", NULL, &e), e);
    obj_put_result_t r;
    obj_put_opts_t inm = {.if_none_match = "*", .expect_size = -1};
    put_opts(o, "bkt", "k", "first", &inm, &r);
    obj_put_t *p;
    tu_ok(obj_put_begin(o, "bkt", "k", &inm, &p, &e), e);
    tu_ok(obj_put_write(p, "second", 6, &e), e);
    tu_fails(obj_put_commit(p, NULL, &e), TR_ECONDITION, e, "exists");
    obj_put_opts_t im = {.if_match = "00000000000000000000000000000000", .expect_size = -1};
    tu_ok(obj_put_begin(o, "bkt", "k", &im, &p, &e), e);
    tu_fails(obj_put_commit(p, NULL, &e), TR_ECONDITION, e, "ETag");
    im.if_match = r.etag;
    put_opts(o, "bkt", "k", "third", &im, NULL);
    assert_body(o, "bkt", "k", NULL, "third");
    tu_ok(obj_put_begin(o, "bkt", "missing", &im, &p, &e), e);
    tu_fails(obj_put_commit(p, NULL, &e), TR_ENOTFOUND, e, NULL);
    /* a delete marker is "no object": If-None-Match succeeds */
    tu_ok(obj_versioning_set(o, "bkt", OBJ_VERS_ENABLED, &e), e);
    tu_ok(obj_delete(o, "bkt", "k", NULL, NULL, &e), e);
    put_opts(o, "bkt", "k", "fourth", &inm, NULL);
    assert_body(o, "bkt", "k", NULL, "fourth");

    /* writers racing on If-None-Match: * -- exactly one wins */
    race_t rc = {.o = o, .mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[8];
    for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, race_put, &rc);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    assert_int_equal(rc.wins, 1);
    assert_int_equal(rc.conflicts, 7);
    int ob, tmp;
    count_bodies(*state, &ob, &tmp);
    if (!g_inline) assert_int_equal(tmp, 0);
    obj_close(o);
}

/* ---- listing against an oracle --------------------------------------------------------------- */

typedef struct okey {
    char key[32];
    int live; /* current version is not a delete marker */
    int nvers;
} okey_t;

static int okey_cmp(const void *a, const void *b) {
    return strcmp(((const okey_t *)a)->key, ((const okey_t *)b)->key);
}

/* The oracle: the expected ListObjectsV2 sequence (keys and "P:" prefixes), one string per
 * entry, for prefix/delimiter over keys ks (sorted). */
static size_t oracle(const okey_t *ks, size_t n, const char *pfx, const char *dl, char out[][40]) {
    size_t m = 0, pn = strlen(pfx);
    for (size_t i = 0; i < n; i++) {
        if (!ks[i].live || strncmp(ks[i].key, pfx, pn)) continue;
        const char *d = *dl ? strstr(ks[i].key + pn, dl) : NULL;
        if (d) {
            char cp[40];
            snprintf(cp, sizeof cp, "P:%.*s", (int)(d - ks[i].key + strlen(dl)), ks[i].key);
            if (m && !strcmp(out[m - 1], cp)) continue;
            strcpy(out[m++], cp);
        } else {
            snprintf(out[m++], 40, "%.31s", ks[i].key);
        }
    }
    return m;
}

static void test_list_oracle(void **state) {
    g_no_sync = 1;
    obj_t *o = open_obj(*state);
    g_no_sync = 0;
    tr_err e;
    tu_ok(obj_bucket_create(o, "aaa", NULL, &e), e);
    tu_ok(obj_bucket_create(o, "bkt", NULL, &e), e);
    tu_ok(obj_bucket_create(o, "ccc", NULL, &e), e); /* neighbours must not leak into b */
    put(o, "aaa", "a/zzz", "x", NULL);
    put(o, "ccc", "0", "x", NULL);
    tu_ok(obj_versioning_set(o, "bkt", OBJ_VERS_ENABLED, &e), e);
    enum { N = 120 };
    static okey_t ks[N];
    uint64_t seed = 42;
    const char *parts[] = {"a", "b", "a/", "b/", "c", "/", "x.", "ab", "\x7f", "\xc3\xa9"};
    size_t nk = 0;
    while (nk < N) {
        char k[32] = {0};
        int len = 1 + (int)(tu_xorshift(&seed) % 5);
        for (int i = 0; i < len; i++) strcat(k, parts[tu_xorshift(&seed) % 10]);
        int dup = 0;
        for (size_t i = 0; i < nk; i++) dup |= !strcmp(ks[i].key, k);
        if (dup) continue;
        strcpy(ks[nk].key, k);
        ks[nk].nvers = 1 + (int)(tu_xorshift(&seed) % 3);
        for (int v = 0; v < ks[nk].nvers; v++) put(o, "bkt", k, k, NULL);
        ks[nk].live = 1;
        if (tu_xorshift(&seed) % 5 == 0) {
            tu_ok(obj_delete(o, "bkt", k, NULL, NULL, &e), e);
            ks[nk].live = 0;
            ks[nk].nvers++;
        }
        nk++;
    }
    qsort(ks, N, sizeof *ks, okey_cmp);
    static char want[N][40], got[N + 10][40];
    const char *pfxs[] = {"", "a", "a/", "ab", "b/a", "\xc3", "zz"};
    const char *dls[] = {"", "/", "a/", "b"};
    for (size_t pi = 0; pi < sizeof pfxs / sizeof *pfxs; pi++)
        for (size_t di = 0; di < sizeof dls / sizeof *dls; di++) {
            size_t wn = oracle(ks, N, pfxs[pi], dls[di], want);
            /* paged by continuation token (V2), then by marker = NextMarker (V1) */
            for (int mk = 1; mk <= 16; mk++) {
                int v1 = mk > 8;
                size_t gn = 0;
                char *tok = NULL;
                int pages = 0;
                for (;;) {
                    obj_list_opts_t q = {.prefix = pfxs[pi],
                                         .delimiter = dls[di],
                                         .token = v1 ? NULL : tok,
                                         .start_after = v1 ? tok : NULL,
                                         .max_keys = v1 ? mk - 8 : mk};
                    obj_list_page_t *pg;
                    tu_ok(obj_list(o, "bkt", &q, &pg, &e), e);
                    free(tok);
                    tok = NULL;
                    /* merge items and prefixes in order */
                    size_t ii = 0, ip = 0;
                    assert_true(pg->n + pg->np <= (size_t)(v1 ? mk - 8 : mk));
                    while (ii < pg->n || ip < pg->np) {
                        assert_true(gn < N + 10);
                        if (ip == pg->np ||
                            (ii < pg->n && strcmp(pg->items[ii]->key, pg->prefixes[ip]) < 0))
                            snprintf(got[gn++], 40, "%.30s", pg->items[ii++]->key);
                        else snprintf(got[gn++], 40, "P:%.30s", pg->prefixes[ip++]);
                    }
                    int more = pg->truncated;
                    if (more) tok = strdup(v1 ? pg->next_key_marker : pg->next_token);
                    obj_list_page_free(pg);
                    pages++;
                    if (!more) break;
                    assert_true(pages < 200);
                }
                if (gn != wn)
                    fail_msg("prefix \"%s\" delim \"%s\" max %d: %zu entries, want %zu", pfxs[pi],
                             dls[di], mk, gn, wn);
                for (size_t i = 0; i < wn; i++)
                    if (strcmp(got[i], want[i]))
                        fail_msg("prefix \"%s\" delim \"%s\" max %d: entry %zu is \"%s\", want "
                                 "\"%s\"",
                                 pfxs[pi], dls[di], mk, i, got[i], want[i]);
            }
        }
    /* start-after */
    obj_list_opts_t q = {.start_after = ks[10].key, .max_keys = -1};
    obj_list_page_t *pg;
    tu_ok(obj_list(o, "bkt", &q, &pg, &e), e);
    assert_true(pg->n > 0);
    assert_true(strcmp(pg->items[0]->key, ks[10].key) > 0);
    obj_list_page_free(pg);
    q = (obj_list_opts_t){.token = "k0g"};
    tu_fails(obj_list(o, "bkt", &q, &pg, &e), TR_EINVAL, e, "token");

    /* versions, paged with key / version-id markers: every version once, in order */
    size_t total = 0;
    for (size_t i = 0; i < N; i++) total += (size_t)ks[i].nvers;
    for (int mk = 1; mk <= 5; mk += 2) {
        char *km = NULL, *vm = NULL;
        size_t seen = 0, latest = 0;
        char prev[64] = "";
        uint64_t prev_seq = 0;
        for (;;) {
            obj_list_opts_t qv = {.start_after = km, .version_id_marker = vm, .max_keys = mk};
            tu_ok(obj_list_versions(o, "bkt", &qv, &pg, &e), e);
            free(km);
            free(vm);
            km = vm = NULL;
            for (size_t i = 0; i < pg->n; i++) {
                obj_info_t *in = pg->items[i];
                int c = strcmp(prev, in->key);
                assert_true(c < 0 || (c == 0 && in->seq < prev_seq));
                assert_int_equal(in->is_latest, c != 0);
                latest += (size_t)in->is_latest;
                snprintf(prev, sizeof prev, "%s", in->key);
                prev_seq = in->seq;
                seen++;
            }
            int more = pg->truncated;
            if (more) {
                km = strdup(pg->next_key_marker);
                vm = strdup(pg->next_version_id_marker);
            }
            obj_list_page_free(pg);
            if (!more) break;
        }
        assert_int_equal(seen, total);
        assert_int_equal(latest, N);
    }
    obj_close(o);
}

/* ---- copy and delete many ------------------------------------------------------------------- */

static void test_copy_and_delete_many(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "src", NULL, &e), e);
    tu_ok(obj_bucket_create(o, "dst", NULL, &e), e);
    obj_kv_t meta[] = {{"m", "v"}};
    obj_put_opts_t po = {.content_type = "a/b", .meta = meta, .nmeta = 1, .expect_size = -1};
    obj_put_result_t r, rc;
    put_opts(o, "src", "k", "payload", &po, &r);
    tu_ok(obj_copy(o, "src", "k", NULL, "dst", "k2", NULL, &rc, &e), e);
    assert_string_equal(rc.etag, r.etag);
    assert_body(o, "dst", "k2", NULL, "payload");
    obj_info_t *in;
    tu_ok(obj_head(o, "dst", "k2", NULL, &in, NULL, &e), e);
    assert_string_equal(in->content_type, "a/b");
    assert_int_equal(in->meta_n, 1);
    obj_info_free(in);
    obj_put_opts_t rep = {.content_type = "c/d", .expect_size = -1};
    tu_ok(obj_copy(o, "src", "k", NULL, "src", "k", &rep, NULL, &e), e); /* onto itself */
    tu_ok(obj_head(o, "src", "k", NULL, &in, NULL, &e), e);
    assert_string_equal(in->content_type, "c/d");
    assert_int_equal(in->meta_n, 0);
    obj_info_free(in);
    assert_body(o, "src", "k", NULL, "payload");
    tu_fails(obj_copy(o, "src", "nope", NULL, "dst", "x", NULL, NULL, &e), TR_ENOTFOUND, e, NULL);
    tu_fails(obj_copy(o, "src", "k", NULL, "nob", "x", NULL, NULL, &e), TR_ENOBUCKET, e, NULL);

    obj_del_item_t items[] = {{.key = "k"}, {.key = "missing"}, {.key = "k", .version_id = "x"}};
    tu_ok(obj_delete_many(o, "src", items, 3, &e), e);
    assert_int_equal(items[0].rc, 0);
    assert_int_equal(items[1].rc, 0);
    assert_int_equal(items[2].rc, TR_EINVAL);
    int rcode;
    assert_null(get_str(o, "src", "k", NULL, &rcode));
    tu_fails(obj_delete_many(o, "nob", items, 1, &e), TR_ENOBUCKET, e, NULL);
    obj_close(o);
}

/* ---- crash safety --------------------------------------------------------------------------- */

static const char *g_crash_at;

static void crash_hook(const char *where) {
    if (g_crash_at && !strcmp(where, g_crash_at)) _exit(77);
}

/* In a child: open dir, do `what` ("put" or "delete" of b/k), dying at the fault point. */
static void crash_child(const char *dir, const char *point, const char *what) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        obj_t *o;
        tr_err e;
        obj_opts_t oo = {.inline_max = g_inline ? 0 : -1};
        if (obj_open(dir, &oo, &o, &e)) _exit(1);
        g_crash_at = point;
        obj__fault = crash_hook;
        if (!strcmp(what, "put")) {
            obj_put_t *p;
            if (obj_put_begin(o, "bkt", "k", NULL, &p, &e)) _exit(2);
            if (obj_put_write(p, "crashed", 7, &e)) _exit(3);
            obj_put_commit(p, NULL, &e);
        } else {
            obj_delete(o, "bkt", "k", NULL, NULL, &e);
        }
        _exit(4); /* the fault point was not reached */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 77);
}

static void test_crash_before_commit(void **state) {
    const char *dir = *state;
    obj_t *o = open_obj(dir);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bkt", NULL, &e), e);
    obj_close(o);
    crash_child(dir, "put:synced", "put");
    int ob, tmp;
    count_bodies(dir, &ob, &tmp);
    if (!g_inline) assert_int_equal(tmp, 1); /* the synced body, never committed */
    o = open_obj(dir);
    int rc;
    assert_null(get_str(o, "bkt", "k", NULL, &rc));
    assert_int_equal(rc, TR_ENOTFOUND);
    obj_list_page_t *pg = versions_all(o, "bkt");
    assert_int_equal(pg->n, 0);
    obj_list_page_free(pg);
    count_bodies(dir, &ob, &tmp);
    if (!g_inline) assert_int_equal(ob, 0);
    if (!g_inline) assert_int_equal(tmp, 0); /* collected at open */
    obj_close(o);
}

static void test_crash_after_commit(void **state) {
    const char *dir = *state;
    obj_t *o = open_obj(dir);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bkt", NULL, &e), e);
    obj_close(o);
    crash_child(dir, "commit:done", "put");
    int ob, tmp;
    count_bodies(dir, &ob, &tmp);
    if (!g_inline) assert_int_equal(ob, 0);
    if (!g_inline) assert_int_equal(tmp, 1); /* committed, not yet moved */
    o = open_obj(dir);
    assert_body(o, "bkt", "k", NULL, "crashed");
    count_bodies(dir, &ob, &tmp);
    if (!g_inline) assert_int_equal(ob, 1);
    if (!g_inline) assert_int_equal(tmp, 0);
    obj_close(o);
    /* a delete that dies between its commit and the unlink: the body is collected at open */
    crash_child(dir, "delete:committed", "delete");
    count_bodies(dir, &ob, &tmp);
    if (!g_inline) assert_int_equal(ob, 1);
    o = open_obj(dir);
    int rc;
    assert_null(get_str(o, "bkt", "k", NULL, &rc));
    assert_int_equal(rc, TR_ENOTFOUND);
    count_bodies(dir, &ob, &tmp);
    if (!g_inline) assert_int_equal(ob, 0);
    if (!g_inline) assert_int_equal(tmp, 0);
    obj_close(o);
}

/* ---- bounded memory ------------------------------------------------------------------------- */

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static void test_big_object_constant_rss(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bkt", NULL, &e), e);
    enum { CH = 1 << 20, MB = 200 };
    char *buf = malloc(CH);
    uint64_t seed = 7;
    for (size_t i = 0; i < CH; i += 8) {
        uint64_t x = tu_xorshift(&seed);
        memcpy(buf + i, &x, 8);
    }
    long before = rss_kb(), peak = before;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_md5(), NULL);
    obj_put_t *p;
    tu_ok(obj_put_begin(o, "bkt", "big", NULL, &p, &e), e);
    for (int i = 0; i < MB; i++) {
        buf[0] = (char)i;
        EVP_DigestUpdate(md, buf, CH);
        tu_ok(obj_put_write(p, buf, CH, &e), e);
        long r = rss_kb();
        if (r > peak) peak = r;
    }
    obj_put_result_t res;
    tu_ok(obj_put_commit(p, &res, &e), e);
    uint8_t d[16];
    unsigned dn;
    EVP_DigestFinal_ex(md, d, &dn);
    EVP_MD_CTX_free(md);
    char hex[33];
    obj__hex(d, 16, hex);
    assert_string_equal(res.etag, hex);
    assert_int_equal(res.size, (uint64_t)MB * CH);
    obj_reader_t *rd;
    tu_ok(obj_get(o, "bkt", "big", NULL, &rd, NULL, &e), e);
    assert_int_equal(rd->length, (uint64_t)MB * CH);
    long got, n = 0;
    while ((got = obj_reader_read(rd, buf, CH, &e)) > 0) {
        n += got;
        long r = rss_kb();
        if (r > peak) peak = r;
    }
    assert_int_equal(n, (long)MB * CH);
    obj_reader_close(rd);
    free(buf);
    print_message("200 MB object: RSS %ld kB before, peak %ld kB (+%ld kB)\n", before, peak,
                  peak - before);
    assert_true(peak - before < 8 * 1024);
    obj_close(o);
}

/* Small bodies live in their record (no file); a body that grows past inline_max moves to a file;
 * ranges and copies work on both. */
static void test_inline_bodies(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bkt", NULL, &e), e);
    put(o, "bkt", "small", "tiny body", NULL);
    int ob, tmp;
    count_bodies(*state, &ob, &tmp);
    assert_int_equal(ob, 0);
    static char big[OBJ__INLINE_DEFAULT + 2];
    memset(big, 'z', sizeof big - 1);
    obj_put_t *p;
    tu_ok(obj_put_begin(o, "bkt", "big", NULL, &p, &e), e);
    tu_ok(obj_put_write(p, big, 100, &e), e); /* inline so far */
    tu_ok(obj_put_write(p, big + 100, sizeof big - 101, &e), e); /* spills */
    tu_ok(obj_put_commit(p, NULL, &e), e);
    count_bodies(*state, &ob, &tmp);
    assert_int_equal(ob, 1);
    assert_int_equal(tmp, 0);
    assert_body(o, "bkt", "big", NULL, big);
    obj_get_opts_t g = {.range = {OBJ_RANGE_FROM_TO, 5, 8}};
    obj_reader_t *rd;
    tu_ok(obj_get(o, "bkt", "small", &g, &rd, NULL, &e), e);
    assert_int_equal(rd->fd, -1);
    assert_int_equal(rd->length, 4);
    assert_memory_equal(rd->mem, "body", 4);
    obj_reader_close(rd);
    tu_ok(obj_copy(o, "bkt", "small", NULL, "bkt", "small2", NULL, NULL, &e), e);
    assert_body(o, "bkt", "small2", NULL, "tiny body");
    obj_close(o);
    o = open_obj(*state);
    assert_body(o, "bkt", "small", NULL, "tiny body");
    assert_body(o, "bkt", "big", NULL, big);
    obj_close(o);
}

/* ---- multipart ------------------------------------------------------------------------------ */

static void md5_of(const void *p, size_t n, uint8_t out[16]) {
    unsigned dn;
    EVP_Digest(p, n, out, &dn, EVP_md5(), NULL);
}

/* Upload part `num` of size n filled with byte c; its ETag into etag. */
static void put_part(obj_t *o, const char *key, const char *uid, int num, size_t n, char c,
                     char etag[33]) {
    obj_put_t *p;
    tr_err e;
    tu_ok(obj_mpu_part_begin(o, "bkt", key, uid, num, &p, &e), e);
    char buf[4096];
    memset(buf, c, sizeof buf);
    for (size_t done = 0; done < n;) {
        size_t w = n - done < sizeof buf ? n - done : sizeof buf;
        tu_ok(obj_put_write(p, buf, w, &e), e);
        done += w;
    }
    obj_put_result_t r;
    tu_ok(obj_put_commit(p, &r, &e), e);
    assert_string_equal(r.version_id, "");
    memcpy(etag, r.etag, 33);
}

static void test_multipart(void **state) {
    obj_t *o = open_obj(*state);
    tr_err e;
    tu_ok(obj_bucket_create(o, "bkt", NULL, &e), e);
    obj_kv_t meta[] = {{"who", "me"}};
    obj_put_opts_t po = {.content_type = "video/mp4", .meta = meta, .nmeta = 1, .expect_size = -1};
    char uid[33], uid2[33];
    tu_ok(obj_mpu_create(o, "bkt", "movie", &po, uid, &e), e);
    assert_int_equal(strlen(uid), 32);
    const size_t M = OBJ_MPU_MIN_PART;
    obj_part_info_t parts[3] = {{.number = 1}, {.number = 2}, {.number = 3}};
    put_part(o, "movie", uid, 1, M, 'a', parts[0].etag);
    put_part(o, "movie", uid, 2, M, 'b', parts[1].etag);
    put_part(o, "movie", uid, 2, M, 'c', parts[1].etag); /* replaces part 2 */
    put_part(o, "movie", uid, 3, 4, 't', parts[2].etag);
    obj_put_t *p;
    tu_fails(obj_mpu_part_begin(o, "bkt", "other", uid, 1, &p, &e), TR_ENOTFOUND, e, NULL);
    tu_fails(obj_mpu_part_begin(o, "bkt", "movie", uid, 0, &p, &e), TR_EINVAL, e, NULL);
    tu_fails(obj_mpu_part_begin(o, "bkt", "movie", "nope", 1, &p, &e), TR_ENOTFOUND, e, NULL);

    obj_part_info_t *pl;
    size_t n;
    int trunc;
    tu_ok(obj_mpu_list_parts(o, "bkt", "movie", uid, 0, 0, &pl, &n, &trunc, &e), e);
    assert_int_equal(n, 3);
    assert_false(trunc);
    assert_int_equal(pl[1].size, M);
    assert_string_equal(pl[1].etag, parts[1].etag);
    free(pl);
    tu_ok(obj_mpu_list_parts(o, "bkt", "movie", uid, 1, 1, &pl, &n, &trunc, &e), e);
    assert_int_equal(n, 1);
    assert_int_equal(pl[0].number, 2);
    assert_true(trunc);
    free(pl);

    /* a second upload with small parts */
    tu_ok(obj_mpu_create(o, "bkt", "small", NULL, uid2, &e), e);
    obj_part_info_t sp[2] = {{.number = 1}, {.number = 2}};
    put_part(o, "small", uid2, 1, 10, 'x', sp[0].etag);
    put_part(o, "small", uid2, 2, 10, 'y', sp[1].etag);
    obj_upload_info_t *ul;
    tu_ok(obj_mpu_list_uploads(o, "bkt", NULL, &ul, &n, &e), e);
    assert_int_equal(n, 2);
    obj_upload_list_free(ul, n);
    tu_ok(obj_mpu_list_uploads(o, "bkt", "mo", &ul, &n, &e), e);
    assert_int_equal(n, 1);
    assert_string_equal(ul[0].key, "movie");
    assert_string_equal(ul[0].upload_id, uid);
    obj_upload_list_free(ul, n);
    tu_fails(obj_bucket_delete(o, "bkt", &e), TR_EINUSE, e, "multipart");

    int why;
    tu_fails(obj_mpu_complete(o, "bkt", "small", uid2, sp, 2, NULL, NULL, &why, &e), TR_EINVAL, e,
             "at least");
    assert_int_equal(why, OBJ_MPU_TOO_SMALL);
    obj_part_info_t rev[2] = {parts[1], parts[0]};
    tu_fails(obj_mpu_complete(o, "bkt", "movie", uid, rev, 2, NULL, NULL, &why, &e), TR_EINVAL, e,
             "ascending");
    assert_int_equal(why, OBJ_MPU_BAD_ORDER);
    obj_part_info_t bad[2] = {parts[0], parts[1]};
    bad[1].etag[0] = bad[1].etag[0] == '0' ? '1' : '0';
    tu_fails(obj_mpu_complete(o, "bkt", "movie", uid, bad, 2, NULL, NULL, &why, &e), TR_EINVAL, e,
             "ETag");
    assert_int_equal(why, OBJ_MPU_BAD_PART);
    obj_put_opts_t inm = {.if_none_match = "*", .expect_size = -1};
    put(o, "bkt", "movie", "old", NULL);
    tu_fails(obj_mpu_complete(o, "bkt", "movie", uid, parts, 3, &inm, NULL, &why, &e),
             TR_ECONDITION, e, NULL);
    tu_ok(obj_delete(o, "bkt", "movie", NULL, NULL, &e), e);

    obj_put_result_t r;
    tu_ok(obj_mpu_complete(o, "bkt", "movie", uid, parts, 3, &inm, &r, &why, &e), e);
    /* ETag: MD5 of the parts' binary MD5s, "-3" */
    uint8_t cat[48], d[16];
    char *buf = malloc(M);
    memset(buf, 'a', M);
    md5_of(buf, M, cat);
    memset(buf, 'c', M);
    md5_of(buf, M, cat + 16);
    md5_of("tttt", 4, cat + 32);
    md5_of(cat, 48, d);
    char want[48];
    obj__hex(d, 16, want);
    strcat(want, "-3");
    assert_string_equal(r.etag, want);
    assert_int_equal(r.size, 2 * M + 4);
    obj_info_t *in;
    tu_ok(obj_head(o, "bkt", "movie", NULL, &in, NULL, &e), e);
    assert_string_equal(in->etag, want);
    assert_string_equal(in->content_type, "video/mp4");
    assert_int_equal(in->meta_n, 1);
    assert_string_equal(in->meta, "who");
    obj_info_free(in);
    obj_get_opts_t g = {.range = {OBJ_RANGE_FROM_TO, M - 2, M + 1}};
    obj_reader_t *rd;
    tu_ok(obj_get(o, "bkt", "movie", &g, &rd, NULL, &e), e);
    char four[5] = {0};
    assert_int_equal(obj_reader_read(rd, four, 4, &e), 4);
    assert_string_equal(four, "aacc");
    obj_reader_close(rd);
    g.range = (obj_range_t){OBJ_RANGE_SUFFIX, 0, 5};
    tu_ok(obj_get(o, "bkt", "movie", &g, &rd, NULL, &e), e);
    char five[6] = {0};
    assert_int_equal(obj_reader_read(rd, five, 5, &e), 5);
    assert_string_equal(five, "ctttt");
    obj_reader_close(rd);
    free(buf);

    /* the upload is gone */
    tu_fails(obj_mpu_list_parts(o, "bkt", "movie", uid, 0, 0, &pl, &n, &trunc, &e), TR_ENOTFOUND, e,
             NULL);
    tu_fails(obj_mpu_complete(o, "bkt", "movie", uid, parts, 3, NULL, NULL, &why, &e), TR_ENOTFOUND,
             e, NULL);
    tu_ok(obj_mpu_abort(o, "bkt", "small", uid2, &e), e);
    tu_fails(obj_mpu_abort(o, "bkt", "small", uid2, &e), TR_ENOTFOUND, e, NULL);
    tu_ok(obj_mpu_list_uploads(o, "bkt", NULL, &ul, &n, &e), e);
    assert_int_equal(n, 0);
    obj_upload_list_free(ul, n);
    int ob, tmp;
    count_bodies(*state, &ob, &tmp);
    if (!g_inline) assert_int_equal(ob, 1); /* the object; every part body collected */
    assert_int_equal(tmp, 0);
    obj_close(o);
    o = open_obj(*state);
    tu_ok(obj_head(o, "bkt", "movie", NULL, &in, NULL, &e), e);
    assert_int_equal(in->size, 2 * M + 4);
    obj_info_free(in);
    obj_close(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_names),
        TU_DIR_TEST(test_buckets),
        TU_DIR_TEST(test_put_get_range),
        TU_DIR_TEST(test_put_refused_stores_nothing),
        TU_DIR_TEST(test_unversioned),
        TU_DIR_TEST(test_versioning_enabled),
        TU_DIR_TEST(test_versioning_suspended),
        TU_DIR_TEST(test_preconditions),
        TU_DIR_TEST(test_list_oracle),
        TU_DIR_TEST(test_copy_and_delete_many),
        TU_DIR_TEST(test_crash_before_commit),
        TU_DIR_TEST(test_crash_after_commit),
        TU_DIR_TEST(test_big_object_constant_rss),
        TU_DIR_TEST(test_multipart),
    };
    int failed = cmocka_run_group_tests_name("bodies in files", tests, NULL, NULL);
    g_inline = 1;
    const struct CMUnitTest inl[] = {
        TU_DIR_TEST(test_put_get_range),
        TU_DIR_TEST(test_put_refused_stores_nothing),
        TU_DIR_TEST(test_unversioned),
        TU_DIR_TEST(test_versioning_enabled),
        TU_DIR_TEST(test_versioning_suspended),
        TU_DIR_TEST(test_preconditions),
        TU_DIR_TEST(test_list_oracle),
        TU_DIR_TEST(test_copy_and_delete_many),
        TU_DIR_TEST(test_crash_before_commit),
        TU_DIR_TEST(test_inline_bodies),
        TU_DIR_TEST(test_multipart),
    };
    return failed + cmocka_run_group_tests_name("small bodies inline", inl, NULL, NULL);
}
