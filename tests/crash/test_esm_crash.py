# SPDX-License-Identifier: Apache-2.0
"""Event source mappings under crashes: a handler that segfaults (the server must survive, the
batch is retried, nothing is skipped) and kill -9 of the server mid-processing (after restart
processing resumes from the durable checkpoint: every acknowledged record is delivered at least
once, first deliveries stay in sequence order per shard, and no function host outlives the
server)."""
import os
import random
import signal
import threading
import time

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from helpers import esm
from helpers import kinesis as k
from helpers import lambdafn as lf
from helpers import server as srv
from helpers.esm import probe  # noqa: F401 (fixture)

pytestmark = [pytest.mark.deadline(240)]


@pytest.fixture
def private_server():
    with srv.server_factory("a crash test") as make:
        yield make


def make_pipeline(s, probe, stream="src", shards=1, **mapping):
    kin, lam = k.make_client(s, read_timeout=10), lf.make_client(s)
    for name in (stream, "dst"):
        kin.create_stream(StreamName=name, ShardCount=shards if name == stream else 1)
        k.wait_active(kin, name)
    lam.create_function(FunctionName="f", Runtime=esm.NATIVE_RUNTIME, Role=lf.ROLE,
                        Handler="libprobe.so:handler", Code={"ZipFile": esm.native_zip()},
                        Environment={"Variables": probe.env}, Timeout=10)
    mapping.setdefault("StartingPosition", "TRIM_HORIZON")
    m = lam.create_event_source_mapping(FunctionName="f", EventSourceArn=esm.stream_arn(s, stream),
                                        **mapping)
    esm.wait_state(lam, m["UUID"], "Enabled")
    return kin, lam, m


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_segfaulting_handler_is_contained(private_server, probe):
    s = private_server()
    kin, lam, m = make_pipeline(s, probe, BatchSize=5, MaximumRetryAttempts=1,
                        DestinationConfig={"OnFailure": {"Destination": esm.stream_arn(s, "dst")}})
    data = [f"r{i}" for i in range(10)]
    data[3] = "SEGV"          # crashes the host the first time only
    seqs = esm.put(kin, "src", data)
    probe.wait_records(10)
    assert s.running()
    delivered = [sq for sq, _ in probe.delivered()]
    assert set(delivered) == set(seqs)                            # nothing skipped
    crashed = [inv for inv in probe.invokes() if seqs[3] in inv["seqs"]]
    assert len(crashed) == 2 and crashed[0]["seqs"] == crashed[1]["seqs"]   # retried whole
    assert crashed[0]["pid"] != crashed[1]["pid"]                 # on a fresh host
    assert not alive(crashed[0]["pid"])
    assert esm.read_stream(kin, "dst") == []

    # Crashing every time: retries exhausted, reported, the shard moves on; server still fine.
    bad = esm.put(kin, "src", ["SEGVALWAYS"])
    lf.wait_for(lambda: esm.read_stream(kin, "dst"), 30, what="report of the crashing record")
    (rep,) = esm.read_stream(kin, "dst")
    assert rep["KinesisBatchInfo"]["startSequenceNumber"] == bad[0]
    assert rep["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert rep["responseContext"]["functionError"] == "Unhandled"
    esm.put(kin, "src", ["after"])
    lf.wait_for(lambda: any(d == "after" for _, d in probe.delivered()), 20, what="after")
    # The Invoke API sees the crash as Runtime.ExitError; the server answers on.
    r, body = lf.invoke_json(lam, "f", {"segv": 1})
    assert r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError" and "segmentation fault" in body["errorMessage"]
    r, body = lf.invoke_json(lam, "f", {"ok": 1})
    assert "FunctionError" not in r and body["echo"] == {"ok": 1}
    assert s.running()


def test_hanging_handler_times_out_and_host_is_killed(private_server, probe):
    s = private_server()
    kin, lam = k.make_client(s), lf.make_client(s)
    kin.create_stream(StreamName="src", ShardCount=1)
    k.wait_active(kin, "src")
    lam.create_function(FunctionName="f", Runtime=esm.NATIVE_RUNTIME, Role=lf.ROLE,
                        Handler="libprobe.so:handler", Code={"ZipFile": esm.native_zip()},
                        Environment={"Variables": probe.env}, Timeout=1)
    m = lam.create_event_source_mapping(FunctionName="f", EventSourceArn=esm.stream_arn(s, "src"),
                                        StartingPosition="TRIM_HORIZON", MaximumRetryAttempts=0)
    esm.wait_state(lam, m["UUID"], "Enabled")
    esm.put(kin, "src", ["SLEEP:60000", "next"])
    lf.wait_for(lambda: any(d == "next" for _, d in probe.delivered()), 30, what="next record")
    hung = probe.invokes()[0]["pid"]
    lf.wait_for(lambda: not alive(hung), 5, what="hung host killed")


class Writer(threading.Thread):
    """Puts numbered records until stopped; notes every acknowledged sequence number."""

    def __init__(self, server, stream):
        super().__init__(daemon=True)
        self.server, self.stream = server, stream
        self.acked = {}          # seq -> data
        self.stop = threading.Event()
        self.n = 0
        self.rng = random.Random(7)

    def run(self):
        client = None
        while not self.stop.is_set():
            try:
                if client is None:
                    client = k.make_client(self.server, read_timeout=5)
                recs = []
                for _ in range(self.rng.randint(1, 10)):
                    self.n += 1
                    d = f"n{self.n}" + (" SLEEP:3" if self.n % 7 == 0 else "")
                    recs.append({"PartitionKey": f"key{self.n % 16}", "Data": d.encode()})
                r = client.put_records(StreamName=self.stream, Records=recs)
                for rec, res in zip(recs, r["Records"]):
                    if "SequenceNumber" in res:
                        self.acked[res["SequenceNumber"]] = rec["Data"].decode()
            except (BotoCoreError, ClientError, OSError):
                client = None
                time.sleep(0.05)   # the server is down; retry until it is back


def test_kill9_mid_processing_loses_and_skips_nothing(private_server, probe):
    s = private_server()
    kin, lam, m = make_pipeline(s, probe, shards=2, BatchSize=25)
    w = Writer(s, "src")
    w.start()
    pids_before_kill = set()
    try:
        for rnd in range(5):
            time.sleep(random.uniform(0.4, 1.2))  # a random kill moment: the test
            pids_before_kill |= {inv["pid"] for inv in probe.invokes()}
            s.kill9()
            # Hosts die with the server (PR_SET_PDEATHSIG): no orphans keep running user code.
            lf.wait_for(lambda: not any(alive(p) for p in pids_before_kill), 5,
                        what="function hosts to die with the server")
            s.start()
        time.sleep(0.5)  # load after the last restart, before the writer stops
    finally:
        w.stop.set()
        w.join(10)
    assert len(w.acked) > 50
    lf.wait_for(lambda: set(w.acked) <= {sq for sq, _ in probe.delivered()}, 60,
                what="every acknowledged record delivered")
    # Per shard, first deliveries are in sequence order: nothing was skipped and replayed later.
    first_order = {}
    seen = set()
    for inv in probe.invokes():
        for sq in inv["seqs"]:
            if sq not in seen:
                seen.add(sq)
                first_order.setdefault(inv["shard"], []).append(int(sq))
    for shard, order in first_order.items():
        assert order == sorted(order), shard
    delivered = {sq: d for sq, d in probe.delivered()}
    for sq, data in w.acked.items():
        assert delivered[sq] == data
    assert s.running()
