# SPDX-License-Identifier: Apache-2.0
"""Lambda test helpers: clients, deployment packages, shell bootstraps and fixtures.

Import the fixtures into a test module (``from helpers.lambdafn import lam, lam_nv,
make_function``); they build on the session ``server`` fixture of tests/integration/conftest.py.

Bootstraps:
  TUTORIAL_BOOTSTRAP / TUTORIAL_FUNCTION  AWS's custom-runtime tutorial, verbatim in substance
                                          (#!/bin/sh, `source`, curl): it must run unchanged.
  RICH_BOOTSTRAP                          a bash Runtime API loop for test handlers: the handler
                                          function writes its response to stdout and logs to
                                          stderr; a nonzero return posts stdout to /error.
Handlers (function.sh bodies for RICH_BOOTSTRAP) are in HANDLERS.
"""
import base64
import hashlib
import io
import json
import uuid
import zipfile

import pytest
from botocore.exceptions import ClientError

from helpers import kinesis as k
from helpers.wait import wait_for  # noqa: F401  (lf.wait_for: the suites' bounded wait)

ROLE = "arn:aws:iam::000000000000:role/lambda-test"

TUTORIAL_BOOTSTRAP = r'''#!/bin/sh

set -euo pipefail

# Initialization - load function handler
source $LAMBDA_TASK_ROOT/"$(echo $_HANDLER | cut -d. -f1).sh"

# Processing
while true
do
  HEADERS="$(mktemp)"
  # Get an event. The HTTP request will block until one is received
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")

  # Extract request ID by scraping response headers received above
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)

  # Run the handler function from the script
  RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT_DATA")

  # Send the response
  curl "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$REQUEST_ID/response"  -d "$RESPONSE"
done
'''

TUTORIAL_FUNCTION = r'''function handler () {
  EVENT_DATA=$1
  echo "$EVENT_DATA" 1>&2;
  RESPONSE="Echoing request: '$EVENT_DATA'"

  echo $RESPONSE
}
'''

RICH_BOOTSTRAP = r'''#!/bin/bash
set -uo pipefail
source "$LAMBDA_TASK_ROOT/$(echo "$_HANDLER" | cut -d. -f1).sh"
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
if declare -F init >/dev/null; then init; fi
while true; do
  HEADERS="$(mktemp)"; EVENT_FILE="$(mktemp)"; OUT="$(mktemp)"
  curl -sS -D "$HEADERS" -o "$EVENT_FILE" "$API/invocation/next" || exit 1
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  export HEADERS REQUEST_ID EVENT_FILE
  if "$(echo "$_HANDLER" | cut -d. -f2)" "$(cat "$EVENT_FILE")" > "$OUT"; then
    curl -sS -o /dev/null "$API/invocation/$REQUEST_ID/response" --data-binary @"$OUT"
  else
    curl -sS -o /dev/null "$API/invocation/$REQUEST_ID/error" \
      -H "Lambda-Runtime-Function-Error-Type: HandlerError" --data-binary @"$OUT"
  fi
  rm -f "$HEADERS" "$EVENT_FILE" "$OUT"
done
'''

HANDLERS = {
    # echo the event back; log it
    "echo": r'''handler() { echo "event: $1" >&2; printf '%s' "$1"; }''',
    # the bootstrap's pid: warm instances reuse it
    "pid": r'''handler() { echo "{\"pid\": $$}"; }''',
    # sleep SLEEP seconds (event {"sleep": n} overrides), then answer
    "sleep": r'''handler() {
  s=$(printf '%s' "$1" | python3 -c 'import sys,json
try: print(json.load(sys.stdin).get("sleep", ""))
except Exception: print("")')
  echo "sleeping ${s:-${SLEEP:-5}}" >&2
  sleep "${s:-${SLEEP:-5}}"
  echo "{\"pid\": $$, \"slept\": \"${s:-${SLEEP:-5}}\"}"
}''',
    # a handled error posted to /error
    "error": r'''handler() {
  echo "about to fail" >&2
  echo '{"errorMessage":"boom","errorType":"MyError","stackTrace":["line 1"]}'
  return 1
}''',
    # the runtime process dies in the middle of an invocation
    "crash": r'''handler() { echo "crashing" >&2; exit 3; }''',
    # environment and working directory as JSON
    "env": r'''handler() {
  python3 -c 'import os,json,sys
h = open(os.environ["HEADERS"]).read()
print(json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "headers": h}))'
}''',
    # a response larger than 6 MB
    "big": r'''handler() { printf '"'; head -c 7000000 /dev/zero | tr '\0' 'a'; printf '"'; }''',
    # append the event to $MARK_FILE with start/end times (async and concurrency tests)
    "mark": r'''handler() {
  local t0; t0=$(date +%s.%N)
  sleep "${SLEEP:-0}"
  printf '%s %s %s %s\n' "$t0" "$(date +%s.%N)" "$$" "$1" >> "$MARK_FILE"
  echo '"ok"'
}''',
    # fail when the event says so, else succeed (async retries)
    "flaky": r'''handler() {
  printf '%s\n' "$1" >> "$MARK_FILE"
  case "$1" in *fail*) echo '{"errorMessage":"asked to fail"}'; return 1;; esac
  echo '"ok"'
}''',
    # allocate {"mb": n} megabytes (MemorySize bounds it)
    "alloc": r'''handler() {
  printf '%s' "$1" | python3 -c 'import sys,json
n = json.load(sys.stdin)["mb"]
try:
    b = bytearray(n * 1024 * 1024)
    print(json.dumps({"allocated": n}))
except MemoryError:
    print(json.dumps({"errorMessage": "MemoryError", "errorType": "MemoryError"})); sys.exit(1)'
}''',
    # reports an initialisation error before asking for work
    "initerr": r'''init() {
  curl -sS -o /dev/null "$API/init/error" -H "Lambda-Runtime-Function-Error-Type: Runtime.ConfigError" \
    --data-binary '{"errorMessage":"missing config","errorType":"ConfigError"}'
  exit 1
}
handler() { echo '"never"'; }''',
}


def make_zip(files):
    """files: {name: text or bytes or (data, mode)} -> zip bytes (Unix modes kept)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, spec in files.items():
            data, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
            if isinstance(data, str):
                data = data.encode()
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


def tutorial_zip():
    return make_zip({"bootstrap": (TUTORIAL_BOOTSTRAP, 0o755), "function.sh": TUTORIAL_FUNCTION})


def handler_zip(handler):
    return make_zip({"bootstrap": (RICH_BOOTSTRAP, 0o755), "function.sh": HANDLERS[handler]})


def code_sha256(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def make_client(server, validate=True, read_timeout=60):
    return k.make_client(server, validate=validate, read_timeout=read_timeout, service="lambda")


def unique_name(tag="f"):
    return k.unique_name(tag)[:64].replace(".", "-")


def invoke_json(client, name, event=None, **kw):
    """Invoke and decode: returns (response, payload as JSON or raw text)."""
    payload = kw.pop("Payload", None)
    if payload is None:
        payload = json.dumps(event if event is not None else {}).encode()
    r = client.invoke(FunctionName=name, Payload=payload, **kw)
    body = r["Payload"].read()
    try:
        return r, json.loads(body) if body else None
    except ValueError:
        return r, body.decode(errors="replace")


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def lam(server):
    return make_client(server)


@pytest.fixture(scope="session")
def lam_nv(server):
    return make_client(server, validate=False)


@pytest.fixture
def make_function(lam, request):
    """Factory: create a function (handler name from HANDLERS, or zip=bytes), delete at
    teardown.  Returns the name."""
    created = []

    def make(handler="echo", zip=None, name=None, runtime="provided.al2023", env=None,
             timeout=None, memory=None, handler_name="function.handler", client=None):
        name = name or unique_name(request.node.name)
        kw = dict(FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler_name,
                  Code={"ZipFile": zip if zip is not None else handler_zip(handler)})
        if env is not None:
            kw["Environment"] = {"Variables": env}
        if timeout is not None:
            kw["Timeout"] = timeout
        if memory is not None:
            kw["MemorySize"] = memory
        (client or lam).create_function(**kw)
        created.append(name)
        return name

    yield make
    for name in created:
        try:
            lam.delete_function(FunctionName=name)
        except ClientError:
            pass
        except Exception:
            pass
