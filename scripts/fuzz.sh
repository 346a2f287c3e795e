#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# fuzz.sh -- coverage-guided fuzzing of every target in tests/fuzz/ (libFuzzer, clang, ASan+UBSan).
#
#   scripts/fuzz.sh [SECONDS] [NAME...]   fuzz each target (all by default) for SECONDS (60)
#   FUZZ_SEED=N                           libFuzzer's seed (make test sets 1, so that a CI run
#                                         explores as a local one does; make fuzz: random)
#
# Builds build-fuzz/ with clang -DTR_FUZZ=ON, then runs each fuzz_<name> from its seeds
# (tests/fuzz/corpus/<name>/, read-only) and its working corpus (build-fuzz/corpus/<name>/, kept
# between runs).  A crash, leak, timeout (10 s per input) or property failure stops that target,
# leaves its input in build-fuzz/crashes/ and makes this script exit 1; fix the bug, then add the
# input to tests/fuzz/corpus/<name>/ so ctest replays it from then on.  Ends with a table of
# executions per target (also written to build-fuzz/fuzz-summary.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
JOBS=${JOBS:-2}

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DTR_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  >/dev/null
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do n=${f##*/fuzz_}; names+=("${n%.c}"); done
fi
targets=()
for n in "${names[@]}"; do targets+=("fuzz_$n"); done
echo "== building ${#targets[@]} fuzz targets (clang, libFuzzer + ASan + UBSan)"
cmake --build build-fuzz -j"$JOBS" --target "${targets[@]}" >/dev/null

mkdir -p build-fuzz/crashes
summary=build-fuzz/fuzz-summary.txt
printf '| target | seconds | executions | exec/s | corpus | result |\n|---|---|---|---|---|---|\n' >"$summary"
failed=0
for n in "${names[@]}"; do
  seeds=tests/fuzz/corpus/$n
  work=build-fuzz/corpus/$n
  mkdir -p "$work" "$seeds"
  dict=()
  [ -f "tests/fuzz/$n.dict" ] && dict=(-dict="tests/fuzz/$n.dict")
  [ -n "${FUZZ_SEED:-}" ] && dict+=(-seed="$FUZZ_SEED")
  log=build-fuzz/fuzz_$n.log
  echo "== fuzz_$n: ${secs}s"
  set +e
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build-fuzz/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$n-" "${dict[@]}" "$work" "$seeds" \
    >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "$work" -type f | wc -l)
  if [ $rc -eq 0 ]; then result=ok; else
    result="FAILED (exit $rc)"; failed=1
    echo "fuzz_$n failed; its report:" >&2
    grep -E 'ERROR|SUMMARY|property failed|Test unit written|==[0-9]+==' "$log" | head -20 >&2
  fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$n" "$secs" "${execs:-?}" "${rate:-?}" "$corpus" \
    "$result" >>"$summary"
done
cat "$summary"
if [ $failed -ne 0 ]; then
  echo "fuzz: a target failed; inputs are in build-fuzz/crashes/ (logs build-fuzz/fuzz_*.log)" >&2
  exit 1
fi
