#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deps.sh -- install the Debian packages Tributary needs to build, test and run, if missing.
# Idempotent and non-interactive.  Needs root (or sudo) only when something is missing.
#   scripts/deps.sh build   libraries + compilers
#   scripts/deps.sh test    build + test tools (pytest, boto3, h2, awscli, node/npm, clang/libFuzzer,
#                           clang-format-19 for scripts/format.sh)
#   scripts/deps.sh bench   test + wrk, nginx (the fixed-body ceiling in bench/run.sh)
set -euo pipefail
want="${1:-build}"
pkgs=(build-essential cmake pkg-config libmicrohttpd-dev libnghttp2-dev libjansson-dev liblmdb-dev
      libjemalloc-dev libssl-dev libcmocka-dev zlib1g-dev libzstd-dev libzip-dev curl)
if [ "$want" = test ] || [ "$want" = bench ]; then
  pkgs+=(python3 python3-pytest python3-boto3 python3-h2 awscli zip nodejs npm clang
         libclang-rt-14-dev clang-format-19)
fi
if [ "$want" = bench ]; then pkgs+=(wrk nginx); fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    # nodejs/npm may come from elsewhere on a dev machine; accept working binaries
    case "$p" in
      nodejs) command -v node >/dev/null && continue ;;
      npm) command -v npm >/dev/null && continue ;;
    esac
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "deps: missing packages ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
