# SPDX-License-Identifier: Apache-2.0
"""The native C runtime (tributary.c1) through the Lambda API, and the same source as a
provided.al2023 bootstrap against Tributary's own Runtime API: tributary-cc packs both in one
zip, and both answer alike."""
import base64
import json
import pathlib
import subprocess

import pytest

from helpers import esm
from helpers import lambdafn as lf
from helpers.esm import probe  # noqa: F401 (fixture)
from helpers.lambdafn import lam, make_function  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("local_only")
REPO = pathlib.Path(__file__).resolve().parents[2]


def kinesis_event(records, window=None):
    ev = {"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": pk,
                    "sequenceNumber": f"4959{i:030d}", "data": base64.b64encode(d.encode()).decode(),
                    "approximateArrivalTimestamp": 1700000000.5 + i},
        "eventSource": "aws:kinesis", "eventVersion": "1.0",
        "eventID": f"shardId-000000000003:4959{i:030d}", "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::000000000000:role/r", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"}
        for i, (pk, d) in enumerate(records)]}
    if window:
        ev.update(window)
    return ev


@pytest.fixture(scope="module")
def iot_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("cc") / "iot.zip"
    subprocess.run([str(REPO / "scripts" / "tributary-cc"), "--zip", str(out),
                    str(REPO / "examples" / "functions" / "iot.c")], check=True, timeout=120)
    return out.read_bytes()


@pytest.mark.parametrize("runtime", [esm.NATIVE_RUNTIME, "provided.al2023"])
def test_one_zip_runs_under_both_runtimes(lam, make_function, iot_zip, runtime):
    fn = make_function(zip=iot_zip, runtime=runtime, handler_name="libiot.so:handler",
                       env={"IOT_ALERT_TEMP": "50", "IOT_TABLES": "0"})   # no tables on AWS
    ev = kinesis_event([("d-1", json.dumps({"device": "d-1", "temperature": 21.5})),
                        ("d-2", json.dumps({"device": "d-2", "temperature": 80.25})),
                        ("d-3", '{"device": "d-3", "temp')])
    r, body = lf.invoke_json(lam, fn, ev, LogType="Tail")
    assert "FunctionError" not in r                            # the malformed one is reported
    assert body == {"batchItemFailures": [{"itemIdentifier": f"4959{2:030d}"}]}
    log = base64.b64decode(r["LogResult"]).decode()
    assert "iot: alert threshold 50.0 C" in log or "ALERT" in log
    assert "iot: ALERT device d-2 temperature 80.25" in log
    assert "iot: malformed reading" in log
    # Tumbling window: the state comes back in AWS's response shape.
    ev = kinesis_event([("d-1", json.dumps({"device": "d-1", "temperature": 30}))],
                       {"window": {"start": "2023-11-14T22:13:00Z", "end": "2023-11-14T22:14:00Z"},
                        "state": {"readings": 4, "alerts": 1, "malformed": 0, "max_temp": 70},
                        "shardId": "shardId-000000000003", "isFinalInvokeForWindow": False,
                        "isWindowTerminatedEarly": False,
                        "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"})
    r, body = lf.invoke_json(lam, fn, ev)
    assert body == {"state": {"readings": 5, "alerts": 1, "malformed": 0, "max_temp": 70},
                    "batchItemFailures": []}
    # Not a Kinesis event: the handler answers for itself.
    r, body = lf.invoke_json(lam, fn, {"hello": 1})
    assert body == {"error": "iot expects Kinesis records"}


@pytest.mark.parametrize("runtime", [esm.NATIVE_RUNTIME, "provided.al2023"])
def test_probe_invoke_paths(lam, make_function, probe, runtime):
    zip_ = esm.native_zip() if runtime == esm.NATIVE_RUNTIME else esm.bootstrap_zip()
    fn = make_function(zip=zip_, runtime=runtime, handler_name="libprobe.so:handler",
                       env=probe.env, memory=256)
    r, body = lf.invoke_json(lam, fn, {"x": [1, 2]}, LogType="Tail")
    assert body["echo"] == {"x": [1, 2]} and body["function"] == fn and body["memory"] == 256
    assert body["request_id"] == r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] or True
    assert 0 < body["remaining_ms"] <= 3000
    assert "probe: echo" in base64.b64decode(r["LogResult"]).decode()
    r, body = lf.invoke_json(lam, fn, {"fail": True})
    assert r["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": "asked to fail", "errorType": "ProbeError"}
    # Records from a Kinesis event, with a partial failure reported in AWS's response shape.
    ev = kinesis_event([("a", "ok"), ("b", "FAILITEM"), ("c", "ok")])
    r, body = lf.invoke_json(lam, fn, ev)
    assert body == {"batchItemFailures": [{"itemIdentifier": ev["Records"][1]["kinesis"]["sequenceNumber"]}]}
    inv = probe.invokes()[-1]
    assert inv["data"] == ["ok", "FAILITEM", "ok"] and inv["shard"] == "shardId-000000000003"
    # A crash is contained: Runtime.ExitError, then the next invoke works.
    r, body = lf.invoke_json(lam, fn, {"segv": 1})
    assert r["FunctionError"] == "Unhandled"
    r, body = lf.invoke_json(lam, fn, {"after": 1})
    assert body["echo"] == {"after": 1}


def test_native_load_errors_are_clear(lam, make_function):
    fn = make_function(zip=esm.native_zip(), runtime=esm.NATIVE_RUNTIME,
                       handler_name="libprobe.so:missing_symbol")
    r, body = lf.invoke_json(lam, fn, {})
    assert r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.HandlerNotFound"
    assert "does not export the handler symbol \"missing_symbol\"" in body["errorMessage"]
    fn = make_function(zip=esm.native_zip(), runtime=esm.NATIVE_RUNTIME,
                       handler_name="libother.so:handler")
    r, body = lf.invoke_json(lam, fn, {})
    assert body["errorType"] == "Runtime.InvalidEntrypoint"
    assert "the package has no libother.so" in body["errorMessage"]


def test_native_timeout_kills_the_host(lam, make_function, probe):
    fn = make_function(zip=esm.native_zip(), runtime=esm.NATIVE_RUNTIME,
                       handler_name="libprobe.so:handler", env=probe.env, timeout=1)
    ev = kinesis_event([("a", "SLEEP:5000")])
    r, body = lf.invoke_json(lam, fn, ev)
    assert r["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in json.dumps(body)
    r, body = lf.invoke_json(lam, fn, {"ok": 1})
    assert body["echo"] == {"ok": 1}
