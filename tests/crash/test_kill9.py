# SPDX-License-Identifier: Apache-2.0
"""kill -9 under concurrent PutRecords load, 20 rounds.

Writer threads (each with its own boto3 client) put batches of self-checking records and note
exactly which ones were acknowledged, with shard and sequence number.  At a random moment the
server gets SIGKILL, is restarted on the same data dir, and every shard is read back:

- every acknowledged record is there, byte for byte, in its acknowledged shard at its
  acknowledged sequence number;
- sequence numbers strictly increase within each shard (so no duplicates, nothing reordered);
- every record present is one we sent, intact (header + SHA-256 of the body), exactly once;
- each writer's records appear in send order within a shard;
- unacknowledged records may or may not be present.

Bounded: a global deadline of 170 s for all rounds (failing if the rounds don't fit), socket
timeouts on every call.
"""
import hashlib
import random
import threading
import time

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from helpers import kinesis as k
from helpers import server as srv

ROUNDS = 20
WRITERS = 4
SHARDS = 4
TOTAL_BUDGET = 170.0

pytestmark = [pytest.mark.deadline(240)]


def make_record(writer, counter, rng):
    body = rng.randbytes(rng.choice([0, 1, 17, 100, 512, 2048, 4000, 4000, 60000]))
    digest = hashlib.sha256(body).hexdigest()[:16]
    return f"TRB1|{writer}|{counter}|{digest}|".encode() + body


def parse_record(data):
    """(writer, counter) of an intact record, else raise AssertionError."""
    try:
        magic, w, c, digest, body = data.split(b"|", 4)
    except ValueError:
        raise AssertionError(f"corrupt record (no header): {data[:60]!r}")
    assert magic == b"TRB1", f"corrupt record magic: {data[:60]!r}"
    assert hashlib.sha256(body).hexdigest()[:16] == digest.decode(), \
        f"corrupt record body (hash mismatch): {data[:60]!r}"
    return int(w), int(c)


class Writer(threading.Thread):
    def __init__(self, wid, server, stream, ledger, stop, seed):
        super().__init__(daemon=True, name=f"writer-{wid}")
        self.wid, self.server, self.stream = wid, server, stream
        self.ledger, self.stop = ledger, stop
        self.rng = random.Random(seed)
        self.errors = 0
        self.failure = None

    def run(self):
        try:
            client = k.make_client(self.server, read_timeout=10)
            while not self.stop.is_set():
                self.one_request(client)
        except BaseException as e:  # surfaced by the main thread
            self.failure = e

    def one_request(self, client):
        rng, led = self.rng, self.ledger
        n = rng.randint(1, 20)
        batch = []
        for _ in range(n):
            with led.lock:
                counter = led.next_counter[self.wid]
                led.next_counter[self.wid] += 1
            pk = f"w{self.wid}-k{rng.randrange(8)}"
            data = make_record(self.wid, counter, rng)
            led.sent[(self.wid, counter)] = (pk, data)
            batch.append((pk, data))
        try:
            if n == 1 and rng.random() < 0.5:
                r = client.put_record(StreamName=self.stream, PartitionKey=batch[0][0],
                                      Data=batch[0][1])
                entries = [{"ShardId": r["ShardId"], "SequenceNumber": r["SequenceNumber"]}]
            else:
                r = client.put_records(StreamName=self.stream, Records=[
                    {"PartitionKey": pk, "Data": d} for pk, d in batch])
                entries = r["Records"]
                assert len(entries) == n, f"PutRecords answered {len(entries)} entries for {n}"
        except (BotoCoreError, ClientError, OSError):
            self.errors += 1  # server killed mid-request (or refusing): not acknowledged
            self.stop.wait(0.01)
            return
        with led.lock:
            for (pk, data), e in zip(batch, entries):
                if "ErrorCode" in e:
                    continue
                led.acked.append((e["ShardId"], e["SequenceNumber"], pk, data))


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.next_counter = [0] * WRITERS
        self.sent = {}      # (writer, counter) -> (pk, data): everything ever sent
        self.acked = []     # (shard, seq, pk, data): acknowledged


def read_everything(client, stream):
    out = {}
    for sh in k.list_all_shards(client, stream):
        out[sh["ShardId"]] = k.read_shard(client, stream, sh["ShardId"], limit=10000)
    return out


def verify(client, stream, ledger, round_no):
    shards = read_everything(client, stream)
    seen = {}
    present_unacked = 0
    acked_by_shard = {}
    for shard, seq, pk, data in ledger.acked:
        acked_by_shard.setdefault(shard, {})[seq] = (pk, data)
    for sid, recs in shards.items():
        last = -1
        last_counter = {}
        by_seq = {}
        for r in recs:
            seq = int(r["SequenceNumber"])
            assert seq > last, (f"round {round_no}: {sid}: sequence {r['SequenceNumber']} after "
                                f"{last}: duplicate or out of order")
            last = seq
            wc = parse_record(r["Data"])
            assert wc in ledger.sent, f"round {round_no}: {sid}: record {wc} was never sent"
            assert ledger.sent[wc] == (r["PartitionKey"], r["Data"]), \
                f"round {round_no}: {sid}: record {wc} differs from what was sent"
            assert wc not in seen, (f"round {round_no}: record {wc} present twice: "
                                    f"{seen[wc]} and {(sid, r['SequenceNumber'])}")
            seen[wc] = (sid, r["SequenceNumber"])
            w, c = wc
            assert c > last_counter.get(w, -1), \
                f"round {round_no}: {sid}: writer {w}'s records out of send order"
            last_counter[w] = c
            by_seq[r["SequenceNumber"]] = (r["PartitionKey"], r["Data"])
        for seq, want in acked_by_shard.get(sid, {}).items():
            got = by_seq.get(seq)
            assert got is not None, (f"round {round_no}: acknowledged record {sid}/{seq} "
                                     f"missing after kill -9 + restart")
            assert got == want, f"round {round_no}: acknowledged record {sid}/{seq} differs"
    for shard in acked_by_shard:
        assert shard in shards, f"round {round_no}: acknowledged shard {shard} missing"
    acked_keys = {parse_record(d) for _, _, _, d in ledger.acked}
    present_unacked = len(set(seen) - acked_keys)
    return sum(len(v) for v in shards.values()), present_unacked


@pytest.fixture
def crash_server():
    with srv.own_server("kill -9") as s:
        yield s


def test_kill9_under_load(crash_server):
    s = crash_server
    start = time.monotonic()
    rng = random.Random(int(time.time()))
    seed_note = rng.randrange(1 << 30)
    rng = random.Random(seed_note)
    client = k.make_client(s)
    stream = k.unique_name("crash")
    client.create_stream(StreamName=stream, ShardCount=SHARDS)
    k.wait_active(client, stream)
    ledger = Ledger()
    history = []

    for round_no in range(1, ROUNDS + 1):
        if time.monotonic() - start > TOTAL_BUDGET:
            pytest.fail(f"only {round_no - 1}/{ROUNDS} kill -9 rounds fit in {TOTAL_BUDGET}s "
                        f"(seed {seed_note}); history: {history}")
        stop = threading.Event()
        writers = [Writer(i, s, stream, ledger, stop, rng.randrange(1 << 30))
                   for i in range(WRITERS)]
        for w in writers:
            w.start()
        # kill at a random moment: after a random number of new acknowledgements, or a random
        # time, whichever comes first (polling the ledger, bounded)
        base = len(ledger.acked)
        # now and then kill almost at once (right after the restart's recovery)
        want = base + (rng.randint(0, 5) if rng.random() < 0.2 else rng.randint(20, 600))
        until = time.monotonic() + rng.uniform(0.05, 1.5)
        srv.kill9_amid(s, writers, stop, until, lambda: len(ledger.acked) >= want)
        s.start()
        if rng.random() < 0.15:  # crash again straight after recovery, before any traffic
            s.kill9()
            s.start()
        client = k.make_client(s)
        total, unacked_present = verify(client, stream, ledger, round_no)
        history.append((round_no, len(ledger.acked) - base, sum(w.errors for w in writers),
                        total, unacked_present))

    elapsed = time.monotonic() - start
    print(f"kill9: {ROUNDS} rounds in {elapsed:.1f}s, seed {seed_note}, "
          f"{len(ledger.acked)} acknowledged, {len(ledger.sent)} sent; "
          f"(round, new acks, failed requests, records present, unacked present): {history}")
    assert len(ledger.acked) > 0, "no record was ever acknowledged"
    assert elapsed < TOTAL_BUDGET + 30
