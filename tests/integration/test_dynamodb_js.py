# SPDX-License-Identifier: Apache-2.0
"""Run tests/js/dynamo-smoke.mjs (AWS SDK for JavaScript v3: DynamoDBClient + lib-dynamodb
DocumentClient) against the fixture server.  node_modules must be installed (cd tests/js && npm ci)."""
import pathlib
import shutil
import subprocess

import pytest

from helpers.server import cli_env

JS_DIR = pathlib.Path(__file__).resolve().parents[1] / "js"


@pytest.mark.deadline(180)
def test_js_dynamodb_document_client(server):
    node = shutil.which("node")
    assert node, "node not found on PATH (scripts/deps.sh test installs nodejs)"
    for pkg in ("client-dynamodb", "lib-dynamodb"):
        assert (JS_DIR / "node_modules" / "@aws-sdk" / pkg).is_dir(), \
            f"{JS_DIR}/node_modules/@aws-sdk/{pkg} missing: run `cd tests/js && npm ci`"
    env = cli_env(server, {"TRIBUTARY_ENDPOINT": server.endpoint})
    p = subprocess.run([node, "--no-warnings", "dynamo-smoke.mjs"], cwd=JS_DIR, env=env,
                       capture_output=True, timeout=150, stdin=subprocess.DEVNULL)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert p.returncode == 0, f"dynamo-smoke.mjs exited {p.returncode}:\n{out}"
    assert "dynamo-smoke: 7 passed, 0 failed" in out, out
