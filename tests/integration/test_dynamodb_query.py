# SPDX-License-Identifier: Apache-2.0
"""DynamoDB Query and Scan: key conditions, filters, indexes, order, paging, COUNT, segments."""
import random
from decimal import Decimal

import pytest

from helpers.dynamodb import aws_error


@pytest.fixture
def orders(ddb, make_table):
    """pk=customer (S), sk=order number (N); GSI by status+total; LSI by date."""
    name = make_table(
        hash=("customer", "S"), range=("n", "N"), attrs={"st": "S", "total": "N", "date": "S"},
        GlobalSecondaryIndexes=[
            {"IndexName": "by-status", "KeySchema": [
                {"AttributeName": "st", "KeyType": "HASH"},
                {"AttributeName": "total", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "ALL"}},
            {"IndexName": "status-keys", "KeySchema": [{"AttributeName": "st", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}},
        ],
        LocalSecondaryIndexes=[
            {"IndexName": "by-date", "KeySchema": [
                {"AttributeName": "customer", "KeyType": "HASH"},
                {"AttributeName": "date", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}},
        ])
    for c in ("alice", "bob"):
        for i in range(1, 26):
            item = {"customer": {"S": c}, "n": {"N": str(i)}, "total": {"N": str(i * 10)},
                    "date": {"S": f"2024-01-{i:02d}"}, "note": {"S": f"{c}-{i}"}}
            if i % 5:  # every fifth order has no status: not in the GSIs (sparse index)
                item["st"] = {"S": "open" if i % 2 else "shipped"}
            ddb.put_item(TableName=name, Item=item)
    return name


def q(ddb, table, cond, values, **kw):
    return ddb.query(TableName=table, KeyConditionExpression=cond,
                     ExpressionAttributeValues=values, **kw)


def nums(items, attr="n"):
    return [int(i[attr]["N"]) for i in items]


def test_query_hash_only(ddb, orders):
    r = q(ddb, orders, "customer = :c", {":c": {"S": "alice"}})
    assert nums(r["Items"]) == list(range(1, 26))
    assert r["Count"] == 25 and r["ScannedCount"] == 25
    assert "LastEvaluatedKey" not in r


@pytest.mark.parametrize("cond,values,want", [
    ("n = :a", {":a": {"N": "7"}}, [7]),
    ("n < :a", {":a": {"N": "4"}}, [1, 2, 3]),
    ("n <= :a", {":a": {"N": "3"}}, [1, 2, 3]),
    ("n > :a", {":a": {"N": "23"}}, [24, 25]),
    ("n >= :a", {":a": {"N": "24"}}, [24, 25]),
    ("n BETWEEN :a AND :b", {":a": {"N": "10"}, ":b": {"N": "12"}}, [10, 11, 12]),
])
def test_query_range_conditions(ddb, orders, cond, values, want):
    r = q(ddb, orders, "customer = :c AND " + cond, {":c": {"S": "bob"}, **values})
    assert nums(r["Items"]) == want


def test_query_begins_with_and_names(ddb, orders):
    r = ddb.query(TableName=orders, IndexName="by-date",
                  KeyConditionExpression="#c = :c AND begins_with(#d, :p)",
                  ExpressionAttributeNames={"#c": "customer", "#d": "date"},
                  ExpressionAttributeValues={":c": {"S": "alice"}, ":p": {"S": "2024-01-1"}})
    assert sorted(nums(r["Items"])) == list(range(10, 20))
    # KEYS_ONLY LSI: table keys + index key only
    assert set(r["Items"][0]) == {"customer", "n", "date"}


def test_query_descending_and_limit_paging(ddb, orders):
    seen, start, pages = [], None, 0
    while True:
        kw = {"ScanIndexForward": False, "Limit": 4}
        if start:
            kw["ExclusiveStartKey"] = start
        r = q(ddb, orders, "customer = :c", {":c": {"S": "alice"}}, **kw)
        assert len(r["Items"]) <= 4
        seen += nums(r["Items"])
        pages += 1
        start = r.get("LastEvaluatedKey")
        if not start:
            break
        assert set(start) == {"customer", "n"}
        assert pages < 50
    assert seen == list(range(25, 0, -1))
    assert pages in (7, 8)


def test_query_filter(ddb, orders):
    r = q(ddb, orders, "customer = :c AND n <= :ten", {":c": {"S": "alice"}, ":ten": {"N": "10"},
                                                         ":s": {"S": "open"}},
          FilterExpression="st = :s")
    assert nums(r["Items"]) == [1, 3, 7, 9]
    assert r["Count"] == 4 and r["ScannedCount"] == 10
    # Limit counts items read, before the filter
    r = q(ddb, orders, "customer = :c", {":c": {"S": "alice"}, ":s": {"S": "open"}},
          FilterExpression="st = :s", Limit=3)
    assert nums(r["Items"]) == [1, 3] and r["ScannedCount"] == 3 and "LastEvaluatedKey" in r


def test_query_filter_on_key_refused(ddb, orders):
    with aws_error("ValidationException", message="Filter Expression can only contain non-primary "
                   "key attributes: Primary key attribute: n"):
        q(ddb, orders, "customer = :c", {":c": {"S": "alice"}, ":x": {"N": "1"}},
          FilterExpression="n = :x")


def test_query_select_count(ddb, orders):
    r = q(ddb, orders, "customer = :c", {":c": {"S": "bob"}}, Select="COUNT")
    assert r["Count"] == 25 and "Items" not in r


def test_query_projection(ddb, orders):
    r = q(ddb, orders, "customer = :c AND n = :n", {":c": {"S": "bob"}, ":n": {"N": "2"}},
          ProjectionExpression="note, #t", ExpressionAttributeNames={"#t": "total"})
    assert r["Items"] == [{"note": {"S": "bob-2"}, "total": {"N": "20"}}]


def test_query_gsi(ddb, orders):
    r = q(ddb, orders, "st = :s AND #t > :t", {":s": {"S": "shipped"}, ":t": {"N": "200"}},
          IndexName="by-status", ExpressionAttributeNames={"#t": "total"})
    # shipped = even n not divisible by 5 -> 22, 24 for both customers, totals 220, 240
    assert sorted((i["customer"]["S"], int(i["n"]["N"])) for i in r["Items"]) == \
        [("alice", 22), ("alice", 24), ("bob", 22), ("bob", 24)]
    assert [int(i["total"]["N"]) for i in r["Items"]] == [220, 220, 240, 240]
    r = q(ddb, orders, "st = :s", {":s": {"S": "open"}}, IndexName="by-status")
    assert r["Count"] == 2 * 10  # odd, not multiples of 5: 1,3,7,9,11,13,17,19,21,23


def test_query_gsi_paging_keys(ddb, orders):
    r = q(ddb, orders, "st = :s", {":s": {"S": "open"}}, IndexName="by-status", Limit=3)
    lek = r["LastEvaluatedKey"]
    assert set(lek) == {"customer", "n", "st", "total"}
    total, start = [], None
    while True:
        kw = {"ExclusiveStartKey": start} if start else {}
        r = q(ddb, orders, "st = :s", {":s": {"S": "open"}}, IndexName="by-status", Limit=3, **kw)
        total += [(i["customer"]["S"], i["n"]["N"]) for i in r["Items"]]
        start = r.get("LastEvaluatedKey")
        if not start:
            break
    assert len(total) == 20 and len(set(total)) == 20


def test_query_keys_only_gsi(ddb, orders):
    r = q(ddb, orders, "st = :s", {":s": {"S": "open"}}, IndexName="status-keys")
    assert r["Count"] == 20
    assert all(set(i) == {"customer", "n", "st"} for i in r["Items"])


def test_query_consistent_read_on_gsi_refused(ddb, orders):
    with aws_error("ValidationException",
                   message="Consistent reads are not supported on global secondary indexes"):
        q(ddb, orders, "st = :s", {":s": {"S": "open"}}, IndexName="by-status",
          ConsistentRead=True)


def test_query_missing_index(ddb, orders):
    with aws_error("ValidationException",
                   message="The table does not have the specified index: nope"):
        q(ddb, orders, "customer = :c", {":c": {"S": "a"}}, IndexName="nope")


def test_query_key_condition_errors(ddb, orders):
    with aws_error("ValidationException", message="Query condition missed key schema element: customer"):
        q(ddb, orders, "n = :n", {":n": {"N": "1"}})
    with aws_error("ValidationException", message="KeyConditionExpression"):
        q(ddb, orders, "customer = :c OR n = :n", {":c": {"S": "a"}, ":n": {"N": "1"}})
    with aws_error("ValidationException", message="Either the KeyConditions or "
                   "KeyConditionExpression parameter must be specified in the request"):
        ddb.query(TableName=orders)
    with aws_error("ValidationException", message="Query condition missed key schema element: n"):
        q(ddb, orders, "customer = :c AND note = :x", {":c": {"S": "a"}, ":x": {"S": "b"}})


def test_query_bad_exclusive_start_key(ddb, orders):
    with aws_error("ValidationException", message="The provided starting key is invalid"):
        q(ddb, orders, "customer = :c", {":c": {"S": "alice"}},
          ExclusiveStartKey={"customer": {"S": "alice"}})


def test_query_missing_table(ddb):
    with aws_error("ResourceNotFoundException", message="Requested resource not found"):
        q(ddb, "tr-no-such-table-xyz", "a = :a", {":a": {"S": "x"}})


def test_query_limit_validation(ddb_nv, orders):
    with aws_error("ValidationException", message="Member must have value greater than or equal to 1"):
        q(ddb_nv, orders, "customer = :c", {":c": {"S": "alice"}}, Limit=0)


def test_query_legacy_parameters(ddb, orders):
    r = ddb.query(TableName=orders, KeyConditions={
        "customer": {"AttributeValueList": [{"S": "alice"}], "ComparisonOperator": "EQ"},
        "n": {"AttributeValueList": [{"N": "3"}, {"N": "9"}], "ComparisonOperator": "BETWEEN"}},
        QueryFilter={"st": {"AttributeValueList": [{"S": "open"}], "ComparisonOperator": "EQ"}},
        AttributesToGet=["n", "note"])
    assert r["Items"] == [{"n": {"N": str(i)}, "note": {"S": f"alice-{i}"}} for i in (3, 7, 9)]
    assert r["ScannedCount"] == 7
    with aws_error("ValidationException", message="Can not use both expression and non-expression"):
        ddb.query(TableName=orders, KeyConditions={
            "customer": {"AttributeValueList": [{"S": "alice"}], "ComparisonOperator": "EQ"}},
            FilterExpression="attribute_exists(st)")


# ---- Scan -------------------------------------------------------------------------------------

def test_scan_all_and_filter(ddb, orders):
    r = ddb.scan(TableName=orders)
    assert r["Count"] == 50 and r["ScannedCount"] == 50
    assert "LastEvaluatedKey" not in r
    r = ddb.scan(TableName=orders, FilterExpression="#t >= :t AND attribute_not_exists(st)",
                 ExpressionAttributeNames={"#t": "total"},
                 ExpressionAttributeValues={":t": {"N": "200"}})
    assert sorted((i["customer"]["S"], int(i["n"]["N"])) for i in r["Items"]) == \
        [("alice", 20), ("alice", 25), ("bob", 20), ("bob", 25)]
    assert r["ScannedCount"] == 50


def test_scan_paging(ddb, orders):
    seen, start = [], None
    for _ in range(100):
        kw = {"ExclusiveStartKey": start} if start else {}
        r = ddb.scan(TableName=orders, Limit=7, **kw)
        assert len(r["Items"]) <= 7
        seen += [(i["customer"]["S"], i["n"]["N"]) for i in r["Items"]]
        start = r.get("LastEvaluatedKey")
        if not start:
            break
    assert len(seen) == 50 and len(set(seen)) == 50


def test_scan_segments(ddb, orders):
    total = 4
    parts = []
    for seg in range(total):
        items, start = [], None
        while True:
            kw = {"ExclusiveStartKey": start} if start else {}
            r = ddb.scan(TableName=orders, Segment=seg, TotalSegments=total, Limit=5, **kw)
            items += [(i["customer"]["S"], i["n"]["N"]) for i in r["Items"]]
            start = r.get("LastEvaluatedKey")
            if not start:
                break
        parts.append(set(items))
    union = set().union(*parts)
    assert len(union) == 50 and sum(len(p) for p in parts) == 50


def test_scan_segment_validation(ddb_nv, orders):
    with aws_error("ValidationException", message="The Segment parameter is zero-based and must be "
                   "less than parameter TotalSegments: Segment: 3 is not less than TotalSegments: 3"):
        ddb_nv.scan(TableName=orders, Segment=3, TotalSegments=3)
    with aws_error("ValidationException", message="The TotalSegments parameter is required but was "
                   "not present in the request when Segment parameter is present"):
        ddb_nv.scan(TableName=orders, Segment=0)


def test_scan_count_and_index(ddb, orders):
    r = ddb.scan(TableName=orders, Select="COUNT")
    assert r["Count"] == 50 and "Items" not in r
    r = ddb.scan(TableName=orders, IndexName="by-status")
    assert r["Count"] == 40
    r = ddb.scan(TableName=orders, IndexName="status-keys", Limit=1)
    assert set(r["LastEvaluatedKey"]) == {"customer", "n", "st"}


def test_scan_legacy_filter(ddb, orders):
    r = ddb.scan(TableName=orders, ConditionalOperator="AND", ScanFilter={
        "note": {"AttributeValueList": [{"S": "bob-1"}], "ComparisonOperator": "BEGINS_WITH"},
        "st": {"ComparisonOperator": "NULL"},
        "n": {"AttributeValueList": [{"N": "10"}, {"N": "15"}, {"N": "20"}],
              "ComparisonOperator": "IN"}})
    assert sorted(int(i["n"]["N"]) for i in r["Items"]) == [10, 15]


def test_query_numbers_exact(ddb, make_table):
    name = make_table(hash=("pk", "S"), range=("sk", "N"))
    for v in ("0.1", "0.10000000000000000000000000000000000001", "0.2"):
        ddb.put_item(TableName=name, Item={"pk": {"S": "x"}, "sk": {"N": v}})
    r = q(ddb, name, "pk = :p AND sk > :v", {":p": {"S": "x"}, ":v": {"N": "0.1"}})
    assert [Decimal(i["sk"]["N"]) for i in r["Items"]] == \
        [Decimal("0.10000000000000000000000000000000000001"), Decimal("0.2")]


# ---- exact order of long keys ----------------------------------------------------------------
# Keys longer than LMDB's 511-byte key limit are stored folded; Query must still return them in
# exact key order (S as UTF-8 bytes, B bytewise, N numerically), forward and backward, under every
# key condition and across Limit pages, on the table and on its GSI and LSI.

LONG_N = 30


def _long_keys(typ, seed):
    """LONG_N distinct sort key values sharing a long prefix (N: varied numbers)."""
    rnd = random.Random(seed)
    out = set()
    while len(out) < LONG_N:
        if typ == "S":
            tail = "".join(rnd.choice(["a", "b", "z", "\x01", "\x7f", "\u00e9", "\U0001F600"])
                           for _ in range(rnd.randrange(0, 5)))
            out.add("s" * 800 + tail)
        elif typ == "B":
            out.add(b"\xab" * 700 + bytes(rnd.choice([0, 1, 0x7F, 0xFE, 0xFF, 0x61])
                                          for _ in range(rnd.randrange(0, 5))))
        else:
            out.add(Decimal(rnd.randrange(-10**6, 10**6)).scaleb(rnd.randrange(-5, 5)))
    return list(out)


def _order_key(typ, v):
    return v.encode() if typ == "S" else v if typ == "B" else Decimal(v)


def _av(typ, v):
    return {typ: str(v) if typ == "N" else v}


def _val(typ, av):
    v = av[typ]
    return Decimal(v) if typ == "N" else v


def _query_all(ddb, table, index, hname, hval, rname, typ, cond, vals, forward, limit):
    kw = {"TableName": table, "KeyConditionExpression": cond, "ScanIndexForward": forward,
          "ExpressionAttributeNames": {"#h": hname, **({"#r": rname} if "#r" in cond else {})},
          "ExpressionAttributeValues": {":h": {"S": hval}, **vals}}
    if index:
        kw["IndexName"] = index
    if limit:
        kw["Limit"] = limit
    got, pages = [], 0
    while True:
        r = ddb.query(**kw)
        got += [_val(typ, i[rname]) for i in r["Items"]]
        pages += 1
        assert pages <= 2 * LONG_N + 2
        if "LastEvaluatedKey" not in r:
            return got
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]


def _check_long_order(ddb, table, index, hname, hval, rname, typ, keys):
    s = sorted(keys, key=lambda v: _order_key(typ, v))
    a, b = s[LONG_N // 3], s[2 * LONG_N // 3]
    p = s[LONG_N // 2][:-1] if typ != "N" else None  # a key without its last character/byte
    ok = lambda v: _order_key(typ, v)  # noqa: E731
    cases = [("#h = :h", {}, lambda v: True),
             ("#h = :h AND #r = :a", {":a": a}, lambda v: ok(v) == ok(a)),
             ("#h = :h AND #r < :a", {":a": a}, lambda v: ok(v) < ok(a)),
             ("#h = :h AND #r <= :a", {":a": a}, lambda v: ok(v) <= ok(a)),
             ("#h = :h AND #r > :a", {":a": a}, lambda v: ok(v) > ok(a)),
             ("#h = :h AND #r >= :a", {":a": a}, lambda v: ok(v) >= ok(a)),
             ("#h = :h AND #r BETWEEN :a AND :b", {":a": a, ":b": b},
              lambda v: ok(a) <= ok(v) <= ok(b))]
    if typ != "N":
        cases.append(("#h = :h AND begins_with(#r, :a)", {":a": p}, lambda v: v.startswith(p)))
    for cond, vals, pred in cases:
        want = [v for v in s if pred(v)]
        avs = {k: _av(typ, v) for k, v in vals.items()}
        for forward in (True, False):
            for limit in (None, 4):
                got = _query_all(ddb, table, index, hname, hval, rname, typ, cond, avs, forward,
                                 limit)
                assert got == (want if forward else want[::-1]), \
                    f"{index or 'table'} {hval[:3]}.. {cond} forward={forward} limit={limit}"


@pytest.mark.parametrize("typ", ["S", "B", "N"])
def test_query_long_keys_exact_order(ddb, make_table, typ):
    name = make_table(
        hash=("pk", "S"), range=("sk", typ), attrs={"gh": "S", "gr": typ, "lr": typ},
        GlobalSecondaryIndexes=[{"IndexName": "by-g", "KeySchema": [
            {"AttributeName": "gh", "KeyType": "HASH"},
            {"AttributeName": "gr", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}],
        LocalSecondaryIndexes=[{"IndexName": "by-l", "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "lr", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}])
    sk, gr, lr = _long_keys(typ, 1), _long_keys(typ, 2), _long_keys(typ, 3)
    decoys = _long_keys(typ, 4)
    short, long_, G = "x", "q" * 600, "G" * 600   # partitions; long_ + "r" holds decoys
    for i in range(LONG_N):
        for pk in (short, long_):
            item = {"pk": {"S": pk}, "sk": _av(typ, sk[i]), "lr": _av(typ, lr[i])}
            if pk == short:
                item.update(gh={"S": G}, gr=_av(typ, gr[i]))
            ddb.put_item(TableName=name, Item=item)
        ddb.put_item(TableName=name, Item={"pk": {"S": long_ + "r"}, "sk": _av(typ, decoys[i]),
                                           "lr": _av(typ, decoys[i]), "gh": {"S": G + "r"},
                                           "gr": _av(typ, decoys[i])})
    for pk in (short, long_):
        _check_long_order(ddb, name, None, "pk", pk, "sk", typ, sk)
        _check_long_order(ddb, name, "by-l", "pk", pk, "lr", typ, lr)
    _check_long_order(ddb, name, "by-g", "gh", G, "gr", typ, gr)


def test_query_long_keys_point_operations(ddb, make_table):
    """GetItem, UpdateItem and DeleteItem by long keys keep working; the order stays exact."""
    name = make_table(hash=("pk", "S"), range=("sk", "S"))
    keys = _long_keys("S", 5)
    pk = "p" * 2048
    for k in keys:
        ddb.put_item(TableName=name, Item={"pk": {"S": pk}, "sk": {"S": k}})
    for k in keys[:5]:
        ddb.delete_item(TableName=name, Key={"pk": {"S": pk}, "sk": {"S": k}})
    ddb.update_item(TableName=name, Key={"pk": {"S": pk}, "sk": {"S": keys[7]}},
                    UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"S": "seven"}})
    r = ddb.get_item(TableName=name, Key={"pk": {"S": pk}, "sk": {"S": keys[7]}})
    assert r["Item"]["v"] == {"S": "seven"}
    assert "Item" not in ddb.get_item(TableName=name, Key={"pk": {"S": pk}, "sk": {"S": keys[0]}})
    left = sorted(keys[5:], key=str.encode)
    for limit in (None, 3):
        got = _query_all(ddb, name, None, "pk", pk, "sk", "S", "#h = :h", {}, False, limit)
        assert got == left[::-1]
