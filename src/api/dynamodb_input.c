/* SPDX-License-Identifier: Apache-2.0
 *
 * dynamodb_input.c -- the DynamoDB adapter's input side: reading and validating request members
 * the way DynamoDB does, and translating the legacy (pre-expression) parameters.
 *
 * Every handler (dynamodb_control.c, dynamodb_read.c, dynamodb_write.c) reads its members with
 * the helpers here: shape constraints are accumulated with the kit's api_verr and flushed
 * (api_verr_flush) as one ValidationException; a member of the wrong JSON type is a
 * SerializationException at once, in DynamoDB's words (ddb_badtype).
 * Attribute values, items and keys are validated here; expressions are parsed into a ddb_exprs_t
 * set; legacy parameters are rewritten in place into expressions (ddb_legacy_rewrite).
 * Declarations: dynamodb_int.h.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/dynamodb_int.h"

/* ---- input helpers ------------------------------------------------------------------------- */

int ddb_name_ok(const char *s, size_t n) {
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

static const char *ddb_json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_STRING: return "STRING_VALUE";
    case JSON_INTEGER:
    case JSON_REAL: return "NUMBER_VALUE";
    case JSON_TRUE: return "TRUE_VALUE";
    case JSON_FALSE: return "FALSE_VALUE";
    case JSON_OBJECT: return "START_OBJECT";
    case JSON_ARRAY: return "START_ARRAY";
    default: return "VALUE_NULL";
    }
}

/* SerializationException for a member of the wrong JSON type. */
int ddb_badtype(api_call_t *c, const char *name, const json_t *v, const char *want) {
    if (json_is_object(v) && strcmp(want, "Map") && strcmp(want, "Structure"))
        return api_fail(c, 400, "SerializationException",
                        "Start of structure or map found where not expected (member %s)", name);
    if (json_is_array(v) && strcmp(want, "List"))
        return api_fail(c, 400, "SerializationException",
                        "Start of list found where not expected (member %s)", name);
    return api_fail(c, 400, "SerializationException", "%s can not be converted to %s (member %s)",
                    ddb_json_kind(v), want, name);
}

size_t ddb_chars(const char *s, size_t n) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    return chars;
}

/* String member: *out NULL when absent.  Type errors answer SerializationException (API_FAIL);
 * constraint errors are accumulated under `path`. */
int ddb_str(api_call_t *c, const json_t *obj, const char *name, const char *path, int req,
            size_t min, size_t max, int pat, const char **out) {
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (req) api_verr(c, path, NULL, "Member must not be null");
        return 0;
    }
    if (!json_is_string(v)) return ddb_badtype(c, name, v, "String");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), chars = ddb_chars(s, n);
    if (pat == DDB_PAT_NAME && !ddb_name_ok(s, n))
        api_verr(c, path, s, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
    if (chars < min)
        api_verr(c, path, s, "Member must have length greater than or equal to %zu", min);
    else if (chars > max)
        api_verr(c, path, s, "Member must have length less than or equal to %zu", max);
    *out = s;
    return 0;
}

int ddb_int(api_call_t *c, const json_t *obj, const char *name, const char *path, int req,
            long long min, long long max, long long *out, int *present) {
    json_t *v = json_object_get(obj, name);
    char vb[32];
    *present = 0;
    if (!v || json_is_null(v)) {
        if (req) api_verr(c, path, NULL, "Member must not be null");
        return 0;
    }
    if (!json_is_integer(v)) return ddb_badtype(c, name, v, "Integer");
    long long x = json_integer_value(v);
    snprintf(vb, sizeof vb, "%lld", x);
    if (x < min) api_verr(c, path, vb, "Member must have value greater than or equal to %lld", min);
    else if (x > max)
        api_verr(c, path, vb, "Member must have value less than or equal to %lld", max);
    *out = x;
    *present = 1;
    return 0;
}

int ddb_bool(api_call_t *c, const json_t *obj, const char *name, int *out, int *present) {
    json_t *v = json_object_get(obj, name);
    if (present) *present = 0;
    *out = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return ddb_badtype(c, name, v, "Boolean");
    *out = json_is_true(v);
    if (present) *present = 1;
    return 0;
}

/* Enum member: *idx = index into vals, -1 when absent or invalid (accumulated). */
int ddb_enum(api_call_t *c, const json_t *obj, const char *name, const char *path, int req,
             const char *const *vals, size_t n, const char *set_text, int *idx) {
    const char *s;
    *idx = -1;
    if (ddb_str(c, obj, name, path, req, 0, SIZE_MAX, DDB_PAT_NONE, &s)) return API_FAIL;
    if (!s) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, vals[i])) {
            *idx = (int)i;
            return 0;
        }
    api_verr(c, path, s, "Member must satisfy enum value set: %s", set_text);
    return 0;
}

/* Object / array member (NULL when absent); wrong type is SerializationException. */
int ddb_obj(api_call_t *c, const json_t *obj, const char *name, json_t **out) {
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v)) return ddb_badtype(c, name, v, "Map");
    *out = v;
    return 0;
}

int ddb_arr(api_call_t *c, const json_t *obj, const char *name, json_t **out) {
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) return ddb_badtype(c, name, v, "List");
    *out = v;
    return 0;
}

/* A table name as a key of BatchGetItem's or BatchWriteItem's RequestItems: its constraint
 * violations are accumulated (api_verr). */
void ddb_request_items_table(api_call_t *c, const char *tname) {
    if (strlen(tname) < 3 || strlen(tname) > 255 || !ddb_name_ok(tname, strlen(tname)))
        api_verr(c, "requestItems", tname,
                 "Map keys must satisfy constraint: [Member must have "
                 "length less than or equal to 255, Member must have length greater than or "
                 "equal to 3, Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+]");
}

/* TransactItems of TransactGetItems and TransactWriteItems: *items NULL when absent, *n its
 * length; absence and a length outside 1..100 are recorded (api_verr).  0 or API_FAIL. */
int ddb_transact_items(api_call_t *c, json_t **items, size_t *n) {
    if (ddb_arr(c, c->in, "TransactItems", items)) return API_FAIL;
    *n = *items ? json_array_size(*items) : 0;
    if (!*items) api_verr(c, "transactItems", NULL, "Member must not be null");
    else if (*n < 1 || *n > TBL_MAX_TXN_ITEMS)
        api_verr(c, "transactItems", "[...]", "Member must have length %s",
                 *n < 1 ? "greater than or equal to 1" : "less than or equal to 100");
    return 0;
}

/* A table ARN must name a table of this account in this region, as on AWS: another account's
 * is AccessDeniedException (Tributary has no resource policies that could allow it), another
 * region's is not found from this endpoint.  0 when ours, else API_FAIL with the error answered. */
int ddb_arn_owned(api_call_t *c, const char *arn) {
    switch (api_arn_owner(c->ctx, arn)) {
    case API_ARN_OTHER_REGION:
        return api_fail(c, 400, "ResourceNotFoundException",
                        "Requested resource not found: %s is outside this endpoint's partition and "
                        "region (aws, %s); call that region's endpoint",
                        arn, c->ctx->region);
    case API_ARN_OTHER_ACCOUNT:
        return api_fail(c, 400, "AccessDeniedException",
                        "User: arn:aws:iam::%s:root is not authorized to perform: dynamodb:%s on "
                        "resource: %s because no resource-based policy allows the dynamodb:%s "
                        "action (this server's tables are in account %s)",
                        API_ACCOUNT_ID, c->op ? c->op->name : "", arn, c->op ? c->op->name : "",
                        API_ACCOUNT_ID);
    default: return 0;
    }
}

/* TableName (or a table ARN, as DynamoDB now accepts) into out. */
int ddb_table(api_call_t *c, const json_t *obj, const char *name, const char *path, int req,
              char out[DDB_NAME_MAX]) {
    json_t *v = json_object_get(obj, name);
    out[0] = 0;
    if (v && json_is_string(v) && !strncmp(json_string_value(v), "arn:", 4)) {
        const char *s = json_string_value(v), *t = strstr(s, ":table/");
        if (!t || !strstr(s, ":dynamodb:")) {
            api_verr(c, path, s, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
            return 0;
        }
        t += 7;
        size_t n = strcspn(t, "/");
        if (n < 3 || n > TBL_MAX_NAME || !ddb_name_ok(t, n)) {
            api_verr(c, path, s, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
            return 0;
        }
        if (ddb_arn_owned(c, s)) return API_FAIL;
        memcpy(out, t, n);
        out[n] = 0;
        return 0;
    }
    const char *s;
    if (ddb_str(c, obj, name, path, req, 3, 255, DDB_PAT_NAME, &s)) return API_FAIL;
    if (s) snprintf(out, DDB_NAME_MAX, "%s", s);
    return 0;
}

static const char *const ddb_rcc_vals[] = {"NONE", "TOTAL", "INDEXES"};
int ddb_rcc(api_call_t *c, const json_t *obj, int *mode) {
    int i;
    if (ddb_enum(c, obj, "ReturnConsumedCapacity", "returnConsumedCapacity", DDB_OPT, ddb_rcc_vals,
                 3, "[INDEXES, TOTAL, NONE]", &i))
        return API_FAIL;
    *mode = i < 0 ? DDB_RCC_NONE : i;
    return 0;
}

int ddb_ricm(api_call_t *c, const json_t *obj) {
    static const char *const vals[] = {"SIZE", "NONE"};
    int i;
    return ddb_enum(c, obj, "ReturnItemCollectionMetrics", "returnItemCollectionMetrics", DDB_OPT,
                    vals, 2, "[SIZE, NONE]", &i);
}

int ddb_rvoccf(api_call_t *c, const json_t *obj, const char *path, int *all_old) {
    static const char *const vals[] = {"NONE", "ALL_OLD"};
    int i;
    if (ddb_enum(c, obj, "ReturnValuesOnConditionCheckFailure", path, DDB_OPT, vals, 2,
                 "[ALL_OLD, NONE]", &i))
        return API_FAIL;
    *all_old = i == 1;
    return 0;
}

/* ---- attribute values ---------------------------------------------------------------------- */

/* A map of AttributeValues (Key, ExclusiveStartKey): validated and canonicalised in place. */
int ddb_av_map(api_call_t *c, json_t *m, const char *name) {
    if (!json_is_object(m)) return ddb_badtype(c, name, m, "Map");
    const char *k;
    json_t *av;
    tr_err err;
    json_object_foreach(m, k, av) {
        if (!json_is_object(av)) return ddb_badtype(c, name, av, "Structure");
        tr_err_clear(&err);
        if (tbl_av_validate(av, &err)) return ddb_invalid(c, "%s", err.msg);
    }
    return 0;
}

/* A whole item (PutItem's Item): validated, numbers canonicalised, size checked. */
int ddb_item(api_call_t *c, json_t *item, const char *name) {
    if (!json_is_object(item)) return ddb_badtype(c, name, item, "Map");
    const char *k;
    json_t *av;
    json_object_foreach(item, k, av) {
        if (!json_is_object(av)) return ddb_badtype(c, name, av, "Structure");
    }
    tr_err err;
    tr_err_clear(&err);
    if (tbl_item_validate(item, &err)) return ddb_invalid(c, "%s", err.msg);
    return 0;
}

/* Key attributes may not be empty strings or binaries. */
int ddb_key_empty(api_call_t *c, const json_t *m, const char *hash, const char *range) {
    const char *names[2] = {hash, range};
    for (int i = 0; i < 2; i++) {
        if (!names[i] || !names[i][0]) continue;
        json_t *av = json_object_get(m, names[i]);
        if (!av) continue;
        json_t *s = json_object_get(av, "S"), *b = json_object_get(av, "B");
        if ((s && json_is_string(s) && json_string_length(s) == 0) ||
            (b && json_is_string(b) && json_string_length(b) == 0))
            return ddb_invalid(c,
                               "One or more parameter values are not valid. The AttributeValue for "
                               "a key attribute cannot contain an empty %s value. Key: %s",
                               s ? "string" : "binary", names[i]);
    }
    return 0;
}

/* ---- expressions --------------------------------------------------------------------------- */

void ddb_exprs_free(ddb_exprs_t *x) {
    for (int i = 0; i < x->n; i++) tbl_expr_free(x->e[i]);
    x->n = 0;
    tbl_expr_usage_free(&x->usage);
}

/* Load ExpressionAttributeNames/Values of obj.  any_expr: whether obj has an expression. */
int ddb_exprs_init(api_call_t *c, json_t *obj, int any_expr, ddb_exprs_t *x) {
    memset(x, 0, sizeof *x);
    if (ddb_obj(c, obj, "ExpressionAttributeNames", &x->names)) return API_FAIL;
    if (ddb_obj(c, obj, "ExpressionAttributeValues", &x->values)) return API_FAIL;
    if (x->names) {
        const char *k;
        json_t *v;
        json_object_foreach(x->names, k, v) {
            if (!json_is_string(v)) return ddb_badtype(c, "ExpressionAttributeNames", v, "String");
        }
    }
    if (x->values && ddb_av_map(c, x->values, "ExpressionAttributeValues")) return API_FAIL;
    if (!any_expr) {
        if (x->names)
            return ddb_invalid(c, "ExpressionAttributeNames can only be specified when using "
                                  "expressions");
        if (x->values)
            return ddb_invalid(c, "ExpressionAttributeValues can only be specified when using "
                                  "expressions");
    }
    if (x->names && json_object_size(x->names) == 0)
        return ddb_invalid(c, "ExpressionAttributeNames must not be empty");
    if (x->values && json_object_size(x->values) == 0)
        return ddb_invalid(c, "ExpressionAttributeValues must not be empty");
    return 0;
}

/* Parse obj[member] (if present) as kind; *out NULL when absent. */
int ddb_expr(api_call_t *c, ddb_exprs_t *x, json_t *obj, const char *member, int kind,
             tbl_expr_t **out) {
    const char *text;
    char path[64];
    snprintf(path, sizeof path, "%s", member);
    path[0] = (char)(path[0] - 'A' + 'a');
    *out = NULL;
    if (ddb_str(c, obj, member, path, DDB_OPT, 0, SIZE_MAX, DDB_PAT_NONE, &text)) return API_FAIL;
    if (!text) return 0;
    if (!text[0]) return ddb_invalid(c, "Invalid %s: The expression can not be empty;", member);
    tr_err err;
    tr_err_clear(&err);
    tbl_expr_t *e = NULL;
    if (tbl_expr_parse(kind, text, x->names, x->values, &x->usage, &e, &err))
        return ddb_invalid(c, "%s", err.msg[0] ? err.msg : "Invalid expression");
    x->e[x->n++] = e;
    *out = e;
    return 0;
}

int ddb_exprs_check(api_call_t *c, ddb_exprs_t *x) {
    tr_err err;
    tr_err_clear(&err);
    if (tbl_expr_usage_check(&x->usage, x->names, x->values, &err))
        return ddb_invalid(c, "%s", err.msg);
    return 0;
}

/* Legacy (pre-expression) parameters.  legacy[i] is replaced by modern[i]. */
int ddb_legacy(api_call_t *c, const json_t *obj, const char *const *legacy,
               const char *const *modern, size_t n, const char *const *exprs, size_t n_exprs) {
    tr_buf lb = TR_BUF_INIT, eb = TR_BUF_INIT;
    int first = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(obj, legacy[i]);
        if (!v || json_is_null(v)) continue;
        if (first < 0) first = (int)i;
        tr_buf_printf(&lb, "%s%s", lb.len ? ", " : "", legacy[i]);
    }
    if (first < 0) return 0;
    for (size_t i = 0; i < n_exprs; i++) {
        json_t *v = json_object_get(obj, exprs[i]);
        if (v && !json_is_null(v)) tr_buf_printf(&eb, "%s%s", eb.len ? ", " : "", exprs[i]);
    }
    int rc;
    if (eb.len)
        rc = ddb_invalid(c,
                         "Can not use both expression and non-expression parameters in the same "
                         "request: Non-expression parameters: {%s} Expression parameters: {%s}",
                         lb.data, eb.data);
    else
        rc = ddb_invalid(c,
                         "The legacy parameter %s cannot be used on its own here; use %s "
                         "instead (see \"Legacy conditional parameters\" in the DynamoDB "
                         "developer guide)",
                         legacy[first], modern[first]);
    tr_buf_free(&lb);
    tr_buf_free(&eb);
    return rc;
}

/* ---- legacy parameters: translated into expressions ----------------------------------------
 *
 * Requests that use only the pre-expression parameters are rewritten in place into their
 * expression equivalents (each attribute name becomes a #lgN placeholder, each value a :lgN), and
 * then take the ordinary path.  A request mixing both kinds is refused by ddb_legacy(), as
 * DynamoDB does.  Translations (DynamoDB developer guide, "Legacy conditional parameters"):
 *   AttributesToGet [a, b]                   -> ProjectionExpression #a, #b
 *   Expected {a: {Value: v}}                 -> #a = :v          ({Exists: false}:
 * attribute_not_exists) Expected/QueryFilter/ScanFilter {a: {ComparisonOperator: OP,
 * AttributeValueList: [...]}}
 *                                            -> EQ =, NE <>, LT <, LE <=, GT >, GE >=, BETWEEN,
 *                                               IN, BEGINS_WITH begins_with, CONTAINS contains,
 *                                               NOT_CONTAINS NOT contains, NULL
 *                                               attribute_not_exists, NOT_NULL attribute_exists;
 *                                               joined by ConditionalOperator (AND)
 *   KeyConditions                            -> KeyConditionExpression (EQ, LE, LT, GE, GT,
 *                                               BEGINS_WITH, BETWEEN), joined by AND
 *   AttributeUpdates {a: {Action, Value}}    -> PUT: SET #a = :v; DELETE: REMOVE #a or DELETE #a
 * :v; ADD: ADD #a :v (lists: SET #a = list_append( if_not_exists(#a, :empty), :v)) */

typedef struct ddb_lg {
    json_t *names, *values;
    int n;
} ddb_lg_t;

static void ddb_lg_name(ddb_lg_t *g, const char *attr, char out[16]) {
    snprintf(out, 16, "#lg%d", g->n++);
    json_object_set_new(g->names, out, json_string(attr));
}

static void ddb_lg_value(ddb_lg_t *g, json_t *av, char out[16]) {
    snprintf(out, 16, ":lg%d", g->n++);
    json_object_set(g->values, out, av);
}

/* One legacy condition on attr into out. */
static int ddb_lg_cond(api_call_t *c, ddb_lg_t *g, const char *attr, const char *op, json_t *args,
                       int key_only, tr_buf *out) {
    /* types: the AttributeValue types the operator takes (DynamoDB refuses others with a
       ValidationException, not a false condition) */
    enum {
        SNB = 1 << TBL_T_S | 1 << TBL_T_N | 1 << TBL_T_B,
        SB = 1 << TBL_T_S | 1 << TBL_T_B,
        ANY = -1
    };
    static const struct {
        const char *op;
        const char *fmt;
        int nargs;
        int key_ok;
        int types;
    } ops[] = {
        {"EQ", "%s = %s", 1, 1, ANY},
        {"NE", "%s <> %s", 1, 0, ANY},
        {"LT", "%s < %s", 1, 1, SNB},
        {"LE", "%s <= %s", 1, 1, SNB},
        {"GT", "%s > %s", 1, 1, SNB},
        {"GE", "%s >= %s", 1, 1, SNB},
        {"BEGINS_WITH", "begins_with(%s, %s)", 1, 1, SB},
        {"CONTAINS", "contains(%s, %s)", 1, 0, SNB},
        /* NOT_CONTAINS needs the attribute: false when it is missing, as DynamoDB (NE and
           NULL are the operators a missing attribute passes) */
        {"NOT_CONTAINS", "(attribute_exists(%1$s) AND NOT contains(%1$s, %2$s))", 1, 0, SNB},
        {"NULL", "attribute_not_exists(%s)", 0, 0, ANY},
        {"NOT_NULL", "attribute_exists(%s)", 0, 0, ANY},
        {"BETWEEN", NULL, 2, 1, SNB},
        {"IN", NULL, -1, 0, SNB},
    };
    size_t i;
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(ops[i].op, op)) break;
    if (i == sizeof ops / sizeof ops[0] || (key_only && !ops[i].key_ok))
        return ddb_invalid(c,
                           "One or more parameter values were invalid: Unsupported operator on "
                           "%s: %s",
                           key_only ? "KeyConditions" : "condition", op);
    size_t n = args ? json_array_size(args) : 0;
    if ((ops[i].nargs >= 0 && n != (size_t)ops[i].nargs) || (ops[i].nargs < 0 && n < 1))
        return ddb_invalid(c,
                           "One or more parameter values were invalid: Invalid number of "
                           "argument(s) for the %s ComparisonOperator",
                           op);
    for (size_t k = 0; k < n; k++)
        if (!json_is_object(json_array_get(args, k)))
            return ddb_badtype(c, "AttributeValueList", json_array_get(args, k), "Structure");
    for (size_t k = 0; k < n; k++) {   /* malformed values are left to their own validation */
        int t = tbl_av_type(json_array_get(args, k)), t0 = tbl_av_type(json_array_get(args, 0));
        if (t == TBL_T_INVALID || t0 == TBL_T_INVALID) continue;
        if (!(ops[i].types & 1 << t))
            return ddb_invalid(c,
                               "One or more parameter values were invalid: ComparisonOperator %s "
                               "is not valid for %s AttributeValue type",
                               op, tbl_type_name(t));
        if (t != t0)
            return ddb_invalid(c, "One or more parameter values were invalid: AttributeValues "
                                  "inside AttributeValueList must be of same type");
    }
    if (n == 2 && !strcmp(op, "BETWEEN") &&
        tbl_av_cmp(json_array_get(args, 0), json_array_get(args, 1)) == 1)
        return ddb_invalid(c, "The BETWEEN condition was provided a range where the lower bound is "
                              "greater than the upper bound");
    char nm[16], v1[16], v2[16];
    ddb_lg_name(g, attr, nm);
    if (!strcmp(op, "BETWEEN")) {
        ddb_lg_value(g, json_array_get(args, 0), v1);
        ddb_lg_value(g, json_array_get(args, 1), v2);
        tr_buf_printf(out, "%s BETWEEN %s AND %s", nm, v1, v2);
    } else if (!strcmp(op, "IN")) {
        tr_buf_printf(out, "%s IN (", nm);
        for (size_t k = 0; k < n; k++) {
            ddb_lg_value(g, json_array_get(args, k), v1);
            tr_buf_printf(out, "%s%s", k ? ", " : "", v1);
        }
        tr_buf_puts(out, ")");
    } else if (n == 1) {
        ddb_lg_value(g, json_array_get(args, 0), v1);
        tr_buf_printf(out, ops[i].fmt, nm, v1);
    } else {
        tr_buf_printf(out, ops[i].fmt, nm);
    }
    return 0;
}

/* A map of legacy conditions ({attr: {ComparisonOperator, AttributeValueList}} or, for
 * Expected, {attr: {Value, Exists}}) into one expression. */
static int ddb_lg_conds(api_call_t *c, ddb_lg_t *g, json_t *map, const char *member, int expected,
                        int key_only, const char *joiner, tr_buf *out) {
    if (!json_is_object(map)) return ddb_badtype(c, member, map, "Map");
    const char *attr;
    json_t *cond;
    int first = 1;
    json_object_foreach(map, attr, cond) {
        if (!json_is_object(cond)) return ddb_badtype(c, member, cond, "Structure");
        if (!first) tr_buf_printf(out, " %s ", joiner);
        first = 0;
        json_t *op = json_object_get(cond, "ComparisonOperator");
        json_t *list = json_object_get(cond, "AttributeValueList");
        json_t *value = json_object_get(cond, "Value");
        json_t *exists = json_object_get(cond, "Exists");
        if (op && !json_is_string(op)) return ddb_badtype(c, "ComparisonOperator", op, "String");
        if (list && !json_is_array(list)) return ddb_badtype(c, "AttributeValueList", list, "List");
        if (exists && !json_is_boolean(exists)) return ddb_badtype(c, "Exists", exists, "Boolean");
        if (op) {
            if (value && list)
                return ddb_invalid(c,
                                   "One or more parameter values were invalid: Value and "
                                   "AttributeValueList cannot be used together for Attribute: %s",
                                   attr);
            json_t *args = list;
            json_t *tmp = NULL;
            if (value) {
                tmp = json_array();
                json_array_append(tmp, value);
                args = tmp;
            }
            int rc = ddb_lg_cond(c, g, attr, json_string_value(op), args, key_only, out);
            json_decref(tmp);
            if (rc) return rc;
            continue;
        }
        if (!expected)
            return ddb_invalid(c,
                               "One or more parameter values were invalid: ComparisonOperator "
                               "is required for %s attribute %s",
                               member, attr);
        char nm[16], v[16];
        if (exists && json_is_false(exists)) {
            if (value)
                return ddb_invalid(c,
                                   "One or more parameter values were invalid: Value cannot be "
                                   "used when Exists is false for Attribute: %s",
                                   attr);
            ddb_lg_name(g, attr, nm);
            tr_buf_printf(out, "attribute_not_exists(%s)", nm);
            continue;
        }
        if (!value)
            return ddb_invalid(c,
                               "One or more parameter values were invalid: Value must be "
                               "provided when Exists is %s for Attribute: %s",
                               exists ? "true" : "null", attr);
        ddb_lg_name(g, attr, nm);
        ddb_lg_value(g, value, v);
        tr_buf_printf(out, "%s = %s", nm, v);
    }
    if (first)
        return ddb_invalid(c, "One or more parameter values were invalid: %s must not be empty",
                           member);
    return 0;
}

static int ddb_lg_updates(api_call_t *c, ddb_lg_t *g, json_t *map, tr_buf *out) {
    if (!json_is_object(map)) return ddb_badtype(c, "AttributeUpdates", map, "Map");
    tr_buf set = TR_BUF_INIT, rem = TR_BUF_INIT, add = TR_BUF_INIT, del = TR_BUF_INIT;
    const char *attr;
    json_t *u;
    int rc = 0;
    json_object_foreach(map, attr, u) {
        if (!json_is_object(u)) {
            rc = ddb_badtype(c, "AttributeUpdates", u, "Structure");
            break;
        }
        json_t *a = json_object_get(u, "Action"), *v = json_object_get(u, "Value");
        const char *action = a && json_is_string(a) ? json_string_value(a) : "PUT";
        char nm[16], vn[16], en[16];
        if (v && !json_is_object(v)) {
            rc = ddb_badtype(c, "Value", v, "Structure");
            break;
        }
        if (!v && strcmp(action, "DELETE")) {
            rc = ddb_invalid(c, "One or more parameter values were invalid: Only DELETE action is "
                                "allowed when no attribute value is specified");
            break;
        }
        ddb_lg_name(g, attr, nm);
        if (!strcmp(action, "PUT")) {
            ddb_lg_value(g, v, vn);
            tr_buf_printf(&set, "%s%s = %s", set.len ? ", " : "", nm, vn);
        } else if (!strcmp(action, "DELETE")) {
            if (v) {
                ddb_lg_value(g, v, vn);
                tr_buf_printf(&del, "%s%s %s", del.len ? ", " : "", nm, vn);
            } else {
                tr_buf_printf(&rem, "%s%s", rem.len ? ", " : "", nm);
            }
        } else if (!strcmp(action, "ADD")) {
            ddb_lg_value(g, v, vn);
            if (json_object_get(v, "L")) {
                snprintf(en, sizeof en, ":lg%d", g->n++);
                json_object_set_new(g->values, en, json_pack("{s:[]}", "L"));
                tr_buf_printf(&set, "%s%s = list_append(if_not_exists(%s, %s), %s)",
                              set.len ? ", " : "", nm, nm, en, vn);
            } else {
                tr_buf_printf(&add, "%s%s %s", add.len ? ", " : "", nm, vn);
            }
        } else {
            api_verr(c, "attributeUpdates.action", action,
                     "Member must satisfy enum value set: [ADD, PUT, DELETE]");
            rc = api_verr_flush(c);
            break;
        }
    }
    if (!rc) {
        if (set.len) tr_buf_printf(out, "SET %s ", set.data);
        if (rem.len) tr_buf_printf(out, "REMOVE %s ", rem.data);
        if (add.len) tr_buf_printf(out, "ADD %s ", add.data);
        if (del.len) tr_buf_printf(out, "DELETE %s ", del.data);
    }
    tr_buf_free(&set);
    tr_buf_free(&rem);
    tr_buf_free(&add);
    tr_buf_free(&del);
    return rc;
}

/* Rewrite obj's legacy members (those in mask) into expressions, when obj uses no expression. */
int ddb_legacy_rewrite(api_call_t *c, json_t *obj, int mask) {
    static const char *const exprs[] = {"ConditionExpression", "UpdateExpression",
                                        "ProjectionExpression", "KeyConditionExpression",
                                        "FilterExpression"};
    static const struct {
        int bit;
        const char *member;
    } members[] = {
        {DDB_LG_EXPECTED, "Expected"},   {DDB_LG_UPDATES, "AttributeUpdates"},
        {DDB_LG_ATG, "AttributesToGet"}, {DDB_LG_KEYCOND, "KeyConditions"},
        {DDB_LG_QFILTER, "QueryFilter"}, {DDB_LG_SFILTER, "ScanFilter"},
    };
    int any = 0;
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        json_t *v = json_object_get(obj, members[i].member);
        if ((mask & members[i].bit) && v && !json_is_null(v)) any = 1;
    }
    if (!any) return 0;
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        json_t *v = json_object_get(obj, exprs[i]);
        if (v && !json_is_null(v)) return 0;   /* mixed: ddb_legacy() refuses it */
    }
    if (json_object_get(obj, "ExpressionAttributeNames"))
        return ddb_invalid(c,
                           "ExpressionAttributeNames can only be specified when using expressions");
    if (json_object_get(obj, "ExpressionAttributeValues"))
        return ddb_invalid(
            c, "ExpressionAttributeValues can only be specified when using expressions");
    const char *joiner = "AND";
    json_t *co = json_object_get(obj, "ConditionalOperator");
    if (co && !json_is_null(co)) {
        if (!json_is_string(co)) return ddb_badtype(c, "ConditionalOperator", co, "String");
        joiner = json_string_value(co);
        if (strcmp(joiner, "AND") && strcmp(joiner, "OR")) {
            api_verr(c, "conditionalOperator", joiner,
                     "Member must satisfy enum value set: [AND, OR]");
            return api_verr_flush(c);
        }
    }
    ddb_lg_t g = {json_object(), json_object(), 0};
    tr_buf e = TR_BUF_INIT;
    int rc = 0;
    json_t *v;
    if (!rc && (mask & DDB_LG_ATG) && (v = json_object_get(obj, "AttributesToGet")) &&
        !json_is_null(v)) {
        if (!json_is_array(v) || !json_array_size(v)) {
            rc = json_is_array(v)
                     ? ddb_invalid(c, "1 validation error detected: Value '[]' at "
                                      "'attributesToGet' failed to satisfy constraint: "
                                      "Member must have length greater than or equal to 1")
                     : ddb_badtype(c, "AttributesToGet", v, "List");
        } else {
            tr_buf_reset(&e);
            for (size_t i = 0; i < json_array_size(v); i++) {
                json_t *s = json_array_get(v, i);
                char nm[16];
                if (!json_is_string(s)) {
                    rc = ddb_badtype(c, "AttributesToGet", s, "String");
                    break;
                }
                ddb_lg_name(&g, json_string_value(s), nm);
                tr_buf_printf(&e, "%s%s", i ? ", " : "", nm);
            }
            if (!rc) json_object_set_new(obj, "ProjectionExpression", json_string(e.data));
        }
        json_object_del(obj, "AttributesToGet");
    }
    if (!rc && (mask & DDB_LG_EXPECTED) && (v = json_object_get(obj, "Expected")) &&
        !json_is_null(v)) {
        tr_buf_reset(&e);
        rc = ddb_lg_conds(c, &g, v, "Expected", 1, 0, joiner, &e);
        if (!rc) json_object_set_new(obj, "ConditionExpression", json_string(e.data));
        json_object_del(obj, "Expected");
    }
    if (!rc && (mask & DDB_LG_UPDATES) && (v = json_object_get(obj, "AttributeUpdates")) &&
        !json_is_null(v)) {
        tr_buf_reset(&e);
        rc = ddb_lg_updates(c, &g, v, &e);
        if (!rc && e.len) json_object_set_new(obj, "UpdateExpression", json_string(e.data));
        json_object_del(obj, "AttributeUpdates");
    }
    if (!rc && (mask & DDB_LG_KEYCOND) && (v = json_object_get(obj, "KeyConditions")) &&
        !json_is_null(v)) {
        tr_buf_reset(&e);
        rc = ddb_lg_conds(c, &g, v, "KeyConditions", 0, 1, "AND", &e);
        if (!rc) json_object_set_new(obj, "KeyConditionExpression", json_string(e.data));
        json_object_del(obj, "KeyConditions");
    }
    const char *fm = (mask & DDB_LG_QFILTER) ? "QueryFilter" : "ScanFilter";
    if (!rc && (mask & (DDB_LG_QFILTER | DDB_LG_SFILTER)) && (v = json_object_get(obj, fm)) &&
        !json_is_null(v)) {
        tr_buf_reset(&e);
        rc = ddb_lg_conds(c, &g, v, fm, 0, 0, joiner, &e);
        if (!rc) json_object_set_new(obj, "FilterExpression", json_string(e.data));
        json_object_del(obj, fm);
    }
    json_object_del(obj, "ConditionalOperator");
    if (!rc) {
        if (json_object_size(g.names)) json_object_set(obj, "ExpressionAttributeNames", g.names);
        if (json_object_size(g.values)) json_object_set(obj, "ExpressionAttributeValues", g.values);
    }
    json_decref(g.names);
    json_decref(g.values);
    tr_buf_free(&e);
    return rc;
}

/* Key member: validated, numbers canonical, no empty key strings. */
int ddb_key(api_call_t *c, json_t *obj, const char *name, const char *path, json_t **out) {
    if (ddb_obj(c, obj, name, out)) return API_FAIL;
    if (!*out) {
        api_verr(c, path, NULL, "Member must not be null");
        return 0;
    }
    if (ddb_av_map(c, *out, name)) return API_FAIL;
    const char *k;
    json_t *av;
    json_object_foreach(*out, k, av) {
        if (ddb_key_empty(c, *out, k, NULL)) return API_FAIL;
    }
    return 0;
}

/* Look up the table's key names (for empty-key checks on items).  API_FAIL with the error answered.
 */
int ddb_key_names(api_call_t *c, const char *table, char *hash, char *range) {
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_key_names(c->ctx->tbl, table, NULL, hash, range, &err);
    if (e) return api_error(c, e, &err);
    return 0;
}

/* Canonical text of a key (sorted members), for duplicate detection; caller frees. */
char *ddb_key_text(const json_t *key) { return json_dumps(key, JSON_COMPACT | JSON_SORT_KEYS); }

int ddb_has_dup(char **texts, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (texts[i] && texts[j] && !strcmp(texts[i], texts[j])) return 1;
    return 0;
}
