/* SPDX-License-Identifier: Apache-2.0
 *
 * dynamodb_control.c -- the DynamoDB adapter's control plane: CreateTable, DescribeTable,
 * UpdateTable, DeleteTable, ListTables, UpdateTimeToLive / DescribeTimeToLive, TagResource /
 * UntagResource / ListTagsOfResource.
 *
 * The handlers parse key schemas, attribute definitions, indexes and throughput with the input
 * helpers (dynamodb_input.c), check them in DynamoDB's order with DynamoDB's sentences, call the
 * table engine's control calls (tbl_table_*), and write the TableDescription.  They run on the
 * network thread and answer at once.  Dispatch and errors: dynamodb.c; declarations:
 * dynamodb_int.h.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/dynamodb_int.h"

/* ---- control plane: shared parsing --------------------------------------------------------- */

typedef struct ddb_ks {
    const char *name[2];
    const char *type[2];           /* "HASH" / "RANGE" as given (NULL if invalid) */
    size_t n;
} ddb_ks_t;

/* Java-style rendering of a KeySchema list, as DynamoDB quotes it in constraint messages. */
static void ddb_ks_text(json_t *arr, char *out, size_t cap) {
    tr_buf b = TR_BUF_INIT;
    tr_buf_puts(&b, "[");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *el = json_array_get(arr, i);
        const char *n = json_string_value(json_object_get(el, "AttributeName"));
        const char *t = json_string_value(json_object_get(el, "KeyType"));
        tr_buf_printf(&b, "%sKeySchemaElement(attributeName=%s, keyType=%s)", i ? ", " : "",
                      n ? n : "null", t ? t : "null");
    }
    tr_buf_puts(&b, "]");
    snprintf(out, cap, "%s", b.data);
    tr_buf_free(&b);
}

static int ddb_parse_ks(api_call_t *c, json_t *obj, const char *path, int req, ddb_ks_t *ks) {
    static const char *const kt[] = {"HASH", "RANGE"};
    json_t *arr;
    memset(ks, 0, sizeof *ks);
    if (ddb_arr(c, obj, "KeySchema", &arr)) return API_FAIL;
    if (!arr) {
        if (req) api_verr(c, path, NULL, "Member must not be null");
        return 0;
    }
    size_t n = json_array_size(arr);
    if (n < 1 || n > 2) {
        char text[1024];
        ddb_ks_text(arr, text, sizeof text);
        api_verr(c, path, text, "Member must have length %s to %d",
                 n < 1 ? "greater than or equal" : "less than or equal", n < 1 ? 1 : 2);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *el = json_array_get(arr, i);
        char p[160];
        if (!json_is_object(el)) return ddb_badtype(c, "KeySchema", el, "Structure");
        const char *name;
        int t;
        snprintf(p, sizeof p, "%s.%zu.member.attributeName", path, i + 1);
        if (ddb_str(c, el, "AttributeName", p, DDB_REQ, 1, 255, DDB_PAT_NONE, &name))
            return API_FAIL;
        snprintf(p, sizeof p, "%s.%zu.member.keyType", path, i + 1);
        if (ddb_enum(c, el, "KeyType", p, DDB_REQ, kt, 2, "[HASH, RANGE]", &t)) return API_FAIL;
        if (i < 2) {
            ks->name[i] = name;
            ks->type[i] = t < 0 ? NULL : kt[t];
        }
    }
    ks->n = n > 2 ? 2 : n;
    return 0;
}

typedef struct ddb_pt {
    int present;
    long long rcu, wcu;
} ddb_pt_t;

static int ddb_parse_pt(api_call_t *c, json_t *obj, const char *path, ddb_pt_t *pt) {
    json_t *v;
    char p[160];
    int has;
    memset(pt, 0, sizeof *pt);
    if (ddb_obj(c, obj, "ProvisionedThroughput", &v)) return API_FAIL;
    if (!v) return 0;
    pt->present = 1;
    snprintf(p, sizeof p, "%s.readCapacityUnits", path);
    if (ddb_int(c, v, "ReadCapacityUnits", p, DDB_REQ, 1, 1000000000000LL, &pt->rcu, &has))
        return API_FAIL;
    snprintf(p, sizeof p, "%s.writeCapacityUnits", path);
    if (ddb_int(c, v, "WriteCapacityUnits", p, DDB_REQ, 1, 1000000000000LL, &pt->wcu, &has))
        return API_FAIL;
    return 0;
}

typedef struct ddb_attrs {
    tbl_attrdef_t *a;
    size_t n;
} ddb_attrs_t;

static int ddb_type_code(const char *t) {
    return !strcmp(t, "S") ? TBL_T_S : !strcmp(t, "N") ? TBL_T_N : TBL_T_B;
}

static int ddb_parse_attrs(api_call_t *c, json_t *obj, int req, ddb_attrs_t *out) {
    static const char *const types[] = {"B", "N", "S"};
    json_t *arr;
    memset(out, 0, sizeof *out);
    if (ddb_arr(c, obj, "AttributeDefinitions", &arr)) return API_FAIL;
    if (!arr) {
        if (req) api_verr(c, "attributeDefinitions", NULL, "Member must not be null");
        return 0;
    }
    size_t n = json_array_size(arr);
    out->a = tr_xcalloc(n, sizeof *out->a);
    for (size_t i = 0; i < n; i++) {
        json_t *el = json_array_get(arr, i);
        char p[128];
        const char *name;
        int t;
        if (!json_is_object(el)) return ddb_badtype(c, "AttributeDefinitions", el, "Structure");
        snprintf(p, sizeof p, "attributeDefinitions.%zu.member.attributeName", i + 1);
        if (ddb_str(c, el, "AttributeName", p, DDB_REQ, 1, 255, DDB_PAT_NONE, &name))
            return API_FAIL;
        snprintf(p, sizeof p, "attributeDefinitions.%zu.member.attributeType", i + 1);
        if (ddb_enum(c, el, "AttributeType", p, DDB_REQ, types, 3, "[B, N, S]", &t))
            return API_FAIL;
        if (name && t >= 0) {
            out->a[out->n].name = (char *)name;
            out->a[out->n].type = ddb_type_code(types[t]);
            out->n++;
        }
    }
    return 0;
}

static const tbl_attrdef_t *ddb_attr_find(const ddb_attrs_t *a, const char *name) {
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->a[i].name, name)) return &a->a[i];
    return NULL;
}

/* "[a, b]" list of names. */
static void ddb_names_text(const char *const *names, size_t n, size_t stride, char *out,
                           size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(out + o, cap - o, "[");
    for (size_t i = 0; i < n && o < cap; i++) {
        const char *s = *(const char *const *)((const char *)names + i * stride);
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", s);
    }
    if (o < cap) snprintf(out + o, cap - o, "]");
}

typedef struct ddb_index_in {
    const char *name;
    ddb_ks_t ks;
    int projection;             /* TBL_PROJ_*, -1 when missing */
    const char *proj_text;
    const char **include;
    size_t n_include;
    int has_include;
    ddb_pt_t pt;
} ddb_index_in_t;

static int ddb_parse_index(api_call_t *c, json_t *el, const char *path, int gsi,
                           ddb_index_in_t *ix) {
    static const char *const pts[] = {"ALL", "KEYS_ONLY", "INCLUDE"};
    char p[200];
    memset(ix, 0, sizeof *ix);
    ix->projection = -1;
    if (!json_is_object(el))
        return ddb_badtype(c, gsi ? "GlobalSecondaryIndexes" : "LocalSecondaryIndexes", el,
                           "Structure");
    snprintf(p, sizeof p, "%s.indexName", path);
    if (ddb_str(c, el, "IndexName", p, DDB_REQ, 3, 255, DDB_PAT_NAME, &ix->name)) return API_FAIL;
    snprintf(p, sizeof p, "%s.keySchema", path);
    if (ddb_parse_ks(c, el, p, DDB_REQ, &ix->ks)) return API_FAIL;
    json_t *proj;
    if (ddb_obj(c, el, "Projection", &proj)) return API_FAIL;
    snprintf(p, sizeof p, "%s.projection", path);
    if (!proj) {
        api_verr(c, p, NULL, "Member must not be null");
    } else {
        int t;
        snprintf(p, sizeof p, "%s.projection.projectionType", path);
        if (ddb_enum(c, proj, "ProjectionType", p, DDB_OPT, pts, 3, "[ALL, KEYS_ONLY, INCLUDE]",
                     &t))
            return API_FAIL;
        ix->projection = t;
        ix->proj_text = t >= 0 ? pts[t] : NULL;
        json_t *nk;
        if (ddb_arr(c, proj, "NonKeyAttributes", &nk)) return API_FAIL;
        if (nk) {
            ix->has_include = 1;
            size_t n = json_array_size(nk);
            snprintf(p, sizeof p, "%s.projection.nonKeyAttributes", path);
            if (n < 1 || n > 20)
                api_verr(c, p, "[...]", "Member must have length %s",
                         n < 1 ? "greater than or equal to 1" : "less than or equal to 20");
            ix->include = tr_xcalloc(n, sizeof *ix->include);
            for (size_t i = 0; i < n; i++) {
                json_t *s = json_array_get(nk, i);
                if (!json_is_string(s)) return ddb_badtype(c, "NonKeyAttributes", s, "String");
                ix->include[ix->n_include++] = json_string_value(s);
            }
        }
    }
    if (gsi) {
        snprintf(p, sizeof p, "%s.provisionedThroughput", path);
        if (ddb_parse_pt(c, el, p, &ix->pt)) return API_FAIL;
    }
    return 0;
}

/* Semantic checks of a key schema against the attribute definitions, as DynamoDB words them. */
static int ddb_check_ks(api_call_t *c, const ddb_ks_t *ks, const ddb_attrs_t *attrs) {
    char keys[600], defs[2000];
    ddb_names_text(ks->name, ks->n, sizeof(char *), keys, sizeof keys);
    ddb_names_text((const char *const *)&attrs->a[0].name, attrs->n, sizeof(tbl_attrdef_t), defs,
                   sizeof defs);
    for (size_t i = 0; i < ks->n; i++)
        if (!ddb_attr_find(attrs, ks->name[i])) {
            if (ks->n == 2)
                return ddb_invalid(
                    c, "Invalid KeySchema: Some index key attribute have no definition");
            return ddb_invalid(c,
                               "One or more parameter values were invalid: Some index key "
                               "attributes are not defined in AttributeDefinitions. Keys: %s, "
                               "AttributeDefinitions: %s",
                               keys, defs);
        }
    if (ks->n == 2 && !strcmp(ks->name[0], ks->name[1]))
        return ddb_invalid(
            c, "Both the Hash Key and the Range Key element in the KeySchema have the same name");
    if (strcmp(ks->type[0], "HASH"))
        return ddb_invalid(c,
                           "Invalid KeySchema: The first KeySchemaElement is not a HASH key type");
    if (ks->n == 2 && strcmp(ks->type[1], "RANGE"))
        return ddb_invalid(
            c, "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type");
    return 0;
}

static int ddb_check_projection(api_call_t *c, const ddb_index_in_t *ix) {
    if (ix->projection < 0)
        return ddb_invalid(
            c, "One or more parameter values were invalid: Unknown ProjectionType: null");
    if (ix->has_include && ix->projection != TBL_PROJ_INCLUDE)
        return ddb_invalid(c,
                           "One or more parameter values were invalid: ProjectionType is %s, but "
                           "NonKeyAttributes is specified",
                           ix->proj_text);
    if (!ix->has_include && ix->projection == TBL_PROJ_INCLUDE)
        return ddb_invalid(c, "One or more parameter values were invalid: ProjectionType is "
                              "INCLUDE, but NonKeyAttributes is not specified");
    return 0;
}

static void ddb_index_to_info(const ddb_index_in_t *in, int local, tbl_index_info_t *out) {
    memset(out, 0, sizeof *out);
    out->name = (char *)in->name;
    out->local = local;
    out->hash = (char *)in->ks.name[0];
    out->range = in->ks.n > 1 ? (char *)in->ks.name[1] : NULL;
    out->projection = in->projection;
    out->include = (char **)in->include;
    out->n_include = in->n_include;
    out->rcu = (uint64_t)in->pt.rcu;
    out->wcu = (uint64_t)in->pt.wcu;
}

/* ---- control plane: describe output -------------------------------------------------------- */

static void ddb_put_ks(tr_buf *b, const char *hash, const char *range) {
    tr_buf_puts(b, "[{\"AttributeName\":");
    ddb_put_str(b, hash);
    tr_buf_puts(b, ",\"KeyType\":\"HASH\"}");
    if (range && range[0]) {
        tr_buf_puts(b, ",{\"AttributeName\":");
        ddb_put_str(b, range);
        tr_buf_puts(b, ",\"KeyType\":\"RANGE\"}");
    }
    tr_buf_puts(b, "]");
}

static void ddb_put_projection(tr_buf *b, const tbl_index_info_t *ix) {
    static const char *const pts[] = {"ALL", "KEYS_ONLY", "INCLUDE"};
    tr_buf_printf(b, "{\"ProjectionType\":\"%s\"",
                  pts[ix->projection >= 0 && ix->projection < 3 ? ix->projection : 0]);
    if (ix->projection == TBL_PROJ_INCLUDE) {
        tr_buf_puts(b, ",\"NonKeyAttributes\":[");
        for (size_t i = 0; i < ix->n_include; i++) {
            if (i) tr_buf_puts(b, ",");
            ddb_put_str(b, ix->include[i]);
        }
        tr_buf_puts(b, "]");
    }
    tr_buf_puts(b, "}");
}

static void ddb_put_pt(tr_buf *b, int billing, uint64_t rcu, uint64_t wcu) {
    if (billing == TBL_BILLING_PAY_PER_REQUEST) rcu = wcu = 0;
    tr_buf_printf(b,
                  "{\"NumberOfDecreasesToday\":0,\"ReadCapacityUnits\":%llu,"
                  "\"WriteCapacityUnits\":%llu}",
                  (unsigned long long)rcu, (unsigned long long)wcu);
}

static void ddb_put_table(api_call_t *c, tr_buf *b, const tbl_table_info_t *t,
                          int status_override) {
    static const char *const types[] = {"S", "N", "B"};
    tr_buf_puts(b, "{\"AttributeDefinitions\":[");
    for (size_t i = 0; i < t->n_attrs; i++) {
        int ty = t->attrs[i].type;
        tr_buf_printf(b, "%s{\"AttributeName\":", i ? "," : "");
        ddb_put_str(b, t->attrs[i].name);
        tr_buf_printf(b, ",\"AttributeType\":\"%s\"}", ty >= 0 && ty <= 2 ? types[ty] : "S");
    }
    tr_buf_puts(b, "],\"TableName\":");
    ddb_put_str(b, t->name);
    tr_buf_puts(b, ",\"KeySchema\":");
    ddb_put_ks(b, t->hash, t->range);
    int status = status_override >= 0 ? status_override : t->status;
    tr_buf_printf(b, ",\"TableStatus\":\"%s\",\"CreationDateTime\":", tbl_status_name(status));
    ddb_put_ts(b, t->created_ms);
    tr_buf_puts(b, ",\"ProvisionedThroughput\":");
    ddb_put_pt(b, t->billing, t->rcu, t->wcu);
    tr_buf_printf(b, ",\"TableSizeBytes\":%llu,\"ItemCount\":%llu,\"TableArn\":",
                  (unsigned long long)t->size_bytes, (unsigned long long)t->item_count);
    ddb_put_arn(c, b, t->name, NULL);
    tr_buf_printf(b, ",\"TableId\":\"%s\"", t->table_id);
    if (t->billing == TBL_BILLING_PAY_PER_REQUEST) {
        tr_buf_puts(b, ",\"BillingModeSummary\":{\"BillingMode\":\"PAY_PER_REQUEST\","
                       "\"LastUpdateToPayPerRequestDateTime\":");
        ddb_put_ts(b, t->created_ms);
        tr_buf_puts(b, "}");
    }
    for (int local = 1; local >= 0; local--) {
        int any = 0;
        for (size_t i = 0; i < t->n_indexes; i++) {
            const tbl_index_info_t *ix = &t->indexes[i];
            if (ix->local != local) continue;
            tr_buf_puts(b, any++   ? ","
                           : local ? ",\"LocalSecondaryIndexes\":["
                                   : ",\"GlobalSecondaryIndexes\":[");
            tr_buf_puts(b, "{\"IndexName\":");
            ddb_put_str(b, ix->name);
            tr_buf_puts(b, ",\"KeySchema\":");
            ddb_put_ks(b, ix->hash, ix->range);
            tr_buf_puts(b, ",\"Projection\":");
            ddb_put_projection(b, ix);
            if (!local) {
                tr_buf_printf(b, ",\"IndexStatus\":\"%s\"", tbl_status_name(ix->status));
                /* only an index added by UpdateTable is ever CREATING, while it backfills */
                if (ix->status == TBL_STATUS_CREATING) tr_buf_puts(b, ",\"Backfilling\":true");
                tr_buf_puts(b, ",\"ProvisionedThroughput\":");
                ddb_put_pt(b, t->billing, ix->rcu, ix->wcu);
            }
            tr_buf_printf(b, ",\"IndexSizeBytes\":%llu,\"ItemCount\":%llu,\"IndexArn\":",
                          (unsigned long long)ix->size_bytes, (unsigned long long)ix->item_count);
            ddb_put_arn(c, b, t->name, ix->name);
            tr_buf_puts(b, "}");
        }
        if (any) tr_buf_puts(b, "]");
    }
    tr_buf_printf(b, ",\"DeletionProtectionEnabled\":%s}",
                  t->deletion_protection ? "true" : "false");
}

/* ---- control plane: operations ------------------------------------------------------------- */

static int ddb_parse_tags(api_call_t *c, json_t *obj, int req, tbl_tag_t **tags, size_t *n) {
    json_t *arr;
    *tags = NULL;
    *n = 0;
    if (ddb_arr(c, obj, "Tags", &arr)) return API_FAIL;
    if (!arr) {
        if (req) api_verr(c, "tags", NULL, "Member must not be null");
        return 0;
    }
    size_t cnt = json_array_size(arr);
    *tags = tr_xcalloc(cnt, sizeof **tags);
    for (size_t i = 0; i < cnt; i++) {
        json_t *el = json_array_get(arr, i);
        char p[64];
        const char *k, *v;
        if (!json_is_object(el)) return ddb_badtype(c, "Tags", el, "Structure");
        snprintf(p, sizeof p, "tags.%zu.member.key", i + 1);
        if (ddb_str(c, el, "Key", p, DDB_REQ, 1, 128, DDB_PAT_NONE, &k)) return API_FAIL;
        snprintf(p, sizeof p, "tags.%zu.member.value", i + 1);
        if (ddb_str(c, el, "Value", p, DDB_REQ, 0, 256, DDB_PAT_NONE, &v)) return API_FAIL;
        if (k && v) {
            (*tags)[*n].key = (char *)k;
            (*tags)[*n].value = (char *)v;
            (*n)++;
        }
    }
    return 0;
}

int ddb_create_table(api_call_t *c) {
    static const char *const bms[] = {"PROVISIONED", "PAY_PER_REQUEST"};
    char name[DDB_NAME_MAX];
    ddb_attrs_t attrs;
    ddb_ks_t ks;
    ddb_pt_t pt;
    int bm = -1;
    json_t *gsis = NULL, *lsis = NULL;
    ddb_index_in_t *gin = NULL, *lin = NULL;
    size_t n_g = 0, n_l = 0;
    tbl_tag_t *tags = NULL;
    size_t n_tags = 0;
    tbl_index_info_t *ixs = NULL;
    int rc = API_FAIL;
    memset(&attrs, 0, sizeof attrs);

    if (ddb_parse_attrs(c, c->in, DDB_REQ, &attrs)) goto leave;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) goto leave;
    if (ddb_parse_ks(c, c->in, "keySchema", DDB_REQ, &ks)) goto leave;
    if (ddb_parse_pt(c, c->in, "provisionedThroughput", &pt)) goto leave;
    if (ddb_enum(c, c->in, "BillingMode", "billingMode", DDB_OPT, bms, 2,
                 "[PROVISIONED, PAY_PER_REQUEST]", &bm))
        goto leave;
    if (ddb_arr(c, c->in, "GlobalSecondaryIndexes", &gsis)) goto leave;
    if (ddb_arr(c, c->in, "LocalSecondaryIndexes", &lsis)) goto leave;
    n_g = gsis ? json_array_size(gsis) : 0;
    n_l = lsis ? json_array_size(lsis) : 0;
    gin = tr_xcalloc(n_g + 1, sizeof *gin);
    lin = tr_xcalloc(n_l + 1, sizeof *lin);
    for (size_t i = 0; i < n_g; i++) {
        char p[64];
        snprintf(p, sizeof p, "globalSecondaryIndexes.%zu.member", i + 1);
        if (ddb_parse_index(c, json_array_get(gsis, i), p, 1, &gin[i])) goto leave;
    }
    for (size_t i = 0; i < n_l; i++) {
        char p[64];
        snprintf(p, sizeof p, "localSecondaryIndexes.%zu.member", i + 1);
        if (ddb_parse_index(c, json_array_get(lsis, i), p, 0, &lin[i])) goto leave;
    }
    if (ddb_parse_tags(c, c->in, DDB_OPT, &tags, &n_tags)) goto leave;
    if (api_verr_flush(c)) goto leave;

    /* semantics, in DynamoDB's order */
    if (ddb_check_ks(c, &ks, &attrs)) goto leave;
    if (!gsis && !lsis && ks.n != attrs.n) {
        ddb_invalid(c,
                    "One or more parameter values were invalid: Number of attributes in KeySchema "
                    "does not exactly match number of attributes defined in AttributeDefinitions");
        goto leave;
    }
    for (size_t i = 0; i < attrs.n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(attrs.a[i].name, attrs.a[j].name)) {
                ddb_invalid(c, "Cannot have two attributes with the same name");
                goto leave;
            }
    if (lsis) {
        if (!n_l) {
            ddb_invalid(
                c,
                "One or more parameter values were invalid: List of LocalSecondaryIndexes is empty");
            goto leave;
        }
        if (ks.n != 2) {
            ddb_invalid(
                c, "One or more parameter values were invalid: Table KeySchema does not have a "
                   "range key, which is required when specifying a LocalSecondaryIndex");
            goto leave;
        }
        for (size_t i = 0; i < n_l; i++) {
            ddb_index_in_t *ix = &lin[i];
            if (ddb_check_ks(c, &ix->ks, &attrs)) goto leave;
            if (ix->ks.n != 2) {
                ddb_invalid(c,
                            "One or more parameter values were invalid: Index KeySchema does not "
                            "have a range key for index: %s",
                            ix->name);
                goto leave;
            }
            if (strcmp(ix->ks.name[0], ks.name[0])) {
                ddb_invalid(c,
                            "One or more parameter values were invalid: Index KeySchema does not "
                            "have the same leading hash key as table KeySchema for index: %s. "
                            "index hash key: %s, table hash key: %s",
                            ix->name, ix->ks.name[0], ks.name[0]);
                goto leave;
            }
            if (ddb_check_projection(c, ix)) goto leave;
            for (size_t j = 0; j < i; j++)
                if (!strcmp(lin[j].name, ix->name)) {
                    ddb_invalid(
                        c, "One or more parameter values were invalid: Duplicate index name: %s",
                        ix->name);
                    goto leave;
                }
        }
        if (n_l > TBL_MAX_LSI) {
            ddb_invalid(
                c,
                "One or more parameter values were invalid: Number of LocalSecondaryIndexes "
                "exceeds per-table limit of %d",
                TBL_MAX_LSI);
            goto leave;
        }
    }
    if (gsis) {
        if (!n_g) {
            ddb_invalid(
                c,
                "One or more parameter values were invalid: List of GlobalSecondaryIndexes is empty");
            goto leave;
        }
        for (size_t i = 0; i < n_g; i++) {
            ddb_index_in_t *ix = &gin[i];
            if (ddb_check_ks(c, &ix->ks, &attrs)) goto leave;
            if (ddb_check_projection(c, ix)) goto leave;
            for (size_t j = 0; j < n_l; j++)
                if (!strcmp(lin[j].name, ix->name)) {
                    ddb_invalid(
                        c, "One or more parameter values were invalid: Duplicate index name: %s",
                        ix->name);
                    goto leave;
                }
            for (size_t j = 0; j < i; j++)
                if (!strcmp(gin[j].name, ix->name)) {
                    ddb_invalid(
                        c, "One or more parameter values were invalid: Duplicate index name: %s",
                        ix->name);
                    goto leave;
                }
        }
        if (n_g > TBL_MAX_GSI) {
            ddb_invalid(c,
                        "One or more parameter values were invalid: GlobalSecondaryIndex count "
                        "exceeds the per-table limit of %d",
                        TBL_MAX_GSI);
            goto leave;
        }
    }
    if (gsis || lsis) {
        /* every definition must be used by some key schema */
        for (size_t i = 0; i < attrs.n; i++) {
            const char *a = attrs.a[i].name;
            int used = !strcmp(a, ks.name[0]) || (ks.n > 1 && !strcmp(a, ks.name[1]));
            for (size_t j = 0; !used && j < n_g; j++)
                for (size_t k = 0; k < gin[j].ks.n; k++) used |= !strcmp(a, gin[j].ks.name[k]);
            for (size_t j = 0; !used && j < n_l; j++)
                for (size_t k = 0; k < lin[j].ks.n; k++) used |= !strcmp(a, lin[j].ks.name[k]);
            if (!used) {
                char defs[2000];
                ddb_names_text((const char *const *)&attrs.a[0].name, attrs.n,
                               sizeof(tbl_attrdef_t), defs, sizeof defs);
                ddb_invalid(c,
                            "One or more parameter values were invalid: Some AttributeDefinitions "
                            "are not used. AttributeDefinitions: %s, keys used: [%s]",
                            defs, a);
                goto leave;
            }
        }
    }
    int billing = bm == 1 ? TBL_BILLING_PAY_PER_REQUEST : TBL_BILLING_PROVISIONED;
    if (billing == TBL_BILLING_PAY_PER_REQUEST) {
        int any = pt.present;
        for (size_t i = 0; i < n_g; i++) any |= gin[i].pt.present;
        if (any) {
            ddb_invalid(c,
                        "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                        "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST");
            goto leave;
        }
    } else {
        if (!pt.present) {
            if (bm == 0)
                ddb_invalid(
                    c, "One or more parameter values were invalid: ReadCapacityUnits and "
                       "WriteCapacityUnits must both be specified when BillingMode is PROVISIONED");
            else ddb_invalid(c, "No provisioned throughput specified for the table");
            goto leave;
        }
        for (size_t i = 0; i < n_g; i++)
            if (!gin[i].pt.present) {
                ddb_invalid(c,
                            "One or more parameter values were invalid: ProvisionedThroughput "
                            "must be specified for index: %s",
                            gin[i].name);
                goto leave;
            }
    }
    int dp = 0;
    if (ddb_bool(c, c->in, "DeletionProtectionEnabled", &dp, NULL)) goto leave;

    tbl_table_info_t def;
    memset(&def, 0, sizeof def);
    def.name = name;
    def.hash = (char *)ks.name[0];
    def.range = ks.n > 1 ? (char *)ks.name[1] : NULL;
    def.attrs = attrs.a;
    def.n_attrs = attrs.n;
    def.billing = billing;
    def.rcu = (uint64_t)pt.rcu;
    def.wcu = (uint64_t)pt.wcu;
    ixs = tr_xcalloc(n_g + n_l + 1, sizeof *ixs);
    for (size_t i = 0; i < n_l; i++) ddb_index_to_info(&lin[i], 1, &ixs[i]);
    for (size_t i = 0; i < n_g; i++) ddb_index_to_info(&gin[i], 0, &ixs[n_l + i]);
    def.indexes = ixs;
    def.n_indexes = n_g + n_l;
    def.tags = tags;
    def.n_tags = n_tags;
    def.deletion_protection = dp;

    tbl_table_info_t out;
    memset(&out, 0, sizeof out);
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_create(c->ctx->tbl, &def, &out, &err);
    if (e) {
        if (e == TR_EEXISTS)
            api_fail(c, 400, "ResourceInUseException", "Table already exists: %s", name);
        else api_error(c, e, &err);
        goto leave;
    }
    tr_buf_puts(c->out, "{\"TableDescription\":");
    ddb_put_table(c, c->out, &out, -1);
    tr_buf_puts(c->out, "}");
    tbl_table_info_free(&out);
    rc = NET_DONE;
leave:
    free(attrs.a);
    for (size_t i = 0; gin && i < n_g; i++) free(gin[i].include);
    for (size_t i = 0; lin && i < n_l; i++) free(lin[i].include);
    free(gin);
    free(lin);
    free(tags);
    free(ixs);
    return rc;
}

/* The table the request's TableName names, described into *info (free it with
 * tbl_table_info_free).  0 or API_FAIL. */
static int ddb_describe_named(api_call_t *c, tbl_table_info_t *info) {
    char name[DDB_NAME_MAX];
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_describe(c->ctx->tbl, name, info, &err);
    if (e) return ddb_error_table(c, e, &err, name);
    return 0;
}

int ddb_describe_table(api_call_t *c) {
    tbl_table_info_t info;
    if (ddb_describe_named(c, &info)) return API_FAIL;
    tr_buf_puts(c->out, "{\"Table\":");
    ddb_put_table(c, c->out, &info, -1);
    tr_buf_puts(c->out, "}");
    tbl_table_info_free(&info);
    return NET_DONE;
}

int ddb_delete_table(api_call_t *c) {
    char name[DDB_NAME_MAX];
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    tbl_table_info_t info;
    memset(&info, 0, sizeof info);
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_delete(c->ctx->tbl, name, &info, &err);
    if (e) return ddb_error_table(c, e, &err, name);
    tr_buf_puts(c->out, "{\"TableDescription\":");
    ddb_put_table(c, c->out, &info, TBL_STATUS_DELETING);
    tr_buf_puts(c->out, "}");
    tbl_table_info_free(&info);
    return NET_DONE;
}

int ddb_list_tables(api_call_t *c) {
    const char *start;
    long long limit = 100;
    int has_limit;
    if (ddb_str(c, c->in, "ExclusiveStartTableName", "exclusiveStartTableName", DDB_OPT, 3, 255,
                DDB_PAT_NAME, &start))
        return API_FAIL;
    if (ddb_int(c, c->in, "Limit", "limit", DDB_OPT, 1, 100, &limit, &has_limit)) return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    char **names = NULL;
    size_t n = 0;
    int more = 0;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_list(c->ctx->tbl, start, (size_t)limit, &names, &n, &more, &err);
    if (e) return api_error(c, e, &err);
    tr_buf_puts(c->out, "{\"TableNames\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) tr_buf_puts(c->out, ",");
        ddb_put_str(c->out, names[i]);
    }
    tr_buf_puts(c->out, "]");
    if (more && n) {
        tr_buf_puts(c->out, ",\"LastEvaluatedTableName\":");
        ddb_put_str(c->out, names[n - 1]);
    }
    tr_buf_puts(c->out, "}");
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return NET_DONE;
}

int ddb_update_table(api_call_t *c) {
    static const char *const bms[] = {"PROVISIONED", "PAY_PER_REQUEST"};
    char name[DDB_NAME_MAX];
    ddb_attrs_t attrs;
    ddb_pt_t pt;
    int bm = -1, rc = API_FAIL;
    json_t *upd = NULL;
    ddb_index_in_t cin;
    int have_create = 0;
    const char *del = NULL;
    memset(&attrs, 0, sizeof attrs);
    memset(&cin, 0, sizeof cin);

    if (ddb_parse_attrs(c, c->in, DDB_OPT, &attrs)) goto leave;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) goto leave;
    if (ddb_parse_pt(c, c->in, "provisionedThroughput", &pt)) goto leave;
    if (ddb_enum(c, c->in, "BillingMode", "billingMode", DDB_OPT, bms, 2,
                 "[PROVISIONED, PAY_PER_REQUEST]", &bm))
        goto leave;
    if (ddb_arr(c, c->in, "GlobalSecondaryIndexUpdates", &upd)) goto leave;
    size_t n_upd = upd ? json_array_size(upd) : 0;
    for (size_t i = 0; i < n_upd; i++) {
        json_t *el = json_array_get(upd, i), *cr, *dl, *up;
        char p[96];
        if (!json_is_object(el)) {
            ddb_badtype(c, "GlobalSecondaryIndexUpdates", el, "Structure");
            goto leave;
        }
        if (ddb_obj(c, el, "Create", &cr) || ddb_obj(c, el, "Delete", &dl) ||
            ddb_obj(c, el, "Update", &up))
            goto leave;
        if (cr && !have_create) {
            snprintf(p, sizeof p, "globalSecondaryIndexUpdates.%zu.member.create", i + 1);
            if (ddb_parse_index(c, cr, p, 1, &cin)) goto leave;
            have_create = 1;
        } else if (dl) {
            snprintf(p, sizeof p, "globalSecondaryIndexUpdates.%zu.member.delete.indexName", i + 1);
            if (ddb_str(c, dl, "IndexName", p, DDB_REQ, 3, 255, DDB_PAT_NAME, &del)) goto leave;
        }
    }
    int dp = 0, has_dp = 0;
    if (ddb_bool(c, c->in, "DeletionProtectionEnabled", &dp, &has_dp)) goto leave;
    if (api_verr_flush(c)) goto leave;
    if (n_upd > 1 || (have_create && del)) {
        ddb_invalid(c, "One or more parameter values were invalid: Only one global secondary index "
                       "update per UpdateTable call is supported; make one call per index");
        goto leave;
    }
    if (bm < 0 && !pt.present && !n_upd && !has_dp) {
        ddb_invalid(
            c, "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, "
               "GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required");
        goto leave;
    }
    if (bm == 1 && pt.present) {
        ddb_invalid(c, "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                       "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST");
        goto leave;
    }
    tbl_table_update_t u;
    memset(&u, 0, sizeof u);
    tbl_table_info_t cur;
    memset(&cur, 0, sizeof cur);
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_describe(c->ctx->tbl, name, &cur, &err);
    if (e) {
        ddb_error_table(c, e, &err, name);
        goto leave;
    }
    if (bm >= 0 || pt.present) {
        u.set_billing = 1;
        u.billing = bm >= 0 ? (bm == 1 ? TBL_BILLING_PAY_PER_REQUEST : TBL_BILLING_PROVISIONED)
                            : cur.billing;
        if (u.billing == TBL_BILLING_PROVISIONED && !pt.present) {
            if (cur.billing == TBL_BILLING_PROVISIONED) {
                pt.rcu = (long long)cur.rcu;
                pt.wcu = (long long)cur.wcu;
            } else {
                tbl_table_info_free(&cur);
                ddb_invalid(c, "One or more parameter values were invalid: ProvisionedThroughput "
                               "must be specified when BillingMode is PROVISIONED");
                goto leave;
            }
        }
        u.rcu = (uint64_t)pt.rcu;
        u.wcu = (uint64_t)pt.wcu;
    }
    tbl_index_info_t cix;
    if (have_create) {
        if (ddb_check_ks(c, &cin.ks, &attrs) || ddb_check_projection(c, &cin)) {
            tbl_table_info_free(&cur);
            goto leave;
        }
        for (size_t i = 0; i < cur.n_indexes; i++)
            if (!strcmp(cur.indexes[i].name, cin.name)) {
                tbl_table_info_free(&cur);
                ddb_invalid(c,
                            "One or more parameter values were invalid: Duplicate index name: %s "
                            "(the table already has an index of that name)",
                            cin.name);
                goto leave;
            }
        int billing = u.set_billing ? u.billing : cur.billing;
        if (billing == TBL_BILLING_PROVISIONED && !cin.pt.present) {
            tbl_table_info_free(&cur);
            ddb_invalid(c,
                        "One or more parameter values were invalid: ProvisionedThroughput must be "
                        "specified for index: %s",
                        cin.name);
            goto leave;
        }
        if (billing == TBL_BILLING_PAY_PER_REQUEST && cin.pt.present) {
            tbl_table_info_free(&cur);
            ddb_invalid(c,
                        "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                        "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST");
            goto leave;
        }
        ddb_index_to_info(&cin, 0, &cix);
        u.create_gsi = &cix;
        u.attrs = attrs.a;
        u.n_attrs = attrs.n;
    }
    if (del) {
        int found = 0;
        for (size_t i = 0; i < cur.n_indexes; i++)
            found |= !cur.indexes[i].local && !strcmp(cur.indexes[i].name, del);
        if (!found) {
            tbl_table_info_free(&cur);
            api_fail(c, 400, "ResourceNotFoundException",
                     "Requested resource not found: Index: %s not found on table %s", del, name);
            goto leave;
        }
        u.delete_gsi = del;
    }
    tbl_table_info_free(&cur);
    if (has_dp) {
        u.set_deletion_protection = 1;
        u.deletion_protection = dp;
    }
    tbl_table_info_t out;
    memset(&out, 0, sizeof out);
    tr_err_clear(&err);
    e = tbl_table_update(c->ctx->tbl, name, &u, &out, &err);
    if (e) {
        ddb_error_table(c, e, &err, name);
        goto leave;
    }
    tr_buf_puts(c->out, "{\"TableDescription\":");
    ddb_put_table(c, c->out, &out, -1);
    tr_buf_puts(c->out, "}");
    tbl_table_info_free(&out);
    rc = NET_DONE;
leave:
    free(attrs.a);
    free(cin.include);
    return rc;
}

int ddb_update_ttl(api_call_t *c) {
    char name[DDB_NAME_MAX];
    json_t *spec;
    const char *attr = NULL;
    int enabled = 0, has_enabled = 0;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) return API_FAIL;
    if (ddb_obj(c, c->in, "TimeToLiveSpecification", &spec)) return API_FAIL;
    if (!spec) {
        api_verr(c, "timeToLiveSpecification", NULL, "Member must not be null");
    } else {
        if (ddb_str(c, spec, "AttributeName", "timeToLiveSpecification.attributeName", DDB_REQ, 1,
                    255, DDB_PAT_NONE, &attr))
            return API_FAIL;
        if (ddb_bool(c, spec, "Enabled", &enabled, &has_enabled)) return API_FAIL;
        if (!has_enabled)
            api_verr(c, "timeToLiveSpecification.enabled", NULL, "Member must not be null");
    }
    if (api_verr_flush(c)) return API_FAIL;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_ttl_update(c->ctx->tbl, name, attr, enabled, &err);
    if (e) return ddb_error_table(c, e, &err, name);
    tr_buf_printf(c->out, "{\"TimeToLiveSpecification\":{\"Enabled\":%s,\"AttributeName\":",
                  enabled ? "true" : "false");
    ddb_put_str(c->out, attr);
    tr_buf_puts(c->out, "}}");
    return NET_DONE;
}

int ddb_describe_ttl(api_call_t *c) {
    tbl_table_info_t info;
    if (ddb_describe_named(c, &info)) return API_FAIL;
    if (info.ttl_enabled && info.ttl_attr) {
        tr_buf_puts(c->out, "{\"TimeToLiveDescription\":{\"TimeToLiveStatus\":\"ENABLED\","
                            "\"AttributeName\":");
        ddb_put_str(c->out, info.ttl_attr);
        tr_buf_puts(c->out, "}}");
    } else {
        tr_buf_puts(c->out, "{\"TimeToLiveDescription\":{\"TimeToLiveStatus\":\"DISABLED\"}}");
    }
    tbl_table_info_free(&info);
    return NET_DONE;
}

/* ResourceArn of a table: "arn:aws:dynamodb:<region>:<account>:table/<name>". */
static int ddb_resource_arn(api_call_t *c, char name[DDB_NAME_MAX], const char **arn_out) {
    const char *arn;
    if (ddb_str(c, c->in, "ResourceArn", "resourceArn", DDB_REQ, 1, 1283, DDB_PAT_NONE, &arn))
        return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    *arn_out = arn;
    const char *t = strstr(arn, ":table/");
    if (strncmp(arn, "arn:", 4) || !strstr(arn, ":dynamodb:") || !t)
        return ddb_invalid(c, "Invalid TableArn: Invalid ResourceArn provided as input %s", arn);
    t += 7;
    size_t n = strlen(t);
    if (strchr(t, '/') || n < 3 || n > TBL_MAX_NAME || !ddb_name_ok(t, n))
        return ddb_invalid(c, "Invalid TableArn: Invalid ResourceArn provided as input %s", arn);
    if (ddb_arn_owned(c, arn)) return API_FAIL;
    char want[200];
    snprintf(want, sizeof want, "arn:aws:dynamodb:%s:%s:table/", c->ctx->region, API_ACCOUNT_ID);
    if (strncmp(arn, want, strlen(want)))
        return api_fail(c, 400, "ResourceNotFoundException",
                        "Requested resource not found: ResourcArn: %s not found", arn);
    memcpy(name, t, n + 1);
    return 0;
}

/* The engine's error for a tagging call on arn: a missing table is named by its ARN, in
 * DynamoDB's words ("ResourcArn" sic). */
static int ddb_tag_error(api_call_t *c, int e, const tr_err *err, const char *arn) {
    if (e == TR_ENOTFOUND)
        return api_fail(c, 400, "ResourceNotFoundException",
                        "Requested resource not found: ResourcArn: %s not found", arn);
    return api_error(c, e, err);
}

/* TagResource's and UntagResource's common end: resolve ResourceArn, add the n tags `add` or
 * remove the n keys `del` (the other NULL; both freed here), answer {}. */
static int ddb_tags_change(api_call_t *c, tbl_tag_t *add, char **del, size_t n) {
    char name[DDB_NAME_MAX];
    const char *arn;
    int rc = ddb_resource_arn(c, name, &arn);
    if (!rc) {
        tr_err err;
        tr_err_clear(&err);
        int e = add ? tbl_table_tags_add(c->ctx->tbl, name, add, n, &err)
                    : tbl_table_tags_remove(c->ctx->tbl, name, del, n, &err);
        if (e) {
            rc = ddb_tag_error(c, e, &err, arn);
        } else {
            tr_buf_puts(c->out, "{}");
            rc = NET_DONE;
        }
    }
    free(add);
    free(del);
    return rc;
}

int ddb_tag_resource(api_call_t *c) {
    tbl_tag_t *tags;
    size_t n;
    if (ddb_parse_tags(c, c->in, DDB_REQ, &tags, &n)) {
        free(tags);
        return API_FAIL;
    }
    return ddb_tags_change(c, tags, NULL, n);
}

int ddb_untag_resource(api_call_t *c) {
    json_t *keys;
    if (ddb_arr(c, c->in, "TagKeys", &keys)) return API_FAIL;
    if (!keys) api_verr(c, "tagKeys", NULL, "Member must not be null");
    size_t n = keys ? json_array_size(keys) : 0;
    char **k = tr_xcalloc(n + 1, sizeof *k);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(keys, i);
        if (!json_is_string(s)) {
            free(k);
            return ddb_badtype(c, "TagKeys", s, "String");
        }
        k[i] = (char *)json_string_value(s);
        size_t len = ddb_chars(k[i], json_string_length(s));
        if (len < 1 || len > 128) {
            char p[64];
            snprintf(p, sizeof p, "tagKeys.%zu.member", i + 1);
            api_verr(c, p, k[i], "Member must have length %s",
                     len < 1 ? "greater than or equal to 1" : "less than or equal to 128");
        }
    }
    return ddb_tags_change(c, NULL, k, n);
}

int ddb_list_tags(api_call_t *c) {
    char name[DDB_NAME_MAX];
    const char *arn, *token;
    if (ddb_str(c, c->in, "NextToken", "nextToken", DDB_OPT, 0, SIZE_MAX, DDB_PAT_NONE, &token))
        return API_FAIL;
    if (ddb_resource_arn(c, name, &arn)) return API_FAIL;
    tbl_table_info_t info;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_describe(c->ctx->tbl, name, &info, &err);
    if (e) return ddb_tag_error(c, e, &err, arn);
    tr_buf_puts(c->out, "{\"Tags\":[");
    for (size_t i = 0; i < info.n_tags; i++) {
        tr_buf_puts(c->out, i ? ",{\"Key\":" : "{\"Key\":");
        ddb_put_str(c->out, info.tags[i].key);
        tr_buf_puts(c->out, ",\"Value\":");
        ddb_put_str(c->out, info.tags[i].value);
        tr_buf_puts(c->out, "}");
    }
    tr_buf_puts(c->out, "]}");
    tbl_table_info_free(&info);
    return NET_DONE;
}
