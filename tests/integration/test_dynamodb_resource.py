# SPDX-License-Identifier: Apache-2.0
"""The boto3 resource layer (Table, Key/Attr conditions, batch_writer) against Tributary."""
from decimal import Decimal

import pytest
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from helpers import dynamodb as d


@pytest.fixture
def music(ddb_res, make_table):
    name = make_table(hash=("artist", "S"), range=("song", "S"), attrs={"year": "N"},
                      GlobalSecondaryIndexes=[{
                          "IndexName": "by-year",
                          "KeySchema": [{"AttributeName": "year", "KeyType": "HASH"},
                                        {"AttributeName": "song", "KeyType": "RANGE"}],
                          "Projection": {"ProjectionType": "ALL"}}])
    table = ddb_res.Table(name)
    with table.batch_writer() as bw:
        for artist, songs in {"A": ["a1", "a2", "a3", "b1"], "B": ["x", "y"]}.items():
            for i, s in enumerate(songs):
                bw.put_item(Item={"artist": artist, "song": s, "year": 2000 + i,
                                  "plays": Decimal(i * 10), "tags": {"rock", f"t{i}"},
                                  "meta": {"len": Decimal("3.5"), "live": i % 2 == 0}})
    return table


def test_table_attributes(music):
    music.load()
    assert music.table_status == "ACTIVE"
    assert music.key_schema == d.key_schema("artist", "song")
    assert music.item_count in range(0, 7)


def test_get_put_update_delete(music):
    item = music.get_item(Key={"artist": "A", "song": "a2"})["Item"]
    assert item["year"] == 2001 and item["plays"] == Decimal(10)
    assert item["tags"] == {"rock", "t1"}
    assert item["meta"] == {"len": Decimal("3.5"), "live": False}
    r = music.update_item(Key={"artist": "A", "song": "a2"},
                          UpdateExpression="SET plays = plays + :d, flag = :t REMOVE tags",
                          ExpressionAttributeValues={":d": 5, ":t": True},
                          ReturnValues="UPDATED_NEW")
    assert r["Attributes"] == {"plays": Decimal(15), "flag": True}
    music.put_item(Item={"artist": "C", "song": "z", "bin": b"\x00\xff", "none": None,
                         "lst": [1, "two", [3]]})
    got = music.get_item(Key={"artist": "C", "song": "z"}, ConsistentRead=True)["Item"]
    assert got["bin"].value == b"\x00\xff"
    assert got["none"] is None and got["lst"] == [Decimal(1), "two", [Decimal(3)]]
    music.delete_item(Key={"artist": "C", "song": "z"})
    assert "Item" not in music.get_item(Key={"artist": "C", "song": "z"})


def test_query_key_conditions(music):
    r = music.query(KeyConditionExpression=Key("artist").eq("A") & Key("song").begins_with("a"))
    assert [i["song"] for i in r["Items"]] == ["a1", "a2", "a3"]
    r = music.query(KeyConditionExpression=Key("artist").eq("A") & Key("song").between("a2", "b1"),
                    ScanIndexForward=False)
    assert [i["song"] for i in r["Items"]] == ["b1", "a3", "a2"]
    r = music.query(KeyConditionExpression=Key("artist").eq("A"),
                    FilterExpression=Attr("plays").gte(20) & Attr("tags").contains("rock"))
    assert [i["song"] for i in r["Items"]] == ["a3", "b1"]
    r = music.query(IndexName="by-year", KeyConditionExpression=Key("year").eq(2001))
    assert sorted((i["artist"], i["song"]) for i in r["Items"]) == [("A", "a2"), ("B", "y")]


def test_scan_attr_conditions(music):
    r = music.scan(FilterExpression=Attr("meta.live").eq(True) & Attr("year").lt(2002))
    assert sorted((i["artist"], i["song"]) for i in r["Items"]) == [("A", "a1"), ("B", "x")]
    r = music.scan(FilterExpression=Attr("song").is_in(["x", "b1"]) | Attr("missing").exists())
    assert sorted(i["song"] for i in r["Items"]) == ["b1", "x"]
    r = music.scan(FilterExpression=Attr("tags").size().eq(2) & Attr("artist").ne("A"))
    assert len(r["Items"]) == 2
    r = music.scan(FilterExpression=Attr("song").attribute_type("S") & ~Attr("year").gt(2000))
    assert sorted(i["song"] for i in r["Items"]) == ["a1", "x"]


def test_conditional_put_with_attr(music):
    with pytest.raises(ClientError) as e:
        music.put_item(Item={"artist": "A", "song": "a1"},
                       ConditionExpression=Attr("artist").not_exists())
    assert e.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert music.meta.client.exceptions.ConditionalCheckFailedException is not None


def test_batch_writer_overwrite_and_delete(music):
    with music.batch_writer(overwrite_by_pkeys=["artist", "song"]) as bw:
        for i in range(60):
            bw.put_item(Item={"artist": "D", "song": f"s{i:03d}", "n": i})
        bw.put_item(Item={"artist": "D", "song": "s000", "n": 1000})
        bw.delete_item(Key={"artist": "D", "song": "s001"})
    items = []
    kw = {"KeyConditionExpression": Key("artist").eq("D"), "Limit": 25}
    while True:
        r = music.query(**kw)
        items += r["Items"]
        if "LastEvaluatedKey" not in r:
            break
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
    assert len(items) == 59
    assert items[0]["n"] == 1000


def test_batch_get_via_resource(ddb_res, music):
    r = ddb_res.batch_get_item(RequestItems={music.name: {"Keys": [
        {"artist": "A", "song": "a1"}, {"artist": "B", "song": "y"}]}})
    assert sorted(i["song"] for i in r["Responses"][music.name]) == ["a1", "y"]


def test_create_table_via_resource(ddb_res):
    name = d.unique_table("res")
    t = ddb_res.create_table(TableName=name, KeySchema=d.key_schema("id"),
                             AttributeDefinitions=d.attr_defs(id="N"),
                             BillingMode="PAY_PER_REQUEST")
    try:
        t.wait_until_exists()
        t.put_item(Item={"id": 12345678901234567890123456789012345678})
        assert t.get_item(Key={"id": 12345678901234567890123456789012345678})["Item"]["id"] == \
            Decimal("12345678901234567890123456789012345678")
        assert name in [x.name for x in ddb_res.tables.all()]
    finally:
        t.delete()
        t.wait_until_not_exists()
