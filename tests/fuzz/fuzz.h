/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz.h -- what every fuzz target in tests/fuzz/ shares.
 *
 * A target is tests/fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput (and optionally
 * LLVMFuzzerInitialize), with seed inputs in tests/fuzz/corpus/<name>/.  It is built twice:
 *   - with gcc, linked to tests/fuzz/driver.c, and run by ctest over its corpus (test fuzz/<name>):
 *     seeds and the inputs of fixed crashes are regression tests in the normal and ASan builds;
 *   - with clang -fsanitize=fuzzer,address,undefined by scripts/fuzz.sh (make fuzz, and a short
 *     run in make test), which explores from the corpus.
 * A found crash is fixed, and its input is added to the corpus as a regression seed.
 *
 * FUZZ_CHECK(cond) states a property; it aborts with the failed condition whatever NDEBUG is. */
#ifndef TR_FUZZ_H
#define TR_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
