#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# spdx.sh -- put "SPDX-License-Identifier: Apache-2.0" (LICENSE) at the top of the opening comment
# of every source file that lacks it, or check that none lacks it.
#
#   scripts/spdx.sh [FILE...]          add the line (default: every source file, see below)
#   scripts/spdx.sh --check [FILE...]  list the files without it; exit 1 if there is one
#
# Source files: C (.c .h), Python, shell, JavaScript (.js .mjs .cjs) and scripts with a #! line,
# under src/ include/ tests/ bench/ examples/ scripts/, tracked by git or new (not ignored); fuzz
# corpora and dictionaries are data.  Where the line goes:
#   C, "/*" first:  "/* SPDX-License-Identifier: Apache-2.0" then " *", the old first line's
#                   text (if any) continuing the same comment on the next line
#   C otherwise:    a comment line of its own before everything
#   #, // comments: "# SPDX-..." / "// SPDX-..." right after the #! line, or first
# A file has the line when it is within its first 3 lines.
set -euo pipefail
cd "$(dirname "$0")/.."
LINE="SPDX-License-Identifier: Apache-2.0"

check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi

sources() {
  git ls-files --cached --others --exclude-standard -- src include tests bench examples scripts |
    grep -v -e '/corpus/' -e '/node_modules/' |
    while IFS= read -r f; do
      [ -f "$f" ] || continue
      case "$f" in
        *.c|*.h|*.py|*.sh|*.js|*.mjs|*.cjs) echo "$f" ;;
        *.*) ;;
        *) head -c 2 "$f" | grep -q '^#!' && echo "$f" ;;
      esac
    done
}

has_line() { head -n 3 "$1" | grep -q "$LINE"; }

add_line() {   # $1 = file
  local f=$1 tmp
  tmp=$(mktemp)
  case "$f" in
    *.c|*.h)
      if head -n 1 "$f" | grep -q '^/\*'; then
        # "/*" + rest  ->  "/* SPDX..." / " *" / " *" + rest  (rest empty: nothing more)
        awk -v line="$LINE" 'NR == 1 {
            rest = substr($0, 3)
            print "/* " line; print " *"
            if (rest ~ /[^ ]/) print " *" rest
            next
          } { print }' "$f" >"$tmp"
      else
        { echo "/* $LINE */"; cat "$f"; } >"$tmp"
      fi ;;
    *)
      if [ ! -s "$f" ]; then
        case "$f" in *.js|*.mjs|*.cjs) echo "// $LINE" ;; *) echo "# $LINE" ;; esac >"$f"
        rm -f "$tmp"
        return
      fi
      local mark="#"
      case "$f" in *.js|*.mjs|*.cjs) mark="//" ;; esac
      awk -v line="$mark $LINE" 'NR == 1 && /^#!/ { print; print line; next }
                                 NR == 1 { print line } { print }' "$f" >"$tmp" ;;
  esac
  cat "$tmp" >"$f"   # keeps the file's mode
  rm -f "$tmp"
}

if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(sources); fi
missing=0
for f in "${files[@]}"; do
  has_line "$f" && continue
  if [ $check = 1 ]; then
    echo "$f"
    missing=$((missing + 1))
  else
    add_line "$f"
  fi
done
if [ $check = 1 ] && [ $missing -gt 0 ]; then
  echo "spdx: $missing file(s) above lack \"$LINE\" in their first 3 lines; run scripts/spdx.sh" >&2
  exit 1
fi
exit 0
