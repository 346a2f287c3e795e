# SPDX-License-Identifier: Apache-2.0
"""DynamoDB under concurrency: atomic counters, exact decimal sums, conflicting transactions that
must never apply partially."""
import threading
from decimal import Decimal

import pytest
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from helpers import dynamodb as d

N_CLIENTS = 8
M_ADDS = 40


def run_threads(n, fn):
    errors = []

    def wrap(i):
        try:
            fn(i)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=110)
        assert not t.is_alive(), "worker thread hung"
    if errors:
        raise errors[0]


@pytest.mark.deadline(150)
def test_concurrent_atomic_adds(server, ddb, make_table):
    name = make_table()
    key = {"pk": {"S": "counter"}}

    def worker(i):
        c = d.make_client(server)
        for _ in range(M_ADDS):
            c.update_item(TableName=name, Key=key, UpdateExpression="ADD n :one, ids :me",
                          ExpressionAttributeValues={":one": {"N": "1"}, ":me": {"NS": [str(i)]}})

    run_threads(N_CLIENTS, worker)
    item = ddb.get_item(TableName=name, Key=key, ConsistentRead=True)["Item"]
    assert item["n"] == {"N": str(N_CLIENTS * M_ADDS)}
    assert sorted(int(x) for x in item["ids"]["NS"]) == list(range(N_CLIENTS))


def test_decimal_adds_are_exact(ddb_res, make_table):
    table = ddb_res.Table(make_table())
    table.put_item(Item={"pk": "dec", "n": Decimal("0")})
    for _ in range(10):
        table.update_item(Key={"pk": "dec"}, UpdateExpression="ADD n :v",
                          ExpressionAttributeValues={":v": Decimal("0.1")})
    assert table.get_item(Key={"pk": "dec"})["Item"]["n"] == Decimal("1")
    table.update_item(Key={"pk": "dec"}, UpdateExpression="SET n = n - :v",
                      ExpressionAttributeValues={":v": Decimal("0.3")})
    assert table.get_item(Key={"pk": "dec"})["Item"]["n"] == Decimal("0.7")
    big = Decimal("1234567890123456789012345678901234567.8")
    table.put_item(Item={"pk": "big", "n": big})
    assert table.get_item(Key={"pk": "big"})["Item"]["n"] == big
    table.update_item(Key={"pk": "big"}, UpdateExpression="ADD n :v",
                      ExpressionAttributeValues={":v": Decimal("0.1")})
    assert table.get_item(Key={"pk": "big"})["Item"]["n"] == \
        Decimal("1234567890123456789012345678901234567.9")


@pytest.mark.deadline(150)
def test_concurrent_decimal_adds(server, make_table, ddb):
    name = make_table()

    def worker(i):
        c = d.make_client(server)
        for _ in range(25):
            c.update_item(TableName=name, Key={"pk": {"S": "d"}}, UpdateExpression="ADD n :v",
                          ExpressionAttributeValues={":v": {"N": "0.01"}})

    run_threads(N_CLIENTS, worker)
    item = ddb.get_item(TableName=name, Key={"pk": {"S": "d"}}, ConsistentRead=True)["Item"]
    assert Decimal(item["n"]["N"]) == Decimal("0.01") * 25 * N_CLIENTS


@pytest.mark.deadline(150)
def test_conflicting_transactions_never_partial(server, ddb, make_table):
    """Transfers between accounts with a balance >= amount condition: money is conserved, no
    balance goes negative, and the ledger row written by a transfer exists exactly for the
    transfers that succeeded."""
    name = make_table(hash=("pk", "S"))
    accounts = [f"acct{i}" for i in range(4)]
    for a in accounts:
        ddb.put_item(TableName=name, Item={"pk": {"S": a}, "bal": {"N": "50"}})
    ok_ids, lock = [], threading.Lock()

    def worker(i):
        c = d.make_client(server)
        for j in range(30):
            src, dst = accounts[(i + j) % 4], accounts[(i + 2 * j + 1) % 4]
            if src == dst:
                continue
            amt = str(1 + (i * 7 + j) % 9)
            tid = f"tx-{i}-{j}"
            try:
                c.transact_write_items(TransactItems=[
                    {"Update": {"TableName": name, "Key": {"pk": {"S": src}},
                                "UpdateExpression": "SET bal = bal - :a",
                                "ConditionExpression": "bal >= :a",
                                "ExpressionAttributeValues": {":a": {"N": amt}}}},
                    {"Update": {"TableName": name, "Key": {"pk": {"S": dst}},
                                "UpdateExpression": "SET bal = bal + :a",
                                "ExpressionAttributeValues": {":a": {"N": amt}}}},
                    {"Put": {"TableName": name, "Item": {"pk": {"S": tid}, "amt": {"N": amt}},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                ])
            except ClientError as e:
                code = e.response["Error"]["Code"]
                assert code in ("TransactionCanceledException", "TransactionConflictException",
                                "TransactionInProgressException"), code
                continue
            with lock:
                ok_ids.append(tid)
            # a reader must never see a state between the two updates
            r = c.transact_get_items(TransactItems=[
                {"Get": {"TableName": name, "Key": {"pk": {"S": a}}}} for a in accounts])
            total = sum(int(x["Item"]["bal"]["N"]) for x in r["Responses"])
            assert total == 200, f"transactional read saw a partial transfer: total {total}"

    run_threads(6, worker)
    bals = [int(ddb.get_item(TableName=name, Key={"pk": {"S": a}}, ConsistentRead=True)
                ["Item"]["bal"]["N"]) for a in accounts]
    assert sum(bals) == 200 and min(bals) >= 0, bals
    ledger = {i["pk"]["S"] for i in ddb.scan(TableName=name, ConsistentRead=True,
                                             FilterExpression="begins_with(pk, :t)",
                                             ExpressionAttributeValues={":t": {"S": "tx-"}})["Items"]}
    assert ledger == set(ok_ids)
    assert ok_ids, "no transfer succeeded"


@pytest.mark.deadline(150)
def test_concurrent_conditional_puts_one_winner(server, make_table, ddb_res):
    name = make_table()
    winners, lock = [], threading.Lock()

    def worker(i):
        t = d.make_resource(server).Table(name)
        for j in range(20):
            try:
                t.put_item(Item={"pk": f"slot{j}", "owner": i},
                           ConditionExpression=Attr("pk").not_exists())
            except ClientError as e:
                assert e.response["Error"]["Code"] == "ConditionalCheckFailedException"
                continue
            with lock:
                winners.append((j, i))

    run_threads(N_CLIENTS, worker)
    assert sorted(j for j, _ in winners) == list(range(20))
    table = ddb_res.Table(name)
    for j, i in winners:
        assert table.get_item(Key={"pk": f"slot{j}"})["Item"]["owner"] == i
