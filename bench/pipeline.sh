#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pipeline.sh -- the pipeline benchmark alone (bench/pipeline.py: `make demo`'s pipeline end to
# end with a C producer; bench/results/pipeline.md).  `make bench` runs it as the suite
# "pipeline".  Short run: BENCH_PIPE_DURATION=5 bench/pipeline.sh.  Knobs: see bench/pipeline.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/pipeload ] && [ -e build/functions/libiotlag.so ] || make --no-print-directory build
exec /usr/bin/python3 bench/pipeline.py "$@"
