/* SPDX-License-Identifier: Apache-2.0
 *
 * expr_int.h -- DynamoDB expression internals shared by expr.c (lexer, parser, checks) and
 * expr_eval.c (evaluation, updates, projections, key conditions): the parsed tree.  Not API
 * (expr.h is).
 */
#ifndef EXPR_INT_H
#define EXPR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "table/expr.h"
#include "table/num.h"

/* ------------------------------------------------------------------------------------------ */
/* Types                                                                                       */
/* ------------------------------------------------------------------------------------------ */

enum {
    T_EOF,
    T_IDENT,
    T_NAME,
    T_VALUE,
    T_NUM,
    T_LP,
    T_RP,
    T_LB,
    T_RB,
    T_COMMA,
    T_DOT,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_PLUS,
    T_MINUS,
    T_BAD
};

typedef struct tok {
    int t;
    uint32_t pos, len;  /* byte span in the text */
} tok_t;

enum { N_PATH, N_VALUE, N_FUNC, N_CMP, N_BETWEEN, N_IN, N_AND, N_OR, N_NOT, N_ARITH };
enum {
    F_UNKNOWN,
    F_EXISTS,
    F_NOT_EXISTS,
    F_TYPE,
    F_BEGINS,
    F_CONTAINS,
    F_SIZE,
    F_IF_NOT_EXISTS,
    F_LIST_APPEND
};
enum { EL_IDENT, EL_REF, EL_INDEX };

/* One element of a document path: a name (bare or #ref, resolved) or a list index. */
typedef struct pel {
    int src;           /* EL_* */
    uint32_t tok;      /* token index, for messages */
    uint32_t idx;      /* EL_INDEX */
    const char *name;  /* resolved name: arena copy or borrowed from the names map */
    size_t nlen;
} pel_t;

typedef struct node {
    int kind;              /* N_* */
    int op;                /* N_CMP: T_EQ..T_GE; N_ARITH: T_PLUS / T_MINUS */
    int fn;                /* N_FUNC: F_* */
    int parens;            /* parentheses directly around this node */
    uint32_t tok;          /* first token: function name, value ref, path start, operator */
    uint32_t nk;           /* operands / arguments / children */
    struct node **k;
    pel_t *el;             /* N_PATH */
    uint32_t nel;
    const json_t *val;     /* N_VALUE, resolved by the checker; borrowed from the values map */
} node_t;

enum { A_SET, A_REMOVE, A_ADD, A_DELETE };

typedef struct act {
    int type;      /* A_* */
    node_t *path;
    node_t *val;   /* SET: value expression; ADD / DELETE: the :value node; REMOVE: NULL */
} act_t;

struct tbl_expr {
    int kind;
    const char *what;     /* "ConditionExpression", ... for messages */
    char *text;           /* arena copy */
    uint32_t len;
    tok_t *toks;
    uint32_t ntok;
    json_t *names, *values;  /* borrowed for the life of the expression */
    node_t *root;            /* condition kinds */
    act_t *acts;             /* update */
    uint32_t nacts;
    node_t **paths;          /* projection */
    uint32_t npaths;
    int dup_section;         /* update: first clause seen twice (A_*), -1 if none */
    void **mem;              /* arena: every allocation above */
    size_t nmem, capmem;
};

#define TOKTEXT(e, i) (int)(e)->toks[i].len, (e)->text + (e)->toks[i].pos

/* ---- helpers of expr.c used by expr_eval.c (comments at their definitions) -------------- */

void tbl__expr_oom(void);
json_t *tbl__expr_av_inner(const json_t *av, int *type);
uint8_t *tbl__expr_b64_bytes(const json_t *s, size_t *len);
json_t *tbl__expr_av_number_u(size_t n);
json_t *tbl__expr_av_number(const tbl_num_t *x);
bool tbl__expr_path_eq(const node_t *a, const node_t *b);

#endif
