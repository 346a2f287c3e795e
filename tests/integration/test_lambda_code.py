# SPDX-License-Identifier: Apache-2.0
"""Deployment packages through the Lambda API (issue #8): concurrent UpdateFunctionCode keeps the
package the registry names (also after a restart), refused creates leave nothing on disk, large
packages are stored off the network threads, and AWS's package limits answer AWS's errors."""
import io
import threading
import time
import zipfile

import pytest
from botocore.exceptions import ClientError

from helpers.lambdafn import (HANDLERS, RICH_BOOTSTRAP, ROLE, code_sha256, error_code,
                              invoke_json, make_client, make_zip, unique_name)

pytestmark = pytest.mark.deadline(240)


def tagged_zip(tag):
    return make_zip({"bootstrap": (RICH_BOOTSTRAP, 0o755), "function.sh": HANDLERS["echo"],
                     "tag.txt": tag})


def test_concurrent_update_code_keeps_the_winner(private_server):
    s = private_server()
    lam = make_client(s)
    name = unique_name("race")
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                        Handler="function.handler", Code={"ZipFile": tagged_zip("first")})
    clients = [make_client(s) for _ in range(6)]
    for rnd in range(6):
        errors = []

        def update(i):
            try:
                clients[i].update_function_code(FunctionName=name,
                                                ZipFile=tagged_zip(f"r{rnd}-t{i}"))
            except ClientError as e:  # throttled is allowed; anything else is not
                if error_code_of(e) != "TooManyRequestsException":
                    errors.append(e)

        ts = [threading.Thread(target=update, args=(i,)) for i in range(len(clients))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors
        _, p = invoke_json(lam, name, {"round": rnd})
        assert p == {"round": rnd}
    sha = lam.get_function_configuration(FunctionName=name)["CodeSha256"]
    s.restart()
    lam = make_client(s)
    assert lam.get_function_configuration(FunctionName=name)["CodeSha256"] == sha
    _, p = invoke_json(lam, name, {"after": "restart"})
    assert p == {"after": "restart"}


def error_code_of(e):
    return e.response["Error"]["Code"]


def test_refused_create_leaves_no_directory(private_server):
    s = private_server()
    lam = make_client(s)
    for i, z in enumerate([b"not a zip at all",
                           make_zip({"bootstrap": ("x", 0o755), "../evil": "x"})]):
        name = unique_name(f"refused{i}")
        with pytest.raises(ClientError) as e:
            lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                                Handler="x", Code={"ZipFile": z})
        assert error_code(e) == "InvalidParameterValueException"
        assert not (s.data_dir / "functions" / name).exists()


def zip_of(entries, big=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        z.writestr(info, "#!/bin/sh\n")
        for i in range(entries - 1):
            z.writestr(f"lib/d{i // 1000}/f{i}", b"x")
        if big:
            z.writestr("big.bin", bytes(big))
    return buf.getvalue()


def test_unzipped_past_250mb_is_invalid_parameter(private_server):
    s = private_server()
    lam = make_client(s)
    z = zip_of(1, big=250 * 1024 * 1024 + 1)
    name = unique_name("huge")
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                            Handler="x", Code={"ZipFile": z})
    assert error_code(e) == "InvalidParameterValueException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Unzipped size must be smaller than 262144000 bytes" in str(e.value)
    assert not (s.data_dir / "functions" / name).exists()


def test_too_many_entries_is_invalid_parameter(private_server):
    s = private_server()
    lam = make_client(s)
    name = unique_name("many")
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                            Handler="x", Code={"ZipFile": zip_of(65536)})
    assert error_code(e) == "InvalidParameterValueException"
    assert "65535" in str(e.value)
    assert not (s.data_dir / "functions" / name).exists()


def test_large_package_does_not_hold_a_network_thread(private_server):
    """One network thread: a package of 20,000 files used to hold it (one fsync per file) for
    tens of seconds; now it is stored on a code worker and other calls are answered meanwhile."""
    s = private_server(extra_args=["--threads", "1"])
    z = zip_of(20000)
    name = unique_name("big")
    result = {}

    def create():
        c = make_client(s, read_timeout=120)
        t0 = time.monotonic()
        c.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                          Handler="x", Code={"ZipFile": z})
        result["took"] = time.monotonic() - t0

    t = threading.Thread(target=create)
    t.start()
    probe = make_client(s, read_timeout=5)
    served_during = 0
    worst = 0.0
    while t.is_alive():
        t0 = time.monotonic()
        probe.list_functions()
        worst = max(worst, time.monotonic() - t0)
        if t.is_alive():
            served_during += 1
        time.sleep(0.02)  # pacing of the probe
    t.join()
    assert "took" in result
    assert worst < 2.0, f"ListFunctions waited {worst:.1f}s behind the upload"
    assert served_during >= 1
    lam = make_client(s)
    assert lam.get_function_configuration(FunctionName=name)["CodeSha256"] == code_sha256(z)
