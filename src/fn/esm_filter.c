/* SPDX-License-Identifier: Apache-2.0
 *
 * esm_filter.c -- FilterCriteria of event-source mappings: AWS's event-pattern grammar applied to
 * Kinesis records (see esm.h).
 *
 * A record is matched as the object
 *     {"kinesisSchemaVersion":"1.0","partitionKey":..,"sequenceNumber":..,
 *      "approximateArrivalTimestamp":<seconds>,"data":<the data parsed as JSON>}
 * ("data" absent when the bytes are not JSON: then any pattern on data fails, as AWS drops
 * records whose data cannot be filtered).  A mapping's filters are OR'ed; inside a pattern,
 * keys are AND'ed and the values of one key's array are OR'ed.  A value rule is:
 *     "s" / 5 / true       equality (numbers compare numerically)
 *     null                 the field is present and null
 *     ""                   the field is the empty string
 *     {"prefix":"s"}  {"suffix":"s"}  {"equals-ignore-case":"s"}  {"wildcard":"a*b"}
 *     {"anything-but": v | [v...] | {"prefix":..} | {"suffix":..} | {"equals-ignore-case":..}}
 *     {"numeric":[">",0,"<=",5]}   (one or two comparisons; "=" too)
 *     {"exists":true|false}
 *     {"cidr":"10.0.0.0/24"}       (IPv4)
 * When the record's field is an array, a rule matches if any element matches.
 *
 * Patterns are validated once at compile (so a bad one is an InvalidParameterValue at create,
 * never a surprise at run time) and kept as jansson trees.  Matching costs one JSON parse of the
 * record's data per record, done only when some pattern looks at "data".
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fn/esm.h"

struct esm_filter {
    json_t *patterns[ESM_MAX_FILTERS];    /* objects */
    size_t n;
    int needs_data;
};

/* ---- validation ------------------------------------------------------------------------------ */

static int bad(tr_err *err, const char *fmt, const char *detail) {
    return tr_err_set(err, TR_EINVAL, fmt, detail);
}

static int check_numeric(json_t *arr, tr_err *err) {
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || (n != 2 && n != 4))
        return bad(err,
                   "Invalid filter pattern: \"numeric\" takes [op, number] or [op, number, op, "
                   "number]%s",
                   "");
    for (size_t i = 0; i < n; i += 2) {
        json_t *op = json_array_get(arr, i), *v = json_array_get(arr, i + 1);
        const char *o = json_string_value(op);
        if (!o || (strcmp(o, "<") && strcmp(o, "<=") && strcmp(o, ">") && strcmp(o, ">=") &&
                   strcmp(o, "=")))
            return bad(err,
                       "Invalid filter pattern: \"numeric\" operator %s is not one of < <= > >= =",
                       o ? o : "(not a string)");
        if (!json_is_number(v))
            return bad(err, "Invalid filter pattern: \"numeric\" needs a number after %s", o);
    }
    return 0;
}

static int check_rule(json_t *r, tr_err *err);

static int check_anything_but(json_t *v, tr_err *err) {
    if (json_is_string(v) || json_is_number(v)) return 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) if (!json_is_string(e) && !json_is_number(e)) return bad(
            err, "Invalid filter pattern: \"anything-but\" lists strings or numbers%s", "");
        return json_array_size(v)
                   ? 0
                   : bad(err, "Invalid filter pattern: empty \"anything-but\"%s", "");
    }
    if (json_is_object(v) && json_object_size(v) == 1) {
        json_t *s;
        if ((s = json_object_get(v, "prefix")) || (s = json_object_get(v, "suffix")) ||
            (s = json_object_get(v, "equals-ignore-case")))
            return json_is_string(s) ? 0
                                     : bad(err,
                                           "Invalid filter pattern: \"anything-but\" "
                                           "%s needs a string",
                                           "operand");
    }
    return bad(err,
               "Invalid filter pattern: \"anything-but\" takes a value, a list, or "
               "{\"prefix\"|\"suffix\"|\"equals-ignore-case\": string}%s",
               "");
}

static int check_rule(json_t *r, tr_err *err) {
    if (json_is_string(r) || json_is_number(r) || json_is_boolean(r) || json_is_null(r)) return 0;
    if (!json_is_object(r) || json_object_size(r) != 1)
        return bad(err, "Invalid filter pattern: a rule is a value or a one-key operator object%s",
                   "");
    const char *op = json_object_iter_key(json_object_iter(r));
    json_t *v = json_object_iter_value(json_object_iter(r));
    if (!strcmp(op, "prefix") || !strcmp(op, "suffix") || !strcmp(op, "equals-ignore-case") ||
        !strcmp(op, "wildcard")) {
        if (json_is_string(v)) return 0;
        if (!strcmp(op, "prefix") && json_is_object(v) &&
            json_is_string(json_object_get(v, "equals-ignore-case")))
            return 0;
        return bad(err, "Invalid filter pattern: \"%s\" needs a string", op);
    }
    if (!strcmp(op, "exists"))
        return json_is_boolean(v)
                   ? 0
                   : bad(err, "Invalid filter pattern: \"exists\" needs true or false%s", "");
    if (!strcmp(op, "numeric")) return check_numeric(v, err);
    if (!strcmp(op, "anything-but")) return check_anything_but(v, err);
    if (!strcmp(op, "cidr")) {
        const char *s = json_string_value(v);
        struct in_addr a;
        char ip[32];
        const char *slash = s ? strchr(s, '/') : NULL;
        if (!s || !slash || (size_t)(slash - s) >= sizeof ip) goto badcidr;
        memcpy(ip, s, (size_t)(slash - s));
        ip[slash - s] = 0;
        int bits = atoi(slash + 1);
        if (inet_pton(AF_INET, ip, &a) != 1 || bits < 0 || bits > 32) goto badcidr;
        return 0;
    badcidr:
        return bad(err, "Invalid filter pattern: \"cidr\" needs an IPv4 \"a.b.c.d/n\"%s", "");
    }
    return bad(err, "Invalid filter pattern: unknown operator \"%s\"", op);
}

static int check_pattern(json_t *p, int depth, tr_err *err) {
    if (depth > 32) return bad(err, "Invalid filter pattern: nested too deeply%s", "");
    const char *k;
    json_t *v;
    if (!json_object_size(p))
        return bad(err, "Invalid filter pattern: an empty object matches nothing%s", "");
    json_object_foreach(p, k, v) {
        if (json_is_object(v)) {
            if (check_pattern(v, depth + 1, err)) return TR_EINVAL;
        } else if (json_is_array(v)) {
            if (!json_array_size(v))
                return bad(err, "Invalid filter pattern: the list for \"%s\" is empty", k);
            size_t i;
            json_t *r;
            json_array_foreach(v, i, r) if (check_rule(r, err)) return TR_EINVAL;
        } else {
            return bad(err,
                       "Invalid filter pattern: the value of \"%s\" must be a list of rules "
                       "or an object",
                       k);
        }
    }
    return 0;
}

int esm_filter_compile(const char *criteria_json, esm_filter_t **out, tr_err *err) {
    *out = NULL;
    if (!criteria_json || !*criteria_json) return 0;
    json_error_t je;
    json_t *root = json_loads(criteria_json, 0, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return tr_err_set(err, TR_EINVAL, "FilterCriteria is not a JSON object");
    }
    json_t *filters = json_object_get(root, "Filters");
    if (filters && !json_is_array(filters)) {
        json_decref(root);
        return tr_err_set(err, TR_EINVAL, "FilterCriteria.Filters must be a list");
    }
    size_t n = json_array_size(filters);
    if (n > ESM_MAX_FILTERS) {
        json_decref(root);
        return tr_err_set(err, TR_EINVAL, "FilterCriteria has %zu filters; at most %d are allowed",
                          n, ESM_MAX_FILTERS);
    }
    if (!n) {
        json_decref(root);
        return 0;
    }
    esm_filter_t *f = calloc(1, sizeof *f);
    if (!f) {
        json_decref(root);
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *pat = json_object_get(json_array_get(filters, i), "Pattern");
        const char *text = json_string_value(pat);
        if (!text) {
            rc = tr_err_set(err, TR_EINVAL,
                            "FilterCriteria.Filters[%zu].Pattern must be a string "
                            "holding a JSON pattern",
                            i);
            break;
        }
        if (strlen(text) > ESM_MAX_PATTERN) {
            rc = tr_err_set(err, TR_EINVAL,
                            "FilterCriteria.Filters[%zu].Pattern is longer than %d "
                            "characters",
                            i, ESM_MAX_PATTERN);
            break;
        }
        json_t *p = json_loads(text, 0, &je);
        if (!p || !json_is_object(p)) {
            json_decref(p);
            rc = tr_err_set(err, TR_EINVAL,
                            "Invalid filter pattern definition: Filters[%zu].Pattern "
                            "is not a JSON object (%s)",
                            i, p ? "not an object" : je.text);
            break;
        }
        f->patterns[f->n++] = p;
        rc = check_pattern(p, 0, err);
        if (json_object_get(p, "data")) f->needs_data = 1;
    }
    json_decref(root);
    if (rc) {
        esm_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

void esm_filter_free(esm_filter_t *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) json_decref(f->patterns[i]);
    free(f);
}

/* ---- matching -------------------------------------------------------------------------------- */

static int str_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }
static int str_suffix(const char *s, const char *x) {
    size_t a = strlen(s), b = strlen(x);
    return a >= b && !strcmp(s + a - b, x);
}

static int wildcard(const char *s, const char *p) {
    /* '*' matches any run; no other metacharacters. */
    const char *star = NULL, *ss = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            ss = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++ss;
        } else {
            return 0;
        }
    }
    while (*p == '*') p++;
    return *p == 0;
}

static int values_equal(json_t *rule, json_t *ev) {
    if (json_is_number(rule) && json_is_number(ev))
        return json_number_value(rule) == json_number_value(ev);
    if (json_is_string(rule) && json_is_string(ev))
        return !strcmp(json_string_value(rule), json_string_value(ev));
    if (json_is_boolean(rule) && json_is_boolean(ev)) return json_is_true(rule) == json_is_true(ev);
    if (json_is_null(rule)) return json_is_null(ev);
    return 0;
}

static int numeric(json_t *arr, double v) {
    for (size_t i = 0; i + 1 < json_array_size(arr); i += 2) {
        const char *op = json_string_value(json_array_get(arr, i));
        double x = json_number_value(json_array_get(arr, i + 1));
        int ok = !strcmp(op, "<")    ? v < x
                 : !strcmp(op, "<=") ? v <= x
                 : !strcmp(op, ">")  ? v > x
                 : !strcmp(op, ">=") ? v >= x
                                     : v == x;
        if (!ok) return 0;
    }
    return 1;
}

static int cidr(const char *spec, const char *ip) {
    char net[32];
    const char *slash = strchr(spec, '/');
    memcpy(net, spec, (size_t)(slash - spec));
    net[slash - spec] = 0;
    int bits = atoi(slash + 1);
    struct in_addr a, b;
    if (inet_pton(AF_INET, net, &a) != 1 || inet_pton(AF_INET, ip, &b) != 1) return 0;
    uint32_t mask = bits ? htonl(~0u << (32 - bits)) : 0;
    return (a.s_addr & mask) == (b.s_addr & mask);
}

/* One rule against one scalar (or object) event value; ev never NULL here. */
static int rule_scalar(json_t *r, json_t *ev) {
    if (!json_is_object(r)) return values_equal(r, ev);
    const char *op = json_object_iter_key(json_object_iter(r));
    json_t *v = json_object_iter_value(json_object_iter(r));
    const char *s = json_string_value(ev);
    if (!strcmp(op, "prefix")) {
        if (!s) return 0;
        if (json_is_object(v)) {
            const char *p = json_string_value(json_object_get(v, "equals-ignore-case"));
            return !strncasecmp(s, p, strlen(p));
        }
        return str_prefix(s, json_string_value(v));
    }
    if (!strcmp(op, "suffix")) return s && str_suffix(s, json_string_value(v));
    if (!strcmp(op, "equals-ignore-case")) return s && !strcasecmp(s, json_string_value(v));
    if (!strcmp(op, "wildcard")) return s && wildcard(s, json_string_value(v));
    if (!strcmp(op, "numeric")) return json_is_number(ev) && numeric(v, json_number_value(ev));
    if (!strcmp(op, "cidr")) return s && cidr(json_string_value(v), s);
    if (!strcmp(op, "anything-but")) {
        if (json_is_array(v)) {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) if (values_equal(x, ev)) return 0;
            return json_is_string(ev) || json_is_number(ev);
        }
        if (json_is_object(v)) {
            const char *p;
            if (!s) return 0;
            if ((p = json_string_value(json_object_get(v, "prefix")))) return !str_prefix(s, p);
            if ((p = json_string_value(json_object_get(v, "suffix")))) return !str_suffix(s, p);
            p = json_string_value(json_object_get(v, "equals-ignore-case"));
            return p && strcasecmp(s, p);
        }
        return (json_is_string(ev) || json_is_number(ev)) && !values_equal(v, ev);
    }
    return 0;
}

/* Rules of one key (OR) against the event's field (NULL = absent). */
static int rules_match(json_t *rules, json_t *ev) {
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        if (json_is_object(r) && json_object_get(r, "exists")) {
            int want = json_is_true(json_object_get(r, "exists"));
            int have = ev != NULL && !(json_is_array(ev) && json_array_size(ev) == 0);
            if (want == have) return 1;
            continue;
        }
        if (!ev) continue;
        if (json_is_array(ev)) {
            size_t k;
            json_t *x;
            json_array_foreach(ev, k, x) if (rule_scalar(r, x)) return 1;
        } else if (rule_scalar(r, ev)) {
            return 1;
        }
    }
    return 0;
}

static int pattern_match(json_t *pat, json_t *ev) {
    const char *k;
    json_t *v;
    json_object_foreach(pat, k, v) {
        json_t *field = json_is_object(ev) ? json_object_get(ev, k) : NULL;
        if (json_is_object(v)) {
            /* A nested pattern: absent/non-object fields see every sub-field as absent. */
            if (!pattern_match(v, json_is_object(field) ? field : NULL)) return 0;
        } else if (!rules_match(v, field)) {
            return 0;
        }
    }
    return 1;
}

int esm_filter_match(const esm_filter_t *f, const char *pk, size_t pk_len, const char *seq,
                     int64_t arrival_ms, const uint8_t *data, size_t data_len) {
    if (!f || !f->n) return 1;
    json_t *ev = json_object();
    json_object_set_new(ev, "kinesisSchemaVersion", json_string("1.0"));
    json_object_set_new(ev, "partitionKey", json_stringn(pk, pk_len));
    json_object_set_new(ev, "sequenceNumber", json_string(seq));
    json_object_set_new(ev, "approximateArrivalTimestamp", json_real((double)arrival_ms / 1000.0));
    if (f->needs_data) {
        json_t *d = json_loadb((const char *)data, data_len, JSON_DECODE_ANY, NULL);
        if (d) json_object_set_new(ev, "data", d);
    }
    int ok = 0, have_data = json_object_get(ev, "data") != NULL;
    for (size_t i = 0; i < f->n && !ok; i++) {
        /* A pattern on data never matches data that is not JSON (AWS drops such records). */
        if (!have_data && json_object_get(f->patterns[i], "data")) continue;
        ok = pattern_match(f->patterns[i], ev);
    }
    json_decref(ev);
    return ok;
}
