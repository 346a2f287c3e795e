# SPDX-License-Identifier: Apache-2.0
"""DynamoDB multi-item operations: BatchGetItem, BatchWriteItem, TransactWriteItems,
TransactGetItems."""
import uuid

import pytest
from botocore.exceptions import ClientError

from helpers import dynamodb as d
from helpers.dynamodb import aws_error


@pytest.fixture
def t1(make_table):
    return make_table(hash=("pk", "S"))


@pytest.fixture
def t2(make_table):
    return make_table(hash=("pk", "S"), range=("sk", "N"))


def key(pk):
    return {"pk": {"S": pk}}


# ---- BatchWriteItem / BatchGetItem ------------------------------------------------------------

def test_batch_write_and_get(ddb, t1, t2):
    r = ddb.batch_write_item(RequestItems={
        t1: [{"PutRequest": {"Item": {"pk": {"S": f"b{i}"}, "v": {"N": str(i)}}}}
             for i in range(20)],
        t2: [{"PutRequest": {"Item": {"pk": {"S": "x"}, "sk": {"N": str(i)}}}} for i in range(5)],
    })
    assert r["UnprocessedItems"] == {}
    r = ddb.batch_get_item(RequestItems={
        t1: {"Keys": [key(f"b{i}") for i in range(0, 20, 2)] + [key("absent")],
             "ProjectionExpression": "pk, #v", "ExpressionAttributeNames": {"#v": "v"}},
        t2: {"Keys": [{"pk": {"S": "x"}, "sk": {"N": "3"}}], "ConsistentRead": True},
    })
    assert r["UnprocessedKeys"] == {}
    got = sorted(int(i["v"]["N"]) for i in r["Responses"][t1])
    assert got == list(range(0, 20, 2))
    assert r["Responses"][t2] == [{"pk": {"S": "x"}, "sk": {"N": "3"}}]
    r = ddb.batch_write_item(RequestItems={
        t1: [{"DeleteRequest": {"Key": key(f"b{i}")}} for i in range(10)]})
    assert r["UnprocessedItems"] == {}
    assert ddb.scan(TableName=t1, Select="COUNT")["Count"] == 10


def test_batch_write_limits(ddb_nv, t1):
    with aws_error("ValidationException", message="Member must have length less than or equal to 25"):
        ddb_nv.batch_write_item(RequestItems={
            t1: [{"PutRequest": {"Item": key(f"x{i}")}} for i in range(26)]})
    with aws_error("ValidationException", message="Provided list of item keys contains duplicates"):
        ddb_nv.batch_write_item(RequestItems={
            t1: [{"PutRequest": {"Item": key("dup")}}, {"DeleteRequest": {"Key": key("dup")}}]})
    with aws_error("ResourceNotFoundException", message="Requested resource not found"):
        ddb_nv.batch_write_item(RequestItems={
            d.unique_table("missing"): [{"PutRequest": {"Item": key("a")}}]})
    # BatchWriteItem's words for a missing key (PutItem: "Missing the key pk in the item")
    with aws_error("ValidationException",
                   message="The provided key element does not match the schema"):
        ddb_nv.batch_write_item(RequestItems={t1: [{"PutRequest": {"Item": {"x": {"S": "a"}}}}]})
    # a failed validation writes nothing
    assert ddb_nv.scan(TableName=t1, Select="COUNT")["Count"] == 0


def test_batch_write_wrong_key_type(ddb_nv, t1, t2):
    """A put of a key of the wrong type: BatchWriteItem says "The provided key element does not
    match the schema" (PutItem: "Type mismatch for key"), for the hash or the range key, and
    writes nothing of the request."""
    for table, item in ((t1, {"pk": {"N": "1"}}), (t1, {"pk": {"L": []}}),
                        (t2, {"pk": {"S": "a"}, "sk": {"S": "1"}})):
        req = {t1: [{"PutRequest": {"Item": key("first")}}],
               t2: [{"PutRequest": {"Item": {"pk": {"S": "x"}, "sk": {"N": "1"}}}}]}
        req[table].append({"PutRequest": {"Item": item}})
        with aws_error("ValidationException",
                       message="The provided key element does not match the schema"):
            ddb_nv.batch_write_item(RequestItems=req)
    with aws_error("ValidationException", message="Type mismatch for key pk expected: S actual: N"):
        ddb_nv.put_item(TableName=t1, Item={"pk": {"N": "1"}})
    assert ddb_nv.scan(TableName=t1, Select="COUNT")["Count"] == 0
    assert ddb_nv.scan(TableName=t2, Select="COUNT")["Count"] == 0


@pytest.fixture
def tg(make_table):
    """pk (S) with a GSI on g (S) + r (N): index keys DynamoDB checks on every write."""
    return make_table(hash=("pk", "S"), attrs={"g": "S", "r": "N"}, GlobalSecondaryIndexes=[
        {"IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                            {"AttributeName": "r", "KeyType": "RANGE"}],
         "Projection": {"ProjectionType": "ALL"}}])


BAD_INDEX_KEYS = [
    ({"g": {"N": "1"}}, "Type mismatch for Index Key g Expected: S Actual: N IndexName: by-g"),
    ({"g": {"S": "x"}, "r": {"S": "1"}},
     "Type mismatch for Index Key r Expected: N Actual: S IndexName: by-g"),
    ({"g": {"S": ""}}, "cannot contain an empty string value. IndexName: by-g, IndexKey: g"),
    ({"g": {"S": "x" * 2049}}, "has exceeded the maximum size limit of 2048 bytes"),
]


@pytest.mark.parametrize("bad,msg", BAD_INDEX_KEYS)
def test_batch_write_invalid_later_item_writes_nothing(ddb_nv, t1, tg, bad, msg):
    """A request whose later item fails validation (index key type, emptiness, size) is refused
    as a whole: the valid items before it, in the same table or another one, are not written."""
    good = [{"PutRequest": {"Item": {"pk": {"S": f"ok{i}"}, "g": {"S": "a"}, "r": {"N": "1"}}}}
            for i in range(3)]
    ddb_nv.put_item(TableName=tg, Item={"pk": {"S": "old"}})
    for req in ({tg: good + [{"PutRequest": {"Item": {"pk": {"S": "bad"}, **bad}}}]},
                {t1: [{"PutRequest": {"Item": key("first")}}],
                 tg: [{"DeleteRequest": {"Key": key("old")}},
                      {"PutRequest": {"Item": {"pk": {"S": "bad"}, **bad}}}]}):
        with aws_error("ValidationException", status=400, message=msg):
            ddb_nv.batch_write_item(RequestItems=req)
        assert ddb_nv.scan(TableName=t1, Select="COUNT")["Count"] == 0
        assert [i["pk"]["S"] for i in ddb_nv.scan(TableName=tg)["Items"]] == ["old"]
        assert ddb_nv.scan(TableName=tg, IndexName="by-g", Select="COUNT")["Count"] == 0


@pytest.mark.parametrize("bad,msg", BAD_INDEX_KEYS)
def test_invalid_index_key_changes_nothing(ddb_nv, tg, bad, msg):
    """PutItem and a transaction's Put with a bad index key write nothing (nor do the
    transaction's other writes).  As DynamoDB: an empty index key value is a top-level
    ValidationException even in a transaction, a wrong type or size cancels the transaction
    with a ValidationError reason."""
    with aws_error("ValidationException", status=400, message=msg):
        ddb_nv.put_item(TableName=tg, Item={"pk": {"S": "p"}, **bad})
    txn = [{"Put": {"TableName": tg, "Item": {"pk": {"S": "t1"}}}},
           {"Put": {"TableName": tg, "Item": {"pk": {"S": "t2"}, **bad}}}]
    empty = "empty string" in msg
    with aws_error("ValidationException" if empty else "TransactionCanceledException", status=400,
                   message=msg if empty else "[None, ValidationError]"):
        ddb_nv.transact_write_items(TransactItems=txn)
    assert ddb_nv.scan(TableName=tg, Select="COUNT")["Count"] == 0


def test_bad_index_key_names_first_index(ddb_nv, make_table):
    """When the attribute keys several indexes, the error names the alphabetically first one
    (DynamoDB's choice), whatever their order in the table definition."""
    gsi = [{"IndexName": n, "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}} for n in ("zz-idx", "mm-idx")]
    lsi = [{"IndexName": "nn-lsi", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                 {"AttributeName": "g", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}]
    t = make_table(hash=("pk", "S"), range=("sk", "S"), attrs={"g": "S"},
                   GlobalSecondaryIndexes=gsi, LocalSecondaryIndexes=lsi)
    item = {"pk": {"S": "a"}, "sk": {"S": "b"}, "g": {"N": "1"}}
    with aws_error("ValidationException",
                   message="Type mismatch for Index Key g Expected: S Actual: N IndexName: mm-idx"):
        ddb_nv.put_item(TableName=t, Item=item)
    with aws_error("ValidationException", message="IndexName: mm-idx, IndexKey: g"):
        ddb_nv.put_item(TableName=t, Item={**item, "g": {"S": ""}})


UPDATE_EMPTY_INDEX_KEY = ("One or more parameter values are not valid. The update expression "
                          "attempted to update a secondary index key to a value that is not "
                          "supported. The AttributeValue for a key attribute cannot contain an "
                          "empty string value.")


def test_update_bad_index_key_changes_nothing(ddb_nv, ddb_raw, tg):
    """An update that gives an index key an empty value: UpdateItem's own message, and in a
    transaction a top-level ValidationException (not a cancellation); a wrong type cancels the
    transaction with a ValidationError reason.  Nothing is written either way."""
    empty = {"UpdateExpression": "SET g = :v", "ExpressionAttributeValues": {":v": {"S": ""}}}
    with aws_error("ValidationException", status=400, message=UPDATE_EMPTY_INDEX_KEY):
        ddb_nv.update_item(TableName=tg, Key=key("u"), **empty)
    txn = [{"Put": {"TableName": tg, "Item": key("t1")}},
           {"Update": {"TableName": tg, "Key": key("t2"), **empty}}]
    r = ddb_raw.error("TransactWriteItems", {"TransactItems": txn}, "ValidationException")
    assert r.json.get("message", r.json.get("Message")) == UPDATE_EMPTY_INDEX_KEY
    txn[1]["Update"]["ExpressionAttributeValues"][":v"] = {"N": "1"}
    r = ddb_raw.error("TransactWriteItems", {"TransactItems": txn}, "TransactionCanceledException")
    assert r.json["CancellationReasons"] == [
        {"Code": "None"},
        {"Code": "ValidationError", "Message": "One or more parameter values were invalid: Type "
                                               "mismatch for Index Key g Expected: S Actual: N "
                                               "IndexName: by-g"}]
    assert ddb_nv.scan(TableName=tg, Select="COUNT")["Count"] == 0


def test_batch_get_limits(ddb_nv, t1, t2):
    with aws_error("ValidationException", message="Too many items requested for the BatchGetItem call"):
        ddb_nv.batch_get_item(RequestItems={
            t1: {"Keys": [key(f"k{i}") for i in range(60)]},
            t2: {"Keys": [{"pk": {"S": "a"}, "sk": {"N": str(i)}} for i in range(41)]}})
    with aws_error("ValidationException", message="Member must have length less than or equal to 100"):
        ddb_nv.batch_get_item(RequestItems={t1: {"Keys": [key(f"k{i}") for i in range(101)]}})
    with aws_error("ValidationException", message="Provided list of item keys contains duplicates"):
        ddb_nv.batch_get_item(RequestItems={t1: {"Keys": [key("a"), key("a")]}})
    with aws_error("ResourceNotFoundException"):
        ddb_nv.batch_get_item(RequestItems={d.unique_table("missing"): {"Keys": [key("a")]}})
    with aws_error("ValidationException", message="The provided key element does not match the schema"):
        ddb_nv.batch_get_item(RequestItems={t1: {"Keys": [{"nope": {"S": "a"}}]}})


def test_batch_get_large_items_paged(ddb, t1):
    """16 MB response cap: 60 items of ~300 KB cannot come back at once; UnprocessedKeys
    carries the rest and retrying them gets everything."""
    big = "y" * (300 * 1024)
    for j in range(60):
        ddb.put_item(TableName=t1, Item={"pk": {"S": f"big{j}"}, "v": {"S": big}})
    want = {f"big{j}" for j in range(60)}
    got, request, rounds = set(), {t1: {"Keys": [key(k) for k in sorted(want)]}}, 0
    while request:
        r = ddb.batch_get_item(RequestItems=request)
        got |= {i["pk"]["S"] for i in r["Responses"].get(t1, [])}
        request = r["UnprocessedKeys"]
        rounds += 1
        assert rounds < 20
    assert got == want
    assert rounds >= 2


# ---- TransactWriteItems -----------------------------------------------------------------------

def test_transact_write_all_kinds(ddb, t1, t2):
    ddb.put_item(TableName=t1, Item={"pk": {"S": "acct"}, "bal": {"N": "100"}})
    ddb.put_item(TableName=t1, Item={"pk": {"S": "gone"}})
    ddb.put_item(TableName=t1, Item={"pk": {"S": "limits"}, "open": {"BOOL": True}})
    ddb.transact_write_items(TransactItems=[
        {"Update": {"TableName": t1, "Key": key("acct"), "UpdateExpression": "SET bal = bal - :a",
                    "ConditionExpression": "bal >= :a",
                    "ExpressionAttributeValues": {":a": {"N": "30"}}}},
        {"Put": {"TableName": t2, "Item": {"pk": {"S": "ledger"}, "sk": {"N": "1"},
                                           "amt": {"N": "30"}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Delete": {"TableName": t1, "Key": key("gone")}},
        {"ConditionCheck": {"TableName": t1, "Key": key("limits"),
                            "ConditionExpression": "#o = :t",
                            "ExpressionAttributeNames": {"#o": "open"},
                            "ExpressionAttributeValues": {":t": {"BOOL": True}}}},
    ])
    assert ddb.get_item(TableName=t1, Key=key("acct"))["Item"]["bal"] == {"N": "70"}
    assert "Item" in ddb.get_item(TableName=t2, Key={"pk": {"S": "ledger"}, "sk": {"N": "1"}})
    assert "Item" not in ddb.get_item(TableName=t1, Key=key("gone"))


def test_transact_write_canceled_applies_nothing(ddb, ddb_raw, t1):
    ddb.put_item(TableName=t1, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    items = [
        {"Put": {"TableName": t1, "Item": {"pk": {"S": "new"}}}},
        {"Update": {"TableName": t1, "Key": key("a"), "UpdateExpression": "SET v = :two",
                    "ConditionExpression": "v = :zero",
                    "ExpressionAttributeValues": {":two": {"N": "2"}, ":zero": {"N": "0"}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
    ]
    with aws_error("TransactionCanceledException", status=400,
                   message="Transaction cancelled, please refer cancellation reasons for specific "
                           "reasons [None, ConditionalCheckFailed]") as e:
        ddb.transact_write_items(TransactItems=items)
    reasons = e.error.response.get("CancellationReasons")
    if reasons is not None:  # botocore >= 1.31 parses them
        assert reasons[0]["Code"] == "None"
        assert reasons[1]["Code"] == "ConditionalCheckFailed"
    assert "Item" not in ddb.get_item(TableName=t1, Key=key("new"))
    assert ddb.get_item(TableName=t1, Key=key("a"))["Item"]["v"] == {"N": "1"}
    # the raw body, as SDKs see it
    r = ddb_raw.error("TransactWriteItems", {"TransactItems": items},
                      "TransactionCanceledException")
    assert d.full_type(r) == d.ERR_PREFIX + "TransactionCanceledException"
    reasons = r.json["CancellationReasons"]
    assert reasons[0] == {"Code": "None"}
    assert reasons[1]["Code"] == "ConditionalCheckFailed"
    assert reasons[1]["Message"] == "The conditional request failed"
    assert reasons[1]["Item"] == {"pk": {"S": "a"}, "v": {"N": "1"}}
    assert r.json.get("Message", r.json.get("message", "")).startswith("Transaction cancelled")


def test_transact_write_validation(ddb_nv, t1):
    with aws_error("ValidationException", message="Transaction request cannot include multiple "
                   "operations on one item"):
        ddb_nv.transact_write_items(TransactItems=[
            {"Put": {"TableName": t1, "Item": key("same")}},
            {"Delete": {"TableName": t1, "Key": key("same")}}])
    with aws_error("ValidationException", message="Member must have length less than or equal to 100"):
        ddb_nv.transact_write_items(TransactItems=[
            {"Put": {"TableName": t1, "Item": key(f"k{i}")}} for i in range(101)])
    with aws_error("ResourceNotFoundException"):
        ddb_nv.transact_write_items(TransactItems=[
            {"Put": {"TableName": d.unique_table("missing"), "Item": key("a")}}])
    with aws_error("ValidationException"):
        ddb_nv.transact_write_items(TransactItems=[
            {"Put": {"TableName": t1, "Item": key("a")},
             "Delete": {"TableName": t1, "Key": key("b")}}])


def test_transact_write_wrong_key_type_cancels(ddb_raw, t1):
    """A key attribute of the wrong type in a transaction cancels it with a ValidationError
    reason (DynamoDB checks it while the transaction runs; an empty key value is refused up
    front instead), and nothing is written."""
    cases = [
        ({"Put": {"TableName": t1, "Item": {"pk": {"N": "1"}}}},
         "One or more parameter values were invalid: Type mismatch for key pk expected: S "
         "actual: N"),
        ({"Delete": {"TableName": t1, "Key": {"pk": {"N": "1"}}}},
         "The provided key element does not match the schema"),
        ({"Update": {"TableName": t1, "Key": {"pk": {"L": []}}, "UpdateExpression": "SET a = :v",
                     "ExpressionAttributeValues": {":v": {"S": "x"}}}},
         "The provided key element does not match the schema"),
    ]
    for bad, msg in cases:
        items = [{"Put": {"TableName": t1, "Item": key("fine")}}, bad]
        r = ddb_raw.error("TransactWriteItems", {"TransactItems": items},
                          "TransactionCanceledException")
        assert r.json["CancellationReasons"] == [{"Code": "None"},
                                                 {"Code": "ValidationError", "Message": msg}]
    r = ddb_raw.error("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": t1, "Item": key("fine")}},
        {"Put": {"TableName": t1, "Item": {"pk": {"S": ""}}}}]}, "ValidationException")
    assert "cannot contain an empty string value" in r.json.get("message", r.json.get("Message"))
    r = ddb_raw.call("Scan", {"TableName": t1})
    assert r.json["Count"] == 0


def test_transact_write_checks_expressions_before_tables(ddb_nv, t1):
    """Every action's expressions are checked before any table is looked up (DynamoDB's order):
    a malformed or unused-value expression on a later action wins over a missing table on an
    earlier one."""
    missing = {"Put": {"TableName": d.unique_table("missing"), "Item": key("a")}}
    check = {"TableName": t1, "Key": key("cc"), "ConditionExpression": "attribute_not_exists("}
    with aws_error("ValidationException", message='Invalid ConditionExpression: Syntax error; '
                                                  'token: "<EOF>", near: "("'):
        ddb_nv.transact_write_items(TransactItems=[missing, {"ConditionCheck": check}])
    check = {**check, "ConditionExpression": "attribute_not_exists(pk)",
             "ExpressionAttributeValues": {":v": {"S": "x"}}}
    with aws_error("ValidationException", message="Value provided in ExpressionAttributeValues "
                                                  "unused in expressions: keys: {:v}"):
        ddb_nv.transact_write_items(TransactItems=[missing, {"ConditionCheck": check}])


def test_transact_write_client_request_token(ddb, t1):
    token = str(uuid.uuid4())
    req = [{"Update": {"TableName": t1, "Key": key("idem"), "UpdateExpression": "ADD n :one",
                       "ExpressionAttributeValues": {":one": {"N": "1"}}}}]
    for _ in range(3):
        ddb.transact_write_items(TransactItems=req, ClientRequestToken=token)
    assert ddb.get_item(TableName=t1, Key=key("idem"))["Item"]["n"] == {"N": "1"}
    other = [{"Update": {"TableName": t1, "Key": key("idem"), "UpdateExpression": "ADD n :two",
                         "ExpressionAttributeValues": {":two": {"N": "2"}}}}]
    with aws_error("IdempotentParameterMismatchException"):
        ddb.transact_write_items(TransactItems=other, ClientRequestToken=token)
    ddb.transact_write_items(TransactItems=req, ClientRequestToken=str(uuid.uuid4()))
    assert ddb.get_item(TableName=t1, Key=key("idem"))["Item"]["n"] == {"N": "2"}


# ---- TransactGetItems -------------------------------------------------------------------------

def test_transact_get(ddb, t1, t2):
    ddb.put_item(TableName=t1, Item={"pk": {"S": "g1"}, "a": {"S": "A"}, "b": {"S": "B"}})
    ddb.put_item(TableName=t2, Item={"pk": {"S": "g2"}, "sk": {"N": "5"}})
    r = ddb.transact_get_items(TransactItems=[
        {"Get": {"TableName": t1, "Key": key("g1"), "ProjectionExpression": "a"}},
        {"Get": {"TableName": t1, "Key": key("absent")}},
        {"Get": {"TableName": t2, "Key": {"pk": {"S": "g2"}, "sk": {"N": "5"}}}},
    ])
    resp = r["Responses"]
    assert resp[0] == {"Item": {"a": {"S": "A"}}}
    assert resp[1] == {}
    assert resp[2]["Item"] == {"pk": {"S": "g2"}, "sk": {"N": "5"}}


def test_transact_get_errors(ddb_nv, t1):
    with aws_error("ResourceNotFoundException", "TransactionCanceledException"):
        ddb_nv.transact_get_items(TransactItems=[
            {"Get": {"TableName": d.unique_table("missing"), "Key": key("a")}}])
    with aws_error("ValidationException", "TransactionCanceledException"):
        ddb_nv.transact_get_items(TransactItems=[{"Get": {"TableName": t1,
                                                          "Key": {"nope": {"S": "a"}}}}])


# ---- ConsumedCapacity -------------------------------------------------------------------------

def cap(r):
    c = r["ConsumedCapacity"]
    return c["CapacityUnits"]


def test_consumed_capacity_single_item(ddb, t1):
    r = ddb.put_item(TableName=t1, Item={"pk": {"S": "c"}, "v": {"S": "x" * 1500}},
                     ReturnConsumedCapacity="TOTAL")
    assert r["ConsumedCapacity"]["TableName"] == t1
    assert cap(r) == 2.0   # 1.5 KB -> 2 write units
    r = ddb.get_item(TableName=t1, Key=key("c"), ReturnConsumedCapacity="TOTAL")
    assert cap(r) == 0.5   # eventually consistent, <= 4 KB
    r = ddb.get_item(TableName=t1, Key=key("c"), ConsistentRead=True, ReturnConsumedCapacity="TOTAL")
    assert cap(r) == 1.0
    ddb.put_item(TableName=t1, Item={"pk": {"S": "big"}, "v": {"S": "x" * 9000}})
    r = ddb.get_item(TableName=t1, Key=key("big"), ConsistentRead=True,
                     ReturnConsumedCapacity="TOTAL")
    assert cap(r) == 3.0   # ~9 KB -> 3 x 4 KB
    r = ddb.get_item(TableName=t1, Key=key("absent"), ReturnConsumedCapacity="TOTAL")
    assert cap(r) == 0.5
    # a write consumes for the larger of the old and new item
    r = ddb.put_item(TableName=t1, Item={"pk": {"S": "big"}}, ReturnConsumedCapacity="TOTAL")
    assert cap(r) == 9.0
    r = ddb.delete_item(TableName=t1, Key=key("absent"), ReturnConsumedCapacity="TOTAL")
    assert cap(r) == 1.0
    r = ddb.put_item(TableName=t1, Item={"pk": {"S": "q"}}, ReturnConsumedCapacity="NONE")
    assert "ConsumedCapacity" not in r


def test_consumed_capacity_indexes(ddb, make_table):
    name = make_table(hash=("pk", "S"), attrs={"g": "S"}, GlobalSecondaryIndexes=[
        {"IndexName": "gsi", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
         "Projection": {"ProjectionType": "ALL"}}])
    r = ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "g": {"S": "x"}},
                     ReturnConsumedCapacity="INDEXES")
    c = r["ConsumedCapacity"]
    assert c["Table"]["CapacityUnits"] == 1.0
    assert c["GlobalSecondaryIndexes"]["gsi"]["CapacityUnits"] == 1.0
    assert c["CapacityUnits"] == 2.0
    r = ddb.query(TableName=name, IndexName="gsi", KeyConditionExpression="g = :g",
                  ExpressionAttributeValues={":g": {"S": "x"}}, ReturnConsumedCapacity="INDEXES")
    c = r["ConsumedCapacity"]
    assert c["CapacityUnits"] == 0.5
    assert c["GlobalSecondaryIndexes"]["gsi"]["CapacityUnits"] == 0.5


def test_consumed_capacity_query_and_batch(ddb, t1, t2):
    for i in range(10):
        ddb.put_item(TableName=t2, Item={"pk": {"S": "p"}, "sk": {"N": str(i)},
                                         "v": {"S": "x" * 1000}})
    r = ddb.query(TableName=t2, KeyConditionExpression="pk = :p",
                  ExpressionAttributeValues={":p": {"S": "p"}}, ReturnConsumedCapacity="TOTAL")
    assert cap(r) == 1.5   # ~10 KB read -> 3 x 4 KB, halved
    r = ddb.query(TableName=t2, KeyConditionExpression="pk = :p", ConsistentRead=True,
                  ExpressionAttributeValues={":p": {"S": "p"}}, ReturnConsumedCapacity="TOTAL")
    assert cap(r) == 3.0
    r = ddb.batch_write_item(RequestItems={t1: [{"PutRequest": {"Item": key(f"k{i}")}}
                                                for i in range(3)]},
                             ReturnConsumedCapacity="TOTAL")
    assert r["ConsumedCapacity"] == [{"TableName": t1, "CapacityUnits": 3.0}] or \
        [(c["TableName"], c["CapacityUnits"]) for c in r["ConsumedCapacity"]] == [(t1, 3.0)]
    r = ddb.batch_get_item(RequestItems={t1: {"Keys": [key(f"k{i}") for i in range(3)]}},
                           ReturnConsumedCapacity="TOTAL")
    assert [(c["TableName"], c["CapacityUnits"]) for c in r["ConsumedCapacity"]] == [(t1, 1.5)]
    r = ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": t1, "Item": key("tx1")}},
        {"Put": {"TableName": t1, "Item": key("tx2")}}], ReturnConsumedCapacity="TOTAL")
    assert [(c["TableName"], c["CapacityUnits"]) for c in r["ConsumedCapacity"]] == [(t1, 4.0)]
    r = ddb.transact_get_items(TransactItems=[{"Get": {"TableName": t1, "Key": key("tx1")}}],
                               ReturnConsumedCapacity="TOTAL")
    assert [(c["TableName"], c["CapacityUnits"]) for c in r["ConsumedCapacity"]] == [(t1, 2.0)]


def test_scan_consumed_capacity(ddb, t1):
    for i in range(4):
        ddb.put_item(TableName=t1, Item={"pk": {"S": f"s{i}"}, "v": {"S": "x" * 2000}})
    r = ddb.scan(TableName=t1, ReturnConsumedCapacity="TOTAL")
    assert cap(r) == 1.0   # ~8 KB -> 2 x 4 KB, halved


def test_error_is_not_capacity(ddb, t1):
    try:
        ddb.put_item(TableName=t1, Item={"pk": {"S": "e"}}, ConditionExpression="attribute_exists(pk)",
                     ReturnConsumedCapacity="TOTAL")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ConditionalCheckFailedException"
    else:
        pytest.fail("condition should fail")
