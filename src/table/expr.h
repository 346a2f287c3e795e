/* SPDX-License-Identifier: Apache-2.0
 *
 * expr.h -- DynamoDB expressions: condition / filter, key condition, update, projection.
 *
 * Parse once, evaluate against items in their wire form (item.h).  The grammar and semantics
 * are DynamoDB's (see "Expressions" in the DynamoDB developer guide):
 *   condition  := operand comparator operand | operand BETWEEN operand AND operand
 *               | operand IN ( operand, ... ) | function | condition AND condition
 *               | condition OR condition | NOT condition | ( condition )
 *     comparator := = | <> | < | <= | > | >=
 *     functions  := attribute_exists(path) | attribute_not_exists(path)
 *                 | attribute_type(path, :type) | begins_with(path, operand)
 *                 | contains(path, operand) | size(path) (as an operand)
 *   update     := SET action, ... | REMOVE path, ... | ADD path :v, ... | DELETE path :set, ...
 *     (clauses in any order, each at most once); SET value := operand | operand + operand
 *     | operand - operand | if_not_exists(path, operand) | list_append(operand, operand)
 *   projection := path, path, ...
 *   path       := name | #name | path.name | path[index]
 *   key condition := hashkey = :v [AND rangecond] where rangecond is =, <, <=, >, >=, BETWEEN,
 *     begins_with on the sort key.
 * Keywords are case-insensitive; reserved words used as bare names are rejected, as DynamoDB does
 * ("Attribute name is a reserved keyword; reserved keyword: status").
 *
 * Errors: TR_EVALIDATION with DynamoDB's messages, e.g.
 *   "Invalid ConditionExpression: Syntax error; token: \"<token>\", near: \"<text>\""
 *   "Value provided in ExpressionAttributeValues unused in expressions: keys: {:x}"
 *   "An expression attribute name used in the document path is not defined; attribute name: #n"
 *   "An expression attribute value used in expression is not defined; attribute value: :v"
 *   "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]"
 *   "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: STRING"
 *   "The provided expression refers to an attribute that does not exist in the item" (SET a = b + :v with b missing)
 *   "The document path provided in the update expression is invalid for update"
 * Names and values maps are borrowed for the life of the parsed expression.
 *
 * Thread rules: a parsed expression is immutable; evaluate it from any thread.
 */
#ifndef TBL_EXPR_H
#define TBL_EXPR_H

#include <jansson.h>

#include "core/err.h"
#include "table/item.h"

enum {
    TBL_EXPR_CONDITION,
    TBL_EXPR_FILTER,
    TBL_EXPR_KEY_CONDITION,
    TBL_EXPR_UPDATE,
    TBL_EXPR_PROJECTION
};

typedef struct tbl_expr tbl_expr_t;

/* Which ExpressionAttributeNames / Values the expressions of one request used, so the adapter
 * can report unused ones as DynamoDB does.  Zero-initialise; free with tbl_expr_usage_free. */
typedef struct tbl_expr_usage {
    json_t *names_used;    /* object used as a set (keys), created on first use */
    json_t *values_used;
} tbl_expr_usage_t;
void tbl_expr_usage_free(tbl_expr_usage_t *u);
/* TR_EVALIDATION with DynamoDB's message if names/values has members nobody used. */
int tbl_expr_usage_check(const tbl_expr_usage_t *u, const json_t *names, const json_t *values,
                         tr_err *err);

/* Parse text of the given kind.  names/values may be NULL.  usage may be NULL. */
int tbl_expr_parse(int kind, const char *text, json_t *names, json_t *values,
                   tbl_expr_usage_t *usage, tbl_expr_t **out, tr_err *err);
void tbl_expr_free(tbl_expr_t *e);

/* Condition / filter: *result = 1 when item (NULL = no item) satisfies it.  Errors only for
 * runtime type problems DynamoDB reports (e.g. size of a number operand is just false, not an
 * error -- follow DynamoDB). */
int tbl_expr_eval(const tbl_expr_t *e, const json_t *item, int *result, tr_err *err);

/* Update: apply to a COPY of item (NULL = new item holding only key) and return it in *out
 * (new reference).  key is the item's key attributes; updating a key attribute is refused
 * ("Cannot update attribute <a>. This attribute is part of the key").  Numbers use num.h. */
int tbl_expr_update(const tbl_expr_t *e, const json_t *item, const json_t *key, json_t **out,
                    tr_err *err);
/* The same, changing item itself (when item is not NULL) instead of a copy: *out is then a new
 * reference to item.  Saves a copy of the whole item when the caller does not need the item as
 * it was; item must be referenced by nobody else (a tree shared with anyone changes under
 * them).  On error item is unchanged. */
int tbl_expr_update_inplace(const tbl_expr_t *e, json_t *item, const json_t *key, json_t **out,
                            tr_err *err);
/* 1 when the update has a SET or ADD action, 0 when it only REMOVEs / DELETEs: such an update
 * of a missing item creates nothing (DynamoDB neither stores nor returns an item holding only
 * the key). */
int tbl_expr_update_creates(const tbl_expr_t *e);
/* TR_EVALIDATION ("Cannot update attribute pk. This attribute is part of the key") when the
 * update touches an attribute of key; tbl_expr_update makes the same check first.  For an
 * update that creates nothing on a missing item (no other error applies: DynamoDB ignores even
 * REMOVE x.y there). */
int tbl_expr_update_keys_ok(const tbl_expr_t *e, const json_t *key, tr_err *err);
/* Names of top-level attributes the update touches (for ReturnValues UPDATED_OLD/NEW): a new
 * reference to an array of strings. */
json_t *tbl_expr_update_touched(const tbl_expr_t *e);
/* The parts of item that the update's paths address, nested structure kept (what DynamoDB
 * returns for ReturnValues UPDATED_OLD on the old item and UPDATED_NEW on the new one:
 * `SET m.x = :v` gives {"m": {"M": {"x": ...}}}, not the whole map).  New reference. */
json_t *tbl_expr_update_project(const tbl_expr_t *e, const json_t *item);

/* Projection: new item with only the projected paths (nested paths and list indexes kept in
 * their structure, as DynamoDB returns them). */
json_t *tbl_expr_project(const tbl_expr_t *e, const json_t *item);

/* Key condition, resolved against the table/index key names. */
enum {
    TBL_KC_NONE,
    TBL_KC_EQ,
    TBL_KC_LT,
    TBL_KC_LE,
    TBL_KC_GT,
    TBL_KC_GE,
    TBL_KC_BETWEEN,
    TBL_KC_BEGINS_WITH
};
typedef struct tbl_keycond {
    const json_t *hash;      /* borrowed from values */
    int range_op;            /* TBL_KC_* */
    const json_t *range_a, *range_b;
} tbl_keycond_t;
/* TR_EVALIDATION with DynamoDB's messages: "Query condition missed key schema element: id",
 * "Query key condition not supported", ... */
int tbl_expr_keycond(const tbl_expr_t *e, const char *hash_name, const char *range_name,
                     tbl_keycond_t *out, tr_err *err);

#endif
