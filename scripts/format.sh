#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# format.sh -- apply the root .clang-format to Tributary's C sources, or check them.
#
#   scripts/format.sh [FILE...]          reformat in place (make format)
#   scripts/format.sh --check [FILE...]  list the files it would change and how many lines;
#                                        exit 1 if there is one (make test)
#
# C sources: *.c and *.h under src/ include/ tests/ bench/ examples/, tracked by git or new (not
# ignored).  Needs clang-format 19 (CLANG_FORMAT overrides the command): other versions format
# some constructs differently, so a check would disagree between machines.
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLANG_FORMAT:-clang-format-19}
if ! command -v "$CF" >/dev/null; then
  echo "format: $CF not found; run scripts/deps.sh test (installs clang-format-19) or set" \
       "CLANG_FORMAT" >&2
  exit 2
fi

check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
    'src/*.c' 'src/*.h' 'include/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c' 'examples/*.c' |
    grep -v '/node_modules/')
fi

if [ $check = 0 ]; then
  "$CF" -i --style=file "${files[@]}"
  exit 0
fi
bad=0 lines=0
for f in "${files[@]}"; do
  n=$("$CF" --style=file "$f" | diff "$f" - | grep -c '^<' || true)
  if [ "$n" -gt 0 ]; then
    echo "$f: $n line(s)"
    bad=$((bad + 1))
    lines=$((lines + n))
  fi
done
if [ $bad -gt 0 ]; then
  echo "format: $bad file(s) differ from .clang-format in $lines line(s); run scripts/format.sh" \
       "(make format)" >&2
  exit 1
fi
exit 0
