# SPDX-License-Identifier: Apache-2.0
"""DynamoDB wire protocol: JSON 1.0, __type values, status codes, x-amz-crc32, auth scope."""
import json
import zlib

import pytest

from helpers import dynamodb as d


@pytest.fixture
def table(make_table):
    return make_table()


def test_crc32_header_matches_body(ddb_raw, table):
    for op, payload in [("ListTables", {}),
                        ("DescribeTable", {"TableName": table}),
                        ("GetItem", {"TableName": table, "Key": {"pk": {"S": "none"}}}),
                        ("DescribeTable", {"TableName": "tr-no-such-table-crc"})]:
        r = ddb_raw.call(op, payload)
        assert "x-amz-crc32" in r.headers, f"{op}: no x-amz-crc32 header"
        assert int(r.headers["x-amz-crc32"]) == zlib.crc32(r.body) & 0xffffffff, op
        assert r.headers.get("content-type", "").startswith("application/x-amz-json-1.0"), op
        assert r.headers.get("x-amzn-requestid"), op


def test_error_types_and_status(ddb_raw, table):
    r = ddb_raw.error("DescribeTable", {"TableName": "tr-no-such-table-type"},
                      "ResourceNotFoundException")
    assert d.full_type(r) == d.ERR_PREFIX + "ResourceNotFoundException"
    assert r.json["message"] == "Requested resource not found: Table: tr-no-such-table-type not found"
    r = ddb_raw.error("GetItem", {"TableName": table, "Key": {"x": {"S": "a"}}},
                      "ValidationException")
    assert d.full_type(r) == d.VALIDATION_TYPE
    r = ddb_raw.error("CreateTable", {"TableName": table, "KeySchema": d.key_schema("pk"),
                                      "AttributeDefinitions": d.attr_defs(pk="S"),
                                      "BillingMode": "PAY_PER_REQUEST"},
                      "ResourceInUseException")
    assert d.full_type(r) == d.ERR_PREFIX + "ResourceInUseException"


def test_unknown_operation(ddb_raw):
    r = ddb_raw.call("FrobnicateTable", {})
    assert r.status == 400
    assert r.error_type == "UnknownOperationException"


def test_serialization_errors(ddb_raw):
    r = ddb_raw.call("ListTables", body=b"{not json")
    assert r.status == 400 and r.error_type == "SerializationException"
    r = ddb_raw.call("DescribeTable", body=b'{"TableName": 5}')
    assert r.status == 400 and r.error_type == "SerializationException"
    r = ddb_raw.call("ListTables", body=b"[]")
    assert r.status == 400 and r.error_type == "SerializationException"


def test_required_member_message(ddb_raw):
    r = ddb_raw.error("DescribeTable", {}, "ValidationException")
    assert r.message == ("1 validation error detected: Value null at 'tableName' failed to satisfy "
                         "constraint: Member must not be null"), r.message


def test_multiple_validation_errors(ddb_raw):
    r = ddb_raw.error("ListTables", {"Limit": 1000, "ExclusiveStartTableName": "a!"},
                      "ValidationException")
    assert r.message.startswith("3 validation errors detected: "), r.message
    assert "Value '1000' at 'limit' failed to satisfy constraint: Member must have value less " \
           "than or equal to 100" in r.message
    assert "Value 'a!' at 'exclusiveStartTableName' failed to satisfy constraint: Member must " \
           "satisfy regular expression pattern: [a-zA-Z0-9_.-]+" in r.message


def test_wrong_service_scope(ddb_raw):
    r = ddb_raw.call("ListTables", {}, service="kinesis")
    assert r.status == 400 and r.error_type == "InvalidSignatureException"
    assert "dynamodb" in r.message


def test_unsigned(ddb_raw):
    r = ddb_raw.call("ListTables", {}, sign=False)
    assert r.status in (400, 403) and r.error_type == "MissingAuthenticationTokenException"


def test_bad_secret(ddb_raw):
    r = ddb_raw.call("ListTables", {}, secret_key="wrong" * 8)
    assert r.status in (400, 403) and r.error_type == "InvalidSignatureException"


def test_application_json_content_type_accepted(ddb_raw):
    r = ddb_raw.call("ListTables", {}, content_type="application/json")
    assert r.status == 200, r


def test_response_is_compact_json(ddb_raw, table):
    r = ddb_raw.call("DescribeTable", {"TableName": table})
    assert r.status == 200
    t = json.loads(r.body)["Table"]
    assert isinstance(t["CreationDateTime"], (int, float))
    assert t["TableStatus"] == "ACTIVE"


def test_kinesis_still_routed(server, raw):
    r = raw.call("ListStreams", {})
    assert r.status == 200, r
