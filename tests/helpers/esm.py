# SPDX-License-Identifier: Apache-2.0
"""Event-source-mapping test helpers: native and bootstrap packages of tests/functions/probe.c,
its invocation log, stream ARNs, puts, waits.

The probe (see tests/functions/probe.c) appends one JSON line per invocation to $PROBE_OUT and
misbehaves on request (POISON, FAILITEM, SEGV, SEGVALWAYS, SLEEP:<ms>, EXIT in a record's data).
``Probe`` owns a temp dir with that file and the probe's marker files; ``Probe.invokes()`` parses
the lines.  The built probe lives next to the server binary: <build>/functions/libprobe.so and
<build>/functions/probe-bootstrap (CMake target ``probe``).
"""
import base64
import json
import os
import pathlib
import shutil
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from helpers import kinesis as k
from helpers import lambdafn as lf
from helpers import server as srv

NATIVE_RUNTIME = "tributary.c1"


def functions_dir():
    return pathlib.Path(srv.server_bin()).resolve().parent / "functions"


def native_zip(lib="probe"):
    so = (functions_dir() / f"lib{lib}.so").read_bytes()
    return lf.make_zip({f"lib{lib}.so": (so, 0o755)})


def bootstrap_zip(lib="probe"):
    """The same handler source built as a provided.al2023 bootstrap (tributary_function())."""
    b = (functions_dir() / f"{lib}-bootstrap").read_bytes()
    return lf.make_zip({"bootstrap": (b, 0o755)})


def stream_arn(server, name):
    return f"arn:aws:kinesis:{server.region}:{server.account or '000000000000'}:stream/{name}"


class Probe:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="probe-")
        self.out = os.path.join(self.dir, "out.jsonl")

    @property
    def env(self):
        return {"PROBE_OUT": self.out, "PROBE_DIR": self.dir}

    def invokes(self, kind="kinesis"):
        if not os.path.exists(self.out):
            return []
        res = []
        with open(self.out) as f:
            for line in f:
                line = line.strip()
                if line:
                    j = json.loads(line)
                    if kind is None or j.get("kind") == kind:
                        res.append(j)
        return res

    def delivered(self):
        """Every (seq, data) delivered, in delivery order (repeats included)."""
        return [(s, d) for inv in self.invokes() for s, d in zip(inv["seqs"], inv["data"])]

    def wait_records(self, n, timeout=20, what=None):
        """Wait until at least n distinct sequence numbers were delivered."""
        return lf.wait_for(lambda: len({s for s, _ in self.delivered()}) >= n, timeout,
                           what=what or f"{n} records delivered")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def put(kinesis, stream, datas, pk="k", explicit=None):
    """PutRecord each item (str/bytes, or (pk, data)); returns the sequence numbers in order."""
    seqs = []
    for d in datas:
        key = pk
        if isinstance(d, tuple):
            key, d = d
        if isinstance(d, str):
            d = d.encode()
        kw = dict(StreamName=stream, Data=d, PartitionKey=key)
        if explicit is not None:
            kw["ExplicitHashKey"] = explicit
        seqs.append(kinesis.put_record(**kw)["SequenceNumber"])
    return seqs


def read_stream(kinesis, stream):
    """All records of every shard of a stream (TRIM_HORIZON), as parsed JSON where possible."""
    out = []
    for sh in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=sh["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            r = kinesis.get_records(ShardIterator=it, Limit=1000)
            for rec in r["Records"]:
                try:
                    out.append(json.loads(rec["Data"]))
                except ValueError:
                    out.append(rec["Data"])
            if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
                break
            it = r.get("NextShardIterator")
    return out


def wait_state(lam, uuid, state, timeout=20):
    return lf.wait_for(lambda: lam.get_event_source_mapping(UUID=uuid)["State"] == state and True,
                       timeout, what=f"mapping {uuid} {state}")


def wait_gone(lam, uuid, timeout=20):
    def gone():
        try:
            lam.get_event_source_mapping(UUID=uuid)
            return False
        except ClientError as e:
            return e.response["Error"]["Code"] == "ResourceNotFoundException"
    return lf.wait_for(gone, timeout, what=f"mapping {uuid} deleted")


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def probe():
    p = Probe()
    yield p
    p.cleanup()


@pytest.fixture
def make_mapping(lam, request):
    """Factory: create a mapping (kwargs as CreateEventSourceMapping), wait Enabled, delete at
    teardown.  Returns the response."""
    created = []

    def make(client=None, wait=True, **kw):
        c = client or lam
        kw.setdefault("StartingPosition", "TRIM_HORIZON")
        m = c.create_event_source_mapping(**kw)
        created.append((c, m["UUID"]))
        if wait and kw.get("Enabled", True):
            wait_state(c, m["UUID"], "Enabled")
        return m

    yield make
    for c, uuid in created:
        try:
            c.delete_event_source_mapping(UUID=uuid)
        except Exception:
            pass


@pytest.fixture
def native_function(make_function, probe):
    """Factory: a native probe function (Runtime tributary.c1); returns its name."""
    def make(runtime=NATIVE_RUNTIME, env=None, **kw):
        e = dict(probe.env)
        e.update(env or {})
        if runtime == NATIVE_RUNTIME:
            return make_function(zip=native_zip(), runtime=runtime, handler_name="libprobe.so:handler",
                                 env=e, **kw)
        return make_function(zip=bootstrap_zip(), runtime=runtime,
                             handler_name="libprobe.so:handler", env=e, **kw)
    return make


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def now():
    return time.time()
