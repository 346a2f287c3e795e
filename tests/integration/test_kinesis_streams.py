# SPDX-License-Identifier: Apache-2.0
"""Stream lifecycle: CreateStream, DescribeStream(Summary), ListStreams, DeleteStream, DescribeLimits,
StreamARN addressing, and the errors AWS gives for each."""
import datetime
import re

import pytest

from helpers import kinesis as k
from helpers.kinesis import aws_error


# ------------------------------------------------------------------------------------------
# CreateStream / DescribeStream / DescribeStreamSummary
# ------------------------------------------------------------------------------------------

def test_create_stream_describe_fields(kinesis, make_stream, server):
    name = make_stream(3)
    d = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert d["StreamName"] == name
    assert d["StreamStatus"] == "ACTIVE"
    assert re.fullmatch(k.arn_pattern(server, name), d["StreamARN"]), d["StreamARN"]
    if not server.external:
        assert d["StreamARN"] == f"arn:aws:kinesis:us-east-1:000000000000:stream/{name}"
    assert d["RetentionPeriodHours"] == 24
    assert d["HasMoreShards"] is False
    assert isinstance(d["StreamCreationTimestamp"], datetime.datetime)
    age = datetime.datetime.now(datetime.timezone.utc) - d["StreamCreationTimestamp"]
    assert abs(age.total_seconds()) < 600, f"StreamCreationTimestamp off by {age}"
    assert d.get("EncryptionType", "NONE") == "NONE"
    assert "EnhancedMonitoring" in d
    assert d.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED") == "PROVISIONED"
    shards = d["Shards"]
    assert [s["ShardId"] for s in shards] == [f"shardId-{i:012d}" for i in range(3)]
    for s in shards:
        assert "ParentShardId" not in s and "AdjacentParentShardId" not in s
        k.check_seq(server, s["SequenceNumberRange"]["StartingSequenceNumber"])
        assert k.is_open(s)
    k.assert_covers_hash_space(shards)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_hash_ranges_even_split(kinesis, make_stream, n):
    name = make_stream(n)
    shards = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
    assert len(shards) == n
    k.assert_covers_hash_space(shards)
    sizes = [int(s["HashKeyRange"]["EndingHashKey"]) - int(s["HashKeyRange"]["StartingHashKey"])
             for s in shards]
    assert max(sizes) - min(sizes) <= n, f"uneven split of the hash space over {n} shards: {sizes}"


def test_describe_stream_summary(kinesis, make_stream, server):
    name = make_stream(2)
    s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamName"] == name
    assert s["StreamStatus"] == "ACTIVE"
    assert s["OpenShardCount"] == 2
    assert s["RetentionPeriodHours"] == 24
    assert re.fullmatch(k.arn_pattern(server, name), s["StreamARN"])
    assert s.get("ConsumerCount", 0) == 0
    assert s.get("EncryptionType", "NONE") == "NONE"
    assert isinstance(s["EnhancedMonitoring"], list)
    assert s["StreamModeDetails"]["StreamMode"] == "PROVISIONED"


def test_stream_exists_waiter(kinesis, server, request):
    name = k.unique_name("waiter")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    try:
        kinesis.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        assert kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"] == \
            "ACTIVE"
    finally:
        kinesis.delete_stream(StreamName=name)
    kinesis.get_waiter("stream_not_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def test_describe_stream_shard_pagination(kinesis, make_stream):
    name = make_stream(5)
    seen, start = [], None
    for _ in range(10):
        kw = {"ExclusiveStartShardId": start} if start else {}
        d = kinesis.describe_stream(StreamName=name, Limit=2, **kw)["StreamDescription"]
        assert len(d["Shards"]) <= 2
        seen += [s["ShardId"] for s in d["Shards"]]
        if not d["HasMoreShards"]:
            break
        start = d["Shards"][-1]["ShardId"]
    assert seen == [f"shardId-{i:012d}" for i in range(5)]


def test_create_on_demand(kinesis, make_stream):
    before = kinesis.describe_limits()
    name = make_stream(None, mode="ON_DEMAND")
    s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"
    assert s["OpenShardCount"] >= 1
    after = kinesis.describe_limits()
    assert after["OnDemandStreamCount"] == before["OnDemandStreamCount"] + 1


def test_create_duplicate_name(kinesis, make_stream):
    name = make_stream(1)
    with aws_error("ResourceInUseException", status=400):
        kinesis.create_stream(StreamName=name, ShardCount=1)


@pytest.mark.parametrize("count", [0, -1])
def test_create_shard_count_not_positive(kinesis_nv, count):
    with aws_error("ValidationException", status=400):
        kinesis_nv.create_stream(StreamName=k.unique_name("zero"), ShardCount=count)


@pytest.mark.parametrize("name", ["bad name!", "x" * 129, ""])
def test_create_invalid_name(kinesis_nv, name):
    with aws_error("ValidationException", status=400):
        kinesis_nv.create_stream(StreamName=name, ShardCount=1)


def test_create_missing_stream_name(kinesis_nv):
    with aws_error("ValidationException", status=400):
        kinesis_nv.create_stream(ShardCount=1)


def test_create_provisioned_without_shard_count(kinesis_nv):
    # AWS rejects it; the exact type is not documented, so accept either argument error.
    with aws_error("ValidationException", "InvalidArgumentException"):
        kinesis_nv.create_stream(StreamName=k.unique_name("noshards"),
                                 StreamModeDetails={"StreamMode": "PROVISIONED"})


def test_create_over_shard_limit(kinesis):
    limit = kinesis.describe_limits()["ShardLimit"]
    name = k.unique_name("toomany")
    with aws_error("LimitExceededException", status=400):
        kinesis.create_stream(StreamName=name, ShardCount=limit + 1)


def test_describe_limits(kinesis, make_stream):
    before = kinesis.describe_limits()
    for key in ("ShardLimit", "OpenShardCount", "OnDemandStreamCount",
                "OnDemandStreamCountLimit"):
        assert isinstance(before[key], int), f"DescribeLimits.{key} missing: {before}"
    assert before["ShardLimit"] > 0
    make_stream(3)
    after = kinesis.describe_limits()
    assert after["OpenShardCount"] == before["OpenShardCount"] + 3


# ------------------------------------------------------------------------------------------
# ListStreams
# ------------------------------------------------------------------------------------------

def _make_named(make_stream, prefix, n):
    names = [f"{prefix}-{i}" for i in range(n)]
    for nm in names:
        make_stream(1, name=nm)
    return names


def test_list_streams_exclusive_start_paging(kinesis, make_stream):
    prefix = k.unique_name("ls")
    names = _make_named(make_stream, prefix, 5)
    got, start = [], prefix  # every name of ours sorts after the bare prefix
    for _ in range(10):
        r = kinesis.list_streams(Limit=2, ExclusiveStartStreamName=start)
        assert len(r["StreamNames"]) <= 2
        mine = [n for n in r["StreamNames"] if n.startswith(prefix + "-")]
        got += mine
        if len(mine) < len(r["StreamNames"]) or not r["HasMoreStreams"]:
            break
        start = r["StreamNames"][-1]
    assert got == names, "ListStreams must page through names in lexicographic order"


def test_list_streams_contains_created(kinesis, make_stream):
    name = make_stream(1)
    r = kinesis.list_streams(ExclusiveStartStreamName=name[:-1])
    assert name in r["StreamNames"]


def test_list_streams_next_token_and_summaries(raw, make_stream, server):
    prefix = k.unique_name("lt")
    names = _make_named(make_stream, prefix, 4)
    r = raw.ok("ListStreams", {"Limit": 2, "ExclusiveStartStreamName": prefix})
    assert r["StreamNames"] == names[:2]
    assert r["HasMoreStreams"] is True
    assert r.get("NextToken"), f"ListStreams with more streams returned no NextToken: {r}"
    summaries = r.get("StreamSummaries")
    assert summaries and [s["StreamName"] for s in summaries] == names[:2]
    for s in summaries:
        assert s["StreamStatus"] == "ACTIVE"
        assert re.fullmatch(k.arn_pattern(server, s["StreamName"]), s["StreamARN"])
        assert s["StreamModeDetails"]["StreamMode"] == "PROVISIONED"
        assert isinstance(s["StreamCreationTimestamp"], (int, float))
    r2 = raw.ok("ListStreams", {"Limit": 2, "NextToken": r["NextToken"]})
    assert r2["StreamNames"] == names[2:4]


@pytest.mark.parametrize("limit", [0, 10001])
def test_list_streams_limit_bounds(kinesis_nv, limit):
    with aws_error("ValidationException", status=400):
        kinesis_nv.list_streams(Limit=limit)


# ------------------------------------------------------------------------------------------
# DeleteStream
# ------------------------------------------------------------------------------------------

def test_delete_stream_then_not_found(kinesis, make_stream):
    name = make_stream(2)
    kinesis.delete_stream(StreamName=name)
    k.wait_gone(kinesis, name)
    with aws_error("ResourceNotFoundException", status=400):
        kinesis.describe_stream(StreamName=name)
    with aws_error("ResourceNotFoundException", status=400):
        kinesis.put_record(StreamName=name, PartitionKey="a", Data=b"x")
    with aws_error("ResourceNotFoundException", status=400):
        kinesis.delete_stream(StreamName=name)
    assert name not in kinesis.list_streams(ExclusiveStartStreamName=name[:-1])["StreamNames"]


def test_recreate_deleted_name_is_empty(kinesis, make_stream):
    name = make_stream(1)
    for i in range(5):
        kinesis.put_record(StreamName=name, PartitionKey=f"pk{i}", Data=b"old-%d" % i)
    kinesis.delete_stream(StreamName=name)
    k.wait_gone(kinesis, name)
    make_stream(2, name=name)
    d = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert len(d["Shards"]) == 2
    for s in d["Shards"]:
        assert k.read_shard(kinesis, name, s["ShardId"]) == [], \
            "a recreated stream must not show the deleted stream's records"
    kinesis.put_record(StreamName=name, PartitionKey="n", Data=b"new")
    got = [r["Data"] for s in d["Shards"] for r in k.read_shard(kinesis, name, s["ShardId"])]
    assert got == [b"new"]


NOT_FOUND_CALLS = {
    "DescribeStream": lambda c, n: c.describe_stream(StreamName=n),
    "DescribeStreamSummary": lambda c, n: c.describe_stream_summary(StreamName=n),
    "DeleteStream": lambda c, n: c.delete_stream(StreamName=n),
    "PutRecord": lambda c, n: c.put_record(StreamName=n, PartitionKey="a", Data=b"x"),
    "PutRecords": lambda c, n: c.put_records(StreamName=n, Records=[{"PartitionKey": "a",
                                                                     "Data": b"x"}]),
    "GetShardIterator": lambda c, n: c.get_shard_iterator(
        StreamName=n, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"),
    "ListShards": lambda c, n: c.list_shards(StreamName=n),
    "AddTagsToStream": lambda c, n: c.add_tags_to_stream(StreamName=n, Tags={"a": "b"}),
    "ListTagsForStream": lambda c, n: c.list_tags_for_stream(StreamName=n),
    "RemoveTagsFromStream": lambda c, n: c.remove_tags_from_stream(StreamName=n, TagKeys=["a"]),
    "IncreaseStreamRetentionPeriod": lambda c, n: c.increase_stream_retention_period(
        StreamName=n, RetentionPeriodHours=48),
    "DecreaseStreamRetentionPeriod": lambda c, n: c.decrease_stream_retention_period(
        StreamName=n, RetentionPeriodHours=24),
    "SplitShard": lambda c, n: c.split_shard(StreamName=n, ShardToSplit="shardId-000000000000",
                                             NewStartingHashKey=str(2 ** 127)),
    "MergeShards": lambda c, n: c.merge_shards(StreamName=n, ShardToMerge="shardId-000000000000",
                                               AdjacentShardToMerge="shardId-000000000001"),
    "UpdateShardCount": lambda c, n: c.update_shard_count(StreamName=n, TargetShardCount=2,
                                                          ScalingType="UNIFORM_SCALING"),
}


@pytest.mark.parametrize("op", sorted(NOT_FOUND_CALLS))
def test_unknown_stream_is_resource_not_found(kinesis, op):
    with aws_error("ResourceNotFoundException", status=400):
        NOT_FOUND_CALLS[op](kinesis, k.unique_name("missing"))


# ------------------------------------------------------------------------------------------
# StreamARN instead of StreamName (raw requests: botocore 1.29's model lacks StreamARN)
# ------------------------------------------------------------------------------------------

def test_stream_arn_everywhere(raw, kinesis, make_stream, server):
    name = make_stream(2)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    a = {"StreamARN": arn}

    s = raw.ok("DescribeStreamSummary", a)["StreamDescriptionSummary"]
    assert s["StreamName"] == name and s["StreamARN"] == arn
    d = raw.ok("DescribeStream", a)["StreamDescription"]
    assert d["StreamName"] == name and len(d["Shards"]) == 2
    shards = raw.ok("ListShards", a)["Shards"]
    assert [x["ShardId"] for x in shards] == [x["ShardId"] for x in d["Shards"]]

    p = raw.ok("PutRecord", {**a, "PartitionKey": "arn-pk", "Data": "aGVsbG8="})
    pr = raw.ok("PutRecords", {**a, "Records": [{"PartitionKey": "arn-pk", "Data": "d29ybGQ="}]})
    assert pr["FailedRecordCount"] == 0
    assert pr["Records"][0]["ShardId"] == p["ShardId"]

    it = raw.ok("GetShardIterator", {**a, "ShardId": p["ShardId"],
                                     "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
    g = raw.ok("GetRecords", {"StreamARN": arn, "ShardIterator": it})
    assert [r["Data"] for r in g["Records"]] == ["aGVsbG8=", "d29ybGQ="]

    raw.ok("AddTagsToStream", {**a, "Tags": {"k1": "v1", "k2": "v2"}})
    raw.ok("RemoveTagsFromStream", {**a, "TagKeys": ["k2"]})
    tags = raw.ok("ListTagsForStream", a)["Tags"]
    assert tags == [{"Key": "k1", "Value": "v1"}]

    raw.ok("IncreaseStreamRetentionPeriod", {**a, "RetentionPeriodHours": 48})
    assert raw.ok("DescribeStreamSummary", a)["StreamDescriptionSummary"][
        "RetentionPeriodHours"] == 48
    raw.ok("DecreaseStreamRetentionPeriod", {**a, "RetentionPeriodHours": 24})

    u = raw.ok("UpdateShardCount", {**a, "TargetShardCount": 1, "ScalingType": "UNIFORM_SCALING"})
    assert u.get("TargetShardCount") == 1
    k.wait_active(kinesis, name)
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "OpenShardCount"] == 1

    raw.ok("DeleteStream", a)
    k.wait_gone(kinesis, name)


def test_stream_arn_split_and_merge(raw, kinesis, make_stream):
    name = make_stream(2)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    raw.ok("MergeShards", {"StreamARN": arn, "ShardToMerge": "shardId-000000000000",
                           "AdjacentShardToMerge": "shardId-000000000001"})
    k.wait_active(kinesis, name)
    child = [s for s in k.open_shards(kinesis, name)]
    assert len(child) == 1
    raw.ok("SplitShard", {"StreamARN": arn, "ShardToSplit": child[0]["ShardId"],
                          "NewStartingHashKey": str(2 ** 127)})
    k.wait_active(kinesis, name)
    assert len(k.open_shards(kinesis, name)) == 2


def test_stream_arn_unknown_stream(raw, server):
    account = server.account or "000000000000"
    arn = f"arn:aws:kinesis:{server.region}:{account}:stream/{k.unique_name('nope')}"
    raw.error("DescribeStreamSummary", {"StreamARN": arn}, "ResourceNotFoundException")
    raw.error("PutRecord", {"StreamARN": arn, "PartitionKey": "a", "Data": "eA=="},
              "ResourceNotFoundException")


def test_stream_arn_malformed(raw):
    raw.error("DescribeStreamSummary", {"StreamARN": "arn:not-a-kinesis-arn"},
              "ValidationException", "InvalidArgumentException")


# every operation that takes a StreamARN, with the members it needs besides the ARN
ARN_OPS = {
    "DescribeStream": {}, "DescribeStreamSummary": {}, "ListShards": {},
    "ListTagsForStream": {}, "AddTagsToStream": {"Tags": {"k": "v"}},
    "RemoveTagsFromStream": {"TagKeys": ["k"]},
    "IncreaseStreamRetentionPeriod": {"RetentionPeriodHours": 48},
    "DecreaseStreamRetentionPeriod": {"RetentionPeriodHours": 24},
    "PutRecord": {"PartitionKey": "a", "Data": "eA=="},
    "PutRecords": {"Records": [{"PartitionKey": "a", "Data": "eA=="}]},
    "GetShardIterator": {"ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"},
    "MergeShards": {"ShardToMerge": "shardId-000000000000",
                    "AdjacentShardToMerge": "shardId-000000000001"},
    "SplitShard": {"ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "1000"},
    "UpdateShardCount": {"TargetShardCount": 1, "ScalingType": "UNIFORM_SCALING"},
    "DeleteStream": {},
}


def test_stream_arn_of_another_account_or_region_is_refused(raw, kinesis, make_stream, server,
                                                            local_only):
    """A StreamARN naming a stream of another account is AccessDeniedException (no resource
    policy allows it), one of another region or partition is not reachable from this endpoint
    (ResourceNotFoundException) -- even when a stream of that name exists here -- for every
    operation that takes StreamARN, and nothing changes."""
    name = make_stream(2)
    mine = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    arn = mine["StreamARN"]
    part, svc, region, account, res = arn.split(":", 5)[1:]
    other_account = f"arn:aws:kinesis:{region}:123456789012:{res}"
    other_region = f"arn:aws:kinesis:{'eu-west-3' if region != 'eu-west-3' else 'us-east-2'}:" \
                   f"{account}:{res}"
    other_partition = f"arn:aws-cn:kinesis:{region}:{account}:{res}"
    for op, extra in ARN_OPS.items():
        r = raw.error(op, {**extra, "StreamARN": other_account}, "AccessDeniedException")
        assert f"kinesis:{op}" in r.message and other_account in r.message, r.message
        for foreign in (other_region, other_partition):
            raw.error(op, {**extra, "StreamARN": foreign}, "ResourceNotFoundException")
    # GetRecords takes an optional StreamARN next to the iterator
    it = kinesis.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    raw.error("GetRecords", {"ShardIterator": it, "StreamARN": other_account},
              "AccessDeniedException")
    raw.error("GetRecords", {"ShardIterator": it, "StreamARN": other_region},
              "ResourceNotFoundException")
    raw.ok("GetRecords", {"ShardIterator": it, "StreamARN": arn})
    # nothing changed: no record, no tag, same retention and shards, stream still there
    after = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert after["RetentionPeriodHours"] == mine["RetentionPeriodHours"]
    assert after["OpenShardCount"] == 2
    assert kinesis.list_tags_for_stream(StreamName=name)["Tags"] == []
    for sid in ("shardId-000000000000", "shardId-000000000001"):
        assert k.read_shard(kinesis, name, sid) == []


def test_stream_arn_shape_is_checked(raw):
    """The account field must be 12 digits and the ARN must name a stream."""
    for bad in ("arn:aws:kinesis:us-east-1:12345:stream/x",
                "arn:aws:kinesis:us-east-1:00000000000x:stream/x",
                "arn:aws:kinesis:us-east-1:000000000000:stream/",
                "arn:aws:kinesis:us-east-1:000000000000:table/x"):
        raw.error("DescribeStreamSummary", {"StreamARN": bad}, "ValidationException")
