#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# run-pyenv.sh -- run the Python suites with the pyenv python3 (its own boto3/botocore), borrowing
# only pytest and its pure-Python dependencies from Debian's dist-packages (no PyPI needed).
# Debian's boto3/botocore are NOT put on the path: a symlink farm holds just the test runner.
#   tests/run-pyenv.sh [pytest args...]      (default: tests/integration tests/crash)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYENV_PYTHON:-$(command -v python3)}"
dist=/usr/lib/python3/dist-packages
farm="$(mktemp -d)"
trap 'rm -rf "$farm"' EXIT
for p in pytest _pytest pluggy iniconfig packaging py py.py; do
  [ -e "$dist/$p" ] && ln -s "$dist/$p" "$farm/$p"
done
# attrs only when the interpreter has none of its own
if ! "$py" -c 'import attr' 2>/dev/null; then ln -s "$dist/attr" "$farm/attr"; fi
export PYTHONPATH="$farm${PYTHONPATH:+:$PYTHONPATH}"
"$py" - <<'PY'
import boto3, botocore, pytest, sys
assert "/usr/lib/python3/dist-packages" not in boto3.__file__, boto3.__file__
print(f"run-pyenv: python {sys.version.split()[0]} boto3 {boto3.__version__} at {boto3.__file__}"
      f", pytest {pytest.__version__}", file=sys.stderr)
PY
cd "$here/.."
if [ $# -eq 0 ]; then set -- tests/integration tests/crash; fi
exec "$py" -m pytest "$@"
