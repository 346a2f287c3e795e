# SPDX-License-Identifier: Apache-2.0
"""Invoke through boto3 against shell `bootstrap` functions on the Runtime API: AWS's tutorial
bootstrap unchanged, function errors, crashes, timeouts, the environment, warm reuse, log tails,
Event / DryRun, payload limits, and the `tributary logs` command."""
import base64
import json
import os
import re
import subprocess
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from helpers.lambdafn import (ROLE, error_code, handler_zip, invoke_json, lam, lam_nv,  # noqa: F401
                              make_function, make_zip, tutorial_zip, unique_name, wait_for)

pytestmark = pytest.mark.deadline(120)


def test_tutorial_bootstrap_unchanged(lam, make_function):
    name = make_function(zip=tutorial_zip(), runtime="provided.al2023")
    r = lam.invoke(FunctionName=name, Payload=b'{"text":"Hello"}', LogType="Tail")
    assert r["StatusCode"] == 200
    assert r["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in r
    assert r["Payload"].read() == b'Echoing request: \'{"text":"Hello"}\''
    tail = base64.b64decode(r["LogResult"]).decode()
    rid = r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert re.search(r"^START RequestId: [0-9a-f-]{36} Version: \$LATEST$", tail, re.M), tail
    assert '{"text":"Hello"}' in tail   # the handler's stderr
    assert re.search(r"^END RequestId: [0-9a-f-]{36}$", tail, re.M)
    assert re.search(r"^REPORT RequestId: [0-9a-f-]{36}\tDuration: [\d.]+ ms\tBilled Duration: "
                     r"\d+ ms\tMemory Size: 128 MB\tMax Memory Used: \d+ MB\t", tail, re.M)
    assert "Init Duration" in tail   # a cold start reports it
    assert f"START RequestId: {rid} " in tail   # x-amzn-RequestId is the invocation's id
    # warm: a second call reuses the instance, no init
    r2 = lam.invoke(FunctionName=name, Payload=b'"again"', LogType="Tail")
    assert r2["Payload"].read() == b"Echoing request: '\"again\"'"
    assert "Init Duration" not in base64.b64decode(r2["LogResult"]).decode()


def test_warm_instance_is_reused(lam, make_function):
    name = make_function("pid")
    pids = {invoke_json(lam, name)[1]["pid"] for _ in range(5)}
    assert len(pids) == 1


def test_function_error_via_runtime_api(lam, make_function):
    name = make_function("error")
    r, p = invoke_json(lam, name, LogType="Tail")
    assert r["StatusCode"] == 200
    assert r["FunctionError"] == "Unhandled"
    assert p == {"errorMessage": "boom", "errorType": "MyError", "stackTrace": ["line 1"]}
    tail = base64.b64decode(r["LogResult"]).decode()
    assert "about to fail" in tail and "REPORT RequestId" in tail
    # the instance survives a handled error
    r, p = invoke_json(lam, name)
    assert r["FunctionError"] == "Unhandled" and p["errorType"] == "MyError"


def test_runtime_crash_is_exit_error_and_recovers(lam, make_function):
    name = make_function("crash")
    r, p = invoke_json(lam, name, LogType="Tail")
    assert r["FunctionError"] == "Unhandled"
    assert p["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in p["errorMessage"]
    assert "crashing" in base64.b64decode(r["LogResult"]).decode()
    # a new instance serves the next call
    r, p = invoke_json(lam, name)
    assert p["errorType"] == "Runtime.ExitError"


def test_timeout_kills_the_instance(lam, make_function):
    name = make_function("sleep", timeout=1, env={"SLEEP": "30"})
    t0 = time.monotonic()
    r, p = invoke_json(lam, name, LogType="Tail")
    elapsed = time.monotonic() - t0
    assert r["FunctionError"] == "Unhandled"
    assert re.search(r"Task timed out after 1\.00 seconds", p["errorMessage"]), p
    assert 0.9 <= elapsed < 5, elapsed
    tail = base64.b64decode(r["LogResult"]).decode()
    assert "Task timed out after 1.00 seconds" in tail and "Status: timeout" in tail
    # the killed instance is replaced; a short call succeeds on a new process
    r2, p2 = invoke_json(lam, name, {"sleep": 0})
    assert "FunctionError" not in r2 and p2["slept"] == "0"


def test_environment_and_headers(lam, make_function, server):
    name = make_function("env", env={"MY_VAR": "value 1", "OTHER_VAR": "x=y"}, memory=256)
    r, p = invoke_json(lam, name, {"k": "v"})
    env, cwd, headers = p["env"], p["cwd"], p["headers"]
    assert env["MY_VAR"] == "value 1" and env["OTHER_VAR"] == "x=y"
    assert env["_HANDLER"] == "function.handler"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == server.region and env["AWS_DEFAULT_REGION"] == server.region
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}",
                        env["AWS_LAMBDA_LOG_STREAM_NAME"])
    assert env["TZ"] == ":UTC" and env["LANG"] == "en_US.UTF-8"
    assert env["PATH"] == "/usr/local/bin:/usr/bin/:/bin:/opt/bin"   # as AWS sets it
    assert env["LAMBDA_TASK_ROOT"] == cwd
    assert env["LAMBDA_TASK_ROOT"] in env["LD_LIBRARY_PATH"]
    assert "LAMBDA_RUNTIME_DIR" in env
    host, _, _ = env["AWS_LAMBDA_RUNTIME_API"].partition("/")
    assert host.startswith("127.0.0.1:") and host != server.host
    assert os.path.isfile(os.path.join(cwd, "bootstrap"))
    # the server's credentials never leak into functions
    assert "TRIBUTARY_SECRET_ACCESS_KEY" not in env
    h = {k.strip().lower(): v.strip() for k, v in
         (line.split(":", 1) for line in headers.splitlines() if ":" in line)}
    assert re.fullmatch(r"[0-9a-f-]{36}", h["lambda-runtime-aws-request-id"])
    deadline = int(h["lambda-runtime-deadline-ms"])
    assert 0 < deadline - time.time() * 1000 <= 3000 + 1000
    assert h["lambda-runtime-invoked-function-arn"].endswith(f":function:{name}")
    assert h["lambda-runtime-trace-id"].startswith("Root=1-")


def test_dry_run_and_event(lam, make_function, tmp_path):
    mark = tmp_path / "marks"
    name = make_function("mark", env={"MARK_FILE": str(mark)})
    r = lam.invoke(FunctionName=name, InvocationType="DryRun")
    assert r["StatusCode"] == 204
    r = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"async": 1}')
    assert r["StatusCode"] == 202
    assert r["Payload"].read() == b""
    wait_for(lambda: mark.exists() and '{"async": 1}' in mark.read_text(), what="the event run")
    # InvokeAsync (deprecated API) is an Event invoke too
    r = lam.invoke_async(FunctionName=name, InvokeArgs=b'{"legacy": 1}')
    assert r["Status"] == 202
    wait_for(lambda: '{"legacy": 1}' in mark.read_text(), what="the legacy async run")
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=unique_name("nope"), InvocationType="DryRun")
    assert error_code(e) == "ResourceNotFoundException"


def test_event_retries_then_gives_up(private_server, tmp_path):
    from helpers.lambdafn import make_client
    s = private_server(extra_args=["--lambda-retry-ms", "200"])
    lam = make_client(s)
    mark = tmp_path / "marks"
    name = unique_name("flaky")
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                        Handler="function.handler", Code={"ZipFile": handler_zip("flaky")},
                        Environment={"Variables": {"MARK_FILE": str(mark)}})
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'"please fail"')
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'"fine"')
    # AWS: two retries after the first attempt -> three runs of the failing event
    wait_for(lambda: mark.exists() and mark.read_text().count("please fail") == 3,
             what="three attempts")
    time.sleep(0.6)  # a fourth attempt would come 200 ms after the third
    text = mark.read_text()
    assert text.count("please fail") == 3 and text.count("fine") == 1
    wait_for(lambda: "dropped" in s.log_text(), what="the drop warning")


def test_payload_limits_and_bad_json(lam, lam_nv, make_function):
    name = make_function("echo")
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b'"' + b"a" * (6 * 1024 * 1024) + b'"')
    assert error_code(e) == "RequestTooLargeException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, InvocationType="Event",
                   Payload=b'"' + b"a" * (256 * 1024) + b'"')
    assert error_code(e) == "RequestTooLargeException"
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b"{not json")
    assert error_code(e) == "InvalidRequestContentException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        lam_nv.invoke(FunctionName=name, InvocationType="Sometimes")
    assert error_code(e) == "ValidationException"
    # a payload just under the limit goes through and comes back
    big = b'"' + b"b" * (5 * 1024 * 1024) + b'"'
    r = lam.invoke(FunctionName=name, Payload=big)
    assert r["Payload"].read() == big


def test_response_too_large(lam, make_function):
    name = make_function("big")
    r, p = invoke_json(lam, name)
    assert r["FunctionError"] == "Unhandled"
    assert p["errorType"] == "Function.ResponseSizeTooLarge"


def test_missing_bootstrap(lam, make_function):
    name = make_function(zip=make_zip({"handler.sh": "echo hi"}))
    r, p = invoke_json(lam, name)
    assert r["FunctionError"] == "Unhandled"
    assert p["errorType"] == "Runtime.InvalidEntrypoint"
    assert "bootstrap" in p["errorMessage"]


def test_init_error(lam, make_function):
    name = make_function("initerr")
    r, p = invoke_json(lam, name)
    assert r["FunctionError"] == "Unhandled"
    assert p == {"errorMessage": "missing config", "errorType": "ConfigError"}


def test_log_tail_is_last_4kb(lam, make_function):
    name = make_function("echo")
    payload = json.dumps({"x": "y" * 10000}).encode()
    r = lam.invoke(FunctionName=name, Payload=payload, LogType="Tail")
    tail = base64.b64decode(r["LogResult"])
    assert len(tail) <= 4096
    assert tail.rstrip().split(b"\n")[-1].startswith(b"REPORT RequestId:")


def test_logs_command(lam, make_function, server):
    if server.external:
        pytest.skip("reads the server's data directory")
    name = make_function("echo")
    r = lam.invoke(FunctionName=name, Payload=b'{"log": "me"}')
    rid = r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    out = subprocess.run([str(server.binary), "logs", name, "--data", str(server.data_dir)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    start = [ln for ln in lines if "\tSTART RequestId: " in ln]
    assert len(start) == 1
    ts, req, text = start[0].split("\t", 2)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts)
    assert any(ln.endswith('event: {"log": "me"}') and f"\t{req}\t" in ln for ln in lines)
    assert any("\tREPORT RequestId: " in ln for ln in lines)
    assert req == rid
    # --follow prints lines appended later
    p = subprocess.Popen([str(server.binary), "logs", name, "--data", str(server.data_dir),
                          "--follow", "--lines", "0"], stdout=subprocess.PIPE, text=True)
    try:
        lam.invoke(FunctionName=name, Payload=b'{"later": 1}')
        got = ""
        deadline = time.monotonic() + 10
        while '"later": 1' not in got and time.monotonic() < deadline:
            got += p.stdout.readline()
        assert '"later": 1' in got
    finally:
        p.terminate()
        p.wait(timeout=10)
    bad = subprocess.run([str(server.binary), "logs", unique_name("nope"), "--data",
                          str(server.data_dir)], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 1 and "no function" in bad.stderr


def test_memory_size_bounds_the_instance(lam, make_function):
    """MemorySize is enforced with RLIMIT_DATA on the instance's processes: an allocation past
    it fails inside the function; the same allocation fits a larger MemorySize."""
    name = make_function("alloc", memory=128)
    r, p = invoke_json(lam, name, {"mb": 400})
    assert r.get("FunctionError") == "Unhandled" and p["errorType"] == "MemoryError", p
    r, p = invoke_json(lam, name, {"mb": 16})
    assert "FunctionError" not in r and p == {"allocated": 16}
    lam.update_function_configuration(FunctionName=name, MemorySize=1024)
    r, p = invoke_json(lam, name, {"mb": 400})
    assert "FunctionError" not in r and p == {"allocated": 400}
