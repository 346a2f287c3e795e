# SPDX-License-Identifier: Apache-2.0
"""Lambda control plane through boto3: create/get/list/update/delete, concurrency, and the
error types, statuses and body shape AWS uses for each failure."""
import base64
import os
import re
import urllib.request

import pytest
from botocore.exceptions import ClientError

from helpers import raw
from helpers.lambdafn import (ROLE, code_sha256, error_code, handler_zip, invoke_json, lam,  # noqa: F401
                              lam_nv, make_function, make_zip, tutorial_zip, unique_name)

pytestmark = pytest.mark.deadline(120)


def test_create_returns_aws_configuration(lam, make_function, server):
    z = tutorial_zip()
    name = unique_name("create")
    r = lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                            Handler="function.handler", Code={"ZipFile": z},
                            Description="tutorial")
    try:
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
        assert r["FunctionName"] == name
        assert r["FunctionArn"] == f"arn:aws:lambda:{server.region}:000000000000:function:{name}"
        assert r["CodeSha256"] == code_sha256(z)
        assert r["CodeSize"] == len(z)
        assert r["Version"] == "$LATEST"
        assert r["State"] == "Active"
        assert r["LastUpdateStatus"] == "Successful"
        assert r["Timeout"] == 3 and r["MemorySize"] == 128
        assert r["Runtime"] == "provided.al2023" and r["Handler"] == "function.handler"
        assert r["Role"] == ROLE and r["Description"] == "tutorial"
        assert r["PackageType"] == "Zip" and r["Architectures"] == ["x86_64"]
        assert re.fullmatch(r"[0-9a-f-]{36}", r["RevisionId"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", r["LastModified"])
        lam.get_waiter("function_active_v2").wait(FunctionName=name,
                                                  WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    finally:
        lam.delete_function(FunctionName=name)


def test_create_duplicate_is_conflict(lam, make_function):
    name = make_function("echo")
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                            Handler="x", Code={"ZipFile": handler_zip("echo")})
    assert error_code(e) == "ResourceConflictException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


@pytest.mark.parametrize("zipfile,fragment", [
    (b"this is not a zip", "unzip"),
    (make_zip({"../evil": "x", "bootstrap": ("#!/bin/sh\n", 0o755)}), ".."),
    (make_zip({"/etc/evil": "x"}), ".."),
    (make_zip({"a/../../evil": "x"}), ".."),
])
def test_create_rejects_bad_and_unsafe_zips(lam, zipfile, fragment, server):
    name = unique_name("badzip")
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                            Handler="x", Code={"ZipFile": zipfile})
    assert error_code(e) == "InvalidParameterValueException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert fragment in e.value.response["Error"]["Message"]
    if not server.external:
        assert not (server.data_dir / "functions" / "evil").exists()
        assert not (server.data_dir / "evil").exists()
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName=name)
    assert error_code(e) == "ResourceNotFoundException"


def test_symlink_escaping_the_package_is_refused(lam):
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("link")
        info.create_system = 3
        info.external_attr = (0o120777) << 16
        z.writestr(info, "../../../../etc/passwd")
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName=unique_name("symlink"), Runtime="provided.al2023",
                            Role=ROLE, Handler="x", Code={"ZipFile": buf.getvalue()})
    assert error_code(e) == "InvalidParameterValueException"


def test_create_validation_errors(lam_nv):
    base = dict(Runtime="provided.al2023", Role=ROLE, Handler="x",
                Code={"ZipFile": handler_zip("echo")})
    cases = [
        (dict(FunctionName="bad name!"), "ValidationException"),
        (dict(FunctionName="x" * 65), "ValidationException"),
        (dict(FunctionName=unique_name("t"), Timeout=0), "ValidationException"),
        (dict(FunctionName=unique_name("t"), Timeout=901), "ValidationException"),
        (dict(FunctionName=unique_name("t"), MemorySize=64), "ValidationException"),
        (dict(FunctionName=unique_name("t"), MemorySize=10241), "ValidationException"),
        (dict(FunctionName=unique_name("t"), Runtime="python3.12"),
         "InvalidParameterValueException"),
        (dict(FunctionName=unique_name("t"),
              Environment={"Variables": {"AWS_REGION": "eu-west-1"}}),
         "InvalidParameterValueException"),
        (dict(FunctionName=unique_name("t"), Environment={"Variables": {"A": "x"}}),
         "InvalidParameterValueException"),
        (dict(FunctionName=unique_name("t"), Environment={"Variables": {"BIG": "x" * 5000}}),
         "InvalidParameterValueException"),
        (dict(FunctionName=unique_name("t"), Code={}), "InvalidParameterValueException"),
        (dict(FunctionName=unique_name("t"), Code={"S3Bucket": "b", "S3Key": "k"}),
         "InvalidParameterValueException"),
    ]
    for over, code in cases:
        kw = dict(base, **over)
        with pytest.raises(ClientError) as e:
            lam_nv.create_function(**kw)
        assert error_code(e) == code, (over, e.value.response)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    kw = dict(base, FunctionName=unique_name("t"))
    del kw["Role"]
    with pytest.raises(ClientError) as e:
        lam_nv.create_function(**kw)
    assert error_code(e) == "ValidationException"


def test_get_function_and_configuration(lam, make_function, server):
    name = make_function("echo", env={"GREETING": "hi"}, timeout=7, memory=256)
    g = lam.get_function(FunctionName=name)
    c = g["Configuration"]
    assert c["FunctionName"] == name and c["Timeout"] == 7 and c["MemorySize"] == 256
    assert c["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert g["Code"]["RepositoryType"] == "S3" and g["Code"]["Location"]
    assert "Concurrency" not in g
    c2 = lam.get_function_configuration(FunctionName=name)
    for key in ("FunctionArn", "CodeSha256", "RevisionId", "LastModified", "Environment"):
        assert c2[key] == c[key]
    # the function may be named by ARN or partial ARN, with $LATEST
    arn = c["FunctionArn"]
    assert lam.get_function(FunctionName=arn)["Configuration"]["FunctionName"] == name
    assert lam.get_function(FunctionName=f"000000000000:function:{name}")[
        "Configuration"]["FunctionName"] == name
    assert lam.get_function(FunctionName=name, Qualifier="$LATEST")[
        "Configuration"]["Version"] == "$LATEST"


def test_not_found_shape(lam, server):
    name = unique_name("missing")
    for call in (lambda: lam.get_function(FunctionName=name),
                 lambda: lam.get_function_configuration(FunctionName=name),
                 lambda: lam.delete_function(FunctionName=name),
                 lambda: lam.update_function_code(FunctionName=name, ZipFile=handler_zip("echo")),
                 lambda: lam.update_function_configuration(FunctionName=name, Timeout=5),
                 lambda: lam.invoke(FunctionName=name),
                 lambda: lam.put_function_concurrency(FunctionName=name,
                                                      ReservedConcurrentExecutions=1),
                 lambda: lam.get_function_concurrency(FunctionName=name),
                 lambda: lam.delete_function_concurrency(FunctionName=name)):
        with pytest.raises(ClientError) as e:
            call()
        r = e.value.response
        assert r["Error"]["Code"] == "ResourceNotFoundException"
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"].startswith(
            "ResourceNotFoundException")
        assert r.get("Type") == "User"
        assert f"function:{name}" in r["Error"]["Message"]


def test_unknown_version_is_not_found(lam, make_function):
    name = make_function("echo")
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName=name, Qualifier="1")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=f"{name}:prod")
    assert error_code(e) == "ResourceNotFoundException"


def test_list_functions_pages(lam, make_function):
    tag = unique_name("list")[:40]
    names = sorted(make_function("echo", name=f"{tag}-{i}") for i in range(5))
    seen, marker, pages = [], None, 0
    while True:
        kw = {"MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        r = lam.list_functions(**kw)
        pages += 1
        assert len(r["Functions"]) <= 2
        seen += [f["FunctionName"] for f in r["Functions"]]
        marker = r.get("NextMarker")
        if not marker:
            break
    mine = [n for n in seen if n.startswith(tag)]
    assert mine == names
    assert pages >= 3
    paged = [f["FunctionName"] for p in lam.get_paginator("list_functions").paginate(
        PaginationConfig={"PageSize": 3}) for f in p["Functions"]]
    assert [n for n in paged if n.startswith(tag)] == names
    full = lam.list_functions()["Functions"]
    f = next(x for x in full if x["FunctionName"] == names[0])
    assert f["CodeSha256"] and f["Version"] == "$LATEST"


def test_list_functions_bad_max_items(lam_nv):
    with pytest.raises(ClientError) as e:
        lam_nv.list_functions(MaxItems=0)
    assert error_code(e) == "ValidationException"


def test_update_code_changes_sha_revision_and_behaviour(lam, make_function):
    name = make_function("echo")
    before = lam.get_function_configuration(FunctionName=name)
    r1, p1 = invoke_json(lam, name, {"a": 1})
    assert p1 == {"a": 1}
    z = handler_zip("pid")
    r = lam.update_function_code(FunctionName=name, ZipFile=z,
                                 RevisionId=before["RevisionId"])
    assert r["CodeSha256"] == code_sha256(z) and r["CodeSize"] == len(z)
    assert r["RevisionId"] != before["RevisionId"]
    _, p2 = invoke_json(lam, name, {"a": 1})
    assert isinstance(p2, dict) and "pid" in p2
    with pytest.raises(ClientError) as e:
        lam.update_function_code(FunctionName=name, ZipFile=z, RevisionId=before["RevisionId"])
    assert error_code(e) == "PreconditionFailedException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as e:
        lam.update_function_code(FunctionName=name, ZipFile=b"not a zip")
    assert error_code(e) == "InvalidParameterValueException"
    assert lam.get_function_configuration(FunctionName=name)["CodeSha256"] == code_sha256(z)


def test_update_configuration(lam, lam_nv, make_function):
    name = make_function("env", env={"AA": "1"})
    r = lam.update_function_configuration(FunctionName=name, Timeout=10, MemorySize=512,
                                          Handler="function.handler", Description="d2",
                                          Environment={"Variables": {"BB": "2", "CC": "three"}})
    assert r["Timeout"] == 10 and r["MemorySize"] == 512 and r["Description"] == "d2"
    assert r["Environment"]["Variables"] == {"BB": "2", "CC": "three"}
    c = lam.get_function_configuration(FunctionName=name)
    assert c["Environment"]["Variables"] == {"BB": "2", "CC": "three"}
    assert c["RevisionId"] == r["RevisionId"]
    _, p = invoke_json(lam, name)
    env = p["env"]
    assert env["BB"] == "2" and env["CC"] == "three" and "AA" not in env
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    for bad, code in ((dict(Timeout=0), "ValidationException"),
                      (dict(MemorySize=100), "ValidationException"),
                      (dict(Environment={"Variables": {"_HANDLER": "x"}}),
                       "InvalidParameterValueException"),
                      (dict(Runtime="nodejs20.x"), "InvalidParameterValueException"),
                      (dict(RevisionId="00000000-0000-4000-8000-000000000000"),
                       "PreconditionFailedException")):
        with pytest.raises(ClientError) as e:
            lam_nv.update_function_configuration(FunctionName=name, **bad)
        assert error_code(e) == code, bad
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 10


def test_delete_function(lam):
    name = unique_name("del")
    lam.create_function(FunctionName=name, Runtime="provided", Role=ROLE,
                        Handler="function.handler", Code={"ZipFile": handler_zip("echo")})
    invoke_json(lam, name, {"warm": True})
    r = lam.delete_function(FunctionName=name)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName=name)
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lam.delete_function(FunctionName=name)
    assert error_code(e) == "ResourceNotFoundException"
    # the name is free again at once, with a fresh state
    lam.create_function(FunctionName=name, Runtime="provided.al2", Role=ROLE,
                        Handler="function.handler", Code={"ZipFile": handler_zip("pid")})
    try:
        _, p = invoke_json(lam, name)
        assert "pid" in p
    finally:
        lam.delete_function(FunctionName=name)


def test_concurrency_put_get_delete(lam, lam_nv, make_function):
    name = make_function("echo")
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    r = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    assert r["ReservedConcurrentExecutions"] == 3
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    assert lam.get_function(FunctionName=name)["Concurrency"] == {
        "ReservedConcurrentExecutions": 3}
    with pytest.raises(ClientError) as e:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=100000)
    assert error_code(e) == "InvalidParameterValueException"
    with pytest.raises(ClientError) as e:
        lam_nv.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=-1)
    assert error_code(e) == "ValidationException"
    r = lam.delete_function_concurrency(FunctionName=name)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)


def test_error_body_and_header_shape(server, make_function, lam):
    """REST JSON errors: x-amzn-ErrorType header, {"Type": "User", "Message"/"message"}."""
    r = raw.RawClient(server, service="lambda").call(
        method="GET", path=f"/2015-03-31/functions/{unique_name('nope')}/configuration")
    assert r.status == 404, r
    assert r.headers["x-amzn-errortype"].startswith("ResourceNotFoundException")
    assert r.json["Type"] == "User" and "Function not found" in r.json["Message"]


def test_metrics_endpoint_needs_no_auth(server, lam, make_function):
    name = make_function("echo")
    invoke_json(lam, name, {"m": 1})
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    assert f'tributary_lambda_invocations_total{{function_name="{name}"}} 1' in text
    assert f'tributary_lambda_errors_total{{function_name="{name}"}} 0' in text
    assert f'tributary_lambda_duration_milliseconds_count{{function_name="{name}"}} 1' in text
    assert "# TYPE tributary_lambda_concurrent_executions gauge" in text
    assert "# TYPE tributary_lambda_throttles_total counter" in text


def test_function_arn_of_another_account_or_region_is_refused(lam_nv, make_function, server):
    """A FunctionName ARN (full or partial) naming a function of another account is 403
    AccessDeniedException, one of another region 404 "not reachable in this region" -- even when
    a function of that name exists here -- in every operation that takes FunctionName, and
    nothing changes."""
    name = make_function("echo")
    other = "eu-west-3" if server.region != "eu-west-3" else "us-east-2"
    foreign = {
        "AccessDeniedException": [f"arn:aws:lambda:{server.region}:123456789012:function:{name}",
                                  f"123456789012:function:{name}"],
        "ResourceNotFoundException": [f"arn:aws:lambda:{other}:000000000000:function:{name}",
                                      f"arn:aws-cn:lambda:{server.region}:000000000000:"
                                      f"function:{name}"],
    }
    calls = {
        "GetFunction": lambda fn: lam_nv.get_function(FunctionName=fn),
        "GetFunctionConfiguration": lambda fn: lam_nv.get_function_configuration(FunctionName=fn),
        "UpdateFunctionConfiguration": lambda fn: lam_nv.update_function_configuration(
            FunctionName=fn, Timeout=9),
        "UpdateFunctionCode": lambda fn: lam_nv.update_function_code(
            FunctionName=fn, ZipFile=handler_zip("echo")),
        "InvokeFunction": lambda fn: lam_nv.invoke(FunctionName=fn, Payload=b"{}"),
        "PutFunctionConcurrency": lambda fn: lam_nv.put_function_concurrency(
            FunctionName=fn, ReservedConcurrentExecutions=1),
        "GetFunctionConcurrency": lambda fn: lam_nv.get_function_concurrency(FunctionName=fn),
        "DeleteFunctionConcurrency": lambda fn: lam_nv.delete_function_concurrency(
            FunctionName=fn),
        "DeleteFunction": lambda fn: lam_nv.delete_function(FunctionName=fn),
        "CreateFunction": lambda fn: lam_nv.create_function(
            FunctionName=fn, Runtime="provided.al2023", Role=ROLE, Handler="function.handler",
            Code={"ZipFile": handler_zip("echo")}),
        "CreateEventSourceMapping": lambda fn: lam_nv.create_event_source_mapping(
            FunctionName=fn, StartingPosition="LATEST",
            EventSourceArn=f"arn:aws:kinesis:{server.region}:000000000000:stream/none"),
        "ListEventSourceMappings": lambda fn: lam_nv.list_event_source_mappings(FunctionName=fn),
    }
    for code, arns in foreign.items():
        for fn in arns:
            for action, call in calls.items():
                if action == "CreateFunction" and ":function:" in fn and not fn.startswith("arn"):
                    continue  # partial ARN is not a CreateFunction FunctionName shape here
                with pytest.raises(ClientError) as ei:
                    call(fn)
                assert error_code(ei) == code, (action, fn, ei.value.response)
                status = ei.value.response["ResponseMetadata"]["HTTPStatusCode"]
                assert status == (403 if code == "AccessDeniedException" else 404), (action, fn)
                if code == "AccessDeniedException":
                    assert f"lambda:{action}" in str(ei.value), (action, str(ei.value))
    cfg = lam_nv.get_function_configuration(FunctionName=name)
    assert cfg["Timeout"] == 3
    assert lam_nv.get_function_concurrency(FunctionName=name).get(
        "ReservedConcurrentExecutions") is None
    # this server's own ARN still works
    own = f"arn:aws:lambda:{server.region}:000000000000:function:{name}"
    assert lam_nv.get_function(FunctionName=own)["Configuration"]["FunctionName"] == name
