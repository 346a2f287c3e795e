# SPDX-License-Identifier: Apache-2.0
"""Event source mappings: every option's semantics, checked end to end (boto3 -> Kinesis put ->
append hook -> poller -> function).  Each test would fail if the semantics were wrong: the probe
function (tests/functions/probe.c) logs exactly what each invocation received."""
import base64
import json
import os
import time

import pytest

from helpers import esm
from helpers import kinesis as k
from helpers import lambdafn as lf
from helpers import server as srv
from helpers.esm import make_mapping, native_function, probe  # noqa: F401 (fixtures)
from helpers.lambdafn import lam, lam_nv, make_function  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("local_only")


def seqs_in_order(probe):
    """Distinct sequence numbers in first-delivery order."""
    seen, order = set(), []
    for s, _ in probe.delivered():
        if s not in seen:
            seen.add(s)
            order.append(s)
    return order


# ---- event shape and delivery ---------------------------------------------------------------

def test_event_is_exactly_aws_kinesis_event(lam, server, kinesis, make_stream, make_function,
                                            make_mapping, tmp_path):
    """A provided-runtime function receives AWS's Kinesis event JSON, byte for byte in shape."""
    mark = tmp_path / "events"
    fn = make_function("mark", env={"MARK_FILE": str(mark)})
    stream = make_stream()
    arn = esm.stream_arn(server, stream)
    seqs = esm.put(kinesis, stream, ["hello", b"\x00\xffbin", json.dumps({"a": 1})], pk="key-1")
    make_mapping(FunctionName=fn, EventSourceArn=arn, BatchSize=10)
    lf.wait_for(lambda: mark.exists() and mark.read_text().count("\n") >= 1, 20, what="invoke")
    line = mark.read_text().splitlines()[0]
    ev = json.loads(line.split(" ", 3)[3])
    assert list(ev) == ["Records"]
    recs = ev["Records"]
    assert [r["kinesis"]["sequenceNumber"] for r in recs] == seqs
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    for r, want in zip(recs, [b"hello", b"\x00\xffbin", json.dumps({"a": 1}).encode()]):
        assert set(r) == {"kinesis", "eventSource", "eventVersion", "eventID", "eventName",
                          "invokeIdentityArn", "awsRegion", "eventSourceARN"}
        kin = r["kinesis"]
        assert set(kin) == {"kinesisSchemaVersion", "partitionKey", "sequenceNumber", "data",
                            "approximateArrivalTimestamp"}
        assert kin["kinesisSchemaVersion"] == "1.0" and kin["partitionKey"] == "key-1"
        assert base64.b64decode(kin["data"]) == want
        assert isinstance(kin["approximateArrivalTimestamp"], float)
        assert abs(kin["approximateArrivalTimestamp"] - time.time()) < 120
        assert r["eventSource"] == "aws:kinesis" and r["eventVersion"] == "1.0"
        assert r["eventName"] == "aws:kinesis:record"
        assert r["eventID"] == f"{shard}:{kin['sequenceNumber']}"
        assert r["awsRegion"] == server.region and r["eventSourceARN"] == arn
        assert r["invokeIdentityArn"].startswith("arn:aws:iam::")


def test_native_runtime_gets_records_without_json(server, kinesis, make_stream, native_function,
                                                  make_mapping, probe):
    fn = native_function()
    stream = make_stream()
    seqs = esm.put(kinesis, stream, ["a", "b\nc", "{\"x\":1}"], pk="p")
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream))
    probe.wait_records(3)
    inv = probe.invokes()[0]
    assert inv["kind"] == "kinesis" and inv["seqs"] == seqs
    assert inv["data"] == ["a", "b\nc", "{\"x\":1}"] and inv["pks"] == ["p"] * 3
    assert inv["shard"] == "shardId-000000000000"
    assert inv["arn"] == esm.stream_arn(server, stream)


@pytest.mark.parametrize("runtime", [esm.NATIVE_RUNTIME, "provided.al2023"])
def test_batch_size_order_and_exactly_once(runtime, server, kinesis, make_stream, native_function,
                                           make_mapping, probe):
    fn = native_function(runtime=runtime)
    stream = make_stream()
    seqs = esm.put(kinesis, stream, [f"r{i}" for i in range(25)])
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=10)
    probe.wait_records(25)
    invs = probe.invokes()
    assert all(1 <= inv["n"] <= 10 for inv in invs)
    assert [s for s, _ in probe.delivered()] == seqs          # in order, each once


def test_starting_positions(server, kinesis, make_stream, native_function, make_mapping, probe,
                            lam):
    fn = native_function()
    stream = make_stream()
    arn = esm.stream_arn(server, stream)
    esm.put(kinesis, stream, ["old1", "old2"])
    # The SDK sends StartingPositionTimestamp in whole seconds: start on a fresh second.
    time.sleep(1.05 - time.time() % 1)  # a clock edge, not a condition
    ts = int(time.time())
    esm.put(kinesis, stream, ["mid"])
    m = make_mapping(FunctionName=fn, EventSourceArn=arn, StartingPosition="LATEST")
    esm.put(kinesis, stream, ["new"])
    probe.wait_records(1)
    time.sleep(0.3)  # nothing else arrives: an absence, so the wait is the test
    assert [d for _, d in probe.delivered()] == ["new"]
    lam.delete_event_source_mapping(UUID=m["UUID"])
    esm.wait_gone(lam, m["UUID"])
    # AT_TIMESTAMP: from the first record at or after ts.
    import datetime
    os.unlink(probe.out)
    make_mapping(FunctionName=fn, EventSourceArn=arn, StartingPosition="AT_TIMESTAMP",
                 StartingPositionTimestamp=datetime.datetime.fromtimestamp(ts, datetime.timezone.utc))
    probe.wait_records(2)
    time.sleep(0.3)  # nothing else arrives: an absence, so the wait is the test
    assert [d for _, d in probe.delivered()] == ["mid", "new"]


def test_disabled_mapping_holds_then_resumes(server, kinesis, make_stream, native_function,
                                             make_mapping, probe, lam):
    fn = native_function()
    stream = make_stream()
    m = make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream))
    esm.put(kinesis, stream, ["1"])
    probe.wait_records(1)
    lam.update_event_source_mapping(UUID=m["UUID"], Enabled=False)
    esm.wait_state(lam, m["UUID"], "Disabled")
    esm.put(kinesis, stream, ["2", "3"])
    time.sleep(0.5)  # a disabled mapping delivers nothing: an absence, the wait is the test
    assert [d for _, d in probe.delivered()] == ["1"]
    lam.update_event_source_mapping(UUID=m["UUID"], Enabled=True)
    probe.wait_records(3)
    assert [d for _, d in probe.delivered()] == ["1", "2", "3"]   # from the checkpoint


def test_batching_window_gathers(server, kinesis, make_stream, native_function, make_mapping,
                                 probe):
    fn = native_function()
    stream = make_stream()
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=100,
                 MaximumBatchingWindowInSeconds=2)
    t0 = time.time()
    esm.put(kinesis, stream, ["a", "b", "c"])
    probe.wait_records(3, timeout=10)
    invs = probe.invokes()
    assert len(invs) == 1 and invs[0]["n"] == 3                 # gathered, not 3 invokes
    assert invs[0]["at_us"] / 1e6 - t0 >= 1.5                   # waited for the window
    # A full batch does not wait for the window.
    os.unlink(probe.out)
    t1 = time.time()
    kinesis.put_records(StreamName=stream, Records=[{"Data": b"x%d" % i, "PartitionKey": "k"}
                                                   for i in range(100)])
    probe.wait_records(100, timeout=10)
    assert probe.invokes()[0]["at_us"] / 1e6 - t1 < 1.5


def test_no_window_is_push_not_poll(server, kinesis, make_stream, native_function, make_mapping,
                                    probe):
    """Put -> invoke is milliseconds (AWS polls each shard once a second)."""
    fn = native_function()
    stream = make_stream()
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream))
    esm.put(kinesis, stream, ["warm"])
    probe.wait_records(1)
    lat = []
    for i in range(20):
        t = time.time()
        esm.put(kinesis, stream, [f"x{i}"])
        probe.wait_records(i + 2, timeout=5)
        lat.append(probe.invokes()[-1]["at_us"] / 1e6 - t)
    lat.sort()
    assert lat[len(lat) // 2] < 0.1, lat        # median well under AWS's 1 s poll


# ---- failures: retries, bisect, partial responses, age, destination --------------------------

def destination_reports(kinesis, stream):
    return [r for r in esm.read_stream(kinesis, stream) if isinstance(r, dict)]


@pytest.mark.parametrize("runtime", [esm.NATIVE_RUNTIME, "provided.al2023"])
def test_poison_record_retries_then_bisect(runtime, server, kinesis, make_stream, native_function,
                                           make_mapping, probe):
    fn = native_function(runtime=runtime)
    stream, dest = make_stream(), make_stream()
    data = [f"ok{i}" for i in range(8)]
    data[5] = "POISON"
    seqs = esm.put(kinesis, stream, data)
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=8,
                 MaximumRetryAttempts=2, BisectBatchOnFunctionError=True,
                 DestinationConfig={"OnFailure": {"Destination": esm.stream_arn(server, dest)}})
    lf.wait_for(lambda: destination_reports(kinesis, dest), 20, what="on-failure report")
    sizes = [inv["n"] for inv in probe.invokes()]
    # 8 fails -> [0,4) ok, [4,8) fails -> [4,6) fails -> [4,5) ok, [5,6) fails 1 + 2 retries
    # -> discarded, [6,8) ok.
    assert sizes == [8, 4, 4, 2, 1, 1, 1, 1, 2], sizes
    poison_invokes = [inv for inv in probe.invokes() if inv["seqs"] == [seqs[5]]]
    assert len(poison_invokes) == 3
    ok = {s for s, d in probe.delivered() if d != "POISON"}
    assert ok == set(seqs) - {seqs[5]}                         # nothing else skipped
    (rep,) = destination_reports(kinesis, dest)
    info = rep["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == seqs[5]
    assert info["batchSize"] == 1 and info["shardId"] == "shardId-000000000000"
    assert info["streamArn"] == esm.stream_arn(server, stream)
    assert rep["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert rep["requestContext"]["approximateInvokeCount"] == 3
    assert rep["requestContext"]["functionArn"].endswith(":function:" + fn)
    assert rep["responseContext"]["functionError"] == "Unhandled"
    assert rep["version"] == "1.0" and rep["timestamp"].endswith("Z")
    assert {"approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"} <= set(info)


# A malformed record that the function names in its partial batch response, with
# BisectBatchOnFunctionError: the engine splits the batch at that record instead of retrying the
# rest and halving it (see process_batch in src/fn/esm_run.c).  Per malformed record: the batch
# that found it, then the record alone for its MaximumRetryAttempts retries, then the
# destination; every other record is processed once, in order.

def poison_run(server, kinesis, make_stream, make_mapping, fn, probe, word, bad, retries):
    """16 records, those at the indexes bad holding word, mapped with bisection, partial batch
    responses and MaximumRetryAttempts retries; checks the outcome; returns the sequences."""
    stream, dest = make_stream(), make_stream()
    seqs = esm.put(kinesis, stream, [word if i in bad else f"ok{i}" for i in range(16)])
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=16,
                 MaximumRetryAttempts=retries, BisectBatchOnFunctionError=True,
                 FunctionResponseTypes=["ReportBatchItemFailures"],
                 DestinationConfig={"OnFailure": {"Destination": esm.stream_arn(server, dest)}})
    invoke_count = retries + 1
    ok = [s for i, s in enumerate(seqs) if i not in bad]
    probe.wait_records(len(seqs) - len(bad))
    lf.wait_for(lambda: len(destination_reports(kinesis, dest)) >= len(bad), 20,
                what="on-failure reports")
    reps = destination_reports(kinesis, dest)
    assert len(reps) == len(bad)
    for rep, i in zip(reps, bad):
        info = rep["KinesisBatchInfo"]
        assert info["startSequenceNumber"] == info["endSequenceNumber"] == seqs[i]
        assert info["batchSize"] == 1
        assert rep["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert rep["requestContext"]["approximateInvokeCount"] == invoke_count
    # Every other record processed, in order; the malformed ones never delivered after their
    # report (the last invocation holding one is the record alone).
    good = [s for s in seqs_in_order(probe) if s in set(ok)]
    assert good == ok
    last = {}
    for k, inv in enumerate(probe.invokes()):
        for s in inv["seqs"]:
            last[s] = (k, inv["n"])
    assert all(last[seqs[i]][1] == 1 or invoke_count == 1 for i in bad)
    return seqs


@pytest.mark.parametrize("runtime", [esm.NATIVE_RUNTIME, "provided.al2023"])
def test_reported_item_failure_with_bisect_splits_at_the_item(runtime, server, kinesis,
                                                              make_stream, native_function,
                                                              make_mapping, probe):
    """The function names record 5 of 16 on every delivery: [0,5) is done, record 5 is retried
    alone (MaximumRetryAttempts 1) and reported, [6,16) goes on as one batch.  Before: the rest
    [5,16) was retried as a whole and all 11 records went to the destination."""
    fn = native_function(runtime=runtime)
    seqs = poison_run(server, kinesis, make_stream, make_mapping, fn, probe, "BADITEM", [5], 1)
    assert [inv["n"] for inv in probe.invokes()] == [16, 1, 10]
    assert [inv["seqs"] for inv in probe.invokes()][1:] == [[seqs[5]], seqs[6:]]


def test_reported_item_failure_without_retries_goes_straight_to_destination(
        server, kinesis, make_stream, native_function, make_mapping, probe):
    """MaximumRetryAttempts 0: the report is the record's one failed attempt; it is not invoked
    again."""
    fn = native_function()
    poison_run(server, kinesis, make_stream, make_mapping, fn, probe, "BADITEM", [3, 9], 0)
    assert [inv["n"] for inv in probe.invokes()] == [16, 12, 6]


def test_malformed_records_cost_a_few_invocations_each(server, kinesis, make_stream,
                                                       native_function, make_mapping, probe):
    """A function that reports the malformed record and fails the invoke when it comes first
    (iot.c's way before it reported that one too): with the split, each malformed record costs
    its singleton retries, not a bisection of the rest (before: 9 invocations, 5 of them function
    errors, for one malformed record in 16)."""
    fn = native_function()
    poison_run(server, kinesis, make_stream, make_mapping, fn, probe, "MALFORMED", [5], 1)
    assert [inv["n"] for inv in probe.invokes()] == [16, 1, 10]


def test_reported_item_failure_without_bisect_retries_the_rest(server, kinesis, make_stream,
                                                               native_function, make_mapping,
                                                               probe):
    """Without BisectBatchOnFunctionError a partial batch response is AWS's literally: the rest
    from the failed item is retried as a batch, then reported as a batch."""
    fn = native_function()
    stream, dest = make_stream(), make_stream()
    data = [f"ok{i}" for i in range(8)]
    data[2] = "BADITEM"
    seqs = esm.put(kinesis, stream, data)
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=8,
                 MaximumRetryAttempts=1, FunctionResponseTypes=["ReportBatchItemFailures"],
                 DestinationConfig={"OnFailure": {"Destination": esm.stream_arn(server, dest)}})
    lf.wait_for(lambda: destination_reports(kinesis, dest), 20, what="on-failure report")
    assert [inv["n"] for inv in probe.invokes()] == [8, 6]
    (rep,) = destination_reports(kinesis, dest)
    info = rep["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == \
        (seqs[2], seqs[7], 6)


def test_retries_without_bisect_discard_whole_batch(server, kinesis, make_stream, native_function,
                                                    make_mapping, probe):
    fn = native_function()
    stream, dest = make_stream(), make_stream()
    seqs = esm.put(kinesis, stream, ["a", "POISON", "c"])
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=3,
                 MaximumRetryAttempts=1,
                 DestinationConfig={"OnFailure": {"Destination": esm.stream_arn(server, dest)}})
    lf.wait_for(lambda: destination_reports(kinesis, dest), 20, what="on-failure report")
    esm.put(kinesis, stream, ["after"])
    probe.wait_records(4)
    assert [inv["n"] for inv in probe.invokes()] == [3, 3, 1]  # 1 try + 1 retry, then moved on
    (rep,) = destination_reports(kinesis, dest)
    info = rep["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == \
        (seqs[0], seqs[2], 3)
    assert rep["requestContext"]["approximateInvokeCount"] == 2


def test_infinite_retries_block_the_shard(server, kinesis, make_stream, native_function,
                                          make_mapping, probe, lam):
    """MaximumRetryAttempts -1 (default): a poison record is retried, the records behind it
    wait -- nothing is skipped."""
    fn = native_function()
    stream = make_stream()
    m = make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=1)
    esm.put(kinesis, stream, ["POISON", "behind"])
    lf.wait_for(lambda: len(probe.invokes()) >= 5, 20, what="retries")
    assert all(d == "POISON" for _, d in probe.delivered())
    lam.delete_event_source_mapping(UUID=m["UUID"])


@pytest.mark.parametrize("runtime", [esm.NATIVE_RUNTIME, "provided.al2023"])
def test_partial_batch_response_checkpoints_to_first_failure(runtime, server, kinesis, make_stream,
                                                             native_function, make_mapping, probe):
    fn = native_function(runtime=runtime)
    stream = make_stream()
    seqs = esm.put(kinesis, stream, ["r0", "r1", "FAILITEM", "r3", "FAILITEM"])
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=5,
                 FunctionResponseTypes=["ReportBatchItemFailures"])
    lf.wait_for(lambda: len(probe.invokes()) >= 2, 20, what="retry after partial failure")
    time.sleep(0.3)  # no third invoke comes: an absence, the wait is the test
    invs = probe.invokes()
    # First delivery: all 5; the probe reports items 2 and 4; the retry starts at item 2 (the
    # lowest failed), and they succeed the second time.
    assert invs[0]["seqs"] == seqs
    assert invs[1]["seqs"] == seqs[2:]
    assert len(invs) == 2


def test_item_failures_ignored_without_response_type(server, kinesis, make_stream,
                                                     native_function, make_mapping, probe):
    fn = native_function()
    stream = make_stream()
    esm.put(kinesis, stream, ["r0", "FAILITEM", "r2"])
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=5)
    probe.wait_records(3)
    time.sleep(0.4)  # no retry comes: an absence, the wait is the test
    assert len(probe.invokes()) == 1


def test_malformed_batch_item_failures_fail_the_batch(server, kinesis, make_stream, make_function,
                                                      make_mapping, tmp_path):
    """An itemIdentifier that is empty or not in the batch means the whole batch failed (AWS)."""
    mark = tmp_path / "m"
    handler = r'''handler() {
  printf '%s\n' "$1" >> "$MARK_FILE"
  n=$(wc -l < "$MARK_FILE")
  if [ "$n" -lt 2 ]; then echo '{"batchItemFailures":[{"itemIdentifier":""}]}'
  else echo '{"batchItemFailures":[]}'; fi
}'''
    z = lf.make_zip({"bootstrap": (lf.RICH_BOOTSTRAP, 0o755), "function.sh": handler})
    fn = make_function(zip=z, env={"MARK_FILE": str(mark)})
    stream = make_stream()
    esm.put(kinesis, stream, ["a", "b"])
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream),
                 FunctionResponseTypes=["ReportBatchItemFailures"])
    lf.wait_for(lambda: mark.exists() and mark.read_text().count("\n") >= 2, 20, what="retry")
    first, second = [json.loads(x) for x in mark.read_text().splitlines()[:2]]
    assert len(first["Records"]) == len(second["Records"]) == 2


def test_function_timeout_is_a_failure(server, kinesis, make_stream, native_function,
                                       make_mapping, probe):
    fn = native_function(timeout=1)
    stream, dest = make_stream(), make_stream()
    seqs = esm.put(kinesis, stream, ["SLEEP:5000"])
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream),
                 MaximumRetryAttempts=0,
                 DestinationConfig={"OnFailure": {"Destination": esm.stream_arn(server, dest)}})
    lf.wait_for(lambda: destination_reports(kinesis, dest), 20, what="report")
    esm.put(kinesis, stream, ["next"])
    probe.wait_records(2)
    rep = destination_reports(kinesis, dest)[0]
    assert rep["KinesisBatchInfo"]["startSequenceNumber"] == seqs[0]
    assert rep["requestContext"]["approximateInvokeCount"] == 1


# ---- tumbling windows ------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", [esm.NATIVE_RUNTIME, "provided.al2023"])
def test_tumbling_window_state_across_invokes(runtime, server, kinesis, make_stream, native_function,
                                              make_mapping, probe):
    fn = native_function(runtime=runtime)
    stream = make_stream()
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=1,
                 TumblingWindowInSeconds=1)
    # Three records early in one window, two in a later one.
    lf.wait_for(lambda: time.time() % 1 < 0.3, 2, interval=0.01, what="window start")
    esm.put(kinesis, stream, ["1", "2", "3"])
    time.sleep(1.2)  # into the next tumbling window (a clock edge, not a condition)
    lf.wait_for(lambda: time.time() % 1 < 0.3, 2, interval=0.01, what="window start")
    esm.put(kinesis, stream, ["10", "20"])
    lf.wait_for(lambda: sum(1 for i in probe.invokes() if i["window"]["final"]) >= 2, 20,
                what="two final invokes")
    by_window = {}
    for inv in probe.invokes():
        w = inv["window"]
        assert w["start"] % 1000 == 0 and w["end"] == w["start"] + 1000
        for a in inv["arrivals"]:
            assert w["start"] <= a < w["end"]
        by_window.setdefault(w["start"], []).append(inv)
    totals = []
    for start, invs in sorted(by_window.items()):
        s = c = 0
        for i, inv in enumerate(invs):
            # The state passed in is what the previous invoke of this window returned.
            assert inv["window"]["state"] == ({} if i == 0 else {"sum": s, "count": c})
            assert inv["window"]["final"] == (i == len(invs) - 1)
            s += sum(int(d) for d in inv["data"])
            c += len(inv["data"])
        totals.append(s)
    assert sum(totals) == 36
    assert len(by_window) >= 2


# ---- filters ---------------------------------------------------------------------------------

def test_filters_drop_records(server, kinesis, make_stream, native_function, make_mapping, probe):
    fn = native_function()
    stream = make_stream()
    patterns = [
        {"data": {"type": ["buy"], "qty": [{"numeric": [">", 10, "<=", 100]}]}},
        {"data": {"stock": [{"prefix": "AB"}], "type": [{"anything-but": ["buy", "hold"]}]}},
        {"data": {"flag": [{"exists": True}], "nope": [{"exists": False}]}},
        {"partitionKey": [{"suffix": "-vip"}]},
        {"data": {"tags": ["hot"], "ip": [{"cidr": "10.0.0.0/8"}]}},
    ]
    records = [
        ("k", {"type": "buy", "qty": 50}, True),
        ("k", {"type": "buy", "qty": 5}, False),           # numeric range
        ("k", {"type": "buy", "qty": 500}, False),
        ("k", {"type": "sell", "stock": "ABC"}, True),      # prefix + anything-but
        ("k", {"type": "hold", "stock": "ABC"}, False),
        ("k", {"type": "sell", "stock": "XYZ"}, False),
        ("k", {"flag": 0}, True),                           # exists
        ("k", {"flag": 0, "nope": 1}, False),
        ("k", "not json at all", False),                    # data filters cannot match
        ("u-vip", "not json either", True),                 # metadata filter
        ("k", {"tags": ["cold", "hot"], "ip": "10.1.2.3"}, True),   # array element, cidr
        ("k", {"tags": ["hot"], "ip": "11.1.2.3"}, False),
    ]
    datas = [(pk, d if isinstance(d, str) else json.dumps(d)) for pk, d, _ in records]
    seqs = esm.put(kinesis, stream, datas)
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream),
                 FilterCriteria={"Filters": [{"Pattern": json.dumps(p)} for p in patterns]})
    want = [s for s, (_, _, keep) in zip(seqs, records) if keep]
    probe.wait_records(len(want))
    esm.put(kinesis, stream, [json.dumps({"type": "buy", "qty": 11})])   # a marker after them
    probe.wait_records(len(want) + 1)
    assert seqs_in_order(probe)[:-1] == want
    assert "tributary_esm_records_filtered_total" in srv.metrics_text(server)
    # the global queue gauge (bounded memory) is back to zero once everything read is done: a
    # leak here would freeze every reader once it reached the bound

    def queue_empty():
        queued = [int(line.split()[1]) for line in srv.metrics_text(server).splitlines()
                  if line.startswith("tributary_esm_queued_bytes ")]
        assert queued, "tributary_esm_queued_bytes missing from /metrics"
        return queued[0] == 0
    lf.wait_for(queue_empty, 10, what="tributary_esm_queued_bytes back to 0", interval=0.1)


# ---- parallelization and resharding ------------------------------------------------------------

@pytest.mark.parametrize("runtime", [esm.NATIVE_RUNTIME, "provided.al2023"])
def test_parallelization_keeps_order_per_key(runtime, server, kinesis, make_stream, native_function,
                                             make_mapping, probe):
    fn = native_function(runtime=runtime)
    stream = make_stream()
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=3,
                 ParallelizationFactor=5)
    recs = []
    for i in range(15):
        for key in range(8):
            recs.append({"PartitionKey": f"key{key}",
                         "Data": (f"key{key}:{i}" + (" SLEEP:30" if i % 4 == 0 else "")).encode()})
    kinesis.put_records(StreamName=stream, Records=recs)
    probe.wait_records(len(recs), timeout=60)
    first = {}
    for s, d in probe.delivered():
        first.setdefault(s, d)
    per_key = {}
    for s in seqs_in_order(probe):
        key, i = first[s].split()[0].split(":")
        per_key.setdefault(key, []).append(int(i))
    assert len(per_key) == 8
    for key, order in per_key.items():
        assert order == list(range(15)), (key, order)
    # It really ran in parallel: several host processes served batches of one shard at once.
    assert len({inv["pid"] for inv in probe.invokes()}) >= 2


def test_parallelization_idle_lanes_take_a_small_read_as_one_batch(server, kinesis, make_stream,
                                                                   native_function, make_mapping,
                                                                   probe):
    """ParallelizationFactor is a maximum: 30 records of 30 keys found by idle lanes are one batch
    (before: one batch per lane, ~10 invocations of ~3 records), in order."""
    fn = native_function()
    stream = make_stream()
    recs = [{"PartitionKey": f"key{i}", "Data": f"r{i}".encode()} for i in range(30)]
    kinesis.put_records(StreamName=stream, Records=recs)
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=100,
                 ParallelizationFactor=10)
    probe.wait_records(30)
    time.sleep(0.3)  # no other invoke comes: an absence, the wait is the test
    invs = probe.invokes()
    assert [inv["n"] for inv in invs] == [30]
    assert invs[0]["data"] == [f"r{i}" for i in range(30)]


def test_parallelization_keys_wait_for_their_records_in_the_one_batch(server, kinesis,
                                                                       make_stream,
                                                                       native_function,
                                                                       make_mapping, probe):
    """After idle lanes took a read as one batch, later records of its keys (queued in their own
    lanes) wait until that batch is done -- here it sleeps, crashes, and is retried."""
    fn = native_function()
    stream = make_stream()
    first = [{"PartitionKey": f"key{i}", "Data": f"a{i}".encode()} for i in range(20)]
    first[0]["Data"] = b"a0 SLEEP:300 SEGV"
    kinesis.put_records(StreamName=stream, Records=first)
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=100,
                 ParallelizationFactor=10)
    lf.wait_for(lambda: probe.invokes(), 20, what="the first invoke")
    kinesis.put_records(StreamName=stream, Records=[
        {"PartitionKey": f"key{i}", "Data": f"b{i}".encode()} for i in range(20)])
    probe.wait_records(40, timeout=30)
    invs = probe.invokes()
    assert invs[0]["n"] == 20 and invs[1]["n"] == 20      # the one batch, crashed, then again
    for i in range(20):
        last_a = max(k for k, inv in enumerate(invs) if f"a{i}" in " ".join(inv["data"]).split())
        first_b = min(k for k, inv in enumerate(invs) if f"b{i}" in inv["data"])
        assert last_a < first_b, (i, [inv["data"] for inv in invs])


def test_resharding_parents_before_children(server, kinesis, make_stream, native_function,
                                            make_mapping, probe):
    fn = native_function()
    stream = make_stream(shards=1)
    make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream), BatchSize=4)
    counters = {}

    def burst(n, slow=False):
        recs = []
        for _ in range(n):
            for key in ("a", "b", "c", "d"):
                counters[key] = counters.get(key, 0) + 1
                d = f"{key}:{counters[key]}" + (" SLEEP:15" if slow else "")
                recs.append({"PartitionKey": key, "Data": d.encode()})
        kinesis.put_records(StreamName=stream, Records=recs)

    burst(10, slow=True)                     # the parent is still being processed ...
    sh0 = kinesis.list_shards(StreamName=stream)["Shards"][0]
    mid = (int(sh0["HashKeyRange"]["StartingHashKey"]) + int(sh0["HashKeyRange"]["EndingHashKey"])) // 2
    kinesis.split_shard(StreamName=stream, ShardToSplit=sh0["ShardId"], NewStartingHashKey=str(mid))
    k.wait_active(kinesis, stream)
    burst(10)                                # ... when its children receive records
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    children = [s for s in shards if s.get("ParentShardId") == sh0["ShardId"]]
    assert len(children) == 2
    kinesis.merge_shards(StreamName=stream, ShardToMerge=children[0]["ShardId"],
                         AdjacentShardToMerge=children[1]["ShardId"])
    k.wait_active(kinesis, stream)
    burst(10)
    total = sum(counters.values())
    probe.wait_records(total, timeout=60)
    # Per key, first deliveries are in order across parent, children and grandchild.
    per_key = {}
    firsts = {}
    for inv in probe.invokes():
        for s, d in zip(inv["seqs"], inv["data"]):
            firsts.setdefault((inv["shard"], s), (inv["at_us"], d))
    for (_, _), (_, d) in sorted(firsts.items(), key=lambda kv: kv[1][0]):
        key, n = d.split()[0].split(":")
        per_key.setdefault(key, []).append(int(n))
    for key, order in per_key.items():
        assert order == sorted(order) and len(order) == counters[key], (key, order)
    # Every child invocation came after the parent's last one.
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    times = {}
    for inv in probe.invokes():
        times.setdefault(inv["shard"], []).append(inv["at_us"])
    for s in shards:
        for parent in (s.get("ParentShardId"), s.get("AdjacentParentShardId")):
            if parent and s["ShardId"] in times and parent in times:
                assert min(times[s["ShardId"]]) > max(times[parent]), (parent, s["ShardId"])


def test_iterator_age_metric(server, kinesis, make_stream, native_function, make_mapping, probe):
    fn = native_function()
    stream = make_stream()
    m = make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream))
    esm.put(kinesis, stream, ["x"])
    probe.wait_records(1)
    text = srv.metrics_text(server)
    line = [x for x in text.splitlines()
            if x.startswith("tributary_esm_iterator_age_milliseconds{") and m["UUID"] in x]
    assert line and 0 <= float(line[0].split()[-1]) < 5000


# ---- record age (a private server whose "second" of MaximumRecordAgeInSeconds is 10 ms) ------

@pytest.fixture
def fast_age_server(private_server):
    s = private_server(extra_args=["--esm-age-unit-ms", "10"])
    return s, k.make_client(s), lf.make_client(s)


def test_max_record_age_sends_to_destination(fast_age_server, probe):
    s, kin, lamc = fast_age_server
    for name in ("src", "dst"):
        kin.create_stream(StreamName=name, ShardCount=1)
        k.wait_active(kin, name)
    lamc.create_function(FunctionName="f", Runtime=esm.NATIVE_RUNTIME, Role=lf.ROLE,
                         Handler="libprobe.so:handler", Code={"ZipFile": esm.native_zip()},
                         Environment={"Variables": probe.env})
    # Records already older than the limit when the mapping starts: never invoked, reported.
    old = esm.put(kin, "src", ["old1", "old2"])
    time.sleep(0.9)                                   # 60 "seconds" = 600 ms
    m = lamc.create_event_source_mapping(
        FunctionName="f", EventSourceArn=esm.stream_arn(s, "src"), StartingPosition="TRIM_HORIZON",
        MaximumRecordAgeInSeconds=60, BatchSize=10,
        DestinationConfig={"OnFailure": {"Destination": esm.stream_arn(s, "dst")}})
    esm.wait_state(lamc, m["UUID"], "Enabled")
    lf.wait_for(lambda: esm.read_stream(kin, "dst"), 20, what="age report")
    (rep,) = esm.read_stream(kin, "dst")
    assert rep["requestContext"]["condition"] == "RecordAgeExceeded"
    assert rep["KinesisBatchInfo"]["startSequenceNumber"] == old[0]
    assert rep["KinesisBatchInfo"]["endSequenceNumber"] == old[1]
    assert rep["KinesisBatchInfo"]["batchSize"] == 2
    # A poison record with infinite retries is dropped once it is too old; the next goes on.
    poison = esm.put(kin, "src", ["POISON"])
    lf.wait_for(lambda: len(esm.read_stream(kin, "dst")) >= 2, 20, what="poison report")
    reps = esm.read_stream(kin, "dst")
    assert len(reps) == 2 and reps[1]["KinesisBatchInfo"]["startSequenceNumber"] == poison[0]
    assert reps[1]["requestContext"]["condition"] == "RecordAgeExceeded"
    assert reps[1]["requestContext"]["approximateInvokeCount"] >= 2   # it was retried meanwhile
    assert sum(1 for _, d in probe.delivered() if d == "POISON") >= 2
    esm.put(kin, "src", ["fine"])
    lf.wait_for(lambda: any(d == "fine" for _, d in probe.delivered()), 20, what="after poison")
    assert not any(d in ("old1", "old2") for _, d in probe.delivered())
