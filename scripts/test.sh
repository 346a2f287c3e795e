#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test.sh -- every test Tributary has, in one run (what `make test` and .ci/run call).
#
#   1. build (RelWithDebInfo) and run the C unit tests (ctest); the same in a Release build
#      (what packagers build: -O3 finds warnings -O2 does not, and -Werror makes them fatal)
#   2. build with AddressSanitizer + UBSan; run the unit tests and the integration suite on it
#   3. a short libFuzzer run of every tests/fuzz target (FUZZ_SECONDS, 60 s each; make fuzz: 600 s)
#   4. integration tests with a second SDK generation (pyenv boto3, when present)
#   5. the integration, CLI, JS and crash suites on the normal build -- last, so the run
#      ends with pytest's own summary line
#
#   0. tree hygiene: every source file has the SPDX line (scripts/spdx.sh --check) and is
#      formatted as .clang-format says (scripts/format.sh --check)
#
#   scripts/test.sh --asan-only   just step 2 (make check-asan)
# Every server a test starts binds 127.0.0.1, uses a temporary data dir and is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=/usr/bin/python3          # Debian's python3 with python3-pytest, python3-boto3, awscli
JOBS=${JOBS:-2}
mode=${1:-all}

export AWS_EC2_METADATA_DISABLED=true PYTHONDONTWRITEBYTECODE=1

js_deps() {
  if [ ! -d tests/js/node_modules/@aws-sdk/client-kinesis ] ||
     [ ! -f tests/js/node_modules/aws-lambda-ric/index.mjs ]; then
    echo "== installing the JS test clients (npm ci in tests/js)"
    (cd tests/js && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  fi
  # aws-lambda-ric needs its native addon (rapid-client.node): build it from the sources it
  # bundles (curl, aws-lambda-cpp; about 30 s, offline, against the system node headers).
  if [ ! -f tests/js/node_modules/aws-lambda-ric/rapid-client.node ]; then
    echo "== building aws-lambda-ric's native client"
    (cd tests/js && npm rebuild aws-lambda-ric --loglevel=error >/dev/null)
  fi
}

asan() {
  echo "== ASan+UBSan build"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTR_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$JOBS" >/dev/null
  echo "== unit tests (ASan+UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS"
  js_deps
  # The demo is left to the normal build: under ASan its pipeline runs ~10x slower than the
  # demo's bounded wait (its native-table path is covered here by test_native_tables).
  echo "== integration tests on the ASan+UBSan server"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TRIBUTARY_BIN=$ROOT/build-asan/tributary TRIBUTARY_ASAN=1 \
    $PY -m pytest -q -p no:cacheprovider tests/integration -k "not js_smoke and not awscli and not demo"
}

# Every source file carries the SPDX line and is formatted as .clang-format says (make format
# fixes the second).  HYGIENE=report lists what it finds without failing.
HYGIENE=${HYGIENE:-enforce}
hygiene() {
  echo "== SPDX lines and formatting ($HYGIENE)"
  local out rc=0
  out=$(mktemp)
  scripts/spdx.sh --check >"$out" 2>&1 || rc=1
  scripts/format.sh --check >>"$out" 2>&1 || rc=1
  if [ $rc = 0 ]; then
    rm -f "$out"
  elif [ "$HYGIENE" = enforce ]; then
    cat "$out"
    rm -f "$out"
    exit 1
  else
    grep -E '^(spdx|format):' "$out" || cat "$out"
    rm -f "$out"
  fi
}

if [ "$mode" = "--asan-only" ]; then
  asan
  exit 0
fi

hygiene
echo "== build"
make --no-print-directory build
echo "== unit tests"
ctest --test-dir build --output-on-failure -j"$JOBS"
echo "== Release build"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j"$JOBS" >/dev/null
echo "== unit tests (Release)"
ctest --test-dir build-release --output-on-failure -j"$JOBS"
asan
echo "== fuzzing (libFuzzer, ${FUZZ_SECONDS:-60} s per target)"
FUZZ_SEED=${FUZZ_SEED:-1} scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
js_deps

# A second client generation: the pyenv python's boto3 (newer than Debian's), with only Debian's
# pytest borrowed (tests/run-pyenv.sh checks that boto3 is not Debian's).
ALT_PY=$(command -v python3 || true)
if [ -n "$ALT_PY" ] && [ "$(readlink -f "$ALT_PY")" != "$(readlink -f $PY)" ] && "$ALT_PY" -c 'import boto3' 2>/dev/null; then
  echo "== integration tests with the second SDK generation ($ALT_PY)"
  PYENV_PYTHON=$ALT_PY TRIBUTARY_BIN=$ROOT/build/tributary \
    tests/run-pyenv.sh -q -p no:cacheprovider tests/integration -k "not js_smoke and not awscli"
fi

v=$($PY -c 'import boto3; print(boto3.__version__)')
echo "== integration (boto3 $v, aws CLI, aws-sdk-js v3) and crash tests"
TRIBUTARY_BIN=$ROOT/build/tributary $PY -m pytest -p no:cacheprovider tests/integration tests/crash
