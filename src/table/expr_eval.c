/* SPDX-License-Identifier: Apache-2.0
 *
 * expr_eval.c -- DynamoDB expressions, evaluated: conditions and filters, update expressions
 * (new values against the old item, then writes in document-path order), projections and key
 * conditions.  expr.c parses and checks the text into the tree (expr_int.h) these walk.
 *
 * Evaluation never mutates the parsed tree, so one parsed expression may be used from many
 * threads (expr.c's overview says more).
 */
#include "table/expr.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "table/expr_int.h"
#include "table/num.h"

/* ------------------------------------------------------------------------------------------ */
/* Evaluation: paths and operands                                                              */
/* ------------------------------------------------------------------------------------------ */

/* The AttributeValue at the first n elements of path p in item, NULL when absent. */
static json_t *path_get_n(const json_t *item, const node_t *p, uint32_t n) {
    if (!item || !json_is_object(item)) return NULL;
    json_t *av = json_object_getn(item, p->el[0].name, p->el[0].nlen);
    for (uint32_t i = 1; i < n && av; i++) {
        int t;
        json_t *in = tbl__expr_av_inner(av, &t);
        if (p->el[i].src == EL_INDEX) av = t == TBL_T_L ? json_array_get(in, p->el[i].idx) : NULL;
        else av = t == TBL_T_M ? json_object_getn(in, p->el[i].name, p->el[i].nlen) : NULL;
    }
    return av;
}

static json_t *path_get(const json_t *item, const node_t *p) { return path_get_n(item, p, p->nel); }

/* size(): UTF-8 bytes of S, decoded bytes of B, members of sets / L / M; -1 otherwise. */
static long av_size(const json_t *av) {
    int t;
    json_t *v = tbl__expr_av_inner(av, &t);
    switch (t) {
    case TBL_T_S: return (long)json_string_length(v);
    case TBL_T_B: {
        size_t n;
        uint8_t *b = tbl__expr_b64_bytes(v, &n);
        if (!b) return -1;
        free(b);
        return (long)n;
    }
    case TBL_T_SS:
    case TBL_T_NS:
    case TBL_T_BS:
    case TBL_T_L: return (long)json_array_size(v);
    case TBL_T_M: return (long)json_object_size(v);
    default: return -1;
    }
}

/* Value of an operand for a condition: borrowed, or new in *tmp (caller decrefs); NULL when the
 * attribute is absent or the operand has no value (size of a number). */
static const json_t *ev_operand(const node_t *n, const json_t *item, json_t **tmp) {
    *tmp = NULL;
    switch (n->kind) {
    case N_PATH: return path_get(item, n);
    case N_VALUE: return n->val;
    case N_FUNC:
        if (n->fn == F_SIZE) {
            json_t *tmp2;
            const json_t *v = ev_operand(n->k[0], item, &tmp2);
            long sz = v ? av_size(v) : -1;
            json_decref(tmp2);
            if (sz < 0) return NULL;
            return *tmp = tbl__expr_av_number_u((size_t)sz);
        }
        return NULL;
    default: return NULL;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Evaluation: conditions                                                                      */
/* ------------------------------------------------------------------------------------------ */

static bool bytes_begin(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
    return nb <= na && memcmp(a, b, nb) == 0;
}

static bool bytes_contain(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
    if (nb == 0) return true;
    for (size_t i = 0; i + nb <= na; i++)
        if (a[i] == b[0] && memcmp(a + i, b, nb) == 0) return true;
    return false;
}

/* begins_with / contains on S (bytes) or B (decoded bytes). */
static bool av_bytes_op(const json_t *a, const json_t *b, bool prefix) {
    int ta, tb;
    json_t *va = tbl__expr_av_inner(a, &ta), *vb = tbl__expr_av_inner(b, &tb);
    if (ta != tb || (ta != TBL_T_S && ta != TBL_T_B)) return false;
    if (ta == TBL_T_S) {
        const uint8_t *x = (const uint8_t *)json_string_value(va);
        const uint8_t *y = (const uint8_t *)json_string_value(vb);
        size_t nx = json_string_length(va), ny = json_string_length(vb);
        return prefix ? bytes_begin(x, nx, y, ny) : bytes_contain(x, nx, y, ny);
    }
    size_t nx = 0, ny = 0;
    uint8_t *x = tbl__expr_b64_bytes(va, &nx), *y = tbl__expr_b64_bytes(vb, &ny);
    bool r = x && y && (prefix ? bytes_begin(x, nx, y, ny) : bytes_contain(x, nx, y, ny));
    free(x);
    free(y);
    return r;
}

/* Equality of two set members of set type t (SS / NS / BS), given as JSON strings. */
static bool member_eq(int t, const json_t *a, const json_t *b) {
    if (!json_is_string(a) || !json_is_string(b)) return false;
    if (t == TBL_T_SS)
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    if (t == TBL_T_NS) {
        tbl_num_t x, y;
        if (tbl_num_parse(json_string_value(a), json_string_length(a), &x, NULL) ||
            tbl_num_parse(json_string_value(b), json_string_length(b), &y, NULL))
            return false;
        return tbl_num_cmp(&x, &y) == 0;
    }
    size_t nx = 0, ny = 0;
    uint8_t *x = tbl__expr_b64_bytes(a, &nx), *y = tbl__expr_b64_bytes(b, &ny);
    bool r = x && y && nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return r;
}

static bool set_has(int t, const json_t *arr, const json_t *m) {
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (member_eq(t, json_array_get(arr, i), m)) return true;
    return false;
}

static bool ev_contains(const json_t *a, const json_t *b) {
    int ta, tb;
    json_t *va = tbl__expr_av_inner(a, &ta), *vb = tbl__expr_av_inner(b, &tb);
    switch (ta) {
    case TBL_T_S:
    case TBL_T_B: return av_bytes_op(a, b, false);
    case TBL_T_SS: return tb == TBL_T_S && set_has(ta, va, vb);
    case TBL_T_NS: return tb == TBL_T_N && set_has(ta, va, vb);
    case TBL_T_BS: return tb == TBL_T_B && set_has(ta, va, vb);
    case TBL_T_L:
        for (size_t i = 0; i < json_array_size(va); i++)
            if (tbl_av_equal(json_array_get(va, i), b)) return true;
        return false;
    default: return false;
    }
}

static bool ev_func(const node_t *n, const json_t *item) {
    json_t *t0, *t1 = NULL;
    const json_t *a = ev_operand(n->k[0], item, &t0), *b = NULL;
    if (n->nk > 1) b = ev_operand(n->k[1], item, &t1);
    bool r = false;
    switch (n->fn) {
    case F_EXISTS: r = a != NULL; break;
    case F_NOT_EXISTS: r = a == NULL; break;
    case F_TYPE: {
        int tb;
        json_t *vb = tbl__expr_av_inner(b, &tb);
        r = a && tb == TBL_T_S && strcmp(tbl_type_name(tbl_av_type(a)), json_string_value(vb)) == 0;
        break;
    }
    case F_BEGINS: r = a && b && av_bytes_op(a, b, true); break;
    case F_CONTAINS: r = a && b && ev_contains(a, b); break;
    default: break;
    }
    json_decref(t0);
    json_decref(t1);
    return r;
}

static bool ev_cmp(int op, const json_t *a, const json_t *b) {
    if (op == T_EQ) return a && b && tbl_av_equal(a, b);
    if (op == T_NE) return !(a && b && tbl_av_equal(a, b));
    if (!a || !b) return false;
    int c = tbl_av_cmp(a, b);
    if (c == -2) return false;
    switch (op) {
    case T_LT: return c < 0;
    case T_LE: return c <= 0;
    case T_GT: return c > 0;
    default: return c >= 0;
    }
}

static bool ev_cond(const node_t *n, const json_t *item) {
    switch (n->kind) {
    case N_AND: return ev_cond(n->k[0], item) && ev_cond(n->k[1], item);
    case N_OR: return ev_cond(n->k[0], item) || ev_cond(n->k[1], item);
    case N_NOT: return !ev_cond(n->k[0], item);
    case N_FUNC: return ev_func(n, item);
    case N_CMP: {
        json_t *ta, *tb;
        const json_t *a = ev_operand(n->k[0], item, &ta), *b = ev_operand(n->k[1], item, &tb);
        bool r = ev_cmp(n->op, a, b);
        json_decref(ta);
        json_decref(tb);
        return r;
    }
    case N_BETWEEN: {
        json_t *t[3];
        const json_t *v[3];
        for (int i = 0; i < 3; i++) v[i] = ev_operand(n->k[i], item, &t[i]);
        bool r = ev_cmp(T_GE, v[0], v[1]) && ev_cmp(T_LE, v[0], v[2]);
        for (int i = 0; i < 3; i++) json_decref(t[i]);
        return r;
    }
    case N_IN: {
        json_t *ta;
        const json_t *a = ev_operand(n->k[0], item, &ta);
        bool r = false;
        for (uint32_t i = 1; a && i < n->nk && !r; i++) {
            json_t *tb;
            const json_t *b = ev_operand(n->k[i], item, &tb);
            r = b && tbl_av_equal(a, b);
            json_decref(tb);
        }
        json_decref(ta);
        return r;
    }
    default: return false;
    }
}

int tbl_expr_eval(const tbl_expr_t *e, const json_t *item, int *result, tr_err *err) {
    if (!e || !result || !e->root)
        return tr_err_set(err, TR_EINVAL,
                          "tbl_expr_eval: a parsed condition, filter or key "
                          "condition expression and result are required");
    *result = ev_cond(e->root, item) ? 1 : 0;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Evaluation: updates                                                                         */
/* ------------------------------------------------------------------------------------------ */

static int err_missing(tr_err *err) {
    return tr_err_set(err, TR_EVALIDATION,
                      "The provided expression refers to an attribute that "
                      "does not exist in the item");
}

static int err_type(tr_err *err) {
    return tr_err_set(err, TR_EVALIDATION,
                      "An operand in the update expression has an incorrect "
                      "data type");
}

static int err_path(tr_err *err) {
    return tr_err_set(err, TR_EVALIDATION,
                      "The document path provided in the update expression "
                      "is invalid for update");
}

static int av_num(const json_t *av, tbl_num_t *x, tr_err *err) {
    int t;
    json_t *v = tbl__expr_av_inner(av, &t);
    if (t != TBL_T_N) return err_type(err);
    return tbl_num_parse(json_string_value(v), json_string_length(v), x, err);
}

/* New value of a SET operand against the old item (a new, unshared reference). */
static int upd_value(const node_t *n, const json_t *item, json_t **out, tr_err *err) {
    *out = NULL;
    switch (n->kind) {
    case N_PATH: {
        json_t *v = path_get(item, n);
        if (!v) return err_missing(err);
        *out = json_deep_copy(v);
        return 0;
    }
    case N_VALUE: *out = json_deep_copy(n->val); return 0;
    case N_FUNC:
        if (n->fn == F_IF_NOT_EXISTS) {
            json_t *v = path_get(item, n->k[0]);
            if (v) {
                *out = json_deep_copy(v);
                return 0;
            }
            return upd_value(n->k[1], item, out, err);
        } else {
            json_t *a, *b;
            int rc = upd_value(n->k[0], item, &a, err);
            if (rc) return rc;
            if ((rc = upd_value(n->k[1], item, &b, err))) {
                json_decref(a);
                return rc;
            }
            int ta, tb;
            json_t *la = tbl__expr_av_inner(a, &ta), *lb = tbl__expr_av_inner(b, &tb);
            if (ta != TBL_T_L || tb != TBL_T_L) rc = err_type(err);
            else json_array_extend(la, lb);
            json_decref(b);
            if (rc) json_decref(a);
            else *out = a;
            return rc;
        }
    case N_ARITH: {
        json_t *a, *b;
        int rc = upd_value(n->k[0], item, &a, err);
        if (rc) return rc;
        if ((rc = upd_value(n->k[1], item, &b, err))) {
            json_decref(a);
            return rc;
        }
        tbl_num_t x, y, z;
        if (!(rc = av_num(a, &x, err)) && !(rc = av_num(b, &y, err))) {
            rc = n->op == T_PLUS ? tbl_num_add(&x, &y, &z, err) : tbl_num_sub(&x, &y, &z, err);
            if (!rc) *out = tbl__expr_av_number(&z);
        }
        json_decref(a);
        json_decref(b);
        return rc;
    }
    default: return err_type(err);
    }
}

/* The parent of path p must be a map (next element a name) or list (an index) in item; the
 * item itself is the parent of a top-level attribute. */
static bool parent_ok(const json_t *item, const node_t *p) {
    if (p->nel == 1) return true;
    int t;
    tbl__expr_av_inner(path_get_n(item, p, p->nel - 1), &t);
    return p->el[p->nel - 1].src == EL_INDEX ? t == TBL_T_L : t == TBL_T_M;
}

/* ADD :v to old (NULL when absent): numbers add, sets union. */
static int upd_add(const json_t *old, const json_t *v, json_t **out, tr_err *err) {
    int to, tv;
    json_t *vv = tbl__expr_av_inner(v, &tv);
    tbl__expr_av_inner(old, &to);
    if (!old) {
        *out = json_deep_copy(v);
        return 0;
    }
    if (to != tv) return err_type(err);
    if (tv == TBL_T_N) {
        tbl_num_t x, y, z;
        int rc = av_num(old, &x, err);
        if (!rc) rc = av_num(v, &y, err);
        if (!rc) rc = tbl_num_add(&x, &y, &z, err);
        if (!rc) *out = tbl__expr_av_number(&z);
        return rc;
    }
    json_t *res = json_deep_copy(old), *arr = tbl__expr_av_inner(res, NULL);
    for (size_t i = 0; i < json_array_size(vv); i++) {
        json_t *m = json_array_get(vv, i);
        if (!set_has(tv, arr, m)) json_array_append_new(arr, json_copy(m));
    }
    *out = res;
    return 0;
}

/* DELETE :set from old; *out NULL when the set becomes empty (the attribute is removed). */
static int upd_delete(const json_t *old, const json_t *v, json_t **out, tr_err *err) {
    int to, tv;
    json_t *vo = tbl__expr_av_inner(old, &to), *vv = tbl__expr_av_inner(v, &tv);
    *out = NULL;
    if (to != tv) return err_type(err);
    json_t *arr = json_array();
    for (size_t i = 0; i < json_array_size(vo); i++) {
        json_t *m = json_array_get(vo, i);
        if (!set_has(tv, vv, m)) json_array_append_new(arr, json_copy(m));
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return 0;
    }
    *out = json_pack("{s:o}", tbl_type_name(tv), arr);
    return 0;
}

/* One write of an update, computed against the old item. */
typedef struct wr {
    const node_t *path;
    json_t *val;   /* new value, or NULL: remove */
    uint32_t ord;  /* text order, to keep the sort stable */
} wr_t;

static int path_cmp(const node_t *a, const node_t *b) {
    uint32_t m = a->nel < b->nel ? a->nel : b->nel;
    for (uint32_t i = 0; i < m; i++) {
        const pel_t *x = &a->el[i], *y = &b->el[i];
        bool xi = x->src == EL_INDEX, yi = y->src == EL_INDEX;
        if (xi != yi) return xi ? 1 : -1;
        if (xi) {
            if (x->idx != y->idx) return x->idx < y->idx ? -1 : 1;
            continue;
        }
        size_t l = x->nlen < y->nlen ? x->nlen : y->nlen;
        int c = memcmp(x->name, y->name, l);
        if (c) return c;
        if (x->nlen != y->nlen) return x->nlen < y->nlen ? -1 : 1;
    }
    return a->nel < b->nel ? -1 : a->nel > b->nel ? 1 : 0;
}

/* Puts first in ascending path order (so appends past the end of a list keep index order), then
 * removals in descending order (so list indexes keep their original meaning). */
static int wr_cmp(const void *pa, const void *pb) {
    const wr_t *a = pa, *b = pb;
    if (!a->val != !b->val) return a->val ? -1 : 1;
    int c = path_cmp(a->path, b->path);
    if (!a->val) c = -c;
    if (c) return c;
    return a->ord < b->ord ? -1 : a->ord > b->ord;
}

static void apply(json_t *item, const wr_t *w) {
    const node_t *p = w->path;
    const pel_t *last = &p->el[p->nel - 1];
    json_t *container = item;
    if (p->nel > 1) {
        int t;
        container = tbl__expr_av_inner(path_get_n(item, p, p->nel - 1), &t);
        if (!container) return;  /* checked by parent_ok on the same structure */
    }
    if (last->src == EL_INDEX) {
        size_t n = json_array_size(container);
        if (w->val) {
            if (last->idx < n) json_array_set(container, last->idx, w->val);
            else json_array_append(container, w->val);
        } else if (last->idx < n) {
            json_array_remove(container, last->idx);
        }
    } else if (w->val) {
        json_object_setn(container, last->name, last->nlen, w->val);
    } else {
        json_object_deln(container, last->name, last->nlen);
    }
}

/* tbl_expr_update and tbl_expr_update_inplace: every value is computed from item (or key) first,
 * as deep copies, and only then applied -- to a copy, or to item itself. */
static int update_apply(const tbl_expr_t *e, json_t *item, const json_t *key, int inplace,
                        json_t **out, tr_err *err) {
    if (!e || !out || e->kind != TBL_EXPR_UPDATE)
        return tr_err_set(err, TR_EINVAL,
                          "tbl_expr_update: a parsed update expression and out "
                          "are required");
    *out = NULL;
    int rc = tbl_expr_update_keys_ok(e, key, err);
    if (rc) return rc;
    const json_t *base = item ? item : key;
    wr_t *w = tr_xcalloc(e->nacts, sizeof *w);
    uint32_t nw = 0;
    for (uint32_t i = 0; i < e->nacts && !rc; i++) {
        const act_t *a = &e->acts[i];
        json_t *v = NULL;
        bool write = true;
        if (a->type == A_SET) rc = upd_value(a->val, base, &v, err);
        if (rc) break;
        if (!parent_ok(base, a->path)) {
            json_decref(v);
            rc = err_path(err);
            break;
        }
        const json_t *old = path_get(base, a->path);
        if (a->type == A_ADD) {
            rc = upd_add(old, a->val->val, &v, err);
        } else if (a->type == A_DELETE) {
            if (old) rc = upd_delete(old, a->val->val, &v, err);
            else write = false;
        } else if (a->type == A_REMOVE) {
            write = old != NULL;
        }
        if (rc || !write) continue;
        w[nw].path = a->path;
        w[nw].val = v;
        w[nw].ord = i;
        nw++;
    }
    if (!rc) {
        json_t *res = inplace && item ? json_incref(item)
                      : base          ? json_deep_copy(base)
                                      : json_object();
        if (!res) tbl__expr_oom();
        qsort(w, nw, sizeof *w, wr_cmp);
        for (uint32_t i = 0; i < nw; i++) apply(res, &w[i]);
        *out = res;
    }
    for (uint32_t i = 0; i < nw; i++) json_decref(w[i].val);
    free(w);
    return rc;
}

int tbl_expr_update(const tbl_expr_t *e, const json_t *item, const json_t *key, json_t **out,
                    tr_err *err) {
    return update_apply(e, (json_t *)item, key, 0, out, err);
}

int tbl_expr_update_inplace(const tbl_expr_t *e, json_t *item, const json_t *key, json_t **out,
                            tr_err *err) {
    return update_apply(e, item, key, 1, out, err);
}

int tbl_expr_update_keys_ok(const tbl_expr_t *e, const json_t *key, tr_err *err) {
    if (!e || e->kind != TBL_EXPR_UPDATE || !key) return 0;
    for (uint32_t i = 0; i < e->nacts; i++) {
        const pel_t *top = &e->acts[i].path->el[0];
        if (json_object_getn(key, top->name, top->nlen))
            return tr_err_set(err, TR_EVALIDATION,
                              "One or more parameter values were invalid: "
                              "Cannot update attribute %.*s. This attribute is part of the key",
                              (int)top->nlen, top->name);
    }
    return 0;
}

int tbl_expr_update_creates(const tbl_expr_t *e) {
    if (!e || e->kind != TBL_EXPR_UPDATE) return 0;
    for (uint32_t i = 0; i < e->nacts; i++)
        if (e->acts[i].type == A_SET || e->acts[i].type == A_ADD) return 1;
    return 0;
}

json_t *tbl_expr_update_touched(const tbl_expr_t *e) {
    json_t *arr = json_array();
    if (!arr) tbl__expr_oom();
    if (!e || e->kind != TBL_EXPR_UPDATE) return arr;
    json_t *seen = json_object();
    for (uint32_t i = 0; i < e->nacts; i++) {
        const pel_t *top = &e->acts[i].path->el[0];
        if (json_object_getn(seen, top->name, top->nlen)) continue;
        json_object_setn_new(seen, top->name, top->nlen, json_true());
        json_array_append_new(arr, json_stringn(top->name, top->nlen));
    }
    json_decref(seen);
    return arr;
}

/* ------------------------------------------------------------------------------------------ */
/* Projection                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* While projecting, a list holding chosen elements is kept as {"L#": {"<index>": AV}} and
 * compacted into {"L": [...]} in index order at the end ("L#" is never a valid type key). */
#define SPARSE_L "L#"

static int idx_cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void compact(json_t *av) {
    json_t *sp = json_object_get(av, SPARSE_L);
    if (sp) {
        size_t n = json_object_size(sp), i = 0;
        uint32_t *ix = tr_xcalloc(n, sizeof *ix);
        const char *k;
        json_t *v;
        json_object_foreach(sp, k, v) ix[i++] = (uint32_t)strtoul(k, NULL, 10);
        qsort(ix, n, sizeof *ix, idx_cmp);
        json_t *arr = json_array();
        for (i = 0; i < n; i++) {
            char kb[16];
            snprintf(kb, sizeof kb, "%u", ix[i]);
            json_t *el = json_object_get(sp, kb);
            compact(el);
            json_array_append(arr, el);
        }
        free(ix);
        json_object_del(av, SPARSE_L);
        json_object_set_new(av, "L", arr);
        return;
    }
    json_t *m = json_object_get(av, "M");
    if (json_is_object(m) && json_object_size(av) == 1) {
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v) compact(v);
    }
}

/* Copy the value at path p from item into res, creating the maps / sparse lists above it. */
static void project_one(json_t *res, const json_t *item, const node_t *p) {
    json_t *leaf = path_get(item, p);
    if (!leaf) return;
    json_t *cont = res;  /* object: name -> AV, or sparse list: "index" -> AV */
    for (uint32_t i = 0; i < p->nel; i++) {
        const pel_t *el = &p->el[i];
        char kb[16];
        const char *k = el->name;
        size_t kl = el->nlen;
        if (el->src == EL_INDEX) {
            kl = (size_t)snprintf(kb, sizeof kb, "%u", el->idx);
            k = kb;
        }
        if (i == p->nel - 1) {
            json_object_setn_new(cont, k, kl, json_deep_copy(leaf));
            return;
        }
        bool next_idx = p->el[i + 1].src == EL_INDEX;
        const char *tk = next_idx ? SPARSE_L : "M";
        json_t *av = json_object_getn(cont, k, kl);
        if (!av) {
            av = json_pack("{s:{}}", tk);
            json_object_setn_new(cont, k, kl, av);
        }
        cont = json_object_get(av, tk);
    }
}

json_t *tbl_expr_project(const tbl_expr_t *e, const json_t *item) {
    json_t *res = json_object();
    if (!res) tbl__expr_oom();
    if (!e || e->kind != TBL_EXPR_PROJECTION || !item) return res;
    for (uint32_t i = 0; i < e->npaths; i++) project_one(res, item, e->paths[i]);
    const char *k;
    json_t *v;
    json_object_foreach(res, k, v) compact(v);
    return res;
}

json_t *tbl_expr_update_project(const tbl_expr_t *e, const json_t *item) {
    json_t *res = json_object();
    if (!res) tbl__expr_oom();
    if (!e || e->kind != TBL_EXPR_UPDATE || !item) return res;
    for (uint32_t i = 0; i < e->nacts; i++) project_one(res, item, e->acts[i].path);
    const char *k;
    json_t *v;
    json_object_foreach(res, k, v) compact(v);
    return res;
}

/* ------------------------------------------------------------------------------------------ */
/* Key conditions                                                                              */
/* ------------------------------------------------------------------------------------------ */

static int kc_fail(tr_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int kc_fail(tr_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tr_err_vset(err, TR_EVALIDATION, fmt, ap);
    va_end(ap);
    return TR_EVALIDATION;
}

typedef struct kleaf {
    const node_t *path;
    int op;  /* TBL_KC_* */
    const json_t *a, *b;
} kleaf_t;

static int kc_flip(int op) {
    switch (op) {
    case TBL_KC_LT: return TBL_KC_GT;
    case TBL_KC_LE: return TBL_KC_GE;
    case TBL_KC_GT: return TBL_KC_LT;
    case TBL_KC_GE: return TBL_KC_LE;
    default: return op;
    }
}

/* One leaf of a key condition: path op :value (either side), BETWEEN or begins_with. */
static int kc_leaf(const tbl_expr_t *e, const node_t *n, kleaf_t *out, tr_err *err) {
    if (n->kind == N_OR || n->kind == N_NOT || n->kind == N_IN ||
        (n->kind == N_CMP && n->op == T_NE))
        return kc_fail(err, "Invalid operator used in KeyConditionExpression: %s",
                       n->kind == N_OR    ? "OR"
                       : n->kind == N_NOT ? "NOT"
                       : n->kind == N_IN  ? "IN"
                                          : "<>");
    if (n->kind == N_FUNC && n->fn != F_BEGINS)
        return kc_fail(err, "Invalid operator used in KeyConditionExpression: %.*s",
                       TOKTEXT(e, n->tok));
    uint32_t npath = 0, pathi = 0;
    for (uint32_t i = 0; i < n->nk; i++) {
        const node_t *k = n->k[i];
        if (k->kind == N_PATH) {
            npath++;
            pathi = i;
        } else if (k->kind == N_FUNC) {
            return kc_fail(err, "Invalid operator used in KeyConditionExpression: %.*s",
                           TOKTEXT(e, k->tok));
        }
    }
    if (npath > 1)
        return kc_fail(err, "Invalid condition in KeyConditionExpression: Multiple attribute "
                            "names used in one condition");
    if (npath == 0)
        return kc_fail(err, "Invalid condition in KeyConditionExpression: No key attribute "
                            "specified");
    const node_t *p = n->k[pathi];
    if (p->nel > 1)
        return kc_fail(err, "KeyConditionExpressions cannot have conditions on nested "
                            "attributes");
    out->path = p;
    out->b = NULL;
    if (n->kind == N_CMP) {
        static const int map[] = {[T_EQ] = TBL_KC_EQ,
                                  [T_LT] = TBL_KC_LT,
                                  [T_LE] = TBL_KC_LE,
                                  [T_GT] = TBL_KC_GT,
                                  [T_GE] = TBL_KC_GE};
        out->op = pathi == 0 ? map[n->op] : kc_flip(map[n->op]);
        out->a = n->k[1 - pathi]->val;
        return 0;
    }
    if (pathi != 0) return kc_fail(err, "Query key condition not supported");
    if (n->kind == N_BETWEEN) {
        out->op = TBL_KC_BETWEEN;
        out->a = n->k[1]->val;
        out->b = n->k[2]->val;
    } else {
        out->op = TBL_KC_BEGINS_WITH;
        out->a = n->k[1]->val;
    }
    return 0;
}

static bool name_is(const node_t *p, const char *name) {
    return name && strlen(name) == p->el[0].nlen && memcmp(name, p->el[0].name, p->el[0].nlen) == 0;
}

int tbl_expr_keycond(const tbl_expr_t *e, const char *hash_name, const char *range_name,
                     tbl_keycond_t *out, tr_err *err) {
    if (!e || !out || !hash_name || !e->root)
        return tr_err_set(err, TR_EINVAL,
                          "tbl_expr_keycond: a parsed key condition, hash_name "
                          "and out are required");
    memset(out, 0, sizeof *out);
    out->range_op = TBL_KC_NONE;
    /* Flatten the AND chain into leaves. */
    const node_t *stack[64], *leaves[64];
    int ns = 0, nl = 0;
    stack[ns++] = e->root;
    while (ns) {
        const node_t *n = stack[--ns];
        if (n->kind == N_AND) {
            if (ns + 2 > 64) return kc_fail(err, "Query key condition not supported");
            stack[ns++] = n->k[1];
            stack[ns++] = n->k[0];
        } else {
            if (nl == 64) return kc_fail(err, "Query key condition not supported");
            leaves[nl++] = n;
        }
    }
    kleaf_t kl[64];
    for (int i = 0; i < nl; i++) {
        int rc = kc_leaf(e, leaves[i], &kl[i], err);
        if (rc) return rc;
        for (int j = 0; j < i; j++)
            if (tbl__expr_path_eq(kl[i].path, kl[j].path))
                return kc_fail(err, "KeyConditionExpressions must only contain one condition "
                                    "per key");
    }
    int hash = -1, range = -1;
    for (int i = 0; i < nl; i++) {
        if (name_is(kl[i].path, hash_name)) hash = i;
        else if (name_is(kl[i].path, range_name)) range = i;
    }
    if (hash < 0) return kc_fail(err, "Query condition missed key schema element: %s", hash_name);
    for (int i = 0; i < nl; i++) {
        if (i == hash || i == range) continue;
        if (range_name && range < 0)
            return kc_fail(err, "Query condition missed key schema element: %s", range_name);
        return kc_fail(err, "Query key condition not supported");
    }
    if (kl[hash].op != TBL_KC_EQ) return kc_fail(err, "Query key condition not supported");
    out->hash = kl[hash].a;
    if (range >= 0) {
        out->range_op = kl[range].op;
        out->range_a = kl[range].a;
        out->range_b = kl[range].b;
    }
    return 0;
}
