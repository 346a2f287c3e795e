/* SPDX-License-Identifier: Apache-2.0
 *
 * tbl_meta.c -- the table engine's metadata and control plane: table snapshots and their JSON
 * form in "meta", CreateTable / DeleteTable / UpdateTable (GSIs), tags, TTL settings,
 * DescribeTable / ListTables, and the control jobs that run them on the writer thread.
 *
 * A control call checks its arguments, queues a control job (tbl__ctl_run) and waits; the writer
 * thread (tbl_write.c) runs it alone in its own LMDB transaction between write batches
 * (tbl__ctl_exec), then swaps the snapshot in the name map (tbl.c).  Work too big for one
 * transaction (a new GSI's backfill, a deleted table's items, TTL indexing) is left to
 * tbl_bg.c as markers in "meta".
 */
#include "table/tbl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/tlog.h"
#include "core/uuid.h"
#include "table/tbl_int.h"

#define SUB "tbl"

/* ---- table snapshots ----------------------------------------------------------------------- */

static void index_clear(tb_index_t *ix) {
    free(ix->name);
    free(ix->hash);
    free(ix->range);
    for (size_t i = 0; i < ix->n_incl; i++) free(ix->incl[i]);
    free(ix->incl);
}

static void tab_free(tb_table_t *t) {
    if (!t) return;
    free(t->name);
    free(t->hash);
    free(t->range);
    for (size_t i = 0; i < t->n_attrs; i++) free(t->attrs[i].name);
    free(t->attrs);
    free(t->ttl_attr);
    for (size_t i = 0; i < t->n_tags; i++) {
        free(t->tags[i].key);
        free(t->tags[i].value);
    }
    free(t->tags);
    for (size_t i = 0; i < t->n_idx; i++) index_clear(&t->idx[i]);
    free(t->idx);
    free(t);
}

void tbl__tab_ref(tb_table_t *t) { atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed); }

void tbl__tab_unref(tb_table_t *t) {
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) tab_free(t);
}

static const char *type_str(int t) { return t < 0 ? NULL : tbl_type_name(t); }

static int type_parse(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "S")) return TBL_T_S;
    if (!strcmp(s, "N")) return TBL_T_N;
    if (!strcmp(s, "B")) return TBL_T_B;
    return -1;
}

static json_t *tab_to_json(const tb_table_t *t) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(t->id));
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "table_id", json_string(t->table_id));
    json_object_set_new(o, "hash", json_string(t->hash));
    json_object_set_new(o, "htype", json_string(type_str(t->htype)));
    if (t->range) {
        json_object_set_new(o, "range", json_string(t->range));
        json_object_set_new(o, "rtype", json_string(type_str(t->rtype)));
    }
    json_t *a = json_array();
    for (size_t i = 0; i < t->n_attrs; i++)
        json_array_append_new(a, json_pack("[ss]", t->attrs[i].name, type_str(t->attrs[i].type)));
    json_object_set_new(o, "attrs", a);
    json_object_set_new(o, "billing", json_integer(t->billing));
    json_object_set_new(o, "rcu", json_integer((json_int_t)t->rcu));
    json_object_set_new(o, "wcu", json_integer((json_int_t)t->wcu));
    json_object_set_new(o, "dp", json_integer(t->dp));
    json_object_set_new(o, "created_ms", json_integer(t->created_ms));
    if (t->ttl_attr) json_object_set_new(o, "ttl_attr", json_string(t->ttl_attr));
    json_object_set_new(o, "ttl_enabled", json_integer(t->ttl_enabled));
    json_t *tags = json_array();
    for (size_t i = 0; i < t->n_tags; i++)
        json_array_append_new(tags, json_pack("[ss]", t->tags[i].key, t->tags[i].value));
    json_object_set_new(o, "tags", tags);
    json_t *ixs = json_array();
    for (size_t i = 0; i < t->n_idx; i++) {
        const tb_index_t *ix = &t->idx[i];
        json_t *x = json_object();
        json_object_set_new(x, "name", json_string(ix->name));
        json_object_set_new(x, "space", json_integer(ix->space));
        json_object_set_new(x, "local", json_integer(ix->local));
        json_object_set_new(x, "hash", json_string(ix->hash));
        json_object_set_new(x, "htype", json_string(type_str(ix->htype)));
        if (ix->range) {
            json_object_set_new(x, "range", json_string(ix->range));
            json_object_set_new(x, "rtype", json_string(type_str(ix->rtype)));
        }
        json_object_set_new(x, "proj", json_integer(ix->proj));
        json_t *inc = json_array();
        for (size_t k = 0; k < ix->n_incl; k++)
            json_array_append_new(inc, json_string(ix->incl[k]));
        json_object_set_new(x, "include", inc);
        json_object_set_new(x, "rcu", json_integer((json_int_t)ix->rcu));
        json_object_set_new(x, "wcu", json_integer((json_int_t)ix->wcu));
        json_object_set_new(x, "status", json_integer(ix->status));
        json_array_append_new(ixs, x);
    }
    json_object_set_new(o, "indexes", ixs);
    if (t->kf) json_object_set_new(o, "kf", json_integer(t->kf));
    return o;
}

static char *jstr(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? tr_xstrdup(s) : NULL;
}

static int64_t jint(const json_t *o, const char *k) {
    return (int64_t)json_integer_value(json_object_get(o, k));
}

tb_table_t *tbl__tab_from_json(const json_t *o) {
    tb_table_t *t = tr_xcalloc(1, sizeof *t);
    atomic_init(&t->refs, 1);
    atomic_init(&t->retired, 0);
    t->id = (uint32_t)jint(o, "id");
    t->name = jstr(o, "name");
    const char *tid = json_string_value(json_object_get(o, "table_id"));
    snprintf(t->table_id, sizeof t->table_id, "%s", tid ? tid : "");
    t->hash = jstr(o, "hash");
    t->htype = type_parse(json_string_value(json_object_get(o, "htype")));
    t->range = jstr(o, "range");
    t->rtype = type_parse(json_string_value(json_object_get(o, "rtype")));
    json_t *a = json_object_get(o, "attrs");
    t->n_attrs = json_array_size(a);
    t->attrs = tr_xcalloc(t->n_attrs, sizeof *t->attrs);
    for (size_t i = 0; i < t->n_attrs; i++) {
        json_t *p = json_array_get(a, i);
        t->attrs[i].name = tr_xstrdup(json_string_value(json_array_get(p, 0)));
        t->attrs[i].type = type_parse(json_string_value(json_array_get(p, 1)));
    }
    t->billing = (int)jint(o, "billing");
    t->rcu = (uint64_t)jint(o, "rcu");
    t->wcu = (uint64_t)jint(o, "wcu");
    t->dp = (int)jint(o, "dp");
    t->created_ms = jint(o, "created_ms");
    t->ttl_attr = jstr(o, "ttl_attr");
    t->ttl_enabled = (int)jint(o, "ttl_enabled");
    json_t *tags = json_object_get(o, "tags");
    t->n_tags = json_array_size(tags);
    t->tags = tr_xcalloc(t->n_tags, sizeof *t->tags);
    for (size_t i = 0; i < t->n_tags; i++) {
        json_t *p = json_array_get(tags, i);
        t->tags[i].key = tr_xstrdup(json_string_value(json_array_get(p, 0)));
        t->tags[i].value = tr_xstrdup(json_string_value(json_array_get(p, 1)));
    }
    json_t *ixs = json_object_get(o, "indexes");
    t->n_idx = json_array_size(ixs);
    t->idx = tr_xcalloc(t->n_idx, sizeof *t->idx);
    for (size_t i = 0; i < t->n_idx; i++) {
        json_t *x = json_array_get(ixs, i);
        tb_index_t *ix = &t->idx[i];
        ix->name = jstr(x, "name");
        ix->space = (uint8_t)jint(x, "space");
        ix->local = (int)jint(x, "local");
        ix->hash = jstr(x, "hash");
        ix->htype = type_parse(json_string_value(json_object_get(x, "htype")));
        ix->range = jstr(x, "range");
        ix->rtype = type_parse(json_string_value(json_object_get(x, "rtype")));
        ix->proj = (int)jint(x, "proj");
        json_t *inc = json_object_get(x, "include");
        ix->n_incl = json_array_size(inc);
        ix->incl = tr_xcalloc(ix->n_incl, sizeof *ix->incl);
        for (size_t k = 0; k < ix->n_incl; k++)
            ix->incl[k] = tr_xstrdup(json_string_value(json_array_get(inc, k)));
        ix->rcu = (uint64_t)jint(x, "rcu");
        ix->wcu = (uint64_t)jint(x, "wcu");
        ix->status = (int)jint(x, "status");
    }
    t->kf = (int)jint(o, "kf");
    return t;
}

/* Deep copy for a control change; writer-only counters come along. */
tb_table_t *tbl__tab_clone(const tb_table_t *t) {
    json_t *j = tab_to_json(t);
    tb_table_t *c = tbl__tab_from_json(j);
    json_decref(j);
    memcpy(c->st_items, t->st_items, sizeof c->st_items);
    memcpy(c->st_bytes, t->st_bytes, sizeof c->st_bytes);
    return c;
}

const tb_index_t *tbl__tab_index(const tb_table_t *t, const char *name) {
    for (size_t i = 0; i < t->n_idx; i++)
        if (!strcmp(t->idx[i].name, name)) return &t->idx[i];
    return NULL;
}

static int attr_type(const tb_table_t *t, const char *name) {
    for (size_t i = 0; i < t->n_attrs; i++)
        if (!strcmp(t->attrs[i].name, name)) return t->attrs[i].type;
    return -1;
}

/* ---- control plane ------------------------------------------------------------------------- */

static int name_check(const char *what, const char *name, tr_err *err) {
    size_t n = name ? strlen(name) : 0;
    if (n < 3 || n > TBL_MAX_NAME)
        return tr_err_set(err, TR_EVALIDATION,
                          "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                          "constraint: Member must have length between 3 and 255",
                          name ? name : "null", what);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return tr_err_set(err, TR_EVALIDATION,
                              "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                              "constraint: Member must satisfy regular expression pattern: "
                              "[a-zA-Z0-9_.-]+",
                              name, what);
    }
    return 0;
}

static int index_def_check(const tbl_index_info_t *ix, tr_err *err) {
    int rc = name_check("indexName", ix->name, err);
    if (rc) return rc;
    if (!ix->hash)
        return tr_err_set(err, TR_EVALIDATION, INVALID "Index %s has no hash key", ix->name);
    if (ix->range && !strcmp(ix->hash, ix->range))
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "Both the Hash Key and the Range Key element in the KeySchema "
                                  "have the same name");
    if (ix->projection < TBL_PROJ_ALL || ix->projection > TBL_PROJ_INCLUDE)
        return tr_err_set(err, TR_EVALIDATION, INVALID "Unknown ProjectionType for index %s",
                          ix->name);
    if (ix->projection == TBL_PROJ_INCLUDE && !ix->n_include)
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "ProjectionType is INCLUDE, but NonKeyAttributes is not "
                                  "specified");
    if (ix->projection != TBL_PROJ_INCLUDE && ix->n_include)
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "ProjectionType is %s, but NonKeyAttributes is specified",
                          ix->projection == TBL_PROJ_ALL ? "ALL" : "KEYS_ONLY");
    return 0;
}

static int def_type(const tbl_attrdef_t *a, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(a[i].name, name)) return a[i].type;
    return -1;
}

static int def_check(const tbl_table_info_t *d, tr_err *err) {
    int rc = name_check("tableName", d->name, err);
    if (rc) return rc;
    if (!d->hash)
        return tr_err_set(err, TR_EVALIDATION,
                          "No Hash Key specified in schema.  All Dynamo DB "
                          "tables must have exactly one hash key");
    if (d->range && !strcmp(d->hash, d->range))
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "Both the Hash Key and the Range Key element in the KeySchema "
                                  "have the same name");
    for (size_t i = 0; i < d->n_attrs; i++) {
        int t = d->attrs[i].type;
        if (!d->attrs[i].name || (t != TBL_T_S && t != TBL_T_N && t != TBL_T_B))
            return tr_err_set(err, TR_EVALIDATION,
                              INVALID "attribute definition %zu: a name and "
                                      "type S, N or B are required",
                              i);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(d->attrs[k].name, d->attrs[i].name))
                return tr_err_set(err, TR_EVALIDATION,
                                  "Cannot have two attributes with the same "
                                  "name: %s",
                                  d->attrs[i].name);
    }
    size_t gsi = 0, lsi = 0, incl = 0;
    const char *used[2 + 2 * (TBL_MAX_GSI + TBL_MAX_LSI)];
    size_t n_used = 0;
    used[n_used++] = d->hash;
    if (d->range) used[n_used++] = d->range;
    for (size_t i = 0; i < d->n_indexes; i++) {
        const tbl_index_info_t *ix = &d->indexes[i];
        if ((rc = index_def_check(ix, err))) return rc;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(d->indexes[k].name, ix->name))
                return tr_err_set(err, TR_EVALIDATION, INVALID "Duplicate index name: %s",
                                  ix->name);
        if (ix->local) {
            if (++lsi > TBL_MAX_LSI)
                return tr_err_set(err, TR_ELIMIT,
                                  INVALID "Number of LocalSecondaryIndexes exceeds per-table "
                                          "limit of %d",
                                  TBL_MAX_LSI);
            if (!d->range)
                return tr_err_set(err, TR_EVALIDATION,
                                  INVALID "Table KeySchema does not have a range key, which is "
                                          "required when specifying a LocalSecondaryIndex");
            if (strcmp(ix->hash, d->hash))
                return tr_err_set(err, TR_EVALIDATION,
                                  INVALID "Index KeySchema does not have the same leading hash "
                                          "key as table KeySchema for index: %s. index hash key: "
                                          "%s, table hash key: %s",
                                  ix->name, ix->hash, d->hash);
            if (!ix->range)
                return tr_err_set(err, TR_EVALIDATION,
                                  INVALID "Index KeySchema must have a range key for local "
                                          "secondary index: %s",
                                  ix->name);
        } else if (++gsi > TBL_MAX_GSI) {
            return tr_err_set(err, TR_ELIMIT,
                              INVALID "GlobalSecondaryIndex count exceeds the "
                                      "per-table limit of %d",
                              TBL_MAX_GSI);
        }
        incl += ix->n_include;
        used[n_used++] = ix->hash;
        if (ix->range) used[n_used++] = ix->range;
    }
    if (incl > TB_MAX_INCLUDE)
        return tr_err_set(err, TR_ELIMIT,
                          INVALID "The number of attributes in key schema plus "
                                  "non-key projected attributes exceeds %d",
                          TB_MAX_INCLUDE);
    for (size_t i = 0; i < n_used; i++)
        if (def_type(d->attrs, d->n_attrs, used[i]) < 0)
            return tr_err_set(err, TR_EVALIDATION,
                              INVALID "Some index key attributes are not defined in "
                                      "AttributeDefinitions. Keys: [%s]",
                              used[i]);
    for (size_t i = 0; i < d->n_attrs; i++) {
        int found = 0;
        for (size_t k = 0; k < n_used && !found; k++) found = !strcmp(used[k], d->attrs[i].name);
        if (!found)
            return tr_err_set(err, TR_EVALIDATION,
                              INVALID "Number of attributes in KeySchema does not exactly match "
                                      "number of attributes defined in AttributeDefinitions");
    }
    if (d->n_tags > TBL_MAX_TAGS)
        return tr_err_set(err, TR_ELIMIT, "The number of tags exceeds the limit of %d",
                          TBL_MAX_TAGS);
    return 0;
}

static void index_from_info(tb_index_t *ix, const tbl_index_info_t *in, const tbl_attrdef_t *a,
                            size_t na, uint8_t space) {
    memset(ix, 0, sizeof *ix);
    ix->name = tr_xstrdup(in->name);
    ix->space = space;
    ix->local = in->local;
    ix->hash = tr_xstrdup(in->hash);
    ix->range = tr_xstrdup(in->range);
    ix->htype = def_type(a, na, in->hash);
    ix->rtype = in->range ? def_type(a, na, in->range) : -1;
    ix->proj = in->projection;
    ix->n_incl = in->n_include;
    ix->incl = tr_xcalloc(in->n_include, sizeof *ix->incl);
    for (size_t i = 0; i < in->n_include; i++) ix->incl[i] = tr_xstrdup(in->include[i]);
    ix->rcu = in->rcu;
    ix->wcu = in->wcu;
    ix->status = TBL_STATUS_ACTIVE;
}

static tb_table_t *tab_from_def(const tbl_table_info_t *d) {
    tb_table_t *t = tr_xcalloc(1, sizeof *t);
    atomic_init(&t->refs, 1);
    atomic_init(&t->retired, 0);
    t->kf = tbl__key_format_new;
    t->name = tr_xstrdup(d->name);
    t->hash = tr_xstrdup(d->hash);
    t->range = tr_xstrdup(d->range);
    t->htype = def_type(d->attrs, d->n_attrs, d->hash);
    t->rtype = d->range ? def_type(d->attrs, d->n_attrs, d->range) : -1;
    t->n_attrs = d->n_attrs;
    t->attrs = tr_xcalloc(d->n_attrs, sizeof *t->attrs);
    for (size_t i = 0; i < d->n_attrs; i++) {
        t->attrs[i].name = tr_xstrdup(d->attrs[i].name);
        t->attrs[i].type = d->attrs[i].type;
    }
    t->billing = d->billing;
    t->rcu = d->rcu;
    t->wcu = d->wcu;
    t->dp = d->deletion_protection;
    t->n_tags = d->n_tags;
    t->tags = tr_xcalloc(d->n_tags, sizeof *t->tags);
    for (size_t i = 0; i < d->n_tags; i++) {
        t->tags[i].key = tr_xstrdup(d->tags[i].key);
        t->tags[i].value = tr_xstrdup(d->tags[i].value ? d->tags[i].value : "");
    }
    t->n_idx = d->n_indexes;
    t->idx = tr_xcalloc(d->n_indexes, sizeof *t->idx);
    for (size_t i = 0; i < d->n_indexes; i++)
        index_from_info(&t->idx[i], &d->indexes[i], d->attrs, d->n_attrs, (uint8_t)(i + 1));
    return t;
}

/* The snapshot as a description (everything copied; counters left to the caller). */
static void info_fill(const tb_table_t *t, tbl_table_info_t *o) {
    memset(o, 0, sizeof *o);
    o->name = tr_xstrdup(t->name);
    o->hash = tr_xstrdup(t->hash);
    o->range = tr_xstrdup(t->range);
    o->n_attrs = t->n_attrs;
    o->attrs = tr_xcalloc(t->n_attrs, sizeof *o->attrs);
    for (size_t i = 0; i < t->n_attrs; i++) {
        o->attrs[i].name = tr_xstrdup(t->attrs[i].name);
        o->attrs[i].type = t->attrs[i].type;
    }
    o->billing = t->billing;
    o->rcu = t->rcu;
    o->wcu = t->wcu;
    o->n_indexes = t->n_idx;
    o->indexes = tr_xcalloc(t->n_idx, sizeof *o->indexes);
    for (size_t i = 0; i < t->n_idx; i++) {
        const tb_index_t *ix = &t->idx[i];
        tbl_index_info_t *oi = &o->indexes[i];
        oi->name = tr_xstrdup(ix->name);
        oi->local = ix->local;
        oi->hash = tr_xstrdup(ix->hash);
        oi->range = tr_xstrdup(ix->range);
        oi->projection = ix->proj;
        oi->n_include = ix->n_incl;
        oi->include = tr_xcalloc(ix->n_incl, sizeof *oi->include);
        for (size_t k = 0; k < ix->n_incl; k++) oi->include[k] = tr_xstrdup(ix->incl[k]);
        oi->rcu = ix->rcu;
        oi->wcu = ix->wcu;
        oi->status = ix->status;
    }
    o->n_tags = t->n_tags;
    o->tags = tr_xcalloc(t->n_tags, sizeof *o->tags);
    for (size_t i = 0; i < t->n_tags; i++) {
        o->tags[i].key = tr_xstrdup(t->tags[i].key);
        o->tags[i].value = tr_xstrdup(t->tags[i].value);
    }
    o->deletion_protection = t->dp;
    memcpy(o->table_id, t->table_id, sizeof o->table_id);
    o->status = TBL_STATUS_ACTIVE;
    for (size_t i = 0; i < t->n_idx; i++)
        if (t->idx[i].status == TBL_STATUS_CREATING) o->status = TBL_STATUS_UPDATING;
    o->created_ms = t->created_ms;
    o->ttl_attr = tr_xstrdup(t->ttl_attr);
    o->ttl_enabled = t->ttl_enabled;
}

/* Writer thread: counters from memory. */
static void info_counts_mem(const tb_table_t *t, tbl_table_info_t *o) {
    o->item_count = t->st_items[0];
    o->size_bytes = t->st_bytes[0];
    for (size_t i = 0; i < t->n_idx; i++) {
        o->indexes[i].item_count = t->st_items[t->idx[i].space];
        o->indexes[i].size_bytes = t->st_bytes[t->idx[i].space];
    }
}

void tbl_table_info_free(tbl_table_info_t *o) {
    if (!o) return;
    free(o->name);
    free(o->hash);
    free(o->range);
    for (size_t i = 0; i < o->n_attrs; i++) free(o->attrs[i].name);
    free(o->attrs);
    for (size_t i = 0; i < o->n_indexes; i++) {
        tbl_index_info_t *ix = &o->indexes[i];
        free(ix->name);
        free(ix->hash);
        free(ix->range);
        for (size_t k = 0; k < ix->n_include; k++) free(ix->include[k]);
        free(ix->include);
    }
    free(o->indexes);
    for (size_t i = 0; i < o->n_tags; i++) {
        free(o->tags[i].key);
        free(o->tags[i].value);
    }
    free(o->tags);
    free(o->ttl_attr);
    memset(o, 0, sizeof *o);
}

/* "t/" + name, the metadata key of a table (malloc'd). */
static char *meta_key(const char *name, size_t *n) {
    size_t l = strlen(name);
    char *k = tr_xmalloc(l + 3);
    k[0] = 't';
    k[1] = '/';
    memcpy(k + 2, name, l + 1);
    *n = l + 2;
    return k;
}

int tbl__meta_put(tbl_t *db, MDB_txn *txn, const tb_table_t *t) {
    json_t *j = tab_to_json(t);
    size_t n;
    char *s = tbl__dump(j, &n);
    json_decref(j);
    size_t kn;
    char *k = meta_key(t->name, &kn);
    MDB_val kv = {kn, k}, vv = {n, s};
    int rc = mdb_put(txn, db->db_meta, &kv, &vv, 0);
    free(k);
    free(s);
    return rc;
}

static int meta_put_next_id(tbl_t *db, MDB_txn *txn) {
    uint8_t v[4];
    put_le32(v, db->next_id);
    MDB_val kv = {9, "n/next_id"}, vv = {4, v};
    return mdb_put(txn, db->db_meta, &kv, &vv, 0);
}

static void attrs_recompute(tb_table_t *n, const tbl_attrdef_t *extra, size_t n_extra) {
    const char *used[2 + 2 * (TBL_MAX_GSI + TBL_MAX_LSI) + 2];
    int types[sizeof used / sizeof used[0]];
    size_t nu = 0;
#define USE(nm)                                                                                    \
    do {                                                                                           \
        if (!(nm)) break;                                                                          \
        int dup_ = 0;                                                                              \
        for (size_t q_ = 0; q_ < nu; q_++) dup_ |= !strcmp(used[q_], (nm));                        \
        if (dup_) break;                                                                           \
        int ty_ = attr_type(n, (nm));                                                              \
        if (ty_ < 0) ty_ = def_type(extra, n_extra, (nm));                                         \
        used[nu] = (nm);                                                                           \
        types[nu++] = ty_;                                                                         \
    } while (0)
    USE(n->hash);
    USE(n->range);
    for (size_t i = 0; i < n->n_idx; i++) {
        USE(n->idx[i].hash);
        USE(n->idx[i].range);
    }
#undef USE
    tbl_attrdef_t *a = tr_xcalloc(nu, sizeof *a);
    for (size_t i = 0; i < nu; i++) {
        a[i].name = tr_xstrdup(used[i]);
        a[i].type = types[i];
    }
    for (size_t i = 0; i < n->n_attrs; i++) free(n->attrs[i].name);
    free(n->attrs);
    n->attrs = a;
    n->n_attrs = nu;
}

static int ctl_create(tbl_t *db, MDB_txn *txn, tb_ctl_t *c, tb_table_t **pub) {
    if (tbl__map_find(db, c->def->name))
        return tr_err_set(&c->err, TR_EEXISTS, "Table already exists: %s", c->def->name);
    tb_table_t *t = tab_from_def(c->def);
    t->id = db->next_id++;
    t->created_ms = tbl__now_ms(db);
    tr_uuid_v4(t->table_id);
    int rc = tbl__meta_put(db, txn, t);
    if (!rc) rc = meta_put_next_id(db, txn);
    if (!rc) rc = tbl__stats_write_all(db, txn, t);
    if (rc) {
        tbl__tab_unref(t);
        return tbl__mdb_fail(&c->err, rc, "creating a table");
    }
    *pub = t;
    return 0;
}

static int ctl_delete(tbl_t *db, MDB_txn *txn, tb_ctl_t *c) {
    tb_table_t *t = tbl__map_find(db, c->name);
    if (!t) return tr_err_set(&c->err, TR_ENOTFOUND, NOT_FOUND ": Table: %s not found", c->name);
    if (t->dp)
        return tr_err_set(&c->err, TR_EINUSE,
                          "Resource cannot be deleted as it is currently protected against "
                          "deletion. Disable deletion protection first.");
    uint8_t pre[4];
    put_be32(pre, t->id);
    /* the items go in the background (tbl_bg.c: drop_marker); table ids are never reused */
    char dk[16];
    int rc = tbl__bg_mark(db, txn, dk, tbl__drop_key(dk, t->id));
    if (!rc) rc = tbl__range_delete(txn, db->db_stats, pre, 4);
    for (size_t i = 0; !rc && i < t->n_idx; i++)
        if (t->idx[i].status == TBL_STATUS_CREATING)
            rc = tbl__bf_pos_del(db, txn, t->id, t->idx[i].space);
    if (!rc) rc = tbl__ttl_pos_del(db, txn, t->id);
    if (!rc) {
        size_t kn;
        char *k = meta_key(t->name, &kn);
        MDB_val kv = {kn, k};
        rc = mdb_del(txn, db->db_meta, &kv, NULL);
        free(k);
    }
    if (rc) return tbl__mdb_fail(&c->err, rc, "deleting a table");
    if (c->out) {
        info_fill(t, c->out);
        info_counts_mem(t, c->out);
        c->out->status = TBL_STATUS_DELETING;
    }
    return 0;
}

static int ctl_update(tbl_t *db, MDB_txn *txn, tb_ctl_t *c, tb_table_t **pub) {
    const tbl_table_update_t *u = c->u;
    tb_table_t *t = tbl__map_find(db, c->name);
    if (!t) return tr_err_set(&c->err, TR_ENOTFOUND, NOT_FOUND ": Table: %s not found", c->name);
    tb_table_t *n = tbl__tab_clone(t);
    int rc = 0;
    if (u->set_billing) {
        n->billing = u->billing;
        n->rcu = u->rcu;
        n->wcu = u->wcu;
    }
    if (u->set_deletion_protection) n->dp = u->deletion_protection;
    if (u->create_gsi) {
        const tbl_index_info_t *gi = u->create_gsi;
        size_t gsis = 0;
        for (size_t i = 0; i < n->n_idx; i++) gsis += !n->idx[i].local;
        if ((rc = index_def_check(gi, &c->err))) goto fail;
        if (gi->local) {
            rc = tr_err_set(&c->err, TR_EVALIDATION,
                            INVALID "local secondary indexes can only "
                                    "be created with the table");
            goto fail;
        }
        if (gsis >= TBL_MAX_GSI) {
            rc = tr_err_set(&c->err, TR_ELIMIT,
                            "GlobalSecondaryIndex count exceeds the "
                            "per-table limit of %d",
                            TBL_MAX_GSI);
            goto fail;
        }
        for (size_t i = 0; i < n->n_idx; i++)
            if (n->idx[i].status == TBL_STATUS_CREATING) {
                rc = tr_err_set(&c->err, TR_ELIMIT,
                                "Subscriber limit exceeded: Only 1 online "
                                "index can be created or deleted simultaneously per table");
                goto fail;
            }
        if (tbl__tab_index(n, gi->name)) {
            rc = tr_err_set(&c->err, TR_EVALIDATION,
                            "Attempting to create an index which "
                            "already exists: %s",
                            gi->name);
            goto fail;
        }
        for (size_t i = 0; i < u->n_attrs; i++) {
            int have = attr_type(n, u->attrs[i].name);
            if (have >= 0 && have != u->attrs[i].type) {
                rc = tr_err_set(&c->err, TR_EVALIDATION,
                                INVALID "Cannot change the type of attribute %s from %s to %s",
                                u->attrs[i].name, tbl_type_name(have),
                                tbl_type_name(u->attrs[i].type));
                goto fail;
            }
        }
        const char *keys[2] = {gi->hash, gi->range};
        int types[2] = {-1, -1};
        for (int k = 0; k < 2; k++) {
            if (!keys[k]) continue;
            types[k] = attr_type(n, keys[k]);
            if (types[k] < 0) types[k] = def_type(u->attrs, u->n_attrs, keys[k]);
            if (types[k] != TBL_T_S && types[k] != TBL_T_N && types[k] != TBL_T_B) {
                rc = tr_err_set(&c->err, TR_EVALIDATION,
                                INVALID "Some index key attributes are not defined in "
                                        "AttributeDefinitions. Keys: [%s]",
                                keys[k]);
                goto fail;
            }
        }
        uint8_t space = 0;
        for (unsigned s = 1; s < TBL__SPACE_TTL && !space; s++) {
            int taken = 0;
            for (size_t i = 0; i < n->n_idx; i++) taken |= n->idx[i].space == s;
            if (!taken && !tbl__space_dropping(db, txn, n->id, (uint8_t)s)) space = (uint8_t)s;
        }
        if (!space) {   /* every key space taken or still being emptied */
            rc = tr_err_set(&c->err, TR_ELIMIT,
                            "Subscriber limit exceeded: too many indexes "
                            "created and deleted on table %s recently; retry later",
                            n->name);
            goto fail;
        }
        n->idx = tr_xrealloc(n->idx, (n->n_idx + 1) * sizeof *n->idx);
        tb_index_t *ix = &n->idx[n->n_idx++];
        tbl_attrdef_t defs[2] = {{(char *)gi->hash, types[0]}, {(char *)gi->range, types[1]}};
        index_from_info(ix, gi, defs, gi->range ? 2 : 1, space);
        n->st_items[space] = n->st_bytes[space] = 0;
        attrs_recompute(n, u->attrs, u->n_attrs);
        /* Writes maintain it from now on; bf_step (tbl_bg.c) fills in the items already
         * there, in chunks between batches, then makes it ACTIVE. */
        ix->status = TBL_STATUS_CREATING;
        rc = tbl__bf_pos_del(db, txn, n->id, space);
        if (rc) {
            rc = tbl__mdb_fail(&c->err, rc, "adding an index");
            goto fail;
        }
        atomic_store(&db->bg_pending, 1);
    }
    if (u->delete_gsi) {
        size_t i;
        for (i = 0; i < n->n_idx; i++)
            if (!n->idx[i].local && !strcmp(n->idx[i].name, u->delete_gsi)) break;
        if (i == n->n_idx) {
            rc = tr_err_set(&c->err, TR_ENOTFOUND, NOT_FOUND ": Index: %s not found in table %s",
                            u->delete_gsi, n->name);
            goto fail;
        }
        uint8_t pre[5];
        prefix_put(pre, n->id, n->idx[i].space);
        rc = tbl__bf_pos_del(db, txn, n->id, n->idx[i].space);
        /* its entries go in the background (tbl_bg.c: drop_marker) */
        char dk[16];
        if (!rc) rc = tbl__bg_mark(db, txn, dk, tbl__drop_key_space(dk, n->id, n->idx[i].space));
        if (!rc) {
            MDB_val kv = {5, pre};
            rc = mdb_del(txn, db->db_stats, &kv, NULL);
            if (rc == MDB_NOTFOUND) rc = 0;
        }
        if (rc) {
            rc = tbl__mdb_fail(&c->err, rc, "deleting an index");
            goto fail;
        }
        n->st_items[n->idx[i].space] = n->st_bytes[n->idx[i].space] = 0;
        index_clear(&n->idx[i]);
        memmove(n->idx + i, n->idx + i + 1, (n->n_idx - i - 1) * sizeof *n->idx);
        n->n_idx--;
        attrs_recompute(n, NULL, 0);
    }
    rc = tbl__meta_put(db, txn, n);
    if (!rc) rc = tbl__stats_write_all(db, txn, n);
    if (rc) {
        rc = tbl__mdb_fail(&c->err, rc, "updating a table");
        goto fail;
    }
    *pub = n;
    return 0;
fail:
    tbl__tab_unref(n);
    return rc;
}

static int tags_merge(tb_table_t *n, const tbl_tag_t *tags, size_t nt, tr_err *err) {
    for (size_t i = 0; i < nt; i++) {
        size_t k;
        for (k = 0; k < n->n_tags; k++)
            if (!strcmp(n->tags[k].key, tags[i].key)) break;
        if (k < n->n_tags) {
            free(n->tags[k].value);
            n->tags[k].value = tr_xstrdup(tags[i].value ? tags[i].value : "");
            continue;
        }
        if (n->n_tags >= TBL_MAX_TAGS)
            return tr_err_set(err, TR_ELIMIT, "The number of tags exceeds the limit of %d",
                              TBL_MAX_TAGS);
        n->tags = tr_xrealloc(n->tags, (n->n_tags + 1) * sizeof *n->tags);
        n->tags[n->n_tags].key = tr_xstrdup(tags[i].key);
        n->tags[n->n_tags++].value = tr_xstrdup(tags[i].value ? tags[i].value : "");
    }
    return 0;
}

static int ctl_meta_change(tbl_t *db, MDB_txn *txn, tb_ctl_t *c, tb_table_t **pub) {
    tb_table_t *t = tbl__map_find(db, c->name);
    if (!t) return tr_err_set(&c->err, TR_ENOTFOUND, NOT_FOUND ": Table: %s not found", c->name);
    tb_table_t *n = tbl__tab_clone(t);
    int rc = 0;
    uint8_t pre[5];
    switch (c->kind) {
    case C_TAGS_ADD: rc = tags_merge(n, c->tags, c->n_tags, &c->err); break;
    case C_TAGS_REMOVE:
        for (size_t i = 0; i < c->n_keys; i++)
            for (size_t k = 0; k < n->n_tags; k++)
                if (!strcmp(n->tags[k].key, c->keys[i])) {
                    free(n->tags[k].key);
                    free(n->tags[k].value);
                    n->tags[k] = n->tags[--n->n_tags];
                    break;
                }
        break;
    case C_TTL:
        if (c->ttl_enabled) {
            if (t->ttl_enabled) {
                rc = tr_err_set(&c->err, TR_EVALIDATION, "TimeToLive is already enabled");
                break;
            }
            free(n->ttl_attr);
            n->ttl_attr = tr_xstrdup(c->ttl_attr);
            n->ttl_enabled = 1;
            /* a TTL space still being emptied after a disable is emptied now: new entries go
             * there at once */
            if (tbl__space_dropping(db, txn, n->id, TBL__SPACE_TTL)) {
                char dk[16];
                MDB_val dkv = {(size_t)tbl__drop_key_space(dk, n->id, TBL__SPACE_TTL), dk};
                prefix_put(pre, n->id, TBL__SPACE_TTL);
                rc = tbl__range_delete(txn, db->db_items, pre, 5);
                if (!rc) rc = mdb_del(txn, db->db_meta, &dkv, NULL);
                if (rc) {
                    rc = tbl__mdb_fail(&c->err, rc, "enabling TTL");
                    break;
                }
            }
            /* writes index their TTL from now on; ttl_marker (tbl_bg.c) indexes the items
             * already there */
            char mk[16];
            rc = tbl__bg_mark(db, txn, mk, tbl__ttl_key_meta(mk, n->id));
            if (rc) rc = tbl__mdb_fail(&c->err, rc, "enabling TTL");
        } else {
            if (!t->ttl_enabled) {
                rc = tr_err_set(&c->err, TR_EVALIDATION, "TimeToLive is already disabled");
                break;
            }
            n->ttl_enabled = 0;
            /* the TTL entries go in the background (tbl_bg.c: drop_marker) */
            char dk[16];
            rc = tbl__ttl_pos_del(db, txn, n->id);
            if (!rc) rc = tbl__bg_mark(db, txn, dk, tbl__drop_key_space(dk, n->id, TBL__SPACE_TTL));
            if (rc) rc = tbl__mdb_fail(&c->err, rc, "removing TTL entries");
        }
        break;
    default: break;
    }
    if (!rc && (rc = tbl__meta_put(db, txn, n)))
        rc = tbl__mdb_fail(&c->err, rc, "updating a table");
    if (rc) {
        tbl__tab_unref(n);
        return rc;
    }
    *pub = n;
    return 0;
}

static int ctl_tokens(tbl_t *db, MDB_txn *txn, tb_ctl_t *c) {
    int64_t now = tbl__now_ms(db);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, db->db_tokens, &cur);
    if (rc) return tbl__mdb_fail(&c->err, rc, "sweeping tokens");
    char(*dead)[TBL_MAX_TOKEN + 1] = NULL;
    size_t n = 0, cap = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((v.mv_size == 40 && (int64_t)get_le64(v.mv_data) > now) || k.mv_size > TBL_MAX_TOKEN)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            dead = tr_xrealloc(dead, cap * sizeof *dead);
        }
        memcpy(dead[n], k.mv_data, k.mv_size);
        dead[n++][k.mv_size] = '\0';
    }
    mdb_cursor_close(cur);
    rc = rc == MDB_NOTFOUND ? 0 : rc;
    for (size_t i = 0; i < n && !rc; i++) {
        MDB_val dk = {strlen(dead[i]), dead[i]};
        rc = mdb_del(txn, db->db_tokens, &dk, NULL);
        if (rc == MDB_NOTFOUND) rc = 0;
    }
    free(dead);
    return rc ? tbl__mdb_fail(&c->err, rc, "sweeping tokens") : 0;
}

/* Writer thread: one control change in its own transaction, then the memory swap. */
int tbl__ctl_exec(tbl_t *db, tb_ctl_t *c) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc) return tbl__mdb_fail(&c->err, rc, "starting a write");
    tb_table_t *pub = NULL;
    int remove = 0;
    switch (c->kind) {
    case C_CREATE: rc = ctl_create(db, txn, c, &pub); break;
    case C_DELETE:
        rc = ctl_delete(db, txn, c);
        remove = !rc;
        break;
    case C_UPDATE: rc = ctl_update(db, txn, c, &pub); break;
    case C_TTL_DELETE: rc = tbl__ctl_ttl_delete(db, txn, c); break;
    case C_TOKENS: rc = ctl_tokens(db, txn, c); break;
    default: rc = ctl_meta_change(db, txn, c, &pub); break;
    }
    if (!rc && (rc = tbl__dirty_flush(db, txn)))
        rc = tbl__mdb_fail(&c->err, rc, "writing counters");
    if (rc) {
        mdb_txn_abort(txn);
    } else if ((rc = mdb_txn_commit(txn))) {
        rc = tbl__mdb_fail(&c->err, rc, "committing a table change");
    }
    if (rc) {
        tbl__dirty_reload(db);
        tbl__dirty_clear(db);
        if (pub) tbl__tab_unref(pub);
        if (remove && c->out) tbl_table_info_free(c->out);
        return rc;
    }
    tbl__dirty_clear(db);
    if (remove) tbl__map_remove(db, c->name);
    if (pub) {
        tbl__map_set(db, pub);
        if (c->out) {
            info_fill(pub, c->out);
            info_counts_mem(pub, c->out);
        }
    }
    return 0;
}

int tbl__ctl_run(tbl_t *db, tb_ctl_t *c, tr_err *err) {
    int rc = tbl__on_writer(db, err);
    if (rc) return rc;
    tb_wait_t w;
    tbl__wait_init(&w);
    tb_job_t *j = tbl__job_new(0);
    j->kind = J_CTL;
    j->ctl = c;
    j->cb = tbl__wait_cb;
    j->arg = &w;
    rc = tbl__enqueue(db, j, err);
    if (rc) {
        free(j);
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
        return rc;
    }
    rc = tbl__wait_end(&w);
    if (rc && err) *err = c->err;
    return rc;
}

int tbl_table_create(tbl_t *db, const tbl_table_info_t *def, tbl_table_info_t *out, tr_err *err) {
    if (!db || !def) return tr_err_set(err, TR_EINVAL, "CreateTable needs a definition");
    int rc = def_check(def, err);
    if (rc) return rc;
    tb_ctl_t c = {.kind = C_CREATE, .def = def, .out = out};
    return tbl__ctl_run(db, &c, err);
}

int tbl_table_delete(tbl_t *db, const char *name, tbl_table_info_t *out, tr_err *err) {
    if (!db || !name) return tr_err_set(err, TR_EINVAL, "DeleteTable needs a table name");
    tb_ctl_t c = {.kind = C_DELETE, .name = name, .out = out};
    return tbl__ctl_run(db, &c, err);
}

int tbl_table_update(tbl_t *db, const char *name, const tbl_table_update_t *u,
                     tbl_table_info_t *out, tr_err *err) {
    if (!db || !name || !u) return tr_err_set(err, TR_EINVAL, "UpdateTable needs a table name");
    if (!u->set_billing && !u->create_gsi && !u->delete_gsi && !u->set_deletion_protection)
        return tr_err_set(err, TR_EVALIDATION,
                          "At least one of ProvisionedThroughput, BillingMode, "
                          "UpdateStreamEnabled, GlobalSecondaryIndexUpdates or SSESpecification "
                          "or ReplicaUpdates is required");
    if (u->create_gsi && u->delete_gsi)
        return tr_err_set(err, TR_EVALIDATION,
                          "Only one global secondary index update per "
                          "UpdateTable call is supported");
    tb_ctl_t c = {.kind = C_UPDATE, .name = name, .u = u, .out = out};
    return tbl__ctl_run(db, &c, err);
}

int tbl_table_tags_add(tbl_t *db, const char *name, const tbl_tag_t *tags, size_t n, tr_err *err) {
    if (!db || !name || (n && !tags)) return tr_err_set(err, TR_EINVAL, "TagResource: bad args");
    for (size_t i = 0; i < n; i++)
        if (!tags[i].key || !*tags[i].key)
            return tr_err_set(err, TR_EVALIDATION, "tag %zu needs a key", i);
    tb_ctl_t c = {.kind = C_TAGS_ADD, .name = name, .tags = tags, .n_tags = n};
    return tbl__ctl_run(db, &c, err);
}

int tbl_table_tags_remove(tbl_t *db, const char *name, char *const *keys, size_t n, tr_err *err) {
    if (!db || !name || (n && !keys)) return tr_err_set(err, TR_EINVAL, "UntagResource: bad args");
    tb_ctl_t c = {.kind = C_TAGS_REMOVE, .name = name, .keys = keys, .n_keys = n};
    return tbl__ctl_run(db, &c, err);
}

int tbl_ttl_update(tbl_t *db, const char *name, const char *attr, int enabled, tr_err *err) {
    if (!db || !name) return tr_err_set(err, TR_EINVAL, "UpdateTimeToLive needs a table name");
    if (!attr || !*attr || strlen(attr) > 255)
        return tr_err_set(err, TR_EVALIDATION,
                          "TimeToLiveSpecification needs an AttributeName "
                          "of 1-255 characters");
    tb_ctl_t c = {.kind = C_TTL, .name = name, .ttl_attr = attr, .ttl_enabled = enabled};
    return tbl__ctl_run(db, &c, err);
}

int tbl_table_describe(tbl_t *db, const char *name, tbl_table_info_t *out, tr_err *err) {
    if (!db || !name || !out) return tr_err_set(err, TR_EINVAL, "DescribeTable needs a name");
    tb_table_t *t = tbl__tab_get(db, name, NULL);
    if (!t) return tr_err_set(err, TR_ENOTFOUND, NOT_FOUND ": Table: %s not found", name);
    MDB_txn *txn;
    int rc = tbl__rtxn_get(db, &txn, err);
    if (!rc) {
        info_fill(t, out);
        tbl__stats_read(db, txn, t->id, 0, &out->item_count, &out->size_bytes);
        for (size_t i = 0; i < t->n_idx; i++)
            tbl__stats_read(db, txn, t->id, t->idx[i].space, &out->indexes[i].item_count,
                            &out->indexes[i].size_bytes);
        tbl__rtxn_put(db, txn);
    }
    tbl__tab_unref(t);
    return rc;
}

int tbl_table_list(tbl_t *db, const char *after, size_t max, char ***names, size_t *n, int *more,
                   tr_err *err) {
    if (!db || !names || !n) return tr_err_set(err, TR_EINVAL, "ListTables: bad arguments");
    pthread_rwlock_rdlock(&db->tlock);
    size_t i = after ? tbl__map_lower(db, after) : 0;
    if (after && i < db->n_tabs && !strcmp(db->tabs[i]->name, after)) i++;
    size_t k = db->n_tabs - i < max ? db->n_tabs - i : max;
    char **v = tr_xcalloc(k, sizeof *v);
    for (size_t q = 0; q < k; q++) v[q] = tr_xstrdup(db->tabs[i + q]->name);
    if (more) *more = i + k < db->n_tabs;
    pthread_rwlock_unlock(&db->tlock);
    *names = v;
    *n = k;
    return 0;
}

int tbl_key_names(tbl_t *db, const char *table, const char *index, char *hash, char *range,
                  tr_err *err) {
    return tbl_key_schema(db, table, index, hash, range, NULL, NULL, err);
}

int tbl_key_schema(tbl_t *db, const char *table, const char *index, char *hash, char *range,
                   int *htype, int *rtype, tr_err *err) {
    if (!db || !hash || !range) return tr_err_set(err, TR_EINVAL, "tbl_key_names: bad arguments");
    tb_table_t *t = tbl__tab_get(db, table, err);
    if (!t) return TR_ENOTFOUND;
    const char *h = t->hash, *r = t->range;
    int ht = t->htype, rt = t->rtype;
    int rc = 0;
    if (index) {
        const tb_index_t *ix = tbl__tab_index(t, index);
        if (!ix)
            rc = tr_err_set(err, TR_EVALIDATION,
                            "The table does not have the specified "
                            "index: %s",
                            index);
        else {
            h = ix->hash;
            r = ix->range;
            ht = ix->htype;
            rt = ix->rtype;
        }
    }
    if (!rc) {
        snprintf(hash, TBL_MAX_NAME + 1, "%s", h);
        snprintf(range, TBL_MAX_NAME + 1, "%s", r ? r : "");
        if (htype) *htype = ht;
        if (rtype) *rtype = r ? rt : -1;
    }
    tbl__tab_unref(t);
    return rc;
}
