# SPDX-License-Identifier: Apache-2.0
"""`aws dynamodb` (Debian's aws CLI v2) against the fixture server, in an isolated environment."""
import json

import pytest

from helpers import dynamodb as d
from helpers.server import aws_cli


@pytest.fixture(scope="module")
def aws(server, tmp_path_factory):
    return aws_cli(server, "dynamodb", tmp_path_factory.mktemp("awshome-ddb"))


def j(v):
    return json.dumps(v)


@pytest.mark.deadline(180)
def test_cli_table_and_items(aws):
    name = d.unique_table("cli")
    aws("create-table", "--table-name", name,
        "--attribute-definitions", "AttributeName=pk,AttributeType=S",
        "AttributeName=sk,AttributeType=N",
        "--key-schema", "AttributeName=pk,KeyType=HASH", "AttributeName=sk,KeyType=RANGE",
        "--billing-mode", "PAY_PER_REQUEST")
    try:
        aws("wait", "table-exists", "--table-name", name)
        _, t, _ = aws("describe-table", "--table-name", name)
        assert t["Table"]["TableStatus"] == "ACTIVE"
        for i in range(5):
            aws("put-item", "--table-name", name, "--item",
                j({"pk": {"S": "p"}, "sk": {"N": str(i)}, "v": {"S": f"value {i} \u00e9"}}))
        _, g, _ = aws("get-item", "--table-name", name, "--key",
                      j({"pk": {"S": "p"}, "sk": {"N": "3"}}), "--consistent-read")
        assert g["Item"]["v"] == {"S": "value 3 \u00e9"}
        _, u, _ = aws("update-item", "--table-name", name,
                      "--key", j({"pk": {"S": "p"}, "sk": {"N": "3"}}),
                      "--update-expression", "ADD hits :one",
                      "--expression-attribute-values", j({":one": {"N": "1"}}),
                      "--return-values", "UPDATED_NEW")
        assert u["Attributes"] == {"hits": {"N": "1"}}
        _, q, _ = aws("query", "--table-name", name,
                      "--key-condition-expression", "pk = :p AND sk >= :s",
                      "--expression-attribute-values", j({":p": {"S": "p"}, ":s": {"N": "2"}}))
        assert [i["sk"]["N"] for i in q["Items"]] == ["2", "3", "4"]
        # the CLI paginates scan itself (page size 2 -> several requests)
        _, s, _ = aws("scan", "--table-name", name, "--page-size", "2")
        assert s["Count"] == 5 and len(s["Items"]) == 5
        aws("delete-item", "--table-name", name, "--key", j({"pk": {"S": "p"}, "sk": {"N": "0"}}))
        _, s, _ = aws("scan", "--table-name", name, "--select", "COUNT")
        assert s["Count"] == 4
        _, lt, _ = aws("list-tables")
        assert name in lt["TableNames"]
        rc, _, err = aws("put-item", "--table-name", name, "--item",
                         j({"pk": {"S": "p"}, "sk": {"N": "1"}}),
                         "--condition-expression", "attribute_not_exists(pk)", check=False)
        assert rc == 254, err
        assert "ConditionalCheckFailedException" in err
    finally:
        aws("delete-table", "--table-name", name)
    aws("wait", "table-not-exists", "--table-name", name)


def test_cli_batch_and_transact(aws):
    name = d.unique_table("cli-batch")
    aws("create-table", "--table-name", name,
        "--attribute-definitions", "AttributeName=id,AttributeType=S",
        "--key-schema", "AttributeName=id,KeyType=HASH",
        "--provisioned-throughput", "ReadCapacityUnits=5,WriteCapacityUnits=5")
    try:
        aws("wait", "table-exists", "--table-name", name)
        _, r, _ = aws("batch-write-item", "--request-items", j({name: [
            {"PutRequest": {"Item": {"id": {"S": f"i{k}"}}}} for k in range(10)]}))
        assert r["UnprocessedItems"] == {}
        _, r, _ = aws("batch-get-item", "--request-items",
                      j({name: {"Keys": [{"id": {"S": "i1"}}, {"id": {"S": "i9"}}]}}))
        assert sorted(i["id"]["S"] for i in r["Responses"][name]) == ["i1", "i9"]
        rc, _, err = aws("transact-write-items", "--transact-items", j([
            {"Put": {"TableName": name, "Item": {"id": {"S": "t1"}}}},
            {"ConditionCheck": {"TableName": name, "Key": {"id": {"S": "nope"}},
                                "ConditionExpression": "attribute_exists(id)"}}]), check=False)
        assert rc == 254 and "TransactionCanceledException" in err, err
        _, r, _ = aws("get-item", "--table-name", name, "--key", j({"id": {"S": "t1"}}))
        assert "Item" not in r
        aws("update-time-to-live", "--table-name", name, "--time-to-live-specification",
            "Enabled=true,AttributeName=exp")
        _, r, _ = aws("describe-time-to-live", "--table-name", name)
        assert r["TimeToLiveDescription"]["AttributeName"] == "exp"
    finally:
        aws("delete-table", "--table-name", name)


def test_cli_missing_table(aws):
    rc, _, err = aws("describe-table", "--table-name", d.unique_table("missing"), check=False)
    assert rc == 254 and "ResourceNotFoundException" in err, err
