#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/ddb_diff.py -- differential run: one random DynamoDB write/read sequence against two
server binaries (e.g. main's and a branch's), status and body compared byte for byte, then both
tables scanned.  Small key spaces, so items are rewritten often; conditions, every ReturnValues,
ReturnConsumedCapacity INDEXES, a GSI with INCLUDE, BatchWriteItem, TransactWriteItems.
usage: bench/ddb_diff.py OLD_BIN NEW_BIN [N requests, 3000] [SEED, 1]; exit status 1 on a difference."""
import json
import pathlib
import random
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from helpers import server as srv
from helpers import dynamodb as dd

old_bin, new_bin = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
SEED = int(sys.argv[4]) if len(sys.argv) > 4 else 1

def tables():
    return [
        ("CreateTable", {"TableName": "tab1", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                         "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                         "BillingMode": "PAY_PER_REQUEST"}),
        ("CreateTable", {"TableName": "tab2", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                          {"AttributeName": "sk", "KeyType": "RANGE"}],
                         "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "N"},
                                                  {"AttributeName": "g", "AttributeType": "S"}],
                         "GlobalSecondaryIndexes": [{"IndexName": "gidx", "KeySchema": [
                             {"AttributeName": "g", "KeyType": "HASH"}],
                             "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["n"]}}],
                         "BillingMode": "PAY_PER_REQUEST"}),
    ]

def gen(r):
    t = r.choice(["tab1", "tab2"])
    def key():
        k = {"pk": {"S": "k%d" % r.randrange(6)}}
        if t == "tab2": k["sk"] = {"N": str(r.randrange(3))}
        return k
    def val():
        c = r.randrange(6)
        if c == 0: return {"N": str(r.randrange(-5, 50))}
        if c == 1: return {"S": r.choice(["a", "b", "zz", ""]) or "x"}
        if c == 2: return {"SS": sorted(set(r.choice("abcd") for _ in range(3)))}
        if c == 3: return {"L": [{"N": "1"}, {"S": "q"}]}
        if c == 4: return {"M": {"x": {"N": str(r.randrange(9))}, "y": {"BOOL": True}}}
        return {"NULL": True}
    rv = r.choice([None, "NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"])
    rcc = r.choice([None, "TOTAL", "INDEXES"])
    op = r.choice(["PutItem", "UpdateItem", "UpdateItem", "UpdateItem", "DeleteItem", "GetItem",
                   "BatchWriteItem", "TransactWriteItems"])
    body = {"TableName": t}
    if rcc: body["ReturnConsumedCapacity"] = rcc
    if op == "PutItem":
        it = key()
        for a in r.sample(["n", "s", "g", "m"], r.randrange(4)):
            it[a] = val() if a != "g" else {"S": r.choice(["g1", "g2"])}
        body["Item"] = it
        if rv: body["ReturnValues"] = r.choice([rv, "ALL_OLD", "NONE"])
    elif op == "UpdateItem":
        body["Key"] = key()
        acts = r.choice([
            ("ADD n :one", {":one": {"N": "1"}}),
            ("SET s = :v", {":v": val()}),
            ("SET n = if_not_exists(n, :z) + :one", {":z": {"N": "0"}, ":one": {"N": "2"}}),
            ("REMOVE s", None),
            ("SET m.x = :v", {":v": {"N": "3"}}),
            ("ADD ss :set", {":set": {"SS": ["a", "e"]}}),
            ("SET g = :g, n = :v", {":g": {"S": "g1"}, ":v": {"N": "7"}}),
            ("SET l = list_append(if_not_exists(l, :e), :x)", {":e": {"L": []}, ":x": {"L": [{"N": "1"}]}}),
        ])
        body["UpdateExpression"] = acts[0]
        vals = dict(acts[1] or {})
        c = r.randrange(4)
        if c == 1:
            body["ConditionExpression"] = "attribute_exists(pk)"
        elif c == 2:
            body["ConditionExpression"] = "attribute_not_exists(n) OR n < :lim"
            vals[":lim"] = {"N": str(r.randrange(20))}
        if vals: body["ExpressionAttributeValues"] = vals
        if rv: body["ReturnValues"] = rv
        if c and r.random() < 0.5: body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    elif op == "DeleteItem":
        body["Key"] = key()
        if r.random() < 0.4:
            body["ConditionExpression"] = "n > :z"
            body["ExpressionAttributeValues"] = {":z": {"N": "3"}}
            if r.random() < 0.5: body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if rv: body["ReturnValues"] = r.choice(["ALL_OLD", "NONE"])
    elif op == "GetItem":
        body["Key"] = key()
    elif op == "BatchWriteItem":
        reqs, seen = [], set()
        for _ in range(r.randrange(1, 5)):
            k = key()
            if json.dumps(k, sort_keys=True) in seen: continue
            seen.add(json.dumps(k, sort_keys=True))
            if r.random() < 0.7:
                it = dict(k); it["n"] = {"N": str(r.randrange(9))}
                reqs.append({"PutRequest": {"Item": it}})
            else:
                reqs.append({"DeleteRequest": {"Key": k}})
        body = {"RequestItems": {t: reqs}}
        if rcc: body["ReturnConsumedCapacity"] = rcc
    else:
        items, seen = [], set()
        for _ in range(r.randrange(1, 4)):
            k = key()
            if json.dumps(k, sort_keys=True) in seen: continue
            seen.add(json.dumps(k, sort_keys=True))
            c = r.randrange(4)
            if c == 0:
                it = dict(k); it["n"] = {"N": "5"}
                items.append({"Put": {"TableName": t, "Item": it}})
            elif c == 1:
                items.append({"Update": {"TableName": t, "Key": k, "UpdateExpression": "ADD n :one",
                                         "ExpressionAttributeValues": {":one": {"N": "1"}}}})
            elif c == 2:
                items.append({"ConditionCheck": {"TableName": t, "Key": k,
                                                 "ConditionExpression": "attribute_exists(n)",
                                                 "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}})
            else:
                items.append({"Delete": {"TableName": t, "Key": k}})
        body = {"TransactItems": items}
        if rcc: body["ReturnConsumedCapacity"] = rcc
    return op, body

servers, clients = [], []
try:
    for b in (old_bin, new_bin):
        s = srv.ServerProcess(binary=b); s.start(); servers.append(s)
        clients.append(dd.RawClient(s))
    for op, body in tables():
        for c in clients:
            x = c.call(op, body); assert x.status == 200, x
    r = random.Random(SEED)
    diffs = 0
    st = {}
    for i in range(N):
        op, body = gen(r)
        a, b = (c.call(op, body) for c in clients)
        st[(op, a.status)] = st.get((op, a.status), 0) + 1
        if a.status != b.status or a.body != b.body:
            diffs += 1
            if diffs < 10:
                print("DIFF", i, op, json.dumps(body)[:300], "\n old", a.status, a.body[:300], "\n new", b.status, b.body[:300])
    # final state
    for t in ("tab1", "tab2"):
        a, b = (c.call("Scan", {"TableName": t}) for c in clients)
        if a.body != b.body: diffs += 1; print("SCAN DIFF", t)
    print(f"{N} requests, {diffs} differences", sorted(st.items()))
finally:
    for s in servers: s.stop()
sys.exit(1 if diffs else 0)
