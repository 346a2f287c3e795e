# SPDX-License-Identifier: Apache-2.0
"""Functions survive restarts (SIGTERM and kill -9): configuration, code, reserved
concurrency, and Event invocations that were acknowledged but had not run yet."""
import signal

import pytest
from botocore.exceptions import ClientError

from helpers.lambdafn import (ROLE, code_sha256, handler_zip, invoke_json, make_client,
                              unique_name, wait_for)

pytestmark = pytest.mark.deadline(120)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_functions_survive_restart(private_server, sig):
    s = private_server()
    lam = make_client(s)
    name, gone = unique_name("persist"), unique_name("gone")
    for n in (name, gone):
        lam.create_function(FunctionName=n, Runtime="provided.al2023", Role=ROLE,
                            Handler="function.handler", Code={"ZipFile": handler_zip("echo")},
                            Timeout=9, MemorySize=384,
                            Environment={"Variables": {"KEEP": "me"}})
    z = handler_zip("env")
    lam.update_function_code(FunctionName=name, ZipFile=z)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=4)
    lam.delete_function(FunctionName=gone)
    before = lam.get_function_configuration(FunctionName=name)
    invoke_json(lam, name)

    s.restart(sig)
    lam = make_client(s)
    after = lam.get_function_configuration(FunctionName=name)
    for key in ("FunctionArn", "CodeSha256", "CodeSize", "RevisionId", "LastModified",
                "Timeout", "MemorySize", "Environment", "Runtime", "Handler", "Role"):
        assert after[key] == before[key], key
    assert after["CodeSha256"] == code_sha256(z)
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 4
    _, p = invoke_json(lam, name)
    assert p["env"]["KEEP"] == "me"
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName=gone)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert not (s.data_dir / "functions" / gone).exists()
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert names == [name]


def test_acknowledged_events_run_after_kill9(private_server, tmp_path):
    s = private_server()
    lam = make_client(s)
    mark = tmp_path / "marks"
    name = unique_name("evq")
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                        Handler="function.handler", Code={"ZipFile": handler_zip("mark")},
                        Environment={"Variables": {"MARK_FILE": str(mark)}})
    # no slot: events are acknowledged into the durable queue but cannot run
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    for i in range(5):
        assert lam.invoke(FunctionName=name, InvocationType="Event",
                          Payload=f'{{"n": {i}}}'.encode())["StatusCode"] == 202
    assert not mark.exists()
    s.kill9()
    s.start()
    lam = make_client(s)
    assert not mark.exists()
    lam.delete_function_concurrency(FunctionName=name)
    wait_for(lambda: mark.exists() and len(mark.read_text().splitlines()) == 5,
             what="the five queued events")
    got = sorted(ln.split(" ", 3)[3] for ln in mark.read_text().splitlines())
    assert got == sorted(f'{{"n": {i}}}' for i in range(5))
