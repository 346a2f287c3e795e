# SPDX-License-Identifier: Apache-2.0
"""Durability: everything acknowledged survives a restart, graceful (SIGTERM) or not (SIGKILL):
streams, shards and their lineage, retention, tags, records byte for byte with their sequence
numbers; deleted streams stay deleted; sequence numbers keep increasing afterwards."""
import os
import signal

import pytest

from helpers import kinesis as k
from helpers import server as srv
from helpers.kinesis import aws_error

pytestmark = pytest.mark.deadline(180)

HALF = 2 ** 127


def _snapshot(c, names):
    """Everything observable about the streams: metadata, shards, every record."""
    snap = {}
    for name in names:
        s = c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        shards = k.list_all_shards(c, name)
        tags = {t["Key"]: t["Value"] for t in c.list_tags_for_stream(StreamName=name)["Tags"]}
        recs = {}
        for sh in shards:
            recs[sh["ShardId"]] = [(r["SequenceNumber"], r["PartitionKey"], r["Data"],
                                    r["ApproximateArrivalTimestamp"])
                                   for r in k.read_shard(c, name, sh["ShardId"])]
        snap[name] = {
            "arn": s["StreamARN"], "retention": s["RetentionPeriodHours"],
            "open": s["OpenShardCount"], "created": s["StreamCreationTimestamp"],
            "mode": s.get("StreamModeDetails"), "shards": shards, "tags": tags,
            "records": recs,
        }
    return snap


def _assert_same(before, after):
    for name in before:
        b, a = before[name], after[name]
        for key in ("arn", "retention", "open", "created", "mode", "tags"):
            assert a[key] == b[key], f"{name}: {key} changed across restart: {b[key]} -> {a[key]}"
        assert a["shards"] == b["shards"], f"{name}: shard list changed across restart"
        for sid in b["records"]:
            assert len(a["records"][sid]) == len(b["records"][sid]), \
                f"{name}/{sid}: {len(b['records'][sid])} records before, " \
                f"{len(a['records'][sid])} after restart"
            for x, y in zip(b["records"][sid], a["records"][sid]):
                assert x[:3] == y[:3], f"{name}/{sid}: record {x[0]} differs after restart"
                assert x[3] == y[3], f"{name}/{sid}: arrival time of {x[0]} changed"


def _populate(c, tag):
    a, b, gone = (k.unique_name(f"{tag}-{x}") for x in "abc")
    c.create_stream(StreamName=a, ShardCount=3)
    c.create_stream(StreamName=b, ShardCount=1)
    c.create_stream(StreamName=gone, ShardCount=1)
    for n in (a, b, gone):
        k.wait_active(c, n)
    c.increase_stream_retention_period(StreamName=a, RetentionPeriodHours=48)
    c.add_tags_to_stream(StreamName=a, Tags={"durable": "yes", "x": ""})
    payloads = [b"", bytes(range(256)), os.urandom(100_000), "\u6f22".encode()]
    for i, p in enumerate(payloads):
        c.put_record(StreamName=a, PartitionKey=f"pk{i}", Data=p)
    c.put_records(StreamName=a, Records=[{"PartitionKey": f"b{i}", "Data": os.urandom(i * 7)}
                                         for i in range(300)])
    c.put_record(StreamName=b, PartitionKey="big", Data=os.urandom(1024 * 1024 - 3))
    c.put_record(StreamName=gone, PartitionKey="p", Data=b"deleted")
    c.delete_stream(StreamName=gone)
    k.wait_gone(c, gone)
    return a, b, gone


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_preserves_everything(private_server, sig):
    s = private_server()
    c = k.make_client(s)
    a, b, gone = _populate(c, sig.name.lower())
    before = _snapshot(c, [a, b])
    s.restart(sig)
    c = k.make_client(s)
    after = _snapshot(c, [a, b])
    _assert_same(before, after)
    names = c.list_streams()["StreamNames"]
    assert a in names and b in names and gone not in names
    with aws_error("ResourceNotFoundException"):
        c.describe_stream_summary(StreamName=gone)

    # appends continue with larger sequence numbers on every shard
    for sh in before[a]["shards"]:
        last = max([int(r[0]) for r in before[a]["records"][sh["ShardId"]]] or [0])
        r = c.put_record(StreamName=a, PartitionKey="after", Data=b"after-restart",
                         ExplicitHashKey=sh["HashKeyRange"]["StartingHashKey"])
        assert r["ShardId"] == sh["ShardId"]
        assert int(r["SequenceNumber"]) > last, \
            f"{sh['ShardId']}: sequence number {r['SequenceNumber']} reused/regressed after restart"
        tail = k.read_shard(c, a, sh["ShardId"])
        assert tail[-1]["Data"] == b"after-restart"
        assert len(tail) == len(before[a]["records"][sh["ShardId"]]) + 1


def test_sigterm_exits_cleanly(private_server):
    s = private_server()
    c = k.make_client(s)
    name = k.unique_name("term")
    c.create_stream(StreamName=name, ShardCount=1)
    rc = s.stop(signal.SIGTERM)
    assert rc == 0, f"SIGTERM should stop the server gracefully with exit code 0, got {rc}"


def test_restart_preserves_resharding(private_server):
    s = private_server()
    c = k.make_client(s)
    name = k.unique_name("reshard")
    c.create_stream(StreamName=name, ShardCount=2)
    k.wait_active(c, name)
    pks = [f"r{i}" for i in range(20)]
    expect = {pk: [] for pk in pks}

    def put(tag):
        for pk in pks:
            c.put_record(StreamName=name, PartitionKey=pk, Data=f"{pk}|{tag}".encode())
            expect[pk].append(f"{pk}|{tag}".encode())

    put("g0")
    c.split_shard(StreamName=name, ShardToSplit="shardId-000000000000",
                  NewStartingHashKey=str(HALF // 2))
    k.wait_active(c, name)
    put("g1")
    c.update_shard_count(StreamName=name, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    k.wait_active(c, name)
    put("g2")
    before = _snapshot(c, [name])
    s.restart(signal.SIGKILL)
    c = k.make_client(s)
    after = _snapshot(c, [name])
    _assert_same(before, after)
    put("g3")
    _, _, per_pk = k.read_by_lineage(c, name)
    for pk in pks:
        assert [r["Data"] for r in per_pk[pk]] == expect[pk], pk


def test_many_restarts(private_server):
    s = private_server()
    c = k.make_client(s)
    name = k.unique_name("many")
    c.create_stream(StreamName=name, ShardCount=2)
    k.wait_active(c, name)
    acked = []
    for round_ in range(6):
        r = c.put_records(StreamName=name, Records=[
            {"PartitionKey": f"k{i}", "Data": b"%d-%d" % (round_, i)} for i in range(50)])
        assert r["FailedRecordCount"] == 0
        acked += [(e["ShardId"], e["SequenceNumber"], b"%d-%d" % (round_, i))
                  for i, e in enumerate(r["Records"])]
        s.restart(signal.SIGKILL if round_ % 2 == 0 else signal.SIGTERM)
        c = k.make_client(s)
        for sid in ("shardId-000000000000", "shardId-000000000001"):
            got = [(r["SequenceNumber"], r["Data"]) for r in k.read_shard(c, name, sid)]
            want = [(seq, d) for sh, seq, d in acked if sh == sid]
            assert got == want, f"round {round_}: {sid} differs after restart"


def test_tags_and_retention_updates_after_restart(private_server):
    s = private_server()
    c = k.make_client(s)
    name = k.unique_name("meta")
    c.create_stream(StreamName=name, ShardCount=1)
    k.wait_active(c, name)
    c.add_tags_to_stream(StreamName=name, Tags={"a": "1", "b": "2"})
    c.remove_tags_from_stream(StreamName=name, TagKeys=["a"])
    c.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=100)
    c.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=72)
    s.restart(signal.SIGKILL)
    c = k.make_client(s)
    tags = {t["Key"]: t["Value"] for t in c.list_tags_for_stream(StreamName=name)["Tags"]}
    assert tags == {"b": "2"}
    assert c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "RetentionPeriodHours"] == 72


def _segments(s, shard_index=0):
    import glob
    return sorted(glob.glob(str(s.data_dir / "streams" / "*" / str(shard_index) / "*.seg")))


def test_flipped_byte_mid_segment_keeps_intact_records(private_server):
    """Issue #8 item 1: one byte flipped in the middle of the newest segment while the server is
    stopped costs the one record it hit: every other record is read back through GetRecords,
    a consumer starting at the lost record moves on, the damage is in the log and /metrics,
    and sequence numbers keep increasing."""
    import re
    s = private_server()
    c = k.make_client(s)
    name = k.unique_name("dmg")
    c.create_stream(StreamName=name, ShardCount=1)
    k.wait_active(c, name)
    sid = "shardId-000000000000"
    for b in range(10):
        r = c.put_records(StreamName=name, Records=[
            {"PartitionKey": f"p{b}-{i}", "Data": f"record {b}/{i} ".encode() * 10}
            for i in range(100)])
        assert r["FailedRecordCount"] == 0
    before = k.read_shard(c, name, sid)
    assert len(before) == 1000
    s.stop(signal.SIGTERM)

    segs = _segments(s)
    assert len(segs) == 1, segs
    size = os.path.getsize(segs[0])
    with open(segs[0], "r+b") as f:
        f.seek(size // 2)
        x = f.read(1)
        f.seek(size // 2)
        f.write(bytes([x[0] ^ 0x10]))
    s.start()
    c = k.make_client(s)

    after = k.read_shard(c, name, sid, limit=7)
    by_seq = {r["SequenceNumber"]: r for r in before}
    assert len(after) == 999, f"{len(after)} of 1000 records read back after one flipped byte"
    for r in after:
        assert r["Data"] == by_seq[r["SequenceNumber"]]["Data"]
        assert r["PartitionKey"] == by_seq[r["SequenceNumber"]]["PartitionKey"]
    lost = sorted(set(by_seq) - {r["SequenceNumber"] for r in after}, key=int)
    assert len(lost) == 1
    # a consumer positioned exactly at the lost record gets the next intact one
    it = c.get_shard_iterator(StreamName=name, ShardId=sid,
                              ShardIteratorType="AT_SEQUENCE_NUMBER",
                              StartingSequenceNumber=lost[0])["ShardIterator"]
    got = c.get_records(ShardIterator=it, Limit=1)["Records"]
    seqs = [r["SequenceNumber"] for r in before]
    assert got and got[0]["SequenceNumber"] == seqs[seqs.index(lost[0]) + 1]

    assert "DAMAGED DATA" in s.log_text()
    m = srv.metrics_text(s)
    assert re.search(r"^tributary_stream_lost_records_total 1$", m, re.M), m
    assert re.search(r'^tributary_stream_damaged_ranges_total\{stream="%s",shard="%s"\} 1$'
                     % (re.escape(name), sid), m, re.M), m

    r = c.put_record(StreamName=name, PartitionKey="after", Data=b"after-damage")
    assert int(r["SequenceNumber"]) > int(before[-1]["SequenceNumber"])
    assert k.read_shard(c, name, sid)[-1]["Data"] == b"after-damage"


def _stream_of_20_then_stop(s, tag):
    """A one-shard stream on s with 20 records; s is stopped.  Returns (name, last seq)."""
    c = k.make_client(s)
    name = k.unique_name(tag)
    c.create_stream(StreamName=name, ShardCount=1)
    k.wait_active(c, name)
    last = None
    for i in range(20):
        last = c.put_record(StreamName=name, PartitionKey=f"k{i}", Data=b"x")["SequenceNumber"]
    s.stop(signal.SIGTERM)
    return name, last


def _next_seq_is_past(c, name, last):
    r = c.put_record(StreamName=name, PartitionKey="new", Data=b"new")
    assert int(r["SequenceNumber"]) > int(last), \
        f"sequence number {r['SequenceNumber']} reused/regressed (last before: {last})"


def test_deleted_newest_segment_never_reuses_sequence_numbers(private_server):
    """Issue #8 item 4: with the shard's (only, so newest) segment file deleted while the server
    is stopped, new records get larger sequence numbers than any handed out before, and the
    loss is reported in the log and /metrics."""
    s = private_server()
    name, last = _stream_of_20_then_stop(s, "gone")
    for p in _segments(s):
        os.unlink(p)
    s.start()
    c = k.make_client(s)
    _next_seq_is_past(c, name, last)
    assert "MISSING DATA" in s.log_text()
    assert "\ntributary_stream_missing_segments_total 1\n" in srv.metrics_text(s)


def test_deleted_shard_directory_never_reuses_sequence_numbers(private_server):
    """With a whole shard directory deleted while the server is stopped (its segments and its
    state file with the high-water mark), numbering still goes on past every sequence number
    handed out (the metadata keeps a copy of the mark), and the loss is reported."""
    import shutil
    s = private_server()
    name, last = _stream_of_20_then_stop(s, "nodir")
    segs = _segments(s)
    assert segs
    shutil.rmtree(os.path.dirname(segs[0]))
    s.start()
    c = k.make_client(s)
    _next_seq_is_past(c, name, last)
    assert "MISSING DATA" in s.log_text() and "directory was deleted" in s.log_text()
    assert "\ntributary_stream_missing_segments_total 1\n" in srv.metrics_text(s)
    assert [x["Data"] for x in k.read_shard(c, name, "shardId-000000000000")] == [b"new"]


def test_unopenable_shard_fails_alone(private_server):
    """A shard whose log cannot be opened at start-up no longer keeps the server from starting:
    its requests answer an error naming it, the other shards and streams serve."""
    s = private_server()
    c = k.make_client(s)
    bad, good = k.unique_name("bad"), k.unique_name("good")
    for n in (bad, good):
        c.create_stream(StreamName=n, ShardCount=1)
        k.wait_active(c, n)
        c.put_record(StreamName=n, PartitionKey="k", Data=b"v")
    s.stop(signal.SIGTERM)
    segs = _segments(s)
    assert len(segs) == 2
    # the bad stream was created first: its id is the smaller one
    seg = sorted(segs, key=lambda p: int(p.split("/streams/")[1].split("/")[0]))[0]
    os.unlink(seg)
    os.mkdir(seg)  # a directory where the segment file was: open fails with EISDIR
    s.start()
    c = k.make_client(s)
    assert k.read_shard(c, good, "shardId-000000000000")[0]["Data"] == b"v"
    with aws_error("InternalFailure", status=500, message="shardId-000000000000") as e:
        c.get_shard_iterator(StreamName=bad, ShardId="shardId-000000000000",
                             ShardIteratorType="TRIM_HORIZON")
    assert "Fix:" in e.message
    r = c.put_records(StreamName=bad, Records=[{"PartitionKey": "k", "Data": b"w"}])
    assert r["FailedRecordCount"] == 1 and r["Records"][0]["ErrorCode"] == "InternalFailure"
    # puts name the shard and the fix too, as reads do
    msg = r["Records"][0]["ErrorMessage"]
    assert "shardId-000000000000" in msg and "unavailable" in msg and "Fix:" in msg, msg
    with aws_error("InternalFailure", status=500, message="shardId-000000000000") as e:
        c.put_record(StreamName=bad, PartitionKey="k", Data=b"w")
    assert "unavailable" in e.message and "Fix:" in e.message
    assert "FAILED SHARD" in s.log_text()
    assert "\ntributary_stream_failed_shards 1\n" in srv.metrics_text(s)
