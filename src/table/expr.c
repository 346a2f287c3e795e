/* SPDX-License-Identifier: Apache-2.0
 *
 * expr.c -- DynamoDB expressions: lexer, recursive-descent parser and checks.  Evaluation is in
 * expr_eval.c; the parsed tree (node_t and friends) is drawn in expr_int.h.
 *
 * tbl_expr_parse runs in four steps, each able to fail with DynamoDB's own message:
 *   1. size and emptiness ("The expression can not be empty;");
 *   2. lexing the whole text into tokens (names, #refs, :refs, digits, punctuation);
 *   3. a hand-written recursive-descent parse into a small tree of node_t, reporting the first
 *      syntax error as DynamoDB does: the offending token and the text from the token before it
 *      to the token after it (`token: "/", near: "a / b"`);
 *   4. semantic checks over the tree.  DynamoDB reports these in a fixed order of classes
 *      (function names, function placement, reserved words, duplicate sections, undefined #names,
 *      undefined :values, ADD/DELETE operand types, overlapping paths, conflicting paths, operand
 *      counts/types, distinct operands), whatever their position in the text; the checker records
 *      the first message of each class and reports the lowest class.
 *
 * Evaluation never mutates the parsed tree, so one parsed expression may be used from many
 * threads.  Condition evaluation has no error cases (type mismatches are simply false, as in
 * DynamoDB); update evaluation computes every new value against the OLD item first, then applies
 * the writes to a copy in document-path order (so "SET l[7] = :a, l[5] = :b" past the end of l
 * appends :b then :a, and "REMOVE l[0], l[2]" removes by original positions), as DynamoDB does.
 *
 * Memory: every allocation of a parsed expression lives in its arena (e->mem) and is released by
 * tbl_expr_free; the parser never frees piecemeal.  Allocation failure aborts with a message:
 * expressions are at most 4 KB, a control-plane sized allocation.
 */
#include "table/expr.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/mem.h"
#include "table/expr_int.h"
#include "table/num.h"

#define EXPR_MAX_BYTES 4096 /* DynamoDB: "The maximum length of any expression string is 4 KB" */
#define EXPR_MAX_NEST 128 /* parentheses / NOT / function nesting; bounds parser recursion */
#define EXPR_MAX_IN 100 /* DynamoDB: at most 100 operands on the right of IN */
#define EXPR_MAX_INDEX 0x7fffffffu

/* ------------------------------------------------------------------------------------------ */
/* Parser and checker state (the tree they build is in expr_int.h)                             */
/* ------------------------------------------------------------------------------------------ */

typedef struct parser {
    tbl_expr_t *e;
    uint32_t i; /* current token */
    int depth;
    int failed;
    tr_err *err;
} parser_t;

/* Semantic check classes, in the order DynamoDB reports them. */
enum {
    C_FUNCNAME,
    C_FUNCUSE,
    C_RESERVED,
    C_SECTION,
    C_NAME,
    C_VALUE,
    C_ADDDEL,
    C_OVERLAP,
    C_CONFLICT,
    C_FUNC,
    C_DISTINCT,
    C_NCLASS
};

enum { CTX_COND, CTX_OPERAND };

typedef struct chk {
    tbl_expr_t *e;
    tbl_expr_usage_t *u;
    bool has[C_NCLASS];
    char msg[C_NCLASS][TR_ERR_MSG_MAX];
} chk_t;

/* ------------------------------------------------------------------------------------------ */
/* Reserved words ("Reserved words in DynamoDB", developer guide): sorted, upper case.         */
/* ------------------------------------------------------------------------------------------ */

/* One word per line would be 570 lines: */
/* clang-format off */
static const char *const reserved[] = {
    "ABORT", "ABSOLUTE", "ACTION", "ADD", "AFTER", "AGENT", "AGGREGATE", "ALL", "ALLOCATE",
    "ALTER", "ANALYZE", "AND", "ANY", "ARCHIVE", "ARE", "ARRAY", "AS", "ASC", "ASCII",
    "ASENSITIVE", "ASSERTION", "ASYMMETRIC", "AT", "ATOMIC", "ATTACH", "ATTRIBUTE", "AUTH",
    "AUTHORIZATION", "AUTHORIZE", "AUTO", "AVG", "BACK", "BACKUP", "BASE", "BATCH", "BEFORE",
    "BEGIN", "BETWEEN", "BIGINT", "BINARY", "BIT", "BLOB", "BLOCK", "BOOLEAN", "BOTH", "BREADTH",
    "BUCKET", "BULK", "BY", "BYTE", "CALL", "CALLED", "CALLING", "CAPACITY", "CASCADE", "CASCADED",
    "CASE", "CAST", "CATALOG", "CHAR", "CHARACTER", "CHECK", "CLASS", "CLOB", "CLOSE", "CLUSTER",
    "CLUSTERED", "CLUSTERING", "CLUSTERS", "COALESCE", "COLLATE", "COLLATION", "COLLECTION",
    "COLUMN", "COLUMNS", "COMBINE", "COMMENT", "COMMIT", "COMPACT", "COMPILE", "COMPRESS",
    "CONDITION", "CONFLICT", "CONNECT", "CONNECTION", "CONSISTENCY", "CONSISTENT", "CONSTRAINT",
    "CONSTRAINTS", "CONSTRUCTOR", "CONSUMED", "CONTINUE", "CONVERT", "COPY", "CORRESPONDING",
    "COUNT", "COUNTER", "CREATE", "CROSS", "CUBE", "CURRENT", "CURSOR", "CYCLE", "DATA",
    "DATABASE", "DATE", "DATETIME", "DAY", "DEALLOCATE", "DEC", "DECIMAL", "DECLARE", "DEFAULT",
    "DEFERRABLE", "DEFERRED", "DEFINE", "DEFINED", "DEFINITION", "DELETE", "DELIMITED", "DEPTH",
    "DEREF", "DESC", "DESCRIBE", "DESCRIPTOR", "DETACH", "DETERMINISTIC", "DIAGNOSTICS",
    "DIRECTORIES", "DISABLE", "DISCONNECT", "DISTINCT", "DISTRIBUTE", "DO", "DOMAIN", "DOUBLE",
    "DROP", "DUMP", "DURATION", "DYNAMIC", "EACH", "ELEMENT", "ELSE", "ELSEIF", "EMPTY", "ENABLE",
    "END", "EQUAL", "EQUALS", "ERROR", "ESCAPE", "ESCAPED", "EVAL", "EVALUATE", "EXCEEDED",
    "EXCEPT", "EXCEPTION", "EXCEPTIONS", "EXCLUSIVE", "EXEC", "EXECUTE", "EXISTS", "EXIT",
    "EXPLAIN", "EXPLODE", "EXPORT", "EXPRESSION", "EXTENDED", "EXTERNAL", "EXTRACT", "FAIL",
    "FALSE", "FAMILY", "FETCH", "FIELDS", "FILE", "FILTER", "FILTERING", "FINAL", "FINISH",
    "FIRST", "FIXED", "FLATTERN", "FLOAT", "FOR", "FORCE", "FOREIGN", "FORMAT", "FORWARD", "FOUND",
    "FREE", "FROM", "FULL", "FUNCTION", "FUNCTIONS", "GENERAL", "GENERATE", "GET", "GLOB",
    "GLOBAL", "GO", "GOTO", "GRANT", "GREATER", "GROUP", "GROUPING", "HANDLER", "HASH", "HAVE",
    "HAVING", "HEAP", "HIDDEN", "HOLD", "HOUR", "IDENTIFIED", "IDENTITY", "IF", "IGNORE",
    "IMMEDIATE", "IMPORT", "IN", "INCLUDING", "INCLUSIVE", "INCREMENT", "INCREMENTAL", "INDEX",
    "INDEXED", "INDEXES", "INDICATOR", "INFINITE", "INITIALLY", "INLINE", "INNER", "INNTER",
    "INOUT", "INPUT", "INSENSITIVE", "INSERT", "INSTEAD", "INT", "INTEGER", "INTERSECT",
    "INTERVAL", "INTO", "INVALIDATE", "IS", "ISOLATION", "ITEM", "ITEMS", "ITERATE", "JOIN", "KEY",
    "KEYS", "LAG", "LANGUAGE", "LARGE", "LAST", "LATERAL", "LEAD", "LEADING", "LEAVE", "LEFT",
    "LENGTH", "LESS", "LEVEL", "LIKE", "LIMIT", "LIMITED", "LINES", "LIST", "LOAD", "LOCAL",
    "LOCALTIME", "LOCALTIMESTAMP", "LOCATION", "LOCATOR", "LOCK", "LOCKS", "LOG", "LOGED", "LONG",
    "LOOP", "LOWER", "MAP", "MATCH", "MATERIALIZED", "MAX", "MAXLEN", "MEMBER", "MERGE", "METHOD",
    "METRICS", "MIN", "MINUS", "MINUTE", "MISSING", "MOD", "MODE", "MODIFIES", "MODIFY", "MODULE",
    "MONTH", "MULTI", "MULTISET", "NAME", "NAMES", "NATIONAL", "NATURAL", "NCHAR", "NCLOB", "NEW",
    "NEXT", "NO", "NONE", "NOT", "NULL", "NULLIF", "NUMBER", "NUMERIC", "OBJECT", "OF", "OFFLINE",
    "OFFSET", "OLD", "ON", "ONLINE", "ONLY", "OPAQUE", "OPEN", "OPERATOR", "OPTION", "OR", "ORDER",
    "ORDINALITY", "OTHER", "OTHERS", "OUT", "OUTER", "OUTPUT", "OVER", "OVERLAPS", "OVERRIDE",
    "OWNER", "PAD", "PARALLEL", "PARAMETER", "PARAMETERS", "PARTIAL", "PARTITION", "PARTITIONED",
    "PARTITIONS", "PATH", "PERCENT", "PERCENTILE", "PERMISSION", "PERMISSIONS", "PIPE",
    "PIPELINED", "PLAN", "POOL", "POSITION", "PRECISION", "PREPARE", "PRESERVE", "PRIMARY",
    "PRIOR", "PRIVATE", "PRIVILEGES", "PROCEDURE", "PROCESSED", "PROJECT", "PROJECTION",
    "PROPERTY", "PROVISIONING", "PUBLIC", "PUT", "QUERY", "QUIT", "QUORUM", "RAISE", "RANDOM",
    "RANGE", "RANK", "RAW", "READ", "READS", "REAL", "REBUILD", "RECORD", "RECURSIVE", "REDUCE",
    "REF", "REFERENCE", "REFERENCES", "REFERENCING", "REGEXP", "REGION", "REINDEX", "RELATIVE",
    "RELEASE", "REMAINDER", "RENAME", "REPEAT", "REPLACE", "REQUEST", "RESET", "RESIGNAL",
    "RESOURCE", "RESPONSE", "RESTORE", "RESTRICT", "RESULT", "RETURN", "RETURNING", "RETURNS",
    "REVERSE", "REVOKE", "RIGHT", "ROLE", "ROLES", "ROLLBACK", "ROLLUP", "ROUTINE", "ROW", "ROWS",
    "RULE", "RULES", "SAMPLE", "SATISFIES", "SAVE", "SAVEPOINT", "SCAN", "SCHEMA", "SCOPE",
    "SCROLL", "SEARCH", "SECOND", "SECTION", "SEGMENT", "SEGMENTS", "SELECT", "SELF", "SEMI",
    "SENSITIVE", "SEPARATE", "SEQUENCE", "SERIALIZABLE", "SESSION", "SET", "SETS", "SHARD",
    "SHARE", "SHARED", "SHORT", "SHOW", "SIGNAL", "SIMILAR", "SIZE", "SKEWED", "SMALLINT",
    "SNAPSHOT", "SOME", "SOURCE", "SPACE", "SPACES", "SPARSE", "SPECIFIC", "SPECIFICTYPE", "SPLIT",
    "SQL", "SQLCODE", "SQLERROR", "SQLEXCEPTION", "SQLSTATE", "SQLWARNING", "START", "STATE",
    "STATIC", "STATUS", "STORAGE", "STORE", "STORED", "STREAM", "STRING", "STRUCT", "STYLE", "SUB",
    "SUBMULTISET", "SUBPARTITION", "SUBSTRING", "SUBTYPE", "SUM", "SUPER", "SYMMETRIC", "SYNONYM",
    "SYSTEM", "TABLE", "TABLESAMPLE", "TEMP", "TEMPORARY", "TERMINATED", "TEXT", "THAN", "THEN",
    "THROUGHPUT", "TIME", "TIMESTAMP", "TIMEZONE", "TINYINT", "TO", "TOKEN", "TOTAL", "TOUCH",
    "TRAILING", "TRANSACTION", "TRANSFORM", "TRANSLATE", "TRANSLATION", "TREAT", "TRIGGER", "TRIM",
    "TRUE", "TRUNCATE", "TTL", "TUPLE", "TYPE", "UNDER", "UNDO", "UNION", "UNIQUE", "UNIT",
    "UNKNOWN", "UNLOGGED", "UNNEST", "UNPROCESSED", "UNSIGNED", "UNTIL", "UPDATE", "UPPER", "URL",
    "USAGE", "USE", "USER", "USERS", "USING", "UUID", "VACUUM", "VALUE", "VALUED", "VALUES",
    "VARCHAR", "VARIABLE", "VARIANCE", "VARINT", "VARYING", "VIEW", "VIEWS", "VIRTUAL", "VOID",
    "WAIT", "WHEN", "WHENEVER", "WHERE", "WHILE", "WINDOW", "WITH", "WITHIN", "WITHOUT", "WORK",
    "WRAPPED", "WRITE", "YEAR", "ZONE",
};
/* clang-format on */

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* A jansson allocation failed (tr_x* cover the others): stop, as core/mem.h explains. */
void tbl__expr_oom(void) {
    fputs("tributary: out of memory while parsing a DynamoDB expression\n", stderr);
    abort();
}

/* Zeroed arena allocation, freed by tbl_expr_free. */
static void *ex_alloc(tbl_expr_t *e, size_t n) {
    if (e->nmem == e->capmem) {
        size_t cap = e->capmem ? e->capmem * 2 : 32;
        e->mem = tr_xrealloc(e->mem, cap * sizeof *e->mem);
        e->capmem = cap;
    }
    void *p = tr_xcalloc(1, n);
    e->mem[e->nmem++] = p;
    return p;
}

/* Room for element n of an arena vector; returns the (possibly moved) array.  The old storage
 * stays in the arena: at most twice the final size is wasted. */
static void *ex_grow(tbl_expr_t *e, void *arr, uint32_t n, uint32_t *cap, size_t elsz) {
    if (n < *cap) return arr;
    uint32_t nc = *cap ? *cap * 2 : 4;
    void *na = ex_alloc(e, (size_t)nc * elsz);
    if (n) memcpy(na, arr, (size_t)n * elsz);
    *cap = nc;
    return na;
}

/* 1 when text[0..n) is a reserved word (case-insensitive; the table holds letters only, so
 * strncasecmp order agrees with the table's order). */
static bool is_reserved(const char *text, size_t n) {
    size_t lo = 0, hi = sizeof reserved / sizeof reserved[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *w = reserved[mid];
        size_t wl = strlen(w), m = wl < n ? wl : n;
        int c = strncasecmp(text, w, m);
        if (c == 0) c = n < wl ? -1 : n > wl ? 1 : 0;
        if (c == 0) return true;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return false;
}

static const char *what_of(int kind) {
    switch (kind) {
    case TBL_EXPR_CONDITION: return "ConditionExpression";
    case TBL_EXPR_FILTER: return "FilterExpression";
    case TBL_EXPR_KEY_CONDITION: return "KeyConditionExpression";
    case TBL_EXPR_UPDATE: return "UpdateExpression";
    default: return "ProjectionExpression";
    }
}

/* The inner value of an AttributeValue ({"S": "x"} -> "x") and its type. */
json_t *tbl__expr_av_inner(const json_t *av, int *type) {
    int t = av ? tbl_av_type(av) : TBL_T_INVALID;
    if (type) *type = t;
    if (t == TBL_T_INVALID) return NULL;
    return json_object_get(av, tbl_type_name(t));
}

/* DynamoDB's long type names, used in ADD / DELETE operand messages. */
static const char *long_type(int t) {
    switch (t) {
    case TBL_T_S: return "STRING";
    case TBL_T_N: return "NUMBER";
    case TBL_T_B: return "BINARY";
    case TBL_T_BOOL: return "BOOLEAN";
    case TBL_T_NULL: return "NULL";
    case TBL_T_L: return "LIST";
    case TBL_T_M: return "MAP";
    case TBL_T_SS: return "STRING_SET";
    case TBL_T_NS: return "NUMBER_SET";
    case TBL_T_BS: return "BINARY_SET";
    default: return "UNKNOWN";
    }
}

static bool is_set_type(int t) { return t == TBL_T_SS || t == TBL_T_NS || t == TBL_T_BS; }

/* Decoded bytes of a base64 JSON string (malloc'd, caller frees); NULL when invalid. */
uint8_t *tbl__expr_b64_bytes(const json_t *s, size_t *len) {
    if (!json_is_string(s)) return NULL;
    size_t n = json_string_length(s);
    uint8_t *out = tr_xmalloc(tr_base64_decoded_max(n) + 1);
    long r = tr_base64_decode(json_string_value(s), n, out);
    if (r < 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)r;
    return out;
}

/* New {"N": "<n>"} AttributeValue. */
json_t *tbl__expr_av_number_u(size_t n) {
    char buf[32];
    snprintf(buf, sizeof buf, "%zu", n);
    return json_pack("{s:s}", "N", buf);
}

json_t *tbl__expr_av_number(const tbl_num_t *x) {
    char buf[TBL_NUM_STRMAX];
    tbl_num_format(x, buf);
    return json_pack("{s:s}", "N", buf);
}

/* Append "[a, b, [1], c]" for a resolved path. */
static void path_render(tr_buf *b, const node_t *p) {
    tr_buf_puts(b, "[");
    for (uint32_t i = 0; i < p->nel; i++) {
        if (i) tr_buf_puts(b, ", ");
        if (p->el[i].src == EL_INDEX) tr_buf_printf(b, "[%u]", p->el[i].idx);
        else tr_buf_append(b, p->el[i].name ? p->el[i].name : "", p->el[i].nlen);
    }
    tr_buf_puts(b, "]");
}

/* Append "{N:2}" for an AttributeValue, as DynamoDB prints operands in BETWEEN messages. */
static void av_render(tr_buf *b, const json_t *av) {
    int t;
    json_t *v = tbl__expr_av_inner(av, &t);
    tr_buf_printf(b, "{%s", tbl_type_name(t));
    if (json_is_string(v)) {
        tr_buf_puts(b, ":");
        tr_buf_append(b, json_string_value(v), json_string_length(v));
    }
    tr_buf_puts(b, "}");
}

/* ------------------------------------------------------------------------------------------ */
/* Lexer                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_word(int c) { return is_alpha(c) || is_digit(c); }

/* Tokenise the whole text; the array always ends with T_EOF.  Never fails: characters outside
 * the language become T_BAD tokens (one UTF-8 character each) and fail in the parser. */
static void lex(tbl_expr_t *e) {
    const unsigned char *s = (const unsigned char *)e->text;
    uint32_t n = e->len, i = 0, nt = 0;
    e->toks = ex_alloc(e, ((size_t)n + 1) * sizeof *e->toks);
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
        tok_t *t = &e->toks[nt++];
        t->pos = i;
        if (i >= n) {
            t->t = T_EOF;
            t->len = 0;
            break;
        }
        uint32_t st = i;
        int c = s[i];
        if (is_alpha(c)) {
            while (i < n && is_word(s[i])) i++;
            t->t = T_IDENT;
        } else if (is_digit(c)) {
            while (i < n && is_digit(s[i])) i++;
            t->t = T_NUM;
        } else if (c == '#' || c == ':') {
            i++;
            if (i < n && is_word(s[i])) {
                while (i < n && is_word(s[i])) i++;
                t->t = c == '#' ? T_NAME : T_VALUE;
            } else {
                t->t = T_BAD;
            }
        } else {
            i++;
            switch (c) {
            case '(': t->t = T_LP; break;
            case ')': t->t = T_RP; break;
            case '[': t->t = T_LB; break;
            case ']': t->t = T_RB; break;
            case ',': t->t = T_COMMA; break;
            case '.': t->t = T_DOT; break;
            case '=': t->t = T_EQ; break;
            case '+': t->t = T_PLUS; break;
            case '-': t->t = T_MINUS; break;
            case '<':
                if (i < n && s[i] == '=') i++, t->t = T_LE;
                else if (i < n && s[i] == '>') i++, t->t = T_NE;
                else t->t = T_LT;
                break;
            case '>':
                if (i < n && s[i] == '=') i++, t->t = T_GE;
                else t->t = T_GT;
                break;
            default: {
                uint32_t extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
                while (extra-- && i < n && (s[i] & 0xC0) == 0x80) i++;
                t->t = T_BAD;
            }
            }
        }
        t->len = i - st;
    }
    e->ntok = nt;
}

/* ------------------------------------------------------------------------------------------ */
/* Parser                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static bool at(const parser_t *p, int t) { return p->e->toks[p->i].t == t; }

static bool tok_kw(const tbl_expr_t *e, uint32_t i, const char *kw) {
    const tok_t *t = &e->toks[i];
    size_t n = strlen(kw);
    return t->t == T_IDENT && t->len == n && strncasecmp(e->text + t->pos, kw, n) == 0;
}

static bool at_kw(const parser_t *p, const char *kw) { return tok_kw(p->e, p->i, kw); }

/* Identifiers the grammar owns in this kind of expression (they can never be attribute names). */
static bool grammar_kw(const tbl_expr_t *e, uint32_t i) {
    if (e->toks[i].t != T_IDENT) return false;
    if (e->kind == TBL_EXPR_UPDATE)
        return tok_kw(e, i, "SET") || tok_kw(e, i, "REMOVE") || tok_kw(e, i, "ADD") ||
               tok_kw(e, i, "DELETE");
    if (e->kind == TBL_EXPR_PROJECTION) return false;
    return tok_kw(e, i, "AND") || tok_kw(e, i, "OR") || tok_kw(e, i, "NOT") ||
           tok_kw(e, i, "BETWEEN") || tok_kw(e, i, "IN");
}

static void *pfail(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *pfail(parser_t *p, const char *fmt, ...) {
    if (p->failed) return NULL;
    char msg[TR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tr_err_set(p->err, TR_EVALIDATION, "Invalid %s: %s", p->e->what, msg);
    p->failed = 1;
    return NULL;
}

/* DynamoDB's syntax error at the current token: near spans the token before to the token after
 * (at the end of the text: just the last token). */
static void *syntax(parser_t *p) {
    if (p->failed) return NULL;
    const tbl_expr_t *e = p->e;
    uint32_t i = p->i;
    const tok_t *t = &e->toks[i];
    uint32_t a, b;
    if (t->t == T_EOF) {
        a = i ? e->toks[i - 1].pos : 0;
        b = i ? e->toks[i - 1].pos + e->toks[i - 1].len : 0;
        return pfail(p, "Syntax error; token: \"<EOF>\", near: \"%.*s\"", (int)(b - a),
                     e->text + a);
    }
    a = i ? e->toks[i - 1].pos : t->pos;
    const tok_t *nx = &e->toks[i + 1];
    b = nx->t == T_EOF ? t->pos + t->len : nx->pos + nx->len;
    return pfail(p, "Syntax error; token: \"%.*s\", near: \"%.*s\"", TOKTEXT(e, i), (int)(b - a),
                 e->text + a);
}

static bool expect(parser_t *p, int t) {
    if (at(p, t)) {
        p->i++;
        return true;
    }
    syntax(p);
    return false;
}

static bool nest_in(parser_t *p) {
    if (++p->depth > EXPR_MAX_NEST) {
        syntax(p);
        return false;
    }
    return true;
}

static node_t *mk(parser_t *p, int kind, uint32_t tok) {
    node_t *n = ex_alloc(p->e, sizeof *n);
    n->kind = kind;
    n->tok = tok;
    return n;
}

static node_t *mk2(parser_t *p, int kind, int op, uint32_t tok, node_t *a, node_t *b) {
    node_t *n = mk(p, kind, tok);
    n->op = op;
    n->k = ex_alloc(p->e, 2 * sizeof *n->k);
    n->k[0] = a;
    n->k[1] = b;
    n->nk = b ? 2 : 1;
    return n;
}

static bool is_cond_node(const node_t *n) {
    return n->kind == N_CMP || n->kind == N_BETWEEN || n->kind == N_IN || n->kind == N_AND ||
           n->kind == N_OR || n->kind == N_NOT;
}

static int fn_of(const char *s, size_t n) {
    static const struct {
        const char *name;
        int fn;
    } fns[] = {
        {"attribute_exists", F_EXISTS},     {"attribute_not_exists", F_NOT_EXISTS},
        {"attribute_type", F_TYPE},         {"begins_with", F_BEGINS},
        {"contains", F_CONTAINS},           {"size", F_SIZE},
        {"if_not_exists", F_IF_NOT_EXISTS}, {"list_append", F_LIST_APPEND},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) /* case-sensitive, as DynamoDB */
        if (strlen(fns[i].name) == n && memcmp(fns[i].name, s, n) == 0) return fns[i].fn;
    return F_UNKNOWN;
}

/* name := IDENT | #ref */
static bool parse_name_el(parser_t *p, pel_t *el) {
    tbl_expr_t *e = p->e;
    const tok_t *t = &e->toks[p->i];
    memset(el, 0, sizeof *el);
    el->tok = p->i;
    if (t->t == T_IDENT && !grammar_kw(e, p->i)) {
        char *s = ex_alloc(e, (size_t)t->len + 1);
        memcpy(s, e->text + t->pos, t->len);
        el->src = EL_IDENT;
        el->name = s;
        el->nlen = t->len;
        p->i++;
        return true;
    }
    if (t->t == T_NAME) {
        el->src = EL_REF;
        p->i++;
        return true;
    }
    syntax(p);
    return false;
}

/* path := name ( '.' name | '[' digits ']' )* */
static node_t *parse_path(parser_t *p) {
    node_t *n = mk(p, N_PATH, p->i);
    uint32_t cap = 0;
    pel_t el;
    if (!parse_name_el(p, &el)) return NULL;
    n->el = ex_grow(p->e, n->el, n->nel, &cap, sizeof el);
    n->el[n->nel++] = el;
    for (;;) {
        if (at(p, T_DOT)) {
            p->i++;
            if (!parse_name_el(p, &el)) return NULL;
        } else if (at(p, T_LB)) {
            p->i++;
            if (!at(p, T_NUM)) return syntax(p);
            const tok_t *t = &p->e->toks[p->i];
            uint64_t v = 0;
            for (uint32_t j = 0; j < t->len && v <= EXPR_MAX_INDEX; j++)
                v = v * 10 + (uint64_t)(p->e->text[t->pos + j] - '0');
            if (v > EXPR_MAX_INDEX) return syntax(p);
            memset(&el, 0, sizeof el);
            el.src = EL_INDEX;
            el.tok = p->i;
            el.idx = (uint32_t)v;
            p->i++;
            if (!expect(p, T_RB)) return NULL;
        } else {
            break;
        }
        n->el = ex_grow(p->e, n->el, n->nel, &cap, sizeof el);
        n->el[n->nel++] = el;
    }
    return n;
}

static node_t *parse_or(parser_t *p);
static node_t *parse_operand(parser_t *p, int ctx);
static node_t *parse_set_expr(parser_t *p);

/* func := IDENT '(' arg (',' arg)* ')'; arguments are operands (conditions) or SET values. */
static node_t *parse_func(parser_t *p, bool update) {
    tbl_expr_t *e = p->e;
    node_t *n = mk(p, N_FUNC, p->i);
    n->fn = fn_of(e->text + e->toks[p->i].pos, e->toks[p->i].len);
    p->i += 2; /* name and '(' */
    if (!nest_in(p)) return NULL;
    uint32_t cap = 0;
    for (;;) {
        node_t *a = update ? parse_set_expr(p) : parse_operand(p, CTX_OPERAND);
        if (!a) return NULL;
        n->k = ex_grow(e, n->k, n->nk, &cap, sizeof *n->k);
        n->k[n->nk++] = a;
        if (!at(p, T_COMMA)) break;
        p->i++;
    }
    if (!expect(p, T_RP)) return NULL;
    p->depth--;
    return n;
}

/* A node just wrapped in one more pair of parentheses. */
static node_t *wrapped(parser_t *p, node_t *x) {
    if (++x->parens > 1) return pfail(p, "The expression has redundant parentheses;");
    return x;
}

/* operand := '(' (condition | operand) ')' | func | path | :value
 * In CTX_COND the parentheses may hold a whole condition; in CTX_OPERAND only an operand. */
static node_t *parse_operand(parser_t *p, int ctx) {
    tbl_expr_t *e = p->e;
    if (at(p, T_LP)) {
        p->i++;
        if (!nest_in(p)) return NULL;
        node_t *x = ctx == CTX_COND ? parse_or(p) : parse_operand(p, CTX_OPERAND);
        if (!x || !expect(p, T_RP)) return NULL;
        p->depth--;
        return wrapped(p, x);
    }
    if (at(p, T_IDENT) && e->toks[p->i + 1].t == T_LP && !grammar_kw(e, p->i))
        return parse_func(p, false);
    if (at(p, T_NAME) || (at(p, T_IDENT) && !grammar_kw(e, p->i))) return parse_path(p);
    if (at(p, T_VALUE)) {
        node_t *n = mk(p, N_VALUE, p->i);
        p->i++;
        return n;
    }
    return syntax(p);
}

static int cmp_tok(int t) { return t >= T_EQ && t <= T_GE; }

/* pred := operand [comparator operand | BETWEEN operand AND operand | IN '(' operand, ... ')']
 * May return a bare operand: callers that need a condition check with need_cond. */
static node_t *parse_pred(parser_t *p) {
    node_t *a = parse_operand(p, CTX_COND);
    if (!a) return NULL;
    uint32_t optok = p->i;
    int t = p->e->toks[p->i].t;
    bool between = at_kw(p, "BETWEEN"), in = at_kw(p, "IN");
    if (!cmp_tok(t) && !between && !in) return a;
    if (is_cond_node(a)) return syntax(p);
    p->i++;
    if (cmp_tok(t)) {
        node_t *b = parse_operand(p, CTX_OPERAND);
        return b ? mk2(p, N_CMP, t, optok, a, b) : NULL;
    }
    if (between) {
        node_t *lo = parse_operand(p, CTX_OPERAND);
        if (!lo) return NULL;
        if (!at_kw(p, "AND")) return syntax(p);
        p->i++;
        node_t *hi = parse_operand(p, CTX_OPERAND);
        if (!hi) return NULL;
        node_t *n = mk(p, N_BETWEEN, optok);
        n->k = ex_alloc(p->e, 3 * sizeof *n->k);
        n->k[0] = a;
        n->k[1] = lo;
        n->k[2] = hi;
        n->nk = 3;
        return n;
    }
    node_t *n = mk(p, N_IN, optok);
    uint32_t cap = 0;
    n->k = ex_grow(p->e, n->k, 0, &cap, sizeof *n->k);
    n->k[n->nk++] = a;
    if (!expect(p, T_LP)) return NULL;
    for (;;) {
        node_t *x = parse_operand(p, CTX_OPERAND);
        if (!x) return NULL;
        n->k = ex_grow(p->e, n->k, n->nk, &cap, sizeof *n->k);
        n->k[n->nk++] = x;
        if (!at(p, T_COMMA)) break;
        p->i++;
    }
    return expect(p, T_RP) ? n : NULL;
}

/* A bare path or value where a condition is required is a syntax error at the next token.
 * (Functions are placed by the checker, which knows which ones are conditions.) */
static bool need_cond(parser_t *p, const node_t *x) {
    if (x->kind == N_PATH || x->kind == N_VALUE || x->kind == N_ARITH) {
        syntax(p);
        return false;
    }
    return true;
}

/* not := NOT not | pred */
static node_t *parse_not(parser_t *p) {
    if (!at_kw(p, "NOT")) return parse_pred(p);
    uint32_t tok = p->i++;
    if (!nest_in(p)) return NULL;
    node_t *x = parse_not(p);
    if (!x || !need_cond(p, x)) return NULL;
    p->depth--;
    return mk2(p, N_NOT, 0, tok, x, NULL);
}

/* and := not (AND not)* -- NOT binds tighter than AND, AND tighter than OR. */
static node_t *parse_and(parser_t *p) {
    node_t *l = parse_not(p);
    while (l && at_kw(p, "AND")) {
        if (!need_cond(p, l)) return NULL;
        uint32_t tok = p->i++;
        node_t *r = parse_not(p);
        if (!r || !need_cond(p, r)) return NULL;
        l = mk2(p, N_AND, 0, tok, l, r);
    }
    return l;
}

static node_t *parse_or(parser_t *p) {
    node_t *l = parse_and(p);
    while (l && at_kw(p, "OR")) {
        if (!need_cond(p, l)) return NULL;
        uint32_t tok = p->i++;
        node_t *r = parse_and(p);
        if (!r || !need_cond(p, r)) return NULL;
        l = mk2(p, N_OR, 0, tok, l, r);
    }
    return l;
}

/* set_term := '(' set_expr ')' | func | path | :value */
static node_t *parse_set_term(parser_t *p) {
    tbl_expr_t *e = p->e;
    if (at(p, T_LP)) {
        p->i++;
        if (!nest_in(p)) return NULL;
        node_t *x = parse_set_expr(p);
        if (!x || !expect(p, T_RP)) return NULL;
        p->depth--;
        return wrapped(p, x);
    }
    if (at(p, T_IDENT) && e->toks[p->i + 1].t == T_LP && !grammar_kw(e, p->i))
        return parse_func(p, true);
    if (at(p, T_NAME) || (at(p, T_IDENT) && !grammar_kw(e, p->i))) return parse_path(p);
    if (at(p, T_VALUE)) {
        node_t *n = mk(p, N_VALUE, p->i);
        p->i++;
        return n;
    }
    return syntax(p);
}

/* set_expr := set_term [('+' | '-') set_term] */
static node_t *parse_set_expr(parser_t *p) {
    node_t *l = parse_set_term(p);
    if (!l || (!at(p, T_PLUS) && !at(p, T_MINUS))) return l;
    uint32_t tok = p->i;
    int op = p->e->toks[p->i++].t;
    node_t *r = parse_set_term(p);
    return r ? mk2(p, N_ARITH, op, tok, l, r) : NULL;
}

static int clause_at(const parser_t *p) {
    if (at_kw(p, "SET")) return A_SET;
    if (at_kw(p, "REMOVE")) return A_REMOVE;
    if (at_kw(p, "ADD")) return A_ADD;
    if (at_kw(p, "DELETE")) return A_DELETE;
    return -1;
}

/* update := clause+ ; clause := SET path '=' set_expr, ... | REMOVE path, ...
 *                             | ADD path :value, ... | DELETE path :value, ... */
static bool parse_update(parser_t *p) {
    tbl_expr_t *e = p->e;
    uint32_t cap = 0;
    bool seen[4] = {false, false, false, false};
    e->dup_section = -1;
    while (!at(p, T_EOF)) {
        int c = clause_at(p);
        if (c < 0) return syntax(p), false;
        if (seen[c] && e->dup_section < 0) e->dup_section = c;
        seen[c] = true;
        p->i++;
        for (;;) {
            act_t a = {c, NULL, NULL};
            if (!(a.path = parse_path(p))) return false;
            if (c == A_SET) {
                if (!expect(p, T_EQ) || !(a.val = parse_set_expr(p))) return false;
            } else if (c == A_ADD || c == A_DELETE) {
                if (!at(p, T_VALUE)) return syntax(p), false;
                a.val = mk(p, N_VALUE, p->i++);
            }
            e->acts = ex_grow(e, e->acts, e->nacts, &cap, sizeof a);
            e->acts[e->nacts++] = a;
            if (!at(p, T_COMMA)) break;
            p->i++;
        }
        if (!at(p, T_EOF) && clause_at(p) < 0) return syntax(p), false;
    }
    return true;
}

static bool parse_projection(parser_t *p) {
    tbl_expr_t *e = p->e;
    uint32_t cap = 0;
    for (;;) {
        node_t *x = parse_path(p);
        if (!x) return false;
        e->paths = ex_grow(e, e->paths, e->npaths, &cap, sizeof x);
        e->paths[e->npaths++] = x;
        if (!at(p, T_COMMA)) break;
        p->i++;
    }
    if (!at(p, T_EOF)) return syntax(p), false;
    return true;
}

static bool parse_condition(parser_t *p) {
    node_t *x = parse_or(p);
    if (!x) return false;
    if (!at(p, T_EOF)) return syntax(p), false;
    if (!need_cond(p, x)) return false;
    p->e->root = x;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Semantic checks                                                                             */
/* ------------------------------------------------------------------------------------------ */

static void note(chk_t *c, int cls, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(chk_t *c, int cls, const char *fmt, ...) {
    if (c->has[cls]) return;
    char *m = c->msg[cls];
    int n = snprintf(m, TR_ERR_MSG_MAX, "Invalid %s: ", c->e->what);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m + n, TR_ERR_MSG_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    c->has[cls] = true;
}

static void mark_used(json_t **set, const char *key, size_t len) {
    if (!*set && !(*set = json_object())) tbl__expr_oom();
    json_object_setn_new(*set, key, len, json_true());
}

static bool path_resolved(const node_t *p) {
    for (uint32_t i = 0; i < p->nel; i++)
        if (p->el[i].src != EL_INDEX && !p->el[i].name) return false;
    return true;
}

bool tbl__expr_path_eq(const node_t *a, const node_t *b) {
    if (a->nel != b->nel || !path_resolved(a) || !path_resolved(b)) return false;
    for (uint32_t i = 0; i < a->nel; i++) {
        const pel_t *x = &a->el[i], *y = &b->el[i];
        if ((x->src == EL_INDEX) != (y->src == EL_INDEX)) return false;
        if (x->src == EL_INDEX ? x->idx != y->idx
                               : x->nlen != y->nlen || memcmp(x->name, y->name, x->nlen) != 0)
            return false;
    }
    return true;
}

/* Reserved words and #name resolution, in text order. */
static void chk_path(chk_t *c, node_t *n) {
    tbl_expr_t *e = c->e;
    for (uint32_t i = 0; i < n->nel; i++) {
        pel_t *el = &n->el[i];
        if (el->src == EL_IDENT && is_reserved(el->name, el->nlen)) {
            note(c, C_RESERVED, "Attribute name is a reserved keyword; reserved keyword: %.*s",
                 TOKTEXT(e, el->tok));
        } else if (el->src == EL_REF) {
            const tok_t *t = &e->toks[el->tok];
            json_t *v = e->names ? json_object_getn(e->names, e->text + t->pos, t->len) : NULL;
            if (!json_is_string(v)) {
                note(c, C_NAME,
                     "An expression attribute name used in the document path is not defined; "
                     "attribute name: %.*s",
                     TOKTEXT(e, el->tok));
                continue;
            }
            el->name = json_string_value(v);
            el->nlen = json_string_length(v);
            if (c->u) mark_used(&c->u->names_used, e->text + t->pos, t->len);
        }
    }
}

static void chk_value(chk_t *c, node_t *n) {
    tbl_expr_t *e = c->e;
    const tok_t *t = &e->toks[n->tok];
    json_t *v = e->values ? json_object_getn(e->values, e->text + t->pos, t->len) : NULL;
    if (!v) {
        note(c, C_VALUE,
             "An expression attribute value used in expression is not defined; "
             "attribute value: %.*s",
             TOKTEXT(e, n->tok));
        return;
    }
    n->val = v;
    if (c->u) mark_used(&c->u->values_used, e->text + t->pos, t->len);
}

static bool fn_is_cond(int fn) {
    return fn == F_EXISTS || fn == F_NOT_EXISTS || fn == F_TYPE || fn == F_BEGINS ||
           fn == F_CONTAINS;
}

/* Pre-order walk: function names and placement, reserved words, #names, :values. */
static void walk1(chk_t *c, node_t *n, int ctx) {
    tbl_expr_t *e = c->e;
    switch (n->kind) {
    case N_PATH: chk_path(c, n); return;
    case N_VALUE: chk_value(c, n); return;
    case N_FUNC: {
        if (n->fn == F_UNKNOWN) {
            note(c, C_FUNCNAME, "Invalid function name; function: %.*s", TOKTEXT(e, n->tok));
        } else {
            bool ok;
            if (ctx == CTX_COND) ok = fn_is_cond(n->fn);
            else if (e->kind == TBL_EXPR_UPDATE)
                ok = n->fn == F_IF_NOT_EXISTS || n->fn == F_LIST_APPEND;
            else ok = n->fn == F_SIZE;
            if (!ok)
                note(c, C_FUNCUSE,
                     "The function is not allowed to be used this way in an expression; "
                     "function: %.*s",
                     TOKTEXT(e, n->tok));
        }
        for (uint32_t i = 0; i < n->nk; i++) walk1(c, n->k[i], CTX_OPERAND);
        return;
    }
    case N_AND:
    case N_OR:
    case N_NOT:
        for (uint32_t i = 0; i < n->nk; i++) walk1(c, n->k[i], CTX_COND);
        return;
    default:
        for (uint32_t i = 0; i < n->nk; i++) walk1(c, n->k[i], CTX_OPERAND);
        return;
    }
}

/* Type of an operand known before any item is seen, -1 when it depends on the item. */
static int static_type(const node_t *n) {
    if (n->kind == N_VALUE) return n->val ? tbl_av_type(n->val) : -1;
    if (n->kind == N_FUNC && n->fn == F_SIZE) return TBL_T_N;
    return -1;
}

static const char *op_text(int op) {
    switch (op) {
    case T_EQ: return "=";
    case T_NE: return "<>";
    case T_LT: return "<";
    case T_LE: return "<=";
    case T_GT: return ">";
    case T_GE: return ">=";
    case T_PLUS: return "+";
    default: return "-";
    }
}

/* "operator or function" name of a node, for messages. */
static void node_opname(const tbl_expr_t *e, const node_t *n, char *out, size_t cap) {
    if (n->kind == N_FUNC) snprintf(out, cap, "%.*s", TOKTEXT(e, n->tok));
    else if (n->kind == N_BETWEEN) snprintf(out, cap, "BETWEEN");
    else if (n->kind == N_IN) snprintf(out, cap, "IN");
    else snprintf(out, cap, "%s", op_text(n->op));
}

static void bad_type(chk_t *c, const node_t *n, int t) {
    char op[64];
    node_opname(c->e, n, op, sizeof op);
    note(c, C_FUNC,
         "Incorrect operand type for operator or function; operator or function: %s, "
         "operand type: %s",
         op, tbl_type_name(t));
}

static void chk_between_bounds(chk_t *c, const node_t *n) {
    const node_t *lo = n->k[1], *hi = n->k[2];
    if (lo->kind != N_VALUE || hi->kind != N_VALUE || !lo->val || !hi->val) return;
    int tl = tbl_av_type(lo->val), th = tbl_av_type(hi->val);
    const char *what = NULL;
    if (tl != th) what = "requires same data type for lower and upper bounds";
    else if (tbl_av_cmp(lo->val, hi->val) > 0)
        what = "requires upper bound to be greater than or equal to lower bound";
    if (!what) return;
    tr_buf b = TR_BUF_INIT;
    tr_buf_puts(&b, "lower bound operand: AttributeValue: ");
    av_render(&b, lo->val);
    tr_buf_puts(&b, ", upper bound operand: AttributeValue: ");
    av_render(&b, hi->val);
    note(c, C_FUNC, "The BETWEEN operator %s; %s", what, b.data);
    tr_buf_free(&b);
}

static void chk_distinct(chk_t *c, const node_t *n) {
    const node_t *first = n->k[0];
    if (first->kind != N_PATH) return;
    for (uint32_t i = 1; i < n->nk; i++) {
        if (n->k[i]->kind != N_PATH || !tbl__expr_path_eq(first, n->k[i])) continue;
        char op[64];
        node_opname(c->e, n, op, sizeof op);
        tr_buf b = TR_BUF_INIT;
        path_render(&b, first);
        note(c, C_DISTINCT,
             "The first operand must be distinct from the remaining operands for "
             "this operator or function; operator: %s, first operand: %s",
             op, b.data);
        tr_buf_free(&b);
        return;
    }
}

static const char *const type_names_msg = "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}";

static void chk_func(chk_t *c, const node_t *n) {
    tbl_expr_t *e = c->e;
    uint32_t want = n->fn == F_EXISTS || n->fn == F_NOT_EXISTS || n->fn == F_SIZE ? 1 : 2;
    if (n->fn == F_UNKNOWN) return;
    if (n->nk != want) {
        note(c, C_FUNC,
             "Incorrect number of operands for operator or function; operator or "
             "function: %.*s, number of operands: %u",
             TOKTEXT(e, n->tok), n->nk);
        return;
    }
    if ((n->fn == F_EXISTS || n->fn == F_NOT_EXISTS || n->fn == F_TYPE ||
         n->fn == F_IF_NOT_EXISTS) &&
        n->k[0]->kind != N_PATH) {
        note(c, C_FUNC,
             "Operator or function requires a document path; operator or function: "
             "%.*s",
             TOKTEXT(e, n->tok));
        return;
    }
    switch (n->fn) {
    case F_TYPE: {
        int t = static_type(n->k[1]);
        if (t < 0) break;
        if (t != TBL_T_S) {
            bad_type(c, n, t);
            break;
        }
        const json_t *s = tbl__expr_av_inner(n->k[1]->val, NULL);
        bool ok = false;
        for (int i = 0; i < TBL_T_INVALID && !ok; i++)
            ok = strlen(tbl_type_name(i)) == json_string_length(s) &&
                 strcmp(tbl_type_name(i), json_string_value(s)) == 0;
        if (!ok)
            note(c, C_FUNC, "Invalid attribute type name found; type: %s, valid types: %s",
                 json_string_value(s), type_names_msg);
        break;
    }
    case F_BEGINS:
        for (uint32_t i = 0; i < 2; i++) {
            int t = static_type(n->k[i]);
            if (t >= 0 && t != TBL_T_S && t != TBL_T_B) {
                bad_type(c, n, t);
                break;
            }
        }
        break;
    case F_SIZE: {
        int t = static_type(n->k[0]);
        if (t == TBL_T_N || t == TBL_T_BOOL || t == TBL_T_NULL || t == TBL_T_INVALID)
            bad_type(c, n, t);
        break;
    }
    case F_LIST_APPEND:
        for (uint32_t i = 0; i < 2; i++) {
            int t = static_type(n->k[i]);
            if (t >= 0 && t != TBL_T_L) {
                bad_type(c, n, t);
                break;
            }
        }
        break;
    default: break;
    }
}

/* Post-order walk: operand counts and types, BETWEEN / IN limits, distinct operands. */
static void walk2(chk_t *c, const node_t *n) {
    for (uint32_t i = 0; i < n->nk; i++) walk2(c, n->k[i]);
    switch (n->kind) {
    case N_FUNC:
        chk_func(c, n);
        if (n->fn == F_BEGINS || n->fn == F_CONTAINS || n->fn == F_TYPE) chk_distinct(c, n);
        break;
    case N_ARITH:
        for (uint32_t i = 0; i < 2; i++) {
            int t = static_type(n->k[i]);
            if (t >= 0 && t != TBL_T_N) {
                bad_type(c, n, t);
                break;
            }
        }
        break;
    case N_CMP:
    case N_BETWEEN:
        if (n->kind == N_BETWEEN || (n->op != T_EQ && n->op != T_NE)) {
            for (uint32_t i = 0; i < n->nk; i++) {
                int t = static_type(n->k[i]);
                if (t >= 0 && t != TBL_T_S && t != TBL_T_N && t != TBL_T_B) {
                    bad_type(c, n, t);
                    break;
                }
            }
        }
        if (n->kind == N_BETWEEN) chk_between_bounds(c, n);
        chk_distinct(c, n);
        break;
    case N_IN:
        if (n->nk - 1 > EXPR_MAX_IN)
            note(c, C_FUNC,
                 "The IN operator is provided with too many operands; number of "
                 "operands: %u",
                 n->nk - 1);
        chk_distinct(c, n);
        break;
    default: break;
    }
}

/* Two document paths of one update / projection: 0 unrelated, 1 overlap (one is a prefix of the
 * other), 2 conflict (the same prefix is used both as a map and as a list). */
static int path_relation(const node_t *a, const node_t *b) {
    uint32_t m = a->nel < b->nel ? a->nel : b->nel;
    for (uint32_t i = 0; i < m; i++) {
        const pel_t *x = &a->el[i], *y = &b->el[i];
        bool xi = x->src == EL_INDEX, yi = y->src == EL_INDEX;
        if (xi != yi) return 2;
        if (xi ? x->idx != y->idx : x->nlen != y->nlen || memcmp(x->name, y->name, x->nlen) != 0)
            return 0;
    }
    return 1;
}

static void chk_paths(chk_t *c, node_t *const *paths, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        if (!path_resolved(paths[i])) return;
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = i + 1; j < n; j++) {
            int r = path_relation(paths[i], paths[j]);
            if (!r) continue;
            int cls = r == 1 ? C_OVERLAP : C_CONFLICT;
            if (c->has[cls]) continue;
            tr_buf a = TR_BUF_INIT, b = TR_BUF_INIT;
            path_render(&a, paths[i]);
            path_render(&b, paths[j]);
            note(c, cls,
                 "Two document paths %s with each other; must remove or rewrite one of "
                 "these paths; path one: %s, path two: %s",
                 r == 1 ? "overlap" : "conflict", a.data, b.data);
            tr_buf_free(&a);
            tr_buf_free(&b);
        }
    }
}

static const char *const section_names[] = {"SET", "REMOVE", "ADD", "DELETE"};

static int check(tbl_expr_t *e, tbl_expr_usage_t *u, tr_err *err) {
    chk_t *c = tr_xcalloc(1, sizeof *c);
    c->e = e;
    c->u = u;
    if (e->kind == TBL_EXPR_UPDATE) {
        if (e->dup_section >= 0)
            note(c, C_SECTION,
                 "The \"%s\" section can only be used once in an update "
                 "expression;",
                 section_names[e->dup_section]);
        for (uint32_t i = 0; i < e->nacts; i++) {
            walk1(c, e->acts[i].path, CTX_OPERAND);
            if (e->acts[i].val) walk1(c, e->acts[i].val, CTX_OPERAND);
        }
        for (uint32_t i = 0; i < e->nacts; i++) {
            const act_t *a = &e->acts[i];
            if ((a->type != A_ADD && a->type != A_DELETE) || !a->val->val) continue;
            int t = tbl_av_type(a->val->val);
            bool ok = is_set_type(t) || (a->type == A_ADD && t == TBL_T_N);
            if (!ok)
                note(c, C_ADDDEL,
                     "Incorrect operand type for operator or function; operator: "
                     "%s, operand type: %s",
                     section_names[a->type], long_type(t));
        }
        node_t **paths = tr_xcalloc(e->nacts, sizeof *paths);
        for (uint32_t i = 0; i < e->nacts; i++) paths[i] = e->acts[i].path;
        chk_paths(c, paths, e->nacts);
        free(paths);
        for (uint32_t i = 0; i < e->nacts; i++)
            if (e->acts[i].type == A_SET) walk2(c, e->acts[i].val);
    } else if (e->kind == TBL_EXPR_PROJECTION) {
        for (uint32_t i = 0; i < e->npaths; i++) walk1(c, e->paths[i], CTX_OPERAND);
        chk_paths(c, e->paths, e->npaths);
    } else {
        walk1(c, e->root, CTX_COND);
        walk2(c, e->root);
    }
    int rc = 0;
    for (int i = 0; i < C_NCLASS; i++) {
        if (c->has[i]) {
            rc = tr_err_set(err, TR_EVALIDATION, "%s", c->msg[i]);
            break;
        }
    }
    free(c);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Parse / free / usage                                                                        */
/* ------------------------------------------------------------------------------------------ */

void tbl_expr_free(tbl_expr_t *e) {
    if (!e) return;
    for (size_t i = 0; i < e->nmem; i++) free(e->mem[i]);
    free(e->mem);
    free(e);
}

int tbl_expr_parse(int kind, const char *text, json_t *names, json_t *values,
                   tbl_expr_usage_t *usage, tbl_expr_t **out, tr_err *err) {
    if (!out || !text || kind < TBL_EXPR_CONDITION || kind > TBL_EXPR_PROJECTION)
        return tr_err_set(err, TR_EINVAL,
                          "tbl_expr_parse: text, out and a TBL_EXPR_* kind are "
                          "required");
    *out = NULL;
    const char *what = what_of(kind);
    size_t len = strlen(text);
    if (len > EXPR_MAX_BYTES)
        return tr_err_set(err, TR_EVALIDATION,
                          "Invalid %s: Expression size has exceeded the "
                          "maximum allowed size; expression size: %zu",
                          what, len);
    if (strspn(text, " \t\r\n") == len)
        return tr_err_set(err, TR_EVALIDATION, "Invalid %s: The expression can not be empty;",
                          what);
    tbl_expr_t *e = tr_xcalloc(1, sizeof *e);
    e->kind = kind;
    e->what = what;
    e->names = names;
    e->values = values;
    e->len = (uint32_t)len;
    e->text = ex_alloc(e, len + 1);
    memcpy(e->text, text, len);
    lex(e);
    parser_t p = {e, 0, 0, 0, err};
    bool ok;
    if (kind == TBL_EXPR_UPDATE) ok = parse_update(&p);
    else if (kind == TBL_EXPR_PROJECTION) ok = parse_projection(&p);
    else ok = parse_condition(&p);
    int rc = ok ? check(e, usage, err) : TR_EVALIDATION;
    if (rc) {
        tbl_expr_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void tbl_expr_usage_free(tbl_expr_usage_t *u) {
    if (!u) return;
    json_decref(u->names_used);
    json_decref(u->values_used);
    u->names_used = u->values_used = NULL;
}

static int unused(const json_t *defined, const json_t *used, const char *what, tr_err *err) {
    if (!json_is_object(defined)) return 0;
    tr_buf b = TR_BUF_INIT;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)defined, key, v) {
        if (used && json_object_get(used, key)) continue;
        if (b.len) tr_buf_puts(&b, ", ");
        tr_buf_puts(&b, key);
    }
    int rc = 0;
    if (b.len)
        rc = tr_err_set(err, TR_EVALIDATION,
                        "Value provided in %s unused in expressions: keys: "
                        "{%s}",
                        what, b.data);
    tr_buf_free(&b);
    return rc;
}

int tbl_expr_usage_check(const tbl_expr_usage_t *u, const json_t *names, const json_t *values,
                         tr_err *err) {
    if (!u) return tr_err_set(err, TR_EINVAL, "tbl_expr_usage_check: usage is required");
    int rc = unused(names, u->names_used, "ExpressionAttributeNames", err);
    if (!rc) rc = unused(values, u->values_used, "ExpressionAttributeValues", err);
    return rc;
}
