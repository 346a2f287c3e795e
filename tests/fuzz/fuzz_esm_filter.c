/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_esm_filter.c -- FilterCriteria patterns of event-source mappings (fn/esm_filter.c).
 *
 * Input: a pattern, a '\n', then a record's data (the second part may be absent).  A pattern
 * starting with {"Filters" is taken as the whole FilterCriteria; otherwise it is wrapped as
 * {"Filters":[{"Pattern":<it, as a JSON string>}]}.  Checked:
 *   - compile never crashes, and a refusal is TR_EINVAL with a message;
 *   - a compiled filter matches the data (as JSON or not) without crashing, answers 0 or 1,
 *     and answers the same when asked twice (no state leaks between records). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fn/esm.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t pn = nl ? (size_t)(nl - data) : size;
    const uint8_t *rec = nl ? nl + 1 : NULL;
    size_t rn = nl ? size - pn - 1 : 0;

    char *criteria = NULL;
    if (pn >= 10 && !memcmp(data, "{\"Filters\"", 10)) {
        criteria = malloc(pn + 1);
        FUZZ_CHECK(criteria != NULL);
        memcpy(criteria, data, pn);
        criteria[pn] = 0;
    } else {
        json_t *pat = json_stringn_nocheck((const char *)data, pn);
        json_t *c = pat ? json_pack("{s:[{s:o}]}", "Filters", "Pattern", pat) : NULL;
        if (!c) return 0;   /* NUL or invalid UTF-8 text: jansson refuses to build it */
        criteria = json_dumps(c, JSON_COMPACT);
        json_decref(c);
        if (!criteria) return 0;
    }
    esm_filter_t *f = NULL;
    tr_err err;
    tr_err_clear(&err);
    int rc = esm_filter_compile(criteria, &f, &err);
    free(criteria);
    if (rc) {
        FUZZ_CHECK(rc == TR_EINVAL);
        FUZZ_CHECK(err.msg[0] != 0);
        FUZZ_CHECK(f == NULL);
        return 0;
    }
    if (!f) return 0;   /* no filters */
    int a = esm_filter_match(f, "pk", 2, "49590338271490256608559692538361571095921575989136588898",
                             1700000000123, rec, rn);
    int b = esm_filter_match(f, "pk", 2, "49590338271490256608559692538361571095921575989136588898",
                             1700000000123, rec, rn);
    FUZZ_CHECK(a == 0 || a == 1);
    FUZZ_CHECK(a == b);
    esm_filter_free(f);
    return 0;
}
