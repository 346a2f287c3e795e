#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# demo.sh -- run the IoT demo (see scripts/demo.py --help); `make demo ARGS="--duration 60"`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 scripts/demo.py "$@"
