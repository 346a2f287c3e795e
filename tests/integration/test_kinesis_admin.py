# SPDX-License-Identifier: Apache-2.0
"""Retention (Increase/DecreaseStreamRetentionPeriod) and tags (Add/List/RemoveTags)."""
import pytest

from helpers import kinesis as k
from helpers.kinesis import aws_error


def _retention(kinesis, name):
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "RetentionPeriodHours"]


# ------------------------------------------------------------------------------------------
# retention
# ------------------------------------------------------------------------------------------

def test_retention_increase_and_decrease(kinesis, make_stream):
    name = make_stream(1)
    assert _retention(kinesis, name) == 24
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    assert _retention(kinesis, name) == 48
    assert kinesis.describe_stream(StreamName=name)["StreamDescription"][
        "RetentionPeriodHours"] == 48
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=8760)
    assert _retention(kinesis, name) == 8760
    kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    assert _retention(kinesis, name) == 24


def test_retention_upper_bound(kinesis, make_stream):
    name = make_stream(1)
    # AWS answers InvalidArgumentException (older deployments: a ValidationException range error)
    with aws_error("InvalidArgumentException", "ValidationException", status=400):
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=8761)
    assert _retention(kinesis, name) == 24


def test_retention_lower_bound(kinesis, kinesis_nv, make_stream):
    name = make_stream(1)
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    with aws_error("InvalidArgumentException", status=400):
        kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=23)
    with aws_error("ValidationException", "InvalidArgumentException", status=400):
        kinesis_nv.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=0)
    assert _retention(kinesis, name) == 48


def test_retention_increase_below_current(kinesis, make_stream):
    name = make_stream(1)
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=72)
    with aws_error("InvalidArgumentException", status=400):
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    assert _retention(kinesis, name) == 72


def test_retention_decrease_above_current(kinesis, make_stream):
    name = make_stream(1)
    with aws_error("InvalidArgumentException", status=400):
        kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    assert _retention(kinesis, name) == 24


# ------------------------------------------------------------------------------------------
# tags
# ------------------------------------------------------------------------------------------

def _tags(kinesis, name):
    r = kinesis.list_tags_for_stream(StreamName=name)
    assert r["HasMoreTags"] is False
    return {t["Key"]: t.get("Value", "") for t in r["Tags"]}


def test_tags_add_list_overwrite_remove(kinesis, make_stream):
    name = make_stream(1)
    assert _tags(kinesis, name) == {}
    kinesis.add_tags_to_stream(StreamName=name, Tags={"env": "test", "team": "data", "e": ""})
    assert _tags(kinesis, name) == {"env": "test", "team": "data", "e": ""}
    kinesis.add_tags_to_stream(StreamName=name, Tags={"env": "prod"})
    assert _tags(kinesis, name) == {"env": "prod", "team": "data", "e": ""}
    kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["team", "not-there"])
    assert _tags(kinesis, name) == {"env": "prod", "e": ""}


def test_tags_list_paging(kinesis, make_stream):
    name = make_stream(1)
    tags = {f"key{i:02d}": f"v{i}" for i in range(7)}
    kinesis.add_tags_to_stream(StreamName=name, Tags=tags)
    got, start = {}, None
    for _ in range(10):
        kw = {"ExclusiveStartTagKey": start} if start else {}
        r = kinesis.list_tags_for_stream(StreamName=name, Limit=3, **kw)
        assert len(r["Tags"]) <= 3
        for t in r["Tags"]:
            assert t["Key"] not in got, f"tag {t['Key']} listed twice while paging"
            got[t["Key"]] = t["Value"]
        if not r["HasMoreTags"]:
            break
        assert r["Tags"], "HasMoreTags with an empty page"
        start = r["Tags"][-1]["Key"]
    assert got == tags


def test_tags_limit_50(kinesis, make_stream):
    name = make_stream(1)
    for b in range(5):
        kinesis.add_tags_to_stream(StreamName=name,
                                   Tags={f"t{b * 10 + i:02d}": "v" for i in range(10)})
    assert len(_tags(kinesis, name)) == 50
    kinesis.add_tags_to_stream(StreamName=name, Tags={"t00": "overwrite-is-fine"})
    with aws_error("InvalidArgumentException", "LimitExceededException", status=400):
        kinesis.add_tags_to_stream(StreamName=name, Tags={"one-too-many": "v"})
    t = _tags(kinesis, name)
    assert len(t) == 50 and "one-too-many" not in t and t["t00"] == "overwrite-is-fine"


@pytest.mark.parametrize("tags", [{"": "v"}, {"k" * 129: "v"}, {"k": "v" * 257}],
                         ids=["empty-key", "key-129", "value-257"])
def test_tags_invalid(kinesis_nv, make_stream, tags):
    name = make_stream(1)
    with aws_error("ValidationException", "InvalidArgumentException", status=400):
        kinesis_nv.add_tags_to_stream(StreamName=name, Tags=tags)


def test_tags_removed_with_stream(kinesis, make_stream):
    name = make_stream(1)
    kinesis.add_tags_to_stream(StreamName=name, Tags={"gone": "soon"})
    kinesis.delete_stream(StreamName=name)
    k.wait_gone(kinesis, name)
    make_stream(1, name=name)
    assert _tags(kinesis, name) == {}
