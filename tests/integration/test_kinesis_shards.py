# SPDX-License-Identifier: Apache-2.0
"""ListShards (paging, ShardFilter) and resharding: SplitShard, MergeShards, UpdateShardCount,
with reads across parents and children in order, ChildShards at a closed shard's end."""
import time

import pytest

from helpers import kinesis as k
from helpers.kinesis import aws_error

HALF = 2 ** 127


def _ids(shards):
    return [s["ShardId"] for s in shards]


def _put_round(kinesis, name, pks, tag, per_key=3):
    """Put per_key records for each pk (data 'pk|tag|i'); returns {pk: [data...]} in put order."""
    out = {}
    recs = [{"PartitionKey": pk, "Data": f"{pk}|{tag}|{i}".encode()}
            for i in range(per_key) for pk in pks]
    for j in range(0, len(recs), 500):
        r = kinesis.put_records(StreamName=name, Records=recs[j:j + 500])
        assert r["FailedRecordCount"] == 0
    for rec in recs:
        out.setdefault(rec["PartitionKey"], []).append(rec["Data"])
    return out


def _assert_pk_order(per_pk, expected):
    for pk, want in expected.items():
        got = [r["Data"] for r in per_pk.get(pk, [])]
        assert got == want, (f"pk {pk}: records read parent-then-child are not in put order:\n"
                             f"  want {want}\n  got  {got}")
    assert set(per_pk) == set(expected)


def _merge(a, b):
    return {pk: a.get(pk, []) + b.get(pk, []) for pk in set(a) | set(b)}


def _read_to_end(kinesis, name, shard_id):
    """Read a closed shard from TRIM_HORIZON until NextShardIterator is null."""
    it = k.iterator(kinesis, name, shard_id)
    records, last = [], None
    for _ in range(200):
        last = kinesis.get_records(ShardIterator=it)
        records += last["Records"]
        it = last.get("NextShardIterator")
        if not it:
            return records, last
    raise AssertionError(f"closed shard {shard_id}: NextShardIterator never became null")


# ------------------------------------------------------------------------------------------
# ListShards
# ------------------------------------------------------------------------------------------

def test_list_shards_paging(kinesis, make_stream):
    name = make_stream(5)
    r = kinesis.list_shards(StreamName=name, MaxResults=2)
    assert len(r["Shards"]) == 2 and r.get("NextToken")
    got = _ids(r["Shards"])
    token = r["NextToken"]
    for _ in range(10):
        r = kinesis.list_shards(NextToken=token, MaxResults=2)
        got += _ids(r["Shards"])
        token = r.get("NextToken")
        if not token:
            break
    assert got == [f"shardId-{i:012d}" for i in range(5)]
    full = kinesis.list_shards(StreamName=name)
    assert _ids(full["Shards"]) == got and not full.get("NextToken")
    k.assert_covers_hash_space(full["Shards"])


def test_list_shards_name_and_token_conflict(kinesis, make_stream):
    name = make_stream(3)
    token = kinesis.list_shards(StreamName=name, MaxResults=1)["NextToken"]
    with aws_error("InvalidArgumentException", status=400):
        kinesis.list_shards(StreamName=name, NextToken=token)


def test_list_shards_bad_token(kinesis):
    with aws_error("InvalidArgumentException", "ExpiredNextTokenException", status=400):
        kinesis.list_shards(NextToken="bm90LWEtdG9rZW4=")


@pytest.mark.parametrize("n", [0, 10001])
def test_list_shards_max_results_bounds(kinesis_nv, make_stream, n):
    name = make_stream(1)
    with aws_error("ValidationException", status=400):
        kinesis_nv.list_shards(StreamName=name, MaxResults=n)


def test_list_shards_after_shard_id(kinesis, make_stream):
    name = make_stream(5)
    r = kinesis.list_shards(StreamName=name, ShardFilter={"Type": "AFTER_SHARD_ID",
                                                           "ShardId": "shardId-000000000001"})
    assert _ids(r["Shards"]) == [f"shardId-{i:012d}" for i in (2, 3, 4)]
    r = kinesis.list_shards(StreamName=name, ExclusiveStartShardId="shardId-000000000002")
    assert _ids(r["Shards"]) == [f"shardId-{i:012d}" for i in (3, 4)]


def _tick(seconds=0.02):
    """Let the wall clock move past 'now' (timestamps below are compared at ms precision)."""
    t0 = time.time()
    while time.time() < t0 + seconds:
        time.sleep(0.002)


def test_list_shards_filters_after_split(kinesis, raw, make_stream):
    name = make_stream(2)
    _tick()
    before = round(time.time(), 3)  # after creation, before the split (epoch seconds, ms)
    _tick()
    kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(HALF // 2))
    k.wait_active(kinesis, name)
    after = round(time.time() + 2, 3)
    allsh = kinesis.list_shards(StreamName=name)["Shards"]
    assert len(allsh) == 4
    parent = "shardId-000000000000"
    children = sorted(s["ShardId"] for s in allsh if s.get("ParentShardId") == parent)
    assert len(children) == 2
    open_now = sorted(["shardId-000000000001"] + children)
    originals = ["shardId-000000000000", "shardId-000000000001"]

    def f(**flt):
        # raw request: botocore 1.29 truncates timestamps to whole seconds
        r = raw.ok("ListShards", {"StreamName": name, "ShardFilter": flt})
        return sorted(_ids(r["Shards"]))

    assert f(Type="AT_LATEST") == open_now
    assert f(Type="AT_TRIM_HORIZON") == originals
    assert f(Type="FROM_TRIM_HORIZON") == sorted(_ids(allsh))
    assert f(Type="AT_TIMESTAMP", Timestamp=before) == originals, \
        "AT_TIMESTAMP between creation and split: the shards open then"
    assert f(Type="FROM_TIMESTAMP", Timestamp=before) == sorted(_ids(allsh))
    assert f(Type="AT_TIMESTAMP", Timestamp=after) == open_now
    assert f(Type="FROM_TIMESTAMP", Timestamp=after) == open_now


def test_list_shards_filter_missing_argument(kinesis_nv, make_stream):
    name = make_stream(1)
    with aws_error("InvalidArgumentException", "ValidationException", status=400):
        kinesis_nv.list_shards(StreamName=name, ShardFilter={"Type": "AFTER_SHARD_ID"})
    with aws_error("InvalidArgumentException", "ValidationException", status=400):
        kinesis_nv.list_shards(StreamName=name, ShardFilter={"Type": "AT_TIMESTAMP"})


# ------------------------------------------------------------------------------------------
# SplitShard
# ------------------------------------------------------------------------------------------

def test_split_shard(kinesis, make_stream, server):
    name = make_stream(1)
    pks = [f"user{i}" for i in range(24)]
    before = _put_round(kinesis, name, pks, "before")
    parent_id = "shardId-000000000000"
    kinesis.split_shard(StreamName=name, ShardToSplit=parent_id, NewStartingHashKey=str(HALF))
    k.wait_active(kinesis, name)

    shards = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
    assert len(shards) == 3
    parent = next(s for s in shards if s["ShardId"] == parent_id)
    children = [s for s in shards if s.get("ParentShardId") == parent_id]
    assert len(children) == 2
    assert not k.is_open(parent), "the split parent must have an EndingSequenceNumber"
    end_seq = k.check_seq(server, parent["SequenceNumberRange"]["EndingSequenceNumber"])
    lo, hi = sorted(children, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    assert (int(lo["HashKeyRange"]["StartingHashKey"]), int(lo["HashKeyRange"]["EndingHashKey"])) \
        == (0, HALF - 1)
    assert (int(hi["HashKeyRange"]["StartingHashKey"]), int(hi["HashKeyRange"]["EndingHashKey"])) \
        == (HALF, k.MAX_HASH)
    for c in children:
        assert "AdjacentParentShardId" not in c
        assert k.is_open(c)
    k.assert_covers_hash_space(children)
    s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["OpenShardCount"] == 2

    after = _put_round(kinesis, name, pks, "after")
    # new records land in the child whose range holds md5(pk)
    for pk in pks:
        r = kinesis.put_record(StreamName=name, PartitionKey=pk, Data=f"{pk}|tail|0".encode())
        assert r["ShardId"] == k.shard_for_hash(children, k.hash_key(pk))["ShardId"]
        after[pk].append(f"{pk}|tail|0".encode())

    parent_recs, last = _read_to_end(kinesis, name, parent_id)
    assert all(int(r["SequenceNumber"]) <= end_seq for r in parent_recs), \
        "parent records must not be past the parent's EndingSequenceNumber"
    assert sorted(r["Data"] for r in parent_recs) == sorted(d for v in before.values() for d in v)
    child_shards = last.get("ChildShards")
    assert child_shards, "GetRecords at a closed shard's end must return ChildShards"
    assert sorted(c["ShardId"] for c in child_shards) == sorted(_ids(children))
    for c in child_shards:
        assert c["ParentShards"] == [parent_id]
        want = next(x for x in children if x["ShardId"] == c["ShardId"])["HashKeyRange"]
        assert c["HashKeyRange"] == want

    _, _, per_pk = k.read_by_lineage(kinesis, name)
    _assert_pk_order(per_pk, _merge(before, after))


def test_split_shard_invalid_hash_key(kinesis, make_stream):
    name = make_stream(2)
    sid = "shardId-000000000001"
    rng = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"][1][
        "HashKeyRange"]
    for bad in (rng["StartingHashKey"], rng["EndingHashKey"], str(int(rng["EndingHashKey"]) + 5),
                "0"):
        with aws_error("InvalidArgumentException", status=400):
            kinesis.split_shard(StreamName=name, ShardToSplit=sid, NewStartingHashKey=bad)
    assert len(kinesis.list_shards(StreamName=name)["Shards"]) == 2


def test_split_unknown_shard(kinesis, make_stream):
    name = make_stream(1)
    with aws_error("ResourceNotFoundException", status=400):
        kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000007",
                            NewStartingHashKey=str(HALF))


def test_split_closed_shard(kinesis, make_stream):
    name = make_stream(1)
    kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(HALF))
    k.wait_active(kinesis, name)
    with aws_error("InvalidArgumentException", "ResourceInUseException",
                   "ResourceNotFoundException", status=400):
        kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000000",
                            NewStartingHashKey=str(HALF // 2))


def test_read_closed_parent_from_sequence_number(kinesis, make_stream):
    """AT_SEQUENCE_NUMBER into a closed parent still reads the parent's tail, then ends."""
    name = make_stream(1)
    acks = [kinesis.put_record(StreamName=name, PartitionKey="p", Data=b"%d" % i)
            for i in range(5)]
    kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(HALF))
    k.wait_active(kinesis, name)
    it = k.iterator(kinesis, name, "shardId-000000000000", "AT_SEQUENCE_NUMBER",
                    StartingSequenceNumber=acks[2]["SequenceNumber"])
    recs, resps = k.read_iterator(kinesis, it)
    assert [r["Data"] for r in recs] == [b"2", b"3", b"4"]
    assert not resps[-1].get("NextShardIterator") and resps[-1].get("ChildShards")


# ------------------------------------------------------------------------------------------
# MergeShards
# ------------------------------------------------------------------------------------------

def test_merge_shards(kinesis, make_stream, server):
    name = make_stream(2)
    pks = [f"m{i}" for i in range(30)]
    before = _put_round(kinesis, name, pks, "before")
    a, b = "shardId-000000000000", "shardId-000000000001"
    kinesis.merge_shards(StreamName=name, ShardToMerge=a, AdjacentShardToMerge=b)
    k.wait_active(kinesis, name)
    shards = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
    assert len(shards) == 3
    child = next(s for s in shards if s["ShardId"] not in (a, b))
    assert child["ParentShardId"] == a and child["AdjacentParentShardId"] == b
    assert int(child["HashKeyRange"]["StartingHashKey"]) == 0
    assert int(child["HashKeyRange"]["EndingHashKey"]) == k.MAX_HASH
    for p in (a, b):
        ps = next(s for s in shards if s["ShardId"] == p)
        assert not k.is_open(ps), f"merged parent {p} must be closed"
        k.check_seq(server, ps["SequenceNumberRange"]["EndingSequenceNumber"])
    after = _put_round(kinesis, name, pks, "after")
    for p in (a, b):
        _, last = _read_to_end(kinesis, name, p)
        cs = last.get("ChildShards")
        assert cs, f"GetRecords at the end of closed parent {p} returned no ChildShards"
        assert [c["ShardId"] for c in cs] == [child["ShardId"]], cs
        assert sorted(cs[0]["ParentShards"]) == sorted([a, b])
    _, _, per_pk = k.read_by_lineage(kinesis, name)
    _assert_pk_order(per_pk, _merge(before, after))


def test_merge_non_adjacent(kinesis, make_stream):
    name = make_stream(3)
    with aws_error("InvalidArgumentException", status=400):
        kinesis.merge_shards(StreamName=name, ShardToMerge="shardId-000000000000",
                             AdjacentShardToMerge="shardId-000000000002")


def test_merge_unknown_shard(kinesis, make_stream):
    name = make_stream(2)
    with aws_error("ResourceNotFoundException", status=400):
        kinesis.merge_shards(StreamName=name, ShardToMerge="shardId-000000000000",
                             AdjacentShardToMerge="shardId-000000000042")


# ------------------------------------------------------------------------------------------
# UpdateShardCount
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("start,target", [(2, 4), (4, 2), (3, 5)])
def test_update_shard_count(kinesis, make_stream, start, target):
    name = make_stream(start)
    pks = [f"u{i}" for i in range(40)]
    before = _put_round(kinesis, name, pks, "before", per_key=2)
    r = kinesis.update_shard_count(StreamName=name, TargetShardCount=target,
                                   ScalingType="UNIFORM_SCALING")
    assert r["StreamName"] == name
    assert r["CurrentShardCount"] == start and r["TargetShardCount"] == target
    k.wait_active(kinesis, name)
    s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["OpenShardCount"] == target
    opened = k.open_shards(kinesis, name)
    assert len(opened) == target
    k.assert_covers_hash_space(opened)
    for sh in k.list_all_shards(kinesis, name)[:start]:
        assert not k.is_open(sh), f"original shard {sh['ShardId']} must be closed"
    after = _put_round(kinesis, name, pks, "after", per_key=2)
    shards, per_shard, per_pk = k.read_by_lineage(kinesis, name)
    for sh in shards:
        if k.is_open(sh):
            assert sh.get("ParentShardId"), f"new shard {sh['ShardId']} has no ParentShardId"
    _assert_pk_order(per_pk, _merge(before, after))
    assert kinesis.describe_limits()["OpenShardCount"] >= target


@pytest.mark.parametrize("start,target", [(2, 5), (4, 1)])
def test_update_shard_count_beyond_double_or_half(kinesis, make_stream, start, target):
    name = make_stream(start)
    with aws_error("LimitExceededException", "InvalidArgumentException", status=400):
        kinesis.update_shard_count(StreamName=name, TargetShardCount=target,
                                   ScalingType="UNIFORM_SCALING")
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "OpenShardCount"] == start


def test_update_shard_count_validation(kinesis_nv, make_stream):
    name = make_stream(2)
    with aws_error("ValidationException", status=400):
        kinesis_nv.update_shard_count(StreamName=name, TargetShardCount=0,
                                      ScalingType="UNIFORM_SCALING")
    with aws_error("ValidationException", status=400):
        kinesis_nv.update_shard_count(StreamName=name, TargetShardCount=3,
                                      ScalingType="LUMPY_SCALING")


def test_reshard_twice_lineage(kinesis, make_stream):
    """split, then merge a child with its neighbour: reads follow the whole family tree."""
    name = make_stream(2)
    pks = [f"f{i}" for i in range(30)]
    r1 = _put_round(kinesis, name, pks, "g0", per_key=2)
    kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(HALF // 2))
    k.wait_active(kinesis, name)
    r2 = _put_round(kinesis, name, pks, "g1", per_key=2)
    opened = sorted(k.open_shards(kinesis, name),
                    key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    # merge the upper child of the split with the old shard 1 (adjacent ranges)
    kinesis.merge_shards(StreamName=name, ShardToMerge=opened[1]["ShardId"],
                         AdjacentShardToMerge=opened[2]["ShardId"])
    k.wait_active(kinesis, name)
    r3 = _put_round(kinesis, name, pks, "g2", per_key=2)
    _, _, per_pk = k.read_by_lineage(kinesis, name)
    _assert_pk_order(per_pk, _merge(_merge(r1, r2), r3))
    assert len(k.open_shards(kinesis, name)) == 2
