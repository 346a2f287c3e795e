# SPDX-License-Identifier: Apache-2.0
"""DynamoDB control plane: CreateTable, DescribeTable, ListTables, UpdateTable, DeleteTable,
TTL and tags, with DynamoDB's validation messages."""
import datetime
import re

import pytest

from helpers import dynamodb as d
from helpers.dynamodb import aws_error
from helpers.wait import wait_for


def arn_re(server, name):
    account = server.account or r"\d{12}"
    return rf"arn:aws:dynamodb:{re.escape(server.region)}:{account}:table/{re.escape(name)}"


# ---- CreateTable ------------------------------------------------------------------------------

def test_create_hash_table_on_demand(ddb, server, make_table):
    name = d.unique_table("hash")
    r = ddb.create_table(TableName=name, KeySchema=d.key_schema("id"),
                         AttributeDefinitions=d.attr_defs(id="S"), BillingMode="PAY_PER_REQUEST")
    try:
        t = r["TableDescription"]
        assert t["TableName"] == name
        assert t["TableStatus"] in ("CREATING", "ACTIVE")
        assert t["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
        assert t["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
        assert t["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert t["ProvisionedThroughput"]["ReadCapacityUnits"] == 0
        assert t["ProvisionedThroughput"]["WriteCapacityUnits"] == 0
        assert re.fullmatch(arn_re(server, name), t["TableArn"]), t["TableArn"]
        assert re.fullmatch(r"[0-9a-f-]{36}", t["TableId"]), t["TableId"]
        assert isinstance(t["CreationDateTime"], datetime.datetime)
        assert t["ItemCount"] == 0 and t["TableSizeBytes"] == 0
        ddb.get_waiter("table_exists").wait(TableName=name,
                                            WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        t = ddb.describe_table(TableName=name)["Table"]
        assert t["TableStatus"] == "ACTIVE"
    finally:
        ddb.delete_table(TableName=name)


def test_create_hash_range_provisioned(ddb, make_table):
    name = make_table(hash=("pk", "S"), range=("sk", "N"),
                      ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7})
    t = ddb.describe_table(TableName=name)["Table"]
    assert t["KeySchema"] == d.key_schema("pk", "sk")
    assert sorted(t["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == \
        d.attr_defs(pk="S", sk="N")
    pt = t["ProvisionedThroughput"]
    assert (pt["ReadCapacityUnits"], pt["WriteCapacityUnits"]) == (5, 7)
    assert pt["NumberOfDecreasesToday"] == 0
    assert t.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED") == "PROVISIONED"


def test_create_with_gsi_and_lsi(ddb, server, make_table):
    name = make_table(
        hash=("pk", "S"), range=("sk", "S"), attrs={"g": "S", "gs": "N", "l": "B"},
        GlobalSecondaryIndexes=[
            {"IndexName": "by-g", "KeySchema": d.key_schema("g", "gs"),
             "Projection": {"ProjectionType": "ALL"}},
            {"IndexName": "by-g-keys", "KeySchema": d.key_schema("g"),
             "Projection": {"ProjectionType": "KEYS_ONLY"}},
        ],
        LocalSecondaryIndexes=[
            {"IndexName": "by-l", "KeySchema": d.key_schema("pk", "l"),
             "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["x", "y"]}},
        ])
    t = ddb.describe_table(TableName=name)["Table"]
    gsis = {g["IndexName"]: g for g in t["GlobalSecondaryIndexes"]}
    assert set(gsis) == {"by-g", "by-g-keys"}
    assert gsis["by-g"]["KeySchema"] == d.key_schema("g", "gs")
    assert gsis["by-g"]["Projection"] == {"ProjectionType": "ALL"}
    assert gsis["by-g-keys"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert gsis["by-g"]["IndexStatus"] == "ACTIVE"
    assert re.fullmatch(arn_re(server, name) + "/index/by-g", gsis["by-g"]["IndexArn"])
    lsis = t["LocalSecondaryIndexes"]
    assert len(lsis) == 1 and lsis[0]["IndexName"] == "by-l"
    assert lsis[0]["KeySchema"] == d.key_schema("pk", "l")
    assert lsis[0]["Projection"]["ProjectionType"] == "INCLUDE"
    assert sorted(lsis[0]["Projection"]["NonKeyAttributes"]) == ["x", "y"]
    assert len(t["AttributeDefinitions"]) == 5


def test_create_existing_table(ddb, make_table):
    name = make_table()
    with aws_error("ResourceInUseException", status=400, message=f"Table already exists: {name}"):
        ddb.create_table(TableName=name, KeySchema=d.key_schema("pk"),
                         AttributeDefinitions=d.attr_defs(pk="S"), BillingMode="PAY_PER_REQUEST")


@pytest.mark.parametrize("bad,msg", [
    ("ab", "Member must have length greater than or equal to 3"),
    ("a" * 256, "Member must have length less than or equal to 255"),
    ("bad name!", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"),
])
def test_create_bad_table_name(ddb_nv, bad, msg):
    with aws_error("ValidationException", status=400, message=msg) as e:
        ddb_nv.create_table(TableName=bad, KeySchema=d.key_schema("pk"),
                            AttributeDefinitions=d.attr_defs(pk="S"),
                            BillingMode="PAY_PER_REQUEST")
    assert "validation error detected" in e.message
    assert "at 'tableName' failed to satisfy constraint" in e.message


def test_create_key_not_defined(ddb_nv):
    with aws_error("ValidationException", message="Some index key attributes are not defined in "
                   "AttributeDefinitions. Keys: [pk], AttributeDefinitions: [other]"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("pk"),
                            AttributeDefinitions=d.attr_defs(other="S"),
                            BillingMode="PAY_PER_REQUEST")


def test_create_extra_attribute_definition(ddb_nv):
    with aws_error("ValidationException", message="Number of attributes in KeySchema does not "
                   "exactly match number of attributes defined in AttributeDefinitions"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("pk"),
                            AttributeDefinitions=d.attr_defs(pk="S", extra="N"),
                            BillingMode="PAY_PER_REQUEST")


def test_create_bad_key_schema(ddb_nv):
    with aws_error("ValidationException", message="Member must have length less than or equal to 2"):
        ddb_nv.create_table(TableName=d.unique_table(),
                            KeySchema=d.key_schema("a", "b") + [{"AttributeName": "c",
                                                                 "KeyType": "RANGE"}],
                            AttributeDefinitions=d.attr_defs(a="S", b="S", c="S"),
                            BillingMode="PAY_PER_REQUEST")
    with aws_error("ValidationException",
                   message="Invalid KeySchema: The first KeySchemaElement is not a HASH key type"):
        ddb_nv.create_table(TableName=d.unique_table(),
                            KeySchema=[{"AttributeName": "a", "KeyType": "RANGE"},
                                       {"AttributeName": "b", "KeyType": "HASH"}],
                            AttributeDefinitions=d.attr_defs(a="S", b="S"),
                            BillingMode="PAY_PER_REQUEST")
    with aws_error("ValidationException", message="Both the Hash Key and the Range Key element in "
                   "the KeySchema have the same name"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("a", "a"),
                            AttributeDefinitions=d.attr_defs(a="S"),
                            BillingMode="PAY_PER_REQUEST")


def test_create_bad_attribute_type(ddb_nv):
    with aws_error("ValidationException", message="Member must satisfy enum value set: [B, N, S]"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("pk"),
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "BOOL"}],
                            BillingMode="PAY_PER_REQUEST")


def test_create_billing_mode_rules(ddb_nv):
    with aws_error("ValidationException", message="Neither ReadCapacityUnits nor "
                   "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("pk"),
                            AttributeDefinitions=d.attr_defs(pk="S"), BillingMode="PAY_PER_REQUEST",
                            ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    with aws_error("ValidationException", message="No provisioned throughput specified for the table"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("pk"),
                            AttributeDefinitions=d.attr_defs(pk="S"))
    with aws_error("ValidationException", message="Member must have value greater than or equal to 1"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("pk"),
                            AttributeDefinitions=d.attr_defs(pk="S"),
                            ProvisionedThroughput={"ReadCapacityUnits": 0, "WriteCapacityUnits": 1})


def test_create_lsi_rules(ddb_nv):
    with aws_error("ValidationException", message="Table KeySchema does not have a range key, "
                   "which is required when specifying a LocalSecondaryIndex"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("pk"),
                            AttributeDefinitions=d.attr_defs(pk="S", l="S"),
                            BillingMode="PAY_PER_REQUEST",
                            LocalSecondaryIndexes=[{"IndexName": "lsi",
                                                    "KeySchema": d.key_schema("pk", "l"),
                                                    "Projection": {"ProjectionType": "ALL"}}])
    with aws_error("ValidationException", message="Index KeySchema does not have the same leading "
                   "hash key as table KeySchema for index: lsi"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("pk", "sk"),
                            AttributeDefinitions=d.attr_defs(pk="S", sk="S", l="S"),
                            BillingMode="PAY_PER_REQUEST",
                            LocalSecondaryIndexes=[{"IndexName": "lsi",
                                                    "KeySchema": d.key_schema("l", "sk"),
                                                    "Projection": {"ProjectionType": "ALL"}}])


def test_create_gsi_rules(ddb_nv):
    with aws_error("ValidationException", message="Duplicate index name: gi1"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("pk"),
                            AttributeDefinitions=d.attr_defs(pk="S", g="S"),
                            BillingMode="PAY_PER_REQUEST",
                            GlobalSecondaryIndexes=[
                                {"IndexName": "gi1", "KeySchema": d.key_schema("g"),
                                 "Projection": {"ProjectionType": "ALL"}},
                                {"IndexName": "gi1", "KeySchema": d.key_schema("g"),
                                 "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    with aws_error("ValidationException",
                   message="ProjectionType is ALL, but NonKeyAttributes is specified"):
        ddb_nv.create_table(TableName=d.unique_table(), KeySchema=d.key_schema("pk"),
                            AttributeDefinitions=d.attr_defs(pk="S", g="S"),
                            BillingMode="PAY_PER_REQUEST",
                            GlobalSecondaryIndexes=[
                                {"IndexName": "gi1", "KeySchema": d.key_schema("g"),
                                 "Projection": {"ProjectionType": "ALL",
                                                "NonKeyAttributes": ["a"]}}])


def test_create_missing_required(ddb_raw):
    r = ddb_raw.error("CreateTable", {"TableName": d.unique_table(),
                                      "AttributeDefinitions": d.attr_defs(pk="S"),
                                      "BillingMode": "PAY_PER_REQUEST"}, "ValidationException")
    assert "Value null at 'keySchema' failed to satisfy constraint: Member must not be null" \
        in r.message, r.message


# ---- DescribeTable / ListTables / DeleteTable -------------------------------------------------

def test_describe_missing_table(ddb):
    name = d.unique_table("missing")
    with aws_error("ResourceNotFoundException", status=400,
                   message=f"Requested resource not found: Table: {name} not found"):
        ddb.describe_table(TableName=name)


def test_describe_counts_items(ddb, make_table):
    name = make_table()
    for i in range(3):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}, "v": {"S": "x" * 100}})
    t = ddb.describe_table(TableName=name)["Table"]
    # DynamoDB refreshes these about every six hours; Tributary's are exact or lagging, never above.
    assert 0 <= t["ItemCount"] <= 3
    assert t["TableSizeBytes"] >= 0


def test_list_tables_pagination(ddb, make_table):
    names = sorted(make_table(name=f"tr-list-{i:02d}-" + d.unique_table()[3:], wait=False)
                   for i in range(7))
    seen, start, pages = [], None, 0
    while True:
        kw = {"Limit": 3}
        if start:
            kw["ExclusiveStartTableName"] = start
        r = ddb.list_tables(**kw)
        assert len(r["TableNames"]) <= 3
        seen.extend(r["TableNames"])
        pages += 1
        start = r.get("LastEvaluatedTableName")
        if not start:
            break
        assert start == r["TableNames"][-1]
        assert pages < 1000
    assert seen == sorted(seen), "ListTables must return names in order"
    assert len(seen) == len(set(seen))
    assert set(names) <= set(seen)
    assert ddb.get_paginator("list_tables").paginate(
        PaginationConfig={"PageSize": 2}).build_full_result()["TableNames"] == seen


def test_list_tables_bad_limit(ddb_nv):
    with aws_error("ValidationException",
                   message="Member must have value less than or equal to 100"):
        ddb_nv.list_tables(Limit=101)


def test_delete_table(ddb, make_table):
    name = make_table()
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}})
    r = ddb.delete_table(TableName=name)
    assert r["TableDescription"]["TableName"] == name
    assert r["TableDescription"]["TableStatus"] in ("DELETING", "ACTIVE")
    ddb.get_waiter("table_not_exists").wait(TableName=name,
                                            WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert name not in ddb.list_tables()["TableNames"]
    with aws_error("ResourceNotFoundException"):
        ddb.get_item(TableName=name, Key={"pk": {"S": "a"}})
    with aws_error("ResourceNotFoundException"):
        ddb.delete_table(TableName=name)
    # a new table of the same name starts empty
    ddb.create_table(TableName=name, KeySchema=d.key_schema("pk"),
                     AttributeDefinitions=d.attr_defs(pk="S"), BillingMode="PAY_PER_REQUEST")
    try:
        d.wait_active(ddb, name)
        assert "Item" not in ddb.get_item(TableName=name, Key={"pk": {"S": "a"}},
                                          ConsistentRead=True)
    finally:
        ddb.delete_table(TableName=name)


# ---- UpdateTable ------------------------------------------------------------------------------

def test_update_table_add_and_delete_gsi(ddb, make_table):
    name = make_table(hash=("pk", "S"))
    for i in range(20):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}, "color": {"S": f"c{i % 3}"},
                                           "n": {"N": str(i)}})
    r = ddb.update_table(
        TableName=name, AttributeDefinitions=d.attr_defs(pk="S", color="S", n="N"),
        GlobalSecondaryIndexUpdates=[{"Create": {
            "IndexName": "by-color", "KeySchema": d.key_schema("color", "n"),
            "Projection": {"ProjectionType": "ALL"}}}])
    gsis = r["TableDescription"]["GlobalSecondaryIndexes"]
    assert gsis[0]["IndexName"] == "by-color"
    # backfilled in the background, as DynamoDB does
    assert gsis[0]["IndexStatus"] == "CREATING" and gsis[0]["Backfilling"] is True
    assert r["TableDescription"]["TableStatus"] == "UPDATING"
    d.wait_active(ddb, name)
    assert "Backfilling" not in ddb.describe_table(TableName=name)["Table"][
        "GlobalSecondaryIndexes"][0]
    # backfilled: existing items are in the new index
    q = ddb.query(TableName=name, IndexName="by-color", KeyConditionExpression="color = :c",
                  ExpressionAttributeValues={":c": {"S": "c1"}})
    assert [int(i["n"]["N"]) for i in q["Items"]] == [1, 4, 7, 10, 13, 16, 19]
    # and new writes are indexed
    ddb.put_item(TableName=name, Item={"pk": {"S": "new"}, "color": {"S": "c1"}, "n": {"N": "100"}})
    q = ddb.query(TableName=name, IndexName="by-color", KeyConditionExpression="color = :c",
                  ExpressionAttributeValues={":c": {"S": "c1"}}, ScanIndexForward=False, Limit=1)
    assert q["Items"][0]["pk"] == {"S": "new"}

    with aws_error("ValidationException", message="Duplicate index name"):
        ddb.update_table(
            TableName=name, AttributeDefinitions=d.attr_defs(pk="S", color="S"),
            GlobalSecondaryIndexUpdates=[{"Create": {
                "IndexName": "by-color", "KeySchema": d.key_schema("color"),
                "Projection": {"ProjectionType": "ALL"}}}])

    ddb.update_table(TableName=name, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by-color"}}])
    d.wait_active(ddb, name)
    deadline_tries = 200
    while ddb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes") and deadline_tries:
        deadline_tries -= 1
    assert not ddb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes")
    with aws_error("ValidationException", message="The table does not have the specified index: by-color"):
        ddb.query(TableName=name, IndexName="by-color", KeyConditionExpression="color = :c",
                  ExpressionAttributeValues={":c": {"S": "c1"}})


def test_update_table_delete_missing_gsi(ddb, make_table):
    name = make_table()
    with aws_error("ResourceNotFoundException", "ValidationException"):
        ddb.update_table(TableName=name,
                         GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "nope"}}])


def test_update_table_billing_mode(ddb, make_table):
    name = make_table()
    r = ddb.update_table(TableName=name, BillingMode="PROVISIONED",
                         ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 4})
    d.wait_active(ddb, name)
    pt = ddb.describe_table(TableName=name)["Table"]["ProvisionedThroughput"]
    assert (pt["ReadCapacityUnits"], pt["WriteCapacityUnits"]) == (3, 4)
    assert r["TableDescription"]["TableName"] == name


def test_update_missing_table(ddb):
    with aws_error("ResourceNotFoundException"):
        ddb.update_table(TableName=d.unique_table("missing"), BillingMode="PAY_PER_REQUEST")


# ---- TTL --------------------------------------------------------------------------------------

def test_time_to_live(ddb, make_table):
    name = make_table()
    assert ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"] == \
        {"TimeToLiveStatus": "DISABLED"}
    r = ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires"})
    assert r["TimeToLiveSpecification"] == {"Enabled": True, "AttributeName": "expires"}
    desc = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert desc["TimeToLiveStatus"] in ("ENABLED", "ENABLING")
    assert desc["AttributeName"] == "expires"
    with aws_error("ValidationException", message="TimeToLive is already enabled"):
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": "expires"})
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "Enabled": False, "AttributeName": "expires"})
    assert ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"][
        "TimeToLiveStatus"] in ("DISABLED", "DISABLING")


@pytest.mark.deadline(60)
def test_time_to_live_expires_items(ddb, make_table, local_only):
    """Tributary sweeps expired items about every second (AWS: within days), through the normal
    delete path, so indexes follow."""
    import time
    name = make_table()
    now = int(time.time())
    ddb.put_item(TableName=name, Item={"pk": {"S": "old"}, "exp": {"N": str(now - 60)}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "future"}, "exp": {"N": str(now + 3600)}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "not-a-number"}, "exp": {"S": "soon"}})
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "exp"})
    ddb.put_item(TableName=name, Item={"pk": {"S": "old2"}, "exp": {"N": str(now - 5)}})

    def left():
        return {i["pk"]["S"] for i in ddb.scan(TableName=name, ConsistentRead=True)["Items"]}
    wait_for(lambda: not left() & {"old", "old2"}, 30, what="the expired items to be deleted",
             interval=0.2)
    got = left()
    assert got == {"future", "not-a-number"}, got


def test_time_to_live_missing_table(ddb):
    name = d.unique_table("missing")
    with aws_error("ResourceNotFoundException"):
        ddb.describe_time_to_live(TableName=name)
    with aws_error("ResourceNotFoundException"):
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": "ttl"})


# ---- tags -------------------------------------------------------------------------------------

def test_tags(ddb, make_table):
    name = make_table(Tags=[{"Key": "team", "Value": "data"}])
    arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "data"}]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "test"},
                                            {"Key": "team", "Value": "platform"}])
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags == {"team": "platform", "env": "test"}
    ddb.untag_resource(ResourceArn=arn, TagKeys=["team", "absent"])
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "env", "Value": "test"}]


def test_tags_missing_table(ddb, server):
    arn = f"arn:aws:dynamodb:{server.region}:{server.account or '000000000000'}:table/" \
          f"{d.unique_table('missing')}"
    with aws_error("ResourceNotFoundException"):
        ddb.list_tags_of_resource(ResourceArn=arn)
    with aws_error("ResourceNotFoundException"):
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "b"}])


def test_tags_bad_arn(ddb):
    with aws_error("ValidationException", "ResourceNotFoundException"):
        ddb.list_tags_of_resource(ResourceArn="not-an-arn")


def test_tag_key_too_long(ddb_nv, make_table):
    name = make_table()
    arn = ddb_nv.describe_table(TableName=name)["Table"]["TableArn"]
    with aws_error("ValidationException", message="Member must have length less than or equal to 128"):
        ddb_nv.tag_resource(ResourceArn=arn, Tags=[{"Key": "k" * 129, "Value": "v"}])


def test_table_arn_of_another_account_or_region_is_refused(ddb_nv, make_table, server):
    """TableName given as an ARN of another account is AccessDeniedException, of another region
    or partition ResourceNotFoundException -- even when a table of that name exists here -- and
    nothing changes; likewise ResourceArn of the tag operations."""
    name = make_table()
    region = server.region
    other = "eu-west-3" if region != "eu-west-3" else "us-east-2"
    acct = f"arn:aws:dynamodb:{region}:123456789012:table/{name}"
    reg = f"arn:aws:dynamodb:{other}:000000000000:table/{name}"
    part = f"arn:aws-cn:dynamodb:{region}:000000000000:table/{name}"
    calls = {
        "DescribeTable": lambda t: ddb_nv.describe_table(TableName=t),
        "PutItem": lambda t: ddb_nv.put_item(TableName=t, Item={"pk": {"S": "x"}}),
        "GetItem": lambda t: ddb_nv.get_item(TableName=t, Key={"pk": {"S": "x"}}),
        "Scan": lambda t: ddb_nv.scan(TableName=t),
        "DeleteTable": lambda t: ddb_nv.delete_table(TableName=t),
        "TagResource": lambda t: ddb_nv.tag_resource(ResourceArn=t,
                                                     Tags=[{"Key": "a", "Value": "b"}]),
    }
    for op, call in calls.items():
        with aws_error("AccessDeniedException", message=f"dynamodb:{op}"):
            call(acct)
        for foreign in (reg, part):
            with aws_error("ResourceNotFoundException"):
                call(foreign)
    assert ddb_nv.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
    assert ddb_nv.scan(TableName=name)["Items"] == []
    own = ddb_nv.describe_table(TableName=name)["Table"]["TableArn"]
    assert ddb_nv.list_tags_of_resource(ResourceArn=own)["Tags"] == []
