# SPDX-License-Identifier: Apache-2.0
"""Reserved and account concurrency: caps on running instances, TooManyRequestsException with
AWS's Reason for synchronous calls beyond the cap, queueing (not refusal) for Event calls."""
import concurrent.futures as cf

import pytest
from botocore.exceptions import ClientError

from helpers import server as srv
from helpers.lambdafn import (ROLE, error_code, handler_zip, invoke_json, lam,  # noqa: F401
                              make_client, make_function, unique_name, wait_for)

pytestmark = pytest.mark.deadline(120)


def _parallel(client, name, n, event=None):
    def one(_):
        try:
            r, p = invoke_json(client, name, event)
            return ("ok", r, p)
        except ClientError as e:
            return ("err", e.response, None)
    with cf.ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


def test_reserved_concurrency_caps_instances_and_throttles(lam, make_function, server):
    name = make_function("sleep", env={"SLEEP": "1.5"}, timeout=10)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    res = _parallel(lam, name, 5)
    ok = [r for r in res if r[0] == "ok"]
    thr = [r for r in res if r[0] == "err"]
    assert len(ok) == 2, res
    assert len(thr) == 3
    for _, resp, _ in thr:
        assert resp["Error"]["Code"] == "TooManyRequestsException"
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert resp["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert resp["ResponseMetadata"]["HTTPHeaders"].get("retry-after") == "1"
    pids = {p["pid"] for _, _, p in ok}
    assert len(pids) == 2   # two instances, never more than the reservation
    # the slots are free again once they finished
    r, p = invoke_json(lam, name, {"sleep": 0})
    assert p["pid"] in pids
    if not server.external:
        import urllib.request
        text = urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10).read().decode()
        assert f'tributary_lambda_throttles_total{{function_name="{name}"}} 3' in text


def test_zero_reserved_concurrency_throttles_everything(lam, make_function):
    name = make_function("echo")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert error_code(e) == "TooManyRequestsException"
    lam.delete_function_concurrency(FunctionName=name)
    r, p = invoke_json(lam, name, {"back": True})
    assert p == {"back": True}


def test_events_queue_at_the_cap_and_run_one_at_a_time(lam, make_function, tmp_path):
    mark = tmp_path / "marks"
    name = make_function("mark", env={"MARK_FILE": str(mark), "SLEEP": "0.3"})
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    for i in range(4):
        assert lam.invoke(FunctionName=name, InvocationType="Event",
                          Payload=f'{{"n": {i}}}'.encode())["StatusCode"] == 202
    wait_for(lambda: mark.exists() and len(mark.read_text().splitlines()) == 4,
             what="four async runs")
    spans = sorted((float(a), float(b)) for a, b, *_ in
                   (ln.split(" ", 3) for ln in mark.read_text().splitlines()))
    for (s1, e1), (s2, _) in zip(spans, spans[1:]):
        assert s2 >= e1 - 0.01, spans   # never two at once
    assert len({ln.split(" ")[2] for ln in mark.read_text().splitlines()}) == 1  # one instance


def test_account_concurrency_limit(private_server):
    s = private_server(extra_args=["--lambda-concurrency", "2"])
    lam = make_client(s)
    names = []
    for i in range(2):
        n = unique_name(f"acct{i}")
        lam.create_function(FunctionName=n, Runtime="provided.al2023", Role=ROLE,
                            Handler="function.handler", Code={"ZipFile": handler_zip("sleep")},
                            Environment={"Variables": {"SLEEP": "1.5"}}, Timeout=10)
        names.append(n)

    def one(n):
        try:
            invoke_json(lam, n)
            return None
        except ClientError as e:
            return e.response
    with cf.ThreadPoolExecutor(3) as ex:
        futs = [ex.submit(one, names[0]), ex.submit(one, names[0])]
        running = f'tributary_lambda_concurrent_executions{{function_name="{names[0]}"}} 2\n'
        wait_for(lambda: running in srv.metrics_text(s), 5,
                 what=f"both calls of {names[0]} running before the third call")
        futs.append(ex.submit(one, names[1]))
        res = [f.result() for f in futs]
    errs = [r for r in res if r]
    assert len(errs) == 1, res
    assert errs[0]["Error"]["Code"] == "TooManyRequestsException"
    assert errs[0]["Reason"] == "ConcurrentInvocationLimitExceeded"
    with pytest.raises(ClientError) as e:
        lam.put_function_concurrency(FunctionName=names[0], ReservedConcurrentExecutions=3)
    assert error_code(e) == "InvalidParameterValueException"
    lam.put_function_concurrency(FunctionName=names[0], ReservedConcurrentExecutions=2)
    # with both slots reserved for names[0], the other function has none left
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=names[1], Payload=b'{"sleep": 0}')
    assert error_code(e) == "TooManyRequestsException"
