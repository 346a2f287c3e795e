# SPDX-License-Identifier: Apache-2.0
"""kill -9 under concurrent DynamoDB write load, several rounds.

Writer threads (each with its own boto3 client) do PutItem of self-checking items (a payload and
its SHA-256 in the same item), UpdateItem ADDs to per-writer counters (each ADD also appends its
sequence number to a number set, in the same item), and small TransactWriteItems that write two
items with the same token.  They note exactly what was acknowledged.  At a random moment the
server gets SIGKILL, is restarted on the same data dir, and every item is read back:

- every acknowledged PutItem is present with exactly the acknowledged content (or a later
  acknowledged/unacknowledged version by the same writer: each key is written by one writer, in
  order, so the stored version is >= the last acknowledged one);
- no torn item: every item's payload matches its hash, and a counter's value equals the size of
  its set of applied sequence numbers;
- every acknowledged ADD is applied (its sequence number is in the set), and nothing applied was
  never sent;
- both items of a transaction are present or neither.
"""
import hashlib
import random
import threading
import time

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from helpers import dynamodb as d
from helpers import server as srv

ROUNDS = 15
WRITERS = 4
KEYS_PER_WRITER = 6
TOTAL_BUDGET = 150.0

pytestmark = [pytest.mark.deadline(240)]


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.put_acked = {}      # key -> highest acknowledged version
        self.put_sent = {}       # key -> highest sent version
        self.add_acked = {}      # counter key -> set of acknowledged seqs
        self.add_sent = {}       # counter key -> set of sent seqs
        self.tx_acked = set()    # tx ids
        self.tx_sent = set()


def payload(key, version, rng):
    body = rng.randbytes(rng.choice([0, 10, 100, 1000, 5000, 30000])).hex()
    return body, hashlib.sha256(f"{key}|{version}|{body}".encode()).hexdigest()


class Writer(threading.Thread):
    def __init__(self, wid, server, table, ledger, stop, seed, versions, seqs):
        super().__init__(daemon=True, name=f"ddb-writer-{wid}")
        self.wid, self.server, self.table, self.ledger, self.stop = wid, server, table, ledger, stop
        self.rng = random.Random(seed)
        self.versions, self.seqs = versions, seqs   # persistent across rounds
        self.failure = None
        self.errors = 0

    def run(self):
        try:
            c = d.make_client(self.server, read_timeout=10)
            while not self.stop.is_set():
                self.one(c)
        except BaseException as e:  # surfaced by the main thread
            self.failure = e

    def one(self, c):
        rng, led, w = self.rng, self.ledger, self.wid
        kind = rng.random()
        try:
            if kind < 0.5:
                key = f"w{w}-k{rng.randrange(KEYS_PER_WRITER)}"
                self.versions[key] = self.versions.get(key, 0) + 1
                v = self.versions[key]
                body, digest = payload(key, v, rng)
                with led.lock:
                    led.put_sent[key] = v
                c.put_item(TableName=self.table, Item={
                    "pk": {"S": key}, "ver": {"N": str(v)}, "body": {"S": body},
                    "sha": {"S": digest}})
                with led.lock:
                    led.put_acked[key] = max(led.put_acked.get(key, 0), v)
            elif kind < 0.85:
                key = f"w{w}-counter"
                self.seqs[0] += 1
                s = self.seqs[0]
                with led.lock:
                    led.add_sent.setdefault(key, set()).add(s)
                c.update_item(TableName=self.table, Key={"pk": {"S": key}},
                              UpdateExpression="ADD n :one, applied :s",
                              ExpressionAttributeValues={":one": {"N": "1"},
                                                         ":s": {"NS": [str(s)]}})
                with led.lock:
                    led.add_acked.setdefault(key, set()).add(s)
            else:
                self.seqs[0] += 1
                tid = f"w{w}-tx{self.seqs[0]}"
                with led.lock:
                    led.tx_sent.add(tid)
                c.transact_write_items(TransactItems=[
                    {"Put": {"TableName": self.table, "Item": {"pk": {"S": tid + "-a"},
                                                               "tx": {"S": tid}}}},
                    {"Put": {"TableName": self.table, "Item": {"pk": {"S": tid + "-b"},
                                                               "tx": {"S": tid}}}}])
                with led.lock:
                    led.tx_acked.add(tid)
        except (BotoCoreError, ClientError, OSError):
            self.errors += 1   # killed mid-request or refused: not acknowledged
            self.stop.wait(0.01)


def scan_all(c, table):
    items, start = [], None
    while True:
        kw = {"ExclusiveStartKey": start} if start else {}
        r = c.scan(TableName=table, ConsistentRead=True, **kw)
        items += r["Items"]
        start = r.get("LastEvaluatedKey")
        if not start:
            return items


def verify(c, table, led, round_no):
    items = {i["pk"]["S"]: i for i in scan_all(c, table)}
    for key, v in led.put_acked.items():
        it = items.get(key)
        assert it is not None, f"round {round_no}: acknowledged PutItem {key} v{v} missing"
        got = int(it["ver"]["N"])
        assert v <= got <= led.put_sent[key], \
            f"round {round_no}: {key} has version {got}, acknowledged {v}, sent {led.put_sent[key]}"
    for key, it in items.items():
        if "sha" in it:
            want = hashlib.sha256(f"{key}|{it['ver']['N']}|{it['body']['S']}".encode()).hexdigest()
            assert it["sha"]["S"] == want, f"round {round_no}: torn item {key}"
        if key.endswith("-counter"):
            applied = {int(x) for x in it["applied"]["NS"]}
            assert int(it["n"]["N"]) == len(applied), \
                f"round {round_no}: torn counter {key}: n={it['n']['N']}, {len(applied)} seqs"
            assert applied <= led.add_sent.get(key, set()), f"round {round_no}: {key} applied unsent"
            missing = led.add_acked.get(key, set()) - applied
            assert not missing, f"round {round_no}: acknowledged ADDs lost on {key}: {sorted(missing)[:10]}"
    for key, seqs in led.add_acked.items():
        assert key in items, f"round {round_no}: counter {key} with {len(seqs)} acked ADDs missing"
    for tid in led.tx_sent:
        a, b = tid + "-a" in items, tid + "-b" in items
        assert a == b, f"round {round_no}: transaction {tid} applied partially"
        if tid in led.tx_acked:
            assert a, f"round {round_no}: acknowledged transaction {tid} missing"
    return len(items)


@pytest.fixture
def crash_server():
    with srv.own_server("kill -9") as s:
        yield s


def test_dynamodb_kill9_under_load(crash_server):
    s = crash_server
    start = time.monotonic()
    seed = random.Random(time.time()).randrange(1 << 30)
    rng = random.Random(seed)
    c = d.make_client(s)
    table = d.unique_table("crash")
    c.create_table(TableName=table, KeySchema=d.key_schema("pk"),
                   AttributeDefinitions=d.attr_defs(pk="S"), BillingMode="PAY_PER_REQUEST")
    d.wait_active(c, table)
    led = Ledger()
    versions = [dict() for _ in range(WRITERS)]
    seqs = [[0] for _ in range(WRITERS)]
    history = []
    for round_no in range(1, ROUNDS + 1):
        if time.monotonic() - start > TOTAL_BUDGET:
            pytest.fail(f"only {round_no - 1}/{ROUNDS} rounds fit in {TOTAL_BUDGET}s (seed {seed})")
        stop = threading.Event()
        writers = [Writer(i, s, table, led, stop, rng.randrange(1 << 30), versions[i], seqs[i])
                   for i in range(WRITERS)]
        base = len(led.put_acked) + sum(len(v) for v in led.add_acked.values())
        for w in writers:
            w.start()
        want = base + (rng.randint(0, 5) if rng.random() < 0.2 else rng.randint(20, 300))
        until = time.monotonic() + rng.uniform(0.05, 1.5)
        srv.kill9_amid(s, writers, stop, until, lambda: len(led.put_acked) + sum(
            len(v) for v in led.add_acked.values()) >= want)
        s.start()
        c = d.make_client(s)
        n = verify(c, table, led, round_no)
        history.append((round_no, n, sum(w.errors for w in writers)))
    acked_adds = sum(len(v) for v in led.add_acked.values())
    print(f"dynamodb kill9: seed {seed}, {len(led.put_acked)} keys put, {acked_adds} ADDs, "
          f"{len(led.tx_acked)} transactions acknowledged; (round, items, errors): {history}")
    assert led.put_acked and acked_adds, "nothing was ever acknowledged"
