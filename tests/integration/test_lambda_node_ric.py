# SPDX-License-Identifier: Apache-2.0
"""The Node.js runtime interface client from npm (aws-lambda-ric) against Tributary's Runtime
API: a `bootstrap` that execs it with an ES-module handler, as a provided.al2023 function.

aws-lambda-ric must be installed in tests/js with its native addon built (scripts/test.sh runs
`npm ci --ignore-scripts` and then `npm rebuild aws-lambda-ric`, which builds its addon from the
sources it bundles).  Its package declares node >= 22; it runs
on the node 20 Debian ships, which is what this test checks too."""
import base64
import json
import pathlib
import shutil

import pytest

from helpers.lambdafn import invoke_json, lam, make_function, make_zip  # noqa: F401

pytestmark = pytest.mark.deadline(120)

RIC = pathlib.Path(__file__).resolve().parents[1] / "js" / "node_modules" / "aws-lambda-ric" / \
    "index.mjs"

BOOTSTRAP = """#!/bin/sh
exec node "$RIC_ENTRY" "$_HANDLER"
"""

HANDLER = """export const handler = async (event, context) => {
  console.log("node got", JSON.stringify(event));
  if (event.fail) throw new TypeError("node failure");
  return { echoed: event, requestId: context.awsRequestId, name: context.functionName,
           arn: context.invokedFunctionArn, remaining: context.getRemainingTimeInMillis(),
           pid: process.pid };
};
"""


@pytest.fixture
def ric_function(make_function, server):
    if server.external:
        pytest.skip("the bootstrap names a local path")
    assert shutil.which("node"), "node is required (scripts/deps.sh test installs it)"
    assert RIC.is_file(), f"{RIC} missing: run `cd tests/js && npm ci --ignore-scripts && npm rebuild aws-lambda-ric`"
    return make_function(zip=make_zip({"bootstrap": (BOOTSTRAP, 0o755), "index.mjs": HANDLER}),
                         handler_name="index.handler", timeout=10,
                         env={"RIC_ENTRY": str(RIC)})


def test_node_ric_invoke_error_and_reuse(lam, ric_function):
    name = ric_function
    r, p = invoke_json(lam, name, {"a": 1}, LogType="Tail")
    assert "FunctionError" not in r, p
    assert p["echoed"] == {"a": 1} and p["name"] == name
    assert p["arn"].endswith(f":function:{name}")
    assert p["requestId"] == r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert 0 < p["remaining"] <= 10000
    tail = base64.b64decode(r["LogResult"]).decode()
    assert f"{p['requestId']}\tINFO\tnode got {json.dumps({'a': 1}, separators=(',', ':'))}" \
        in tail
    assert "REPORT RequestId: " + p["requestId"] in tail
    r, p2 = invoke_json(lam, name, {"fail": True})
    assert r["FunctionError"] == "Unhandled"
    assert p2["errorType"] == "TypeError" and p2["errorMessage"] == "node failure"
    r, p3 = invoke_json(lam, name, {"b": 2})
    assert p3["echoed"] == {"b": 2}
    assert p3["pid"] == p["pid"]   # the same warm Node process
