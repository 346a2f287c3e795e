# SPDX-License-Identifier: Apache-2.0
"""Native functions' in-process DynamoDB (trf_table_call / trf_table_send + trf_table_flush):
the same adapter as the HTTP API -- results, errors, conditions, transactions -- with pipelined
writes, and a handler that crashes mid-call leaves the server serving."""
import json
import time

import pytest

from helpers import esm
from helpers import lambdafn as lf
from helpers.lambdafn import lam, make_function  # noqa: F401 (fixtures)
from helpers.esm import make_mapping  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("local_only")


@pytest.fixture
def tablecheck(make_function):
    return make_function(zip=esm.native_zip("tablecheck"), runtime=esm.NATIVE_RUNTIME,
                         handler_name="libtablecheck.so:handler", timeout=30)


def test_sync_calls_have_the_apis_semantics(lam, ddb, make_table, tablecheck):
    t = make_table()
    r, body = lf.invoke_json(lam, tablecheck, {"table": t, "mode": "basic"})
    assert "FunctionError" not in r, body
    res = body["results"]
    ops = [(x["op"], x["rc"]) for x in res]
    assert ops == [("PutItem", 0), ("GetItem", 0), ("UpdateItem", 0), ("PutItem", 400),
                   ("TransactWriteItems", 0), ("TransactWriteItems", 400),
                   ("NoSuchOperation", 400), ("GetItem", 400)]
    assert res[1]["resp"]["Item"] == {"pk": {"S": "a"}, "n": {"N": "1"}, "s": {"S": "hello"}}
    assert res[2]["resp"] == {"Attributes": {"n": {"N": "3"}}}
    assert res[3]["resp"]["__type"].endswith("#ConditionalCheckFailedException")
    assert res[5]["resp"]["__type"].endswith("#TransactionCanceledException")
    assert [c["Code"] for c in res[5]["resp"]["CancellationReasons"]] == \
        ["None", "ConditionalCheckFailed"]
    assert res[6]["resp"]["__type"].endswith("UnknownOperationException")
    assert res[7]["resp"]["__type"].endswith("SerializationException")
    # What the function wrote is what the HTTP API reads.
    a = ddb.get_item(TableName=t, Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert a["n"] == {"N": "13"}
    assert ddb.get_item(TableName=t, Key={"pk": {"S": "b"}})["Item"]["v"] == {"S": "x"}
    assert "Item" not in ddb.get_item(TableName=t, Key={"pk": {"S": "c"}})


def test_pipelined_writes_all_answered_and_applied(lam, ddb, make_table, tablecheck):
    t = make_table()
    n = 400
    r, body = lf.invoke_json(lam, tablecheck, {"table": t, "mode": "pipeline", "n": n})
    assert "FunctionError" not in r, body
    assert body["sent"] == 2 * n and body["failed"] == 0
    assert body["statuses"] == [200] * (2 * n)
    c = ddb.get_item(TableName=t, Key={"pk": {"S": "counter"}}, ConsistentRead=True)["Item"]
    assert c["c"] == {"N": str(n)}
    assert ddb.scan(TableName=t, Select="COUNT")["Count"] == n + 1
    r, body = lf.invoke_json(lam, tablecheck, {"table": t, "mode": "sync", "n": 50})
    assert body == {"failed": 0}
    s = ddb.get_item(TableName=t, Key={"pk": {"S": "sync"}}, ConsistentRead=True)["Item"]
    assert s["c"] == {"N": "50"}


def test_missing_table_is_the_apis_error(lam, tablecheck):
    r, body = lf.invoke_json(lam, tablecheck, {"table": "no-such-table", "mode": "pipeline",
                                               "n": 3})
    assert "FunctionError" not in r
    assert body["failed"] == 6 and set(body["statuses"]) == {400}


def test_crash_mid_pipeline_leaves_the_server_serving(lam, ddb, make_table, tablecheck):
    t = make_table()
    r, body = lf.invoke_json(lam, tablecheck, {"table": t, "mode": "crash", "n": 300})
    assert r.get("FunctionError") == "Unhandled"
    assert "segmentation fault" in body["errorMessage"]
    # The server and the function's next (cold) host work; writes sent before the crash either
    # applied whole or not at all.
    r, body = lf.invoke_json(lam, tablecheck, {"table": t, "mode": "pipeline", "n": 20})
    assert "FunctionError" not in r and body["failed"] == 0
    items = ddb.scan(TableName=t, ConsistentRead=True)["Items"]
    xs = [i for i in items if i["pk"]["S"].startswith("x-")]
    assert all(set(i) == {"pk"} for i in xs)
    assert ddb.get_item(TableName=t, Key={"pk": {"S": "counter"}},
                        ConsistentRead=True)["Item"]["c"] == {"N": "20"}


def iot_tables(make_table, make_function, **env):
    """Tables device_latest, device_minute and alerts, and iot.c deployed on them."""
    latest = make_table(hash=("device", "S"))
    minute = make_table(hash=("device", "S"), range=("minute", "S"))
    alerts = make_table(hash=("device", "S"), range=("seq", "S"))
    fn = make_function(zip=esm.native_zip("iot"), runtime=esm.NATIVE_RUNTIME,
                       handler_name="libiot.so:handler",
                       env={"IOT_LATEST_TABLE": latest, "IOT_MINUTE_TABLE": minute,
                            "IOT_ALERTS_TABLE": alerts, **env})
    return fn, latest, minute, alerts


def test_iot_function_writes_the_tables(lam, ddb, make_table, make_function):
    fn, latest, minute, alerts = iot_tables(make_table, make_function, IOT_ALERT_TEMP="50")
    ts = 1700000000000   # 2023-11-14T22:13:20Z
    recs = [("d-1", json.dumps({"device": "d-1", "n": 1, "ts": ts, "temperature": 21.5})),
            ("d-1", json.dumps({"device": "d-1", "n": 2, "ts": ts + 1000, "temperature": 80.25})),
            ("d-1", json.dumps({"device": "d-1", "n": 3, "ts": ts + 2000, "temperature": 20.1,
                                "fault": "fan"})),
            ("d-2", '{"device": "d-2", "temp'),
            ("d-2", json.dumps({"device": "d-2", "n": 1, "ts": ts, "temperature": 10}))]
    from test_native_functions import kinesis_event
    ev = kinesis_event(recs)
    for _ in range(2):   # the same batch twice: a redelivery counts nothing twice but ADDs
        r, body = lf.invoke_json(lam, fn, ev, LogType="Tail")
        assert "FunctionError" not in r, body
        log = __import__("base64").b64decode(r["LogResult"]).decode()
        assert body == {"batchItemFailures": [{"itemIdentifier": f"4959{3:030d}"}]}, log
    m = ddb.get_item(TableName=minute, Key={"device": {"S": "d-1"},
                                            "minute": {"S": "2023-11-14T22:13"}},
                     ConsistentRead=True)["Item"]
    # count/sum are ADDs (at-least-once: the redelivery adds again); min/max/alerts idempotent.
    assert m["count"] == {"N": "6"} and m["sum"] == {"N": "243.7"}
    assert m["min"] == {"N": "20.1"} and m["max"] == {"N": "80.25"}
    assert m["alerts"] == {"N": "2"}
    l1 = ddb.get_item(TableName=latest, Key={"device": {"S": "d-1"}})["Item"]
    assert l1["n"] == {"N": "3"} and l1["fault"] == {"S": "fan"}
    assert "Item" not in ddb.get_item(TableName=latest, Key={"device": {"S": "d-2"}})
    al = ddb.query(TableName=alerts, KeyConditionExpression="device = :d",
                   ExpressionAttributeValues={":d": {"S": "d-1"}})["Items"]
    assert sorted(a["reason"]["S"] for a in al) == ["fan", "temperature"]


def test_iot_function_takes_a_device_name_that_escapes_long(lam, ddb, make_table, make_function):
    """A device name of 200 control characters is 1,200 bytes once JSON-escaped: the function's
    requests must not cut it (iot.c once built device_minute's key in a 1,024-byte buffer, so the
    UpdateItem was invalid JSON and the batch was retried until it went to the destination)."""
    fn, latest, minute, _ = iot_tables(make_table, make_function)
    device = "\u0001" * 200
    ts = 1700000000000   # 2023-11-14T22:13:20Z
    recs = [(f"d{i}", json.dumps({"device": device, "n": i, "ts": ts, "temperature": 20 + i}))
            for i in (1, 2)]
    from test_native_functions import kinesis_event
    r, body = lf.invoke_json(lam, fn, kinesis_event(recs), LogType="Tail")
    assert "FunctionError" not in r, body
    assert not (body or {}).get("batchItemFailures"), \
        __import__("base64").b64decode(r["LogResult"]).decode()
    m = ddb.get_item(TableName=minute, Key={"device": {"S": device},
                                            "minute": {"S": "2023-11-14T22:13"}},
                     ConsistentRead=True)["Item"]
    assert m["count"] == {"N": "2"} and m["sum"] == {"N": "43"}
    assert m["min"] == {"N": "21"} and m["max"] == {"N": "22"}
    assert ddb.get_item(TableName=latest, Key={"device": {"S": device}})["Item"]["n"] == {"N": "2"}


def test_iot_function_reports_a_malformed_first_reading(lam, ddb, make_table, make_function):
    """A malformed reading first in its batch is reported like any other (before: the invocation
    failed, so a mapping with bisection halved the batch down to it, ~2 log2(batch) invocations);
    nothing of the batch is applied: the mapping splits it there and delivers the rest again."""
    fn, latest, minute, _ = iot_tables(make_table, make_function)
    ts = 1700000000000
    recs = [("d-1", '{"device": "d-1", "temp'),
            ("d-1", json.dumps({"device": "d-1", "n": 1, "ts": ts, "temperature": 21.5}))]
    from test_native_functions import kinesis_event
    r, body = lf.invoke_json(lam, fn, kinesis_event(recs), LogType="Tail")
    assert "FunctionError" not in r, body
    assert body == {"batchItemFailures": [{"itemIdentifier": f"4959{0:030d}"}]}
    assert "Item" not in ddb.get_item(TableName=latest, Key={"device": {"S": "d-1"}},
                                      ConsistentRead=True)
    assert not ddb.scan(TableName=minute)["Items"]


def test_iot_mapping_applies_the_readings_after_a_malformed_one_once(
        server, kinesis, lam, ddb, make_stream, make_table, make_function, make_mapping):
    """Through a mapping as the demo's (bisection, partial batch responses, 1 retry): the batch
    stops at each malformed reading, the mapping splits it there -- the reading alone to its
    retry and the destination, the readings after it as a new batch -- so every valid reading is
    counted exactly once and each malformed one reaches the destination alone."""
    fn, latest, minute, _ = iot_tables(make_table, make_function)
    stream, dest = make_stream(), make_stream()
    ts = 1700000000000   # 2023-11-14T22:13:20Z
    bad = {0, 7, 8}
    datas = ['{"device": "d-1", "temp' if i in bad else
             json.dumps({"device": "d-1", "n": i, "ts": ts, "temperature": i})
             for i in range(16)]
    seqs = esm.put(kinesis, stream, datas, pk="d-1")
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=16,
                 MaximumRetryAttempts=1, BisectBatchOnFunctionError=True,
                 FunctionResponseTypes=["ReportBatchItemFailures"],
                 DestinationConfig={"OnFailure": {"Destination": esm.stream_arn(server, dest)}})

    def reports():
        return [r for r in esm.read_stream(kinesis, dest) if isinstance(r, dict)]
    lf.wait_for(lambda: len(reports()) >= len(bad), 30, what="on-failure reports")
    key = {"device": {"S": "d-1"}, "minute": {"S": "2023-11-14T22:13"}}
    want = [i for i in range(16) if i not in bad]
    lf.wait_for(lambda: ddb.get_item(TableName=minute, Key=key, ConsistentRead=True)
                .get("Item", {}).get("count") == {"N": str(len(want))}, 30, what="all applied")
    time.sleep(1)   # nothing is applied a second time
    m = ddb.get_item(TableName=minute, Key=key, ConsistentRead=True)["Item"]
    assert m["count"] == {"N": str(len(want))} and m["sum"] == {"N": str(sum(want))}
    assert m["min"] == {"N": "1"} and m["max"] == {"N": "15"}
    latest_n = ddb.get_item(TableName=latest, Key={"device": {"S": "d-1"}}, ConsistentRead=True)
    assert latest_n["Item"]["n"] == {"N": "15"}
    reps = reports()
    assert len(reps) == len(bad)
    for rep, i in zip(reps, sorted(bad)):
        info = rep["KinesisBatchInfo"]
        assert info["startSequenceNumber"] == info["endSequenceNumber"] == seqs[i]
        assert rep["requestContext"]["condition"] == "RetryAttemptsExhausted"
