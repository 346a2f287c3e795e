# SPDX-License-Identifier: Apache-2.0
"""The README's tour runs as written (#8 item 19): its ```sh and ```python blocks from "A short
tour" to the end of "Functions (Lambda)", in order, in one bash session, from a directory that is
not the repository (holding only links named build/, scripts/ and examples/ to it, so the
commands' relative paths mean what they mean in a checkout), once with AWS CLI v1 and once with
v2 as `aws`.  Only the port is substituted (4566 -> a free one).  The first block starts the
server (its `make` line is skipped: the suite runs on a built tree); the rest run with `set -e`,
so any command that fails fails the test with the transcript."""
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess

import pytest

from helpers import server as srv
from helpers.wait import wait_for

pytestmark = pytest.mark.skipif(bool(srv.external_endpoint()),
                                reason="starts its own server (TRIBUTARY_ENDPOINT is set)")

REPO = pathlib.Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def tour_blocks():
    text = README.read_text()
    start = text.index("## A short tour")
    end = text.index("### Event source mappings")
    return [(m.group(1), m.group(2)) for m in
            re.finditer(r"^```(sh|python)\n(.*?)^```$", text[start:end], re.S | re.M)]


def find_cli(major):
    """An `aws` of the given major version: the first on PATH (often pip's v1) or Debian's."""
    seen = []
    for c in [shutil.which("aws"), "/usr/bin/aws", "/usr/local/bin/aws"]:
        if not c or c in seen or not os.access(c, os.X_OK):
            continue
        seen.append(c)
        try:
            v = subprocess.run([c, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        out = (v.stdout + v.stderr).strip()
        if out.startswith(f"aws-cli/{major}."):
            return c, out
    return None, None


def test_tour_blocks_are_found():
    blocks = tour_blocks()
    assert blocks[0][0] == "sh" and "serve --data ./tributary-data --port 4566" in blocks[0][1]
    joined = "\n".join(b for _, b in blocks)
    for must in ("AWS_SHARED_CREDENTIALS_FILE=\"$PWD/", "lambda create-function", "lambda invoke",
                 "tributary.c1", "cd echo-fn", "kinesis put-record"):
        assert must in joined


@pytest.mark.deadline(300)   # ~50 s each: CLI start-ups and tributary-cc builds
@pytest.mark.parametrize("major", ["1", "2"])
def test_readme_tour_runs_as_written(tmp_path, major):
    cli, version = find_cli(major)
    if not cli:
        pytest.skip(f"no AWS CLI v{major} on this machine (v1: pip install awscli; v2: Debian's "
                    f"awscli, scripts/deps.sh test)")
    blocks = tour_blocks()
    port = srv.free_port()
    sub = lambda b: b.replace("4566", str(port))   # noqa: E731
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "build").symlink_to(srv.server_bin().resolve().parent)
    (work / "scripts").symlink_to(REPO / "scripts")
    (work / "examples").symlink_to(REPO / "examples")
    bindir = tmp_path / "cli"
    bindir.mkdir()
    (bindir / "aws").symlink_to(cli)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "TRIBUTARY_", "PYTHONPATH"))}
    env.update({"PATH": f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}", "AWS_PAGER": "",
                "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_EC2_METADATA_DISABLED": "true",
                "LANG": "C.UTF-8"})

    serve = "\n".join(line for line in sub(blocks[0][1]).splitlines()
                      if not re.match(r"\s*make(\s|$)", line))
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen(["bash", "-c", "exec " + serve.strip()], cwd=work, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def listening():
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_for(listening, 20, what="the README's server to listen")
        script = ["set -euo pipefail"]
        for i, (lang, body) in enumerate(blocks[1:], 2):
            script.append(f"echo '::: README block {i} ({lang})'")
            if lang == "sh":
                script.append(sub(body))
            else:
                script.append(f"/usr/bin/python3 - <<'TRIBUTARY_README_PY'\n{sub(body)}"
                              f"TRIBUTARY_README_PY")
        p = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=env,
                           capture_output=True, text=True, timeout=300)
        transcript = f"{version}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
        assert p.returncode == 0, transcript
        # what the tour promises
        assert "Echoing request: '{\"hi\":1}'" in (work / "echo-fn" / "out.json").read_text()
        assert "iot expects Kinesis records" in (work / "iot-out.json").read_text(), transcript
        assert "START RequestId" in p.stdout and "{\"hi\":1}" in p.stdout, transcript
        assert '"ShardId": "shardId-000000000003"' in p.stdout, transcript
        assert (work / "tributary-data" / "credentials").is_file()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)
        log.close()
