"""`make demo` as a test: scripts/demo.py runs the whole core path briefly (devices -> stream ->
native function -> tables) and must end with its self-check's PASS."""
import os
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
    assert "invocations, 0 errors" in out, out[-4000:]
