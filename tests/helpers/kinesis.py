# SPDX-License-Identifier: Apache-2.0
"""Kinesis test helpers: clients, a raw signed JSON caller, routing maths and shard readers.

The raw caller is helpers/raw.py's client for JSON 1.1 with Kinesis's target prefix: tests can
set any date, key, header or body, and can send members that the installed botocore model lacks
(e.g. StreamARN with botocore 1.29).
"""
import contextlib
import hashlib
import os
import re
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers import raw
from helpers.wait import poll

MAX_HASH = 2 ** 128 - 1
TARGET_PREFIX = "Kinesis_20131202."
JSON_CT = "application/x-amz-json-1.1"


# ------------------------------------------------------------------------------------------
# clients
# ------------------------------------------------------------------------------------------

def make_client(server, validate=True, access_key=None, secret_key=None, read_timeout=60,
                service="kinesis"):
    """A boto3 Kinesis client for server: retries off (one attempt), bounded timeouts."""
    session = boto3.session.Session(
        aws_access_key_id=access_key or server.access_key,
        aws_secret_access_key=secret_key or server.secret_key,
        aws_session_token=getattr(server, "session_token", None) if access_key is None else None,
        region_name=server.region)
    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5,
                 read_timeout=read_timeout, parameter_validation=validate,
                 max_pool_connections=16)
    return session.client(service, endpoint_url=server.endpoint, config=cfg)


def unique_name(tag="s"):
    tag = re.sub(r"[^a-zA-Z0-9_.-]", "-", tag)[:60]
    return f"tr-{tag}-{uuid.uuid4().hex[:10]}"


def absent(describe):
    """A poll probe: done once describe() raises ResourceNotFoundException."""
    def probe():
        try:
            describe()
        except ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return True, None
            raise
        return False, None
    return probe


def wait_active(client, name, timeout=120):
    """Poll DescribeStreamSummary until ACTIVE (immediate on Tributary, minutes on AWS)."""
    def probe():
        s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        return s["StreamStatus"] == "ACTIVE", s
    return poll(probe, timeout,
                lambda s: f"stream {name} not ACTIVE after {timeout}s: {s['StreamStatus']}")


def wait_gone(client, name, timeout=120):
    poll(absent(lambda: client.describe_stream_summary(StreamName=name)), timeout,
         lambda _: f"stream {name} still exists {timeout}s after DeleteStream")


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------

class Caught:
    code = None
    message = None
    status = None
    error = None


@contextlib.contextmanager
def aws_error(*codes, status=None, message=None):
    """Expect a botocore ClientError whose code is one of codes (and optional message part)."""
    caught = Caught()
    try:
        yield caught
    except ClientError as e:
        err = e.response.get("Error", {})
        caught.error = e
        caught.code = err.get("Code")
        caught.message = err.get("Message", "")
        caught.status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        assert caught.code in codes, (
            f"expected error {' or '.join(codes)}, got {caught.code} (HTTP {caught.status}): "
            f"{caught.message!r}")
        if status is not None:
            assert caught.status == status, (
                f"{caught.code}: expected HTTP {status}, got {caught.status}")
        if message is not None:
            assert message.lower() in (caught.message or "").lower(), (
                f"{caught.code}: expected message containing {message!r}, got {caught.message!r}")
        return
    pytest.fail(f"expected error {' or '.join(codes)}, but the call succeeded")


# ------------------------------------------------------------------------------------------
# raw signed requests
# ------------------------------------------------------------------------------------------

class RawClient(raw.RawClient):
    """Hand-signed Kinesis JSON 1.1 requests (helpers/raw.py)."""
    service = "kinesis"
    target_prefix = TARGET_PREFIX
    content_type = JSON_CT


# ------------------------------------------------------------------------------------------
# routing, shards and reading
# ------------------------------------------------------------------------------------------

def hash_key(partition_key):
    """Kinesis maps a partition key to a 128-bit integer: MD5 of its UTF-8 bytes, big-endian."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def shard_for_hash(shards, h):
    for s in shards:
        r = s["HashKeyRange"]
        if int(r["StartingHashKey"]) <= h <= int(r["EndingHashKey"]):
            return s
    return None


def is_open(shard):
    return "EndingSequenceNumber" not in shard["SequenceNumberRange"]


def list_all_shards(client, name):
    shards, token = [], None
    for _ in range(1000):
        kw = {"NextToken": token} if token else {"StreamName": name}
        r = client.list_shards(**kw)
        shards.extend(r["Shards"])
        token = r.get("NextToken")
        if not token:
            return shards
    raise AssertionError("ListShards did not finish paging in 1000 calls")


def open_shards(client, name):
    return [s for s in list_all_shards(client, name) if is_open(s)]


def assert_covers_hash_space(shards):
    """Shards' HashKeyRanges must tile [0, 2^128-1] with no gap or overlap."""
    ranges = sorted((int(s["HashKeyRange"]["StartingHashKey"]),
                     int(s["HashKeyRange"]["EndingHashKey"]), s["ShardId"]) for s in shards)
    assert ranges, "no shards"
    assert ranges[0][0] == 0, f"first range starts at {ranges[0][0]}, not 0"
    assert ranges[-1][1] == MAX_HASH, f"last range ends at {ranges[-1][1]}, not 2^128-1"
    for (a0, a1, aid), (b0, b1, bid) in zip(ranges, ranges[1:]):
        assert b0 == a1 + 1, f"gap or overlap between {aid} (..{a1}) and {bid} ({b0}..)"


def iterator(client, name, shard_id, itype="TRIM_HORIZON", **kw):
    return client.get_shard_iterator(StreamName=name, ShardId=shard_id, ShardIteratorType=itype,
                                     **kw)["ShardIterator"]


def read_iterator(client, it, limit=None, max_calls=2000):
    """Read from iterator it until the shard end (NextShardIterator null) or the tip (no records,
    MillisBehindLatest 0).  Returns (records, responses)."""
    records, responses = [], []
    for _ in range(max_calls):
        kw = {"Limit": limit} if limit else {}
        r = client.get_records(ShardIterator=it, **kw)
        responses.append(r)
        records.extend(r["Records"])
        it = r.get("NextShardIterator")
        if not it:
            return records, responses
        if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
            return records, responses
    raise AssertionError(f"shard not read to its end/tip in {max_calls} GetRecords calls")


def read_shard(client, name, shard_id, itype="TRIM_HORIZON", limit=None, **kw):
    return read_iterator(client, iterator(client, name, shard_id, itype, **kw), limit)[0]


def shard_depths(shards):
    """Generation of each shard: 0 for shards without parents, else 1 + max(parent depths)."""
    by_id = {s["ShardId"]: s for s in shards}
    depth = {}

    def d(sid):
        if sid in depth:
            return depth[sid]
        s = by_id.get(sid)
        parents = [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId"))
                   if p and p in by_id] if s else []
        depth[sid] = 1 + max(d(p) for p in parents) if parents else 0
        return depth[sid]

    for sid in by_id:
        d(sid)
    return depth


def read_by_lineage(client, name):
    """Every record of every shard, for each partition key in parent-then-child order.
    Returns (shards, {shard_id: records}, {pk: [records in lineage order]})."""
    shards = list_all_shards(client, name)
    depth = shard_depths(shards)
    per_shard = {s["ShardId"]: read_shard(client, name, s["ShardId"]) for s in shards}
    per_pk = {}
    for sid in sorted(per_shard, key=lambda x: (depth[x], x)):
        for r in per_shard[sid]:
            per_pk.setdefault(r["PartitionKey"], []).append(r)
    return shards, per_shard, per_pk


def check_seq(server, seq):
    assert isinstance(seq, str) and seq.isdigit(), f"sequence number {seq!r} is not decimal digits"
    digits = os.environ.get("TRIBUTARY_SEQ_DIGITS", "34")  # the contract: 34 digits
    if not server.external and digits.isdigit():
        assert len(seq) == int(digits), \
            f"sequence number {seq!r} has {len(seq)} digits, expected {digits}"
    return int(seq)


def arn_pattern(server, name):
    account = server.account or r"\d{12}"
    return rf"arn:aws:kinesis:{re.escape(server.region)}:{account}:stream/{re.escape(name)}"


def epoch(dt):
    return dt.timestamp()
