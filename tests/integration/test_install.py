# SPDX-License-Identifier: Apache-2.0
"""`make install` (cmake --install with a prefix, DESTDIR honoured): the server, tributary-cc and
function.h land under the prefix, and the installed tributary-cc -- finding its header and
prebuilt libraries relative to itself, with no source tree -- builds a function that the
installed server runs under both runtimes (tributary.c1 and provided.al2023)."""
import base64
import ctypes
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from helpers import lambdafn as lf
from helpers import server as srv

REPO = pathlib.Path(__file__).resolve().parents[2]
PREFIX = "/opt/tributary"


@pytest.fixture(scope="module")
def staged(tmp_path_factory, server):
    if server.external:
        pytest.skip("installs the build the suite runs (TRIBUTARY_ENDPOINT is set)")
    build = srv.server_bin().resolve().parent
    if not (build / "CMakeCache.txt").exists():
        pytest.skip(f"{build} is not a CMake build directory")
    destdir = tmp_path_factory.mktemp("destdir")
    env = dict(os.environ, DESTDIR=str(destdir))
    r = subprocess.run(["cmake", "--install", str(build), "--prefix", PREFIX], env=env,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    return destdir / PREFIX.lstrip("/")


def test_layout(staged):
    for rel in ("bin/tributary", "bin/tributary-cc"):
        assert os.access(staged / rel, os.X_OK), f"{rel} is not installed executable"
    assert (staged / "include/tributary/function.h").read_bytes() == \
        (REPO / "include/tributary/function.h").read_bytes()
    for rel in ("lib/tributary/libtributary-function.a", "lib/tributary/libtributary-bootstrap.a"):
        assert (staged / rel).is_file(), f"{rel} is not installed"
    r = subprocess.run([str(staged / "bin/tributary"), "serve", "--help"], capture_output=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and b"--data" in r.stdout


@pytest.fixture(scope="module")
def iot_zip(staged, tmp_path_factory):
    """iot.c built by the installed tributary-cc, from a copy outside the source tree."""
    work = tmp_path_factory.mktemp("cc")
    src = work / "iot.c"
    shutil.copy(REPO / "examples/functions/iot.c", src)
    r = subprocess.run([str(staged / "bin/tributary-cc"), "--zip", "iot.zip", "iot.c"], cwd=work,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    # the shared library exports the module symbol the native runtime looks up
    r = subprocess.run([str(staged / "bin/tributary-cc"), "-o", "libiot.so", "iot.c"], cwd=work,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    lib = ctypes.CDLL(str(work / "libiot.so"))
    assert hasattr(lib, "tributary_function_module") and hasattr(lib, "handler")
    return (work / "iot.zip").read_bytes()


@pytest.mark.parametrize("runtime", ["tributary.c1", "provided.al2023"])
def test_installed_server_runs_a_function_from_installed_cc(staged, iot_zip, runtime):
    s = srv.ServerProcess(binary=staged / "bin/tributary", fn_dirs=False)
    try:
        s.start()
        lam = lf.make_client(s)
        name = lf.unique_name("installed")
        lam.create_function(FunctionName=name, Runtime=runtime, Role=lf.ROLE,
                            Handler="libiot.so:handler", Code={"ZipFile": iot_zip},
                            Environment={"Variables": {"IOT_ALERT_TEMP": "50",
                                                       "IOT_TABLES": "0"}})
        readings = [b'{"device": "d-1", "temperature": 21.5}', b'{"device": "d-2", "temp']
        ev = {"Records": [{
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"d-{i}",
                        "sequenceNumber": f"4959{i:030d}", "data": base64.b64encode(d).decode(),
                        "approximateArrivalTimestamp": 1700000000.5 + i},
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": f"shardId-000000000000:4959{i:030d}", "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::000000000000:role/r", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"}
            for i, d in enumerate(readings)]}
        lf.wait_for(lambda: lam.get_function(FunctionName=name)["Configuration"]["State"]
                    == "Active", what="function active")
        r, body = lf.invoke_json(lam, name, ev)
        assert "FunctionError" not in r, body
        # the malformed second reading is reported, the first accepted
        assert body == {"batchItemFailures": [{"itemIdentifier": f"4959{1:030d}"}]}, \
            json.dumps(body)
    finally:
        findings = s.close()
    assert not findings, findings
