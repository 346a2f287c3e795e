# SPDX-License-Identifier: Apache-2.0
"""Run tests/js/smoke.mjs (AWS SDK for JavaScript v3) against the fixture server.

node_modules must be installed first (cd tests/js && npm ci); the test fails, not skips, when it
is missing, because the test command is expected to install it."""
import pathlib
import shutil
import subprocess

import pytest

from helpers.server import cli_env

JS_DIR = pathlib.Path(__file__).resolve().parents[1] / "js"


def run_smoke(server, extra_env=None):
    node = shutil.which("node")
    assert node, "node not found on PATH (scripts/deps.sh test installs nodejs)"
    assert (JS_DIR / "node_modules" / "@aws-sdk" / "client-kinesis").is_dir(), \
        f"{JS_DIR}/node_modules missing: run `cd tests/js && npm ci` before the suite"
    env = cli_env(server, {"TRIBUTARY_ENDPOINT": server.endpoint, **(extra_env or {})})
    p = subprocess.run([node, "--no-warnings", "smoke.mjs"], cwd=JS_DIR, env=env,
                       capture_output=True, timeout=150, stdin=subprocess.DEVNULL)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert p.returncode == 0, f"smoke.mjs exited {p.returncode}:\n{out}"
    assert "smoke: 7 passed, 0 failed" in out, out


@pytest.mark.deadline(180)
def test_js_sdk_smoke(server):
    """AWS SDK for JavaScript v3 with an HTTP/1.1 request handler."""
    run_smoke(server)


@pytest.mark.deadline(180)
def test_js_sdk_smoke_default_http2_handler(server):
    """The JS SDK's default Kinesis handler is HTTP/2 (NodeHttp2Handler: cleartext h2 with prior
    knowledge on http://): an out-of-the-box client must work."""
    run_smoke(server, {"SMOKE_HTTP2": "1"})
