# SPDX-License-Identifier: Apache-2.0
"""DynamoDB single-item operations: PutItem, GetItem, UpdateItem, DeleteItem with expressions,
conditions, return values, numbers and DynamoDB's validation messages."""
import base64

import pytest

from helpers import dynamodb as d
from helpers.dynamodb import aws_error


@pytest.fixture
def table(make_table):
    return make_table(hash=("pk", "S"))


@pytest.fixture
def table2(make_table):
    return make_table(hash=("pk", "S"), range=("sk", "N"))


ALL_TYPES = {
    "pk": {"S": "all-types"},
    "s": {"S": "h\u00e9llo \u6f22 \U0001F600"},
    "n": {"N": "-12.5"},
    "b": {"B": b"\x00\x01\xfe\xff"},
    "t": {"BOOL": True},
    "f": {"BOOL": False},
    "z": {"NULL": True},
    "l": {"L": [{"S": "a"}, {"N": "1"}, {"L": []}, {"M": {}}]},
    "m": {"M": {"sub": {"M": {"deep": {"S": "x"}}}, "e": {"S": ""}}},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"\x01", b"\x02"]},
    "empty": {"S": ""},
}


def test_put_get_all_types(ddb, table):
    ddb.put_item(TableName=table, Item=ALL_TYPES)
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "all-types"}}, ConsistentRead=True)["Item"]
    assert set(got) == set(ALL_TYPES)
    for k, v in ALL_TYPES.items():
        if k in ("ss", "ns", "bs"):
            t = next(iter(v))
            assert sorted(got[k][t]) == sorted(v[t]), k
        else:
            assert got[k] == v, k


def test_get_missing_item(ddb, table):
    r = ddb.get_item(TableName=table, Key={"pk": {"S": "nope"}})
    assert "Item" not in r


def test_get_projection(ddb, table):
    ddb.put_item(TableName=table, Item=ALL_TYPES)
    r = ddb.get_item(TableName=table, Key={"pk": {"S": "all-types"}},
                     ProjectionExpression="s, #m.#sub.deep, l[1], #nope",
                     ExpressionAttributeNames={"#m": "m", "#sub": "sub", "#nope": "nope"})
    assert r["Item"] == {"s": ALL_TYPES["s"], "m": {"M": {"sub": {"M": {"deep": {"S": "x"}}}}},
                         "l": {"L": [{"N": "1"}]}}


def test_put_return_values(ddb, table):
    r = ddb.put_item(TableName=table, Item={"pk": {"S": "rv"}, "v": {"N": "1"}},
                     ReturnValues="ALL_OLD")
    assert "Attributes" not in r
    r = ddb.put_item(TableName=table, Item={"pk": {"S": "rv"}, "v": {"N": "2"}},
                     ReturnValues="ALL_OLD")
    assert r["Attributes"] == {"pk": {"S": "rv"}, "v": {"N": "1"}}
    with aws_error("ValidationException", message="ReturnValues can only be ALL_OLD or NONE"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "rv"}}, ReturnValues="ALL_NEW")


def test_put_missing_key(ddb, table):
    with aws_error("ValidationException", status=400,
                   message="One or more parameter values were invalid: Missing the key pk in the item"):
        ddb.put_item(TableName=table, Item={"other": {"S": "x"}})


def test_put_key_type_mismatch(ddb, table):
    with aws_error("ValidationException", message="One or more parameter values were invalid: "
                   "Type mismatch for key pk expected: S actual: N"):
        ddb.put_item(TableName=table, Item={"pk": {"N": "1"}})


def test_put_empty_string_key(ddb, table):
    with aws_error("ValidationException", message="Key: pk"):
        ddb.put_item(TableName=table, Item={"pk": {"S": ""}})


def test_put_missing_table(ddb):
    with aws_error("ResourceNotFoundException", status=400, message="Requested resource not found"):
        ddb.put_item(TableName=d.unique_table("missing"), Item={"pk": {"S": "a"}})


def test_get_wrong_key(ddb, table, table2):
    with aws_error("ValidationException", message="The provided key element does not match the schema"):
        ddb.get_item(TableName=table, Key={"other": {"S": "a"}})
    with aws_error("ValidationException", message="The provided key element does not match the schema"):
        ddb.get_item(TableName=table, Key={"pk": {"N": "1"}})
    with aws_error("ValidationException", message="The provided key element does not match the schema"):
        ddb.get_item(TableName=table, Key={"pk": {"S": "a"}, "extra": {"S": "b"}})
    with aws_error("ValidationException", message="The provided key element does not match the schema"):
        ddb.get_item(TableName=table2, Key={"pk": {"S": "a"}})


def test_bad_attribute_values(ddb_nv, table):
    cases = [
        ({"SS": []}, "empty"),
        ({"SS": ["a", "a"]}, "duplicate"),
        ({"N": "abc"}, "A value provided cannot be converted into a number"),
        ({"S": "x", "N": "1"}, "Supplied AttributeValue has more than one datatypes set"),
        ({}, "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"),
    ]
    for av, msg in cases:
        with aws_error("ValidationException", message=msg):
            ddb_nv.put_item(TableName=table, Item={"pk": {"S": "bad"}, "a": av})


def test_item_too_large(ddb, table):
    ddb.put_item(TableName=table, Item={"pk": {"S": "big"}, "v": {"S": "x" * (390 * 1024)}})
    with aws_error("ValidationException", message="Item size has exceeded the maximum allowed size"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "big"}, "v": {"S": "x" * (401 * 1024)}})
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "big"}})["Item"]
    assert len(got["v"]["S"]) == 390 * 1024


def _nested(levels):
    """A map value nested `levels` deep (level 1 is the attribute itself)."""
    v = {"S": "leaf"}
    for _ in range(levels - 1):
        v = {"M": {"x": v}}
    return v


def test_update_cannot_nest_past_the_limit(ddb, table):
    """DynamoDB allows 32 levels; an update that would build a deeper item is refused and the
    stored item stays readable and updatable (it used to be stored and then unreadable)."""
    ddb.put_item(TableName=table, Item={"pk": {"S": "deep"}, "a": _nested(31)})
    with aws_error("ValidationException", message="Nesting Levels have exceeded supported limits"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "deep2"}, "a": _nested(33)})
    path = "a" + ".x" * 30          # the leaf at level 31
    ddb.update_item(TableName=table, Key={"pk": {"S": "deep"}},
                    UpdateExpression=f"SET {path} = :v", ExpressionAttributeValues={":v": _nested(2)})
    with aws_error("ValidationException", message="Nesting Levels have exceeded supported limits"):
        ddb.update_item(TableName=table, Key={"pk": {"S": "deep"}},
                        UpdateExpression=f"SET {path}.x = :v",
                        ExpressionAttributeValues={":v": _nested(3)})
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "deep"}}, ConsistentRead=True)["Item"]
    depth, v = 1, got["a"]
    while "M" in v:
        depth, v = depth + 1, v["M"]["x"]
    assert depth == 32 and v == {"S": "leaf"}
    scan = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    assert any(i["pk"]["S"] == "deep" for i in scan)
    ddb.update_item(TableName=table, Key={"pk": {"S": "deep"}}, UpdateExpression="SET b = :b",
                    ExpressionAttributeValues={":b": {"N": "1"}})


def test_binary_roundtrip_raw(ddb_raw, table):
    data = bytes(range(256))
    b64 = base64.b64encode(data).decode()
    ddb_raw.ok("PutItem", {"TableName": table, "Item": {"pk": {"S": "bin"}, "b": {"B": b64}}})
    r = ddb_raw.ok("GetItem", {"TableName": table, "Key": {"pk": {"S": "bin"}}})
    assert base64.b64decode(r["Item"]["b"]["B"]) == data


# ---- conditions -------------------------------------------------------------------------------

def test_condition_put_if_absent(ddb, table):
    item = {"pk": {"S": "once"}, "v": {"N": "1"}}
    ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    with aws_error("ConditionalCheckFailedException", status=400,
                   message="The conditional request failed"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "once"}, "v": {"N": "2"}},
                     ConditionExpression="attribute_not_exists(pk)")
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "once"}})["Item"] == item


def test_condition_functions_and_operators(ddb, table):
    ddb.put_item(TableName=table, Item={"pk": {"S": "c"}, "n": {"N": "5"}, "s": {"S": "prefix-x"},
                                        "l": {"L": [{"S": "a"}, {"S": "b"}]},
                                        "ss": {"SS": ["x", "y"]}, "st": {"S": "on"}})
    good = [
        ("n = :five", {":five": {"N": "5.0"}}),
        ("n BETWEEN :a AND :b", {":a": {"N": "1"}, ":b": {"N": "5"}}),
        ("n IN (:a, :b)", {":a": {"N": "9"}, ":b": {"N": "5"}}),
        ("begins_with(s, :p)", {":p": {"S": "prefix-"}}),
        ("contains(ss, :v) AND contains(l, :w)", {":v": {"S": "y"}, ":w": {"S": "b"}}),
        ("size(l) = :two", {":two": {"N": "2"}}),
        ("attribute_type(n, :t)", {":t": {"S": "N"}}),
        ("NOT (n < :a) OR n > :b", {":a": {"N": "1"}, ":b": {"N": "100"}}),
        ("#st <> :off", {":off": {"S": "off"}}),
    ]
    for expr, values in good:
        names = {"#st": "st"} if "#st" in expr else None
        kw = {"ExpressionAttributeNames": names} if names else {}
        ddb.put_item(TableName=table, Item={"pk": {"S": "c"}, "n": {"N": "5"},
                                            "s": {"S": "prefix-x"},
                                            "l": {"L": [{"S": "a"}, {"S": "b"}]},
                                            "ss": {"SS": ["x", "y"]}, "st": {"S": "on"}},
                     ConditionExpression=expr, ExpressionAttributeValues=values, **kw)
    bad = [
        ("n > :five", {":five": {"N": "5"}}),
        ("attribute_exists(nope)", None),
        ("n = :s", {":s": {"S": "5"}}),   # different types are never equal
    ]
    for expr, values in bad:
        kw = {"ExpressionAttributeValues": values} if values else {}
        with aws_error("ConditionalCheckFailedException"):
            ddb.put_item(TableName=table, Item={"pk": {"S": "c"}}, ConditionExpression=expr, **kw)


def test_condition_syntax_error(ddb, table):
    with aws_error("ValidationException", message="Invalid ConditionExpression: Syntax error; token"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "x"}}, ConditionExpression="n = = :v",
                     ExpressionAttributeValues={":v": {"N": "1"}})


def test_reserved_word(ddb, table):
    with aws_error("ValidationException",
                   message="Attribute name is a reserved keyword; reserved keyword: status"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "x"}},
                     ConditionExpression="attribute_not_exists(status)")


def test_unused_expression_attributes(ddb, table):
    with aws_error("ValidationException", message="Value provided in ExpressionAttributeValues "
                   "unused in expressions: keys: {:unused}"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "x"}}, ConditionExpression="a = :v",
                     ExpressionAttributeValues={":v": {"N": "1"}, ":unused": {"N": "2"}})
    with aws_error("ValidationException", message="Value provided in ExpressionAttributeNames "
                   "unused in expressions: keys: {#unused}"):
        ddb.get_item(TableName=table, Key={"pk": {"S": "x"}}, ProjectionExpression="#a",
                     ExpressionAttributeNames={"#a": "a", "#unused": "b"})
    with aws_error("ValidationException", message="An expression attribute value used in "
                   "expression is not defined; attribute value: :v"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "x"}}, ConditionExpression="a = :v")
    with aws_error("ValidationException", message="An expression attribute name used in the "
                   "document path is not defined; attribute name: #a"):
        ddb.get_item(TableName=table, Key={"pk": {"S": "x"}}, ProjectionExpression="#a")


def test_expression_attributes_without_expression(ddb, table):
    with aws_error("ValidationException",
                   message="ExpressionAttributeValues can only be specified when using expressions"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "x"}},
                     ExpressionAttributeValues={":v": {"N": "1"}})
    with aws_error("ValidationException",
                   message="ExpressionAttributeNames can only be specified when using expressions"):
        ddb.get_item(TableName=table, Key={"pk": {"S": "x"}},
                     ExpressionAttributeNames={"#a": "a"})
    with aws_error("ValidationException", message="ExpressionAttributeValues must not be empty"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "x"}}, ConditionExpression="a = b",
                     ExpressionAttributeValues={})


def test_return_values_on_condition_check_failure(ddb_raw, table):
    item = {"pk": {"S": "rvc"}, "v": {"N": "1"}}
    ddb_raw.ok("PutItem", {"TableName": table, "Item": item})
    r = ddb_raw.error("PutItem", {"TableName": table, "Item": {"pk": {"S": "rvc"}},
                                  "ConditionExpression": "attribute_not_exists(pk)",
                                  "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
                      "ConditionalCheckFailedException")
    assert r.json["Item"] == item
    assert d.full_type(r) == d.ERR_PREFIX + "ConditionalCheckFailedException"
    r = ddb_raw.error("DeleteItem", {"TableName": table, "Key": {"pk": {"S": "rvc"}},
                                     "ConditionExpression": "v = :two",
                                     "ExpressionAttributeValues": {":two": {"N": "2"}},
                                     "ReturnValuesOnConditionCheckFailure": "NONE"},
                      "ConditionalCheckFailedException")
    assert "Item" not in r.json
    r = ddb_raw.error("UpdateItem", {"TableName": table, "Key": {"pk": {"S": "rvc"}},
                                     "UpdateExpression": "SET v = :two",
                                     "ConditionExpression": "v = :two",
                                     "ExpressionAttributeValues": {":two": {"N": "2"}},
                                     "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
                      "ConditionalCheckFailedException")
    assert r.json["Item"] == item


def test_legacy_parameters(ddb, table):
    """Pre-expression parameters (still used by older SDK mappers) work like their expressions."""
    key = {"pk": {"S": "legacy"}}
    ddb.put_item(TableName=table, Item={**key, "v": {"N": "1"}, "s": {"S": "abc"}},
                 Expected={"pk": {"Exists": False}})
    with aws_error("ConditionalCheckFailedException"):
        ddb.put_item(TableName=table, Item=key, Expected={"pk": {"Exists": False}})
    with aws_error("ConditionalCheckFailedException"):
        ddb.put_item(TableName=table, Item=key, Expected={"v": {"Value": {"N": "2"}}})
    r = ddb.get_item(TableName=table, Key=key, AttributesToGet=["v", "status"])
    assert r["Item"] == {"v": {"N": "1"}}
    r = ddb.update_item(TableName=table, Key=key, AttributeUpdates={
        "v": {"Action": "ADD", "Value": {"N": "5"}},
        "s": {"Action": "DELETE"},
        "tags": {"Action": "ADD", "Value": {"SS": ["x"]}},
        "lst": {"Action": "ADD", "Value": {"L": [{"S": "a"}]}},
        "name": {"Action": "PUT", "Value": {"S": "n"}}},
        Expected={"v": {"ComparisonOperator": "BETWEEN",
                        "AttributeValueList": [{"N": "0"}, {"N": "3"}]},
                  "s": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "ab"}]}},
        ReturnValues="ALL_NEW")
    assert r["Attributes"] == {**key, "v": {"N": "6"}, "tags": {"SS": ["x"]},
                               "lst": {"L": [{"S": "a"}]}, "name": {"S": "n"}}
    with aws_error("ConditionalCheckFailedException"):
        ddb.delete_item(TableName=table, Key=key, ConditionalOperator="OR", Expected={
            "v": {"ComparisonOperator": "LT", "AttributeValueList": [{"N": "0"}]},
            "name": {"ComparisonOperator": "NULL"}})
    ddb.delete_item(TableName=table, Key=key, ConditionalOperator="OR", Expected={
        "v": {"ComparisonOperator": "LT", "AttributeValueList": [{"N": "0"}]},
        "name": {"ComparisonOperator": "NOT_NULL"}})
    assert "Item" not in ddb.get_item(TableName=table, Key=key)
    with aws_error("ValidationException", message="Invalid number of argument(s) for the EQ "
                   "ComparisonOperator"):
        ddb.put_item(TableName=table, Item=key, Expected={
            "v": {"ComparisonOperator": "EQ", "AttributeValueList": []}})


def test_legacy_not_contains_needs_the_attribute(ddb, table):
    """Legacy NOT_CONTAINS is false on a missing attribute (DynamoDB); NE and NULL pass it."""
    key = {"pk": {"S": "nc"}}
    ddb.put_item(TableName=table, Item={**key, "s": {"S": "abc"}})
    nc = {"ComparisonOperator": "NOT_CONTAINS", "AttributeValueList": [{"S": "z"}]}
    with aws_error("ConditionalCheckFailedException"):
        ddb.put_item(TableName=table, Item={**key, "v": {"N": "1"}}, Expected={"gone": nc})
    with aws_error("ConditionalCheckFailedException"):   # no item at all
        ddb.put_item(TableName=table, Item={"pk": {"S": "nc2"}}, Expected={"s": nc})
    assert ddb.get_item(TableName=table, Key=key)["Item"] == {**key, "s": {"S": "abc"}}
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "nc2"}})
    ddb.put_item(TableName=table, Item={**key, "v": {"N": "1"}}, Expected={"s": nc})
    ddb.put_item(TableName=table, Item={**key, "v": {"N": "2"}}, Expected={
        "gone": {"ComparisonOperator": "NE", "AttributeValueList": [{"S": "z"}]},
        "gone2": {"ComparisonOperator": "NULL"}})
    # the same in ScanFilter: items without the attribute are filtered out
    ddb.put_item(TableName=table, Item={"pk": {"S": "nc3"}, "s": {"S": "xyz"}})
    r = ddb.scan(TableName=table, ScanFilter={"s": nc})
    assert [i["pk"]["S"] for i in r["Items"]] == []
    r = ddb.scan(TableName=table, ScanFilter={"s": {"ComparisonOperator": "NOT_CONTAINS",
                                                    "AttributeValueList": [{"S": "y"}]}})
    assert [i["pk"]["S"] for i in r["Items"]] == []   # nc has no s any more, nc3 contains y


LEGACY_BAD_ARGS = [
    ("CONTAINS", [{"L": [{"N": "1"}]}], "ComparisonOperator CONTAINS is not valid for L "
                                         "AttributeValue type"),
    ("NOT_CONTAINS", [{"SS": ["a"]}], "ComparisonOperator NOT_CONTAINS is not valid for SS "
                                      "AttributeValue type"),
    ("BEGINS_WITH", [{"N": "3"}], "ComparisonOperator BEGINS_WITH is not valid for N "
                                  "AttributeValue type"),
    ("LT", [{"BOOL": True}], "ComparisonOperator LT is not valid for BOOL AttributeValue type"),
    ("IN", [{"N": "3"}, {"S": "dog"}], "AttributeValues inside AttributeValueList must be of "
                                       "same type"),
    ("IN", [{"L": []}], "ComparisonOperator IN is not valid for L AttributeValue type"),
    ("BETWEEN", [{"N": "4"}, {"S": "dog"}], "AttributeValues inside AttributeValueList must be "
                                            "of same type"),
    ("BETWEEN", [{"N": "10"}, {"N": "9"}], "The BETWEEN condition was provided a range where the "
                                           "lower bound is greater than the upper bound"),
    ("BETWEEN", [{"NS": ["1"]}, {"NS": ["2"]}], "ComparisonOperator BETWEEN is not valid for NS "
                                                "AttributeValue type"),
]


@pytest.mark.parametrize("op,avl,msg", LEGACY_BAD_ARGS)
def test_legacy_operator_argument_types(ddb_nv, table, op, avl, msg):
    """Legacy conditions with arguments of a type the operator does not take (or mixed types,
    or a reversed BETWEEN) are a ValidationException, as in DynamoDB, and change nothing; a
    value of another type than the attribute's is just a false condition."""
    key = {"pk": {"S": "args"}}
    ddb_nv.put_item(TableName=table, Item={**key, "c": {"N": "3"}})
    cond = {"c": {"ComparisonOperator": op, "AttributeValueList": avl}}
    with aws_error("ValidationException", message=msg):
        ddb_nv.update_item(TableName=table, Key=key, Expected=cond,
                           AttributeUpdates={"z": {"Action": "PUT", "Value": {"N": "1"}}})
    with aws_error("ValidationException", message=msg):
        ddb_nv.scan(TableName=table, ScanFilter=cond)
    assert ddb_nv.get_item(TableName=table, Key=key)["Item"] == {**key, "c": {"N": "3"}}
    with aws_error("ConditionalCheckFailedException"):
        ddb_nv.put_item(TableName=table, Item=key, Expected={
            "c": {"ComparisonOperator": "IN", "AttributeValueList": [{"S": "3"}]}})


def test_mixing_expression_and_legacy(ddb, table):
    with aws_error("ValidationException", message="Can not use both expression and non-expression "
                   "parameters in the same request"):
        ddb.get_item(TableName=table, Key={"pk": {"S": "x"}}, AttributesToGet=["pk"],
                     ProjectionExpression="pk")


# ---- UpdateItem -------------------------------------------------------------------------------

def test_update_creates_item(ddb, table):
    r = ddb.update_item(TableName=table, Key={"pk": {"S": "u1"}},
                        UpdateExpression="SET a = :a, b = :b ADD c :one",
                        ExpressionAttributeValues={":a": {"S": "A"}, ":b": {"L": []},
                                                   ":one": {"N": "1"}},
                        ReturnValues="ALL_NEW")
    assert r["Attributes"] == {"pk": {"S": "u1"}, "a": {"S": "A"}, "b": {"L": []},
                               "c": {"N": "1"}}


def test_update_remove_delete_on_missing_item_creates_nothing(ddb, table):
    """An UpdateItem whose actions only REMOVE or DELETE, on a missing item, creates no item and
    returns none (DynamoDB), with or without a condition, in expression or legacy form; SET and
    ADD do create it."""
    vals = {":s": {"SS": ["a"]}}
    cases = [
        dict(UpdateExpression="REMOVE a"),
        dict(UpdateExpression="REMOVE a, b"),
        dict(UpdateExpression="REMOVE x.y, z[0]"),   # paths into nothing: ignored here
        dict(UpdateExpression="DELETE ss :s", ExpressionAttributeValues=vals),
        dict(UpdateExpression="REMOVE a DELETE ss :s", ExpressionAttributeValues=vals),
        dict(UpdateExpression="REMOVE a", ConditionExpression="attribute_not_exists(pk)"),
        dict(AttributeUpdates={"a": {"Action": "DELETE"}}),
        dict(AttributeUpdates={"ss": {"Action": "DELETE", "Value": {"SS": ["a"]}}}),
        dict(AttributeUpdates={"a": {"Action": "DELETE"}}, Expected={"a": {"Exists": False}}),
    ]
    for i, kw in enumerate(cases):
        key = {"pk": {"S": f"phantom{i}"}}
        for rv in ("ALL_NEW", "UPDATED_NEW", "ALL_OLD", "NONE"):
            r = ddb.update_item(TableName=table, Key=key, ReturnValues=rv, **kw)
            assert "Attributes" not in r, (kw, rv)
        assert "Item" not in ddb.get_item(TableName=table, Key=key, ConsistentRead=True), kw
    assert ddb.scan(TableName=table, Select="COUNT")["Count"] == 0
    # a REMOVE of a key attribute is still refused on a missing item
    with aws_error("ValidationException", message="This attribute is part of the key"):
        ddb.update_item(TableName=table, Key={"pk": {"S": "k"}}, UpdateExpression="REMOVE pk")
    # on an existing item a path into a missing attribute is an error, as DynamoDB's
    ddb.put_item(TableName=table, Item={"pk": {"S": "k"}})
    with aws_error("ValidationException",
                   message="The document path provided in the update expression is invalid"):
        ddb.update_item(TableName=table, Key={"pk": {"S": "k"}}, UpdateExpression="REMOVE x.y")
    ddb.delete_item(TableName=table, Key={"pk": {"S": "k"}})
    # SET / ADD (and legacy PUT / ADD) create the item
    for i, kw in enumerate([dict(UpdateExpression="SET a = :v REMOVE b",
                                 ExpressionAttributeValues={":v": {"N": "1"}}),
                            dict(UpdateExpression="ADD a :v",
                                 ExpressionAttributeValues={":v": {"N": "1"}}),
                            dict(AttributeUpdates={"a": {"Action": "PUT", "Value": {"N": "1"}},
                                                   "b": {"Action": "DELETE"}})]):
        key = {"pk": {"S": f"made{i}"}}
        r = ddb.update_item(TableName=table, Key=key, ReturnValues="ALL_NEW", **kw)
        assert r["Attributes"] == {**key, "a": {"N": "1"}}
        assert ddb.get_item(TableName=table, Key=key)["Item"] == {**key, "a": {"N": "1"}}
    # on an existing item a REMOVE-only update keeps the item, even when it leaves only the key
    key = {"pk": {"S": "kept"}}
    ddb.put_item(TableName=table, Item={**key, "a": {"N": "1"}})
    r = ddb.update_item(TableName=table, Key=key, UpdateExpression="REMOVE a",
                        ReturnValues="ALL_NEW")
    assert r["Attributes"] == key
    assert ddb.get_item(TableName=table, Key=key)["Item"] == key


def test_transact_update_remove_on_missing_item_creates_nothing(ddb, table):
    key = {"pk": {"S": "tx-phantom"}}
    ddb.transact_write_items(TransactItems=[
        {"Update": {"TableName": table, "Key": key, "UpdateExpression": "REMOVE a"}},
        {"Put": {"TableName": table, "Item": {"pk": {"S": "tx-real"}}}}])
    assert "Item" not in ddb.get_item(TableName=table, Key=key)
    assert ddb.scan(TableName=table, Select="COUNT")["Count"] == 1


def test_update_return_values(ddb, table):
    key = {"pk": {"S": "u2"}}
    ddb.put_item(TableName=table, Item={**key, "a": {"N": "1"}, "b": {"S": "keep"}})
    upd = dict(TableName=table, Key=key, UpdateExpression="SET a = a + :one",
               ExpressionAttributeValues={":one": {"N": "1"}})
    assert "Attributes" not in ddb.update_item(**upd)
    assert ddb.update_item(**upd, ReturnValues="UPDATED_OLD")["Attributes"] == {"a": {"N": "2"}}
    assert ddb.update_item(**upd, ReturnValues="UPDATED_NEW")["Attributes"] == {"a": {"N": "4"}}
    assert ddb.update_item(**upd, ReturnValues="ALL_OLD")["Attributes"] == \
        {**key, "a": {"N": "4"}, "b": {"S": "keep"}}
    assert ddb.update_item(**upd, ReturnValues="ALL_NEW")["Attributes"] == \
        {**key, "a": {"N": "6"}, "b": {"S": "keep"}}


def test_update_return_values_nested_fragment(ddb, table):
    """UPDATED_OLD / UPDATED_NEW return only the changed fragment of a nested attribute, and a
    REMOVE-only update has no new values to return."""
    key = {"pk": {"S": "nested-rv"}}
    ddb.put_item(TableName=table, Item={**key, "m": {"M": {"x": {"N": "1"}, "keep": {"S": "k"}}},
                                        "l": {"L": [{"S": "a"}, {"S": "b"}]}, "y": {"S": "gone"}})
    r = ddb.update_item(TableName=table, Key=key, UpdateExpression="SET m.x = :v",
                        ExpressionAttributeValues={":v": {"N": "2"}}, ReturnValues="UPDATED_OLD")
    assert r["Attributes"] == {"m": {"M": {"x": {"N": "1"}}}}
    r = ddb.update_item(TableName=table, Key=key, UpdateExpression="SET m.x = :v",
                        ExpressionAttributeValues={":v": {"N": "3"}}, ReturnValues="UPDATED_NEW")
    assert r["Attributes"] == {"m": {"M": {"x": {"N": "3"}}}}
    r = ddb.update_item(TableName=table, Key=key, UpdateExpression="REMOVE y",
                        ReturnValues="UPDATED_NEW")
    assert "Attributes" not in r


def test_update_all_actions(ddb, table):
    key = {"pk": {"S": "u3"}}
    ddb.put_item(TableName=table, Item={**key, "l": {"L": [{"N": "1"}]}, "ss": {"SS": ["a", "b"]},
                                        "gone": {"S": "x"}, "m": {"M": {"x": {"N": "1"}}}})
    r = ddb.update_item(
        TableName=table, Key=key,
        UpdateExpression="SET l = list_append(l, :more), m.y = :y, d = if_not_exists(d, :dflt), "
                         "n = :ten - :three REMOVE gone ADD ss2 :c, cnt :five DELETE ss :a",
        ExpressionAttributeValues={":more": {"L": [{"N": "2"}]}, ":y": {"S": "Y"},
                                   ":dflt": {"S": "default"}, ":ten": {"N": "10"},
                                   ":three": {"N": "3"}, ":c": {"SS": ["c"]},
                                   ":five": {"N": "5"}, ":a": {"SS": ["a"]}},
        ReturnValues="ALL_NEW")
    item = r["Attributes"]
    assert item["l"] == {"L": [{"N": "1"}, {"N": "2"}]}
    assert item["m"] == {"M": {"x": {"N": "1"}, "y": {"S": "Y"}}}
    assert item["d"] == {"S": "default"}
    assert item["n"] == {"N": "7"}
    assert "gone" not in item
    assert item["ss"]["SS"] == ["b"]
    assert item["ss2"]["SS"] == ["c"]
    assert item["cnt"] == {"N": "5"}


def test_update_key_attribute_refused(ddb, table):
    with aws_error("ValidationException", message="Cannot update attribute pk. This attribute is "
                   "part of the key"):
        ddb.update_item(TableName=table, Key={"pk": {"S": "k"}}, UpdateExpression="SET pk = :v",
                        ExpressionAttributeValues={":v": {"S": "other"}})


def test_update_errors(ddb, table):
    key = {"pk": {"S": "u4"}}
    ddb.put_item(TableName=table, Item={**key, "s": {"S": "str"}})
    with aws_error("ValidationException", message="Invalid UpdateExpression: Incorrect operand type "
                   "for operator or function; operator: ADD, operand type: STRING"):
        ddb.update_item(TableName=table, Key=key, UpdateExpression="ADD s :v",
                        ExpressionAttributeValues={":v": {"S": "x"}})
    with aws_error("ValidationException", message="The provided expression refers to an attribute "
                   "that does not exist in the item"):
        ddb.update_item(TableName=table, Key=key, UpdateExpression="SET a = nothere + :v",
                        ExpressionAttributeValues={":v": {"N": "1"}})
    with aws_error("ValidationException", message="Two document paths overlap with each other"):
        ddb.update_item(TableName=table, Key=key, UpdateExpression="SET a = :v, a.b = :v",
                        ExpressionAttributeValues={":v": {"N": "1"}})
    with aws_error("ValidationException", message="Invalid UpdateExpression: Syntax error"):
        ddb.update_item(TableName=table, Key=key, UpdateExpression="SET",
                        ExpressionAttributeValues={":v": {"N": "1"}})
    # nothing changed
    assert ddb.get_item(TableName=table, Key=key)["Item"] == {**key, "s": {"S": "str"}}


def test_update_with_condition(ddb, table):
    key = {"pk": {"S": "u5"}}
    ddb.put_item(TableName=table, Item={**key, "version": {"N": "1"}})
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET version = :new",
                    ConditionExpression="version = :old",
                    ExpressionAttributeValues={":old": {"N": "1"}, ":new": {"N": "2"}})
    with aws_error("ConditionalCheckFailedException", message="The conditional request failed"):
        ddb.update_item(TableName=table, Key=key, UpdateExpression="SET version = :new",
                        ConditionExpression="version = :old",
                        ExpressionAttributeValues={":old": {"N": "1"}, ":new": {"N": "3"}})
    assert ddb.get_item(TableName=table, Key=key)["Item"]["version"] == {"N": "2"}
    # a conditional update of a missing item neither creates it nor succeeds
    with aws_error("ConditionalCheckFailedException"):
        ddb.update_item(TableName=table, Key={"pk": {"S": "u5-missing"}},
                        UpdateExpression="SET a = :v", ConditionExpression="attribute_exists(pk)",
                        ExpressionAttributeValues={":v": {"N": "1"}})
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "u5-missing"}})


def test_delete_item(ddb, table):
    key = {"pk": {"S": "del"}}
    ddb.put_item(TableName=table, Item={**key, "v": {"N": "1"}})
    with aws_error("ConditionalCheckFailedException"):
        ddb.delete_item(TableName=table, Key=key, ConditionExpression="v = :two",
                        ExpressionAttributeValues={":two": {"N": "2"}})
    r = ddb.delete_item(TableName=table, Key=key, ConditionExpression="v = :one",
                        ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_OLD")
    assert r["Attributes"] == {**key, "v": {"N": "1"}}
    assert "Item" not in ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
    r = ddb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD")
    assert "Attributes" not in r
    with aws_error("ValidationException", message="The provided key element does not match the schema"):
        ddb.delete_item(TableName=table, Key={"nope": {"S": "x"}})


# ---- numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("given,canonical", [
    ("1.50", "1.5"), ("1e3", "1000"), ("-0", "0"), ("0.000", "0"), ("+7", "7"), (".5", "0.5"),
    ("1E-130", "0." + "0" * 129 + "1"), ("-1.2300E+2", "-123"),
    ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
    ("9.9999999999999999999999999999999999999E+125", "99999999999999999999999999999999999999" + "0" * 88),
])
def test_number_canonical(ddb, table, given, canonical):
    ddb.put_item(TableName=table, Item={"pk": {"S": "num"}, "n": {"N": given}})
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "num"}})["Item"]["n"] == {"N": canonical}


@pytest.mark.parametrize("given,msg", [
    ("123456789012345678901234567890123456789", "Attempting to store more than 38 significant digits in a Number"),
    ("1E+126", "Number overflow. Attempting to store a number with magnitude larger than supported range"),
    ("1E-131", "Number underflow. Attempting to store a number with magnitude smaller than supported range"),
    ("1..2", "A value provided cannot be converted into a number"),
    ("", "A value provided cannot be converted into a number"),
])
def test_number_invalid(ddb, table, given, msg):
    with aws_error("ValidationException", message=msg):
        ddb.put_item(TableName=table, Item={"pk": {"S": "num"}, "n": {"N": given}})


def test_number_keys_sort_numerically(ddb, table2):
    values = ["-1000", "-2.5", "-0.001", "0", "0.001", "1", "2", "10", "1E+20", "99.5"]
    for v in values:
        ddb.put_item(TableName=table2, Item={"pk": {"S": "p"}, "sk": {"N": v}})
    q = ddb.query(TableName=table2, KeyConditionExpression="pk = :p",
                  ExpressionAttributeValues={":p": {"S": "p"}})
    got = [i["sk"]["N"] for i in q["Items"]]
    from decimal import Decimal
    assert [Decimal(x) for x in got] == sorted(Decimal(v) for v in values)


def test_add_overflow_refused(ddb, table):
    key = {"pk": {"S": "big-add"}}
    ddb.put_item(TableName=table, Item={**key, "n": {"N": "9" * 38}})
    # DynamoDB words an in-range result that needs more than 38 digits as an overflow
    with aws_error("ValidationException", message="Number overflow"):
        ddb.update_item(TableName=table, Key=key, UpdateExpression="ADD n :v",
                        ExpressionAttributeValues={":v": {"N": "0.1"}})
    assert ddb.get_item(TableName=table, Key=key)["Item"]["n"] == {"N": "9" * 38}
