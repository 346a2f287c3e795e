# SPDX-License-Identifier: Apache-2.0
"""`make demo` as a test: scripts/demo.py runs the whole core path briefly (devices -> stream ->
native function -> tables) and must end with its self-check's PASS."""
import os
import re
import pathlib
import subprocess
import sys

import pytest

from helpers import server as srv

pytestmark = pytest.mark.usefixtures("local_only")
REPO = pathlib.Path(__file__).resolve().parents[2]


def test_demo_passes_its_self_check(tmp_path):
    env = dict(os.environ, TRIBUTARY_BIN=str(srv.server_bin()))
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--duration", "5",
                        "--devices", "300", "--wait", "120", "--data", str(tmp_path / "data")],
                       env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "check            PASS" in out, out[-4000:]
    # A malformed reading is reported as a batch item failure, never a function error (before:
    # one first in its batch failed the invocation, and the mapping bisected down to it); the
    # mapping splits the batch at it, so only malformed readings are set aside, each alone.
    assert re.search(r"invocations, 0 of them function errors", out), out[-4000:]
    assert "all among them: yes" in out, out[-4000:]
    m = re.search(r"on-failure +\d+ batch ranges covering (\d+) records \((\d+) malformed of (\d+) sent", out)
    assert m and m.group(1) == m.group(2) == m.group(3), out[-4000:]
    r = re.search(r"on-failure +(\d+) batch ranges covering (\d+) records", out)
    assert r.group(1) == r.group(2), out[-4000:]
