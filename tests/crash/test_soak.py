# SPDX-License-Identifier: Apache-2.0
"""Crash-and-corruption soak: random kill -9 plus random damage to files at rest, against an
oracle of acknowledged writes in all three engines.

Each round runs writers for a while -- Kinesis PutRecord(s) of self-checking records, DynamoDB
PutItem of self-checking versioned items, Lambda UpdateFunctionCode of numbered code versions --
noting exactly what each answer acknowledged (and which PutRecords entries it answered failed).
At a random moment the server gets SIGKILL; while it is down, random damage is done to its files
(below); it is restarted on the same data directory and everything is read back and counted:

  lost         acknowledged writes not readable (a record missing or differing at its
               acknowledged shard/sequence number; an item older than its acknowledged version;
               a function whose code is older than the acknowledged version or does not run)
  duplicated   a record present twice (same writer/counter), sequence numbers not increasing
  misreported  present but never acknowledged-able: a record answered with an ErrorCode, bytes
               nobody sent, a torn item, code nobody uploaded
  reported     acknowledged records missing because a byte flip landed in their frames and the
               server reported it (a log line saying damage/corrupt names the segment) --
               allowed; any other missing record counts as lost

All must be 0 except `reported`.  The run is bounded: TRIBUTARY_SOAK_SECONDS (default 75) of
rounds; `make soak` runs 1800 s.  A failing round prints the seed (TRIBUTARY_SOAK_SEED replays
it, modulo thread timing).

Damage at rest, and what is expected of each:
  seg-tail-garbage   random bytes appended to the active segment of a shard (a torn write of
                     data never acknowledged): recovery truncates them; nothing acknowledged lost.
  seg-tail-zeros     zeros appended (a file extended but never written, as after power loss on
                     some filesystems): truncated likewise.
  seg-tail-replay    a copy of the segment's last bytes appended (whole frames with old sequence
                     numbers, then a cut one): must not come back as duplicates.
  seg-idx            a sealed segment's .idx file (its saved index) flipped, truncated or
                     removed: the engine checks it (CRC32C, size, seq range), rescans the
                     segment and rewrites it; nothing lost.  (The server runs with 256 KiB
                     segments, --test-segment-kb, so rounds see sealed segments and rolls.)
  seg-mid-flip       bytes flipped inside committed data of a segment (on by default;
                     TRIBUTARY_SOAK_MID_SEGMENT=0 leaves it out).  Expected: every record outside the
                     damaged frames is intact and readable; a record in a damaged frame may be
                     missing only if the server's log reports that segment damaged (the soak
                     parses the segment's frames to know which records a flip landed in).
  lmdb-lock          a lock.mdb (stream metadata, tables, functions) overwritten with garbage or
                     removed (the reader table of a crashed process): LMDB rebuilds it when it
                     opens the environment first; nothing lost.
  lmdb-tail          garbage appended past the end of a data.mdb (pages LMDB has not used): LMDB
                     never reads past its last page; nothing lost.
                     Not applied: flipping bytes in pages LMDB uses.  LMDB keeps no page
                     checksums, so such damage cannot be detected, only prevented (copy-on-write
                     pages, synced meta page); a soak cannot tell right from wrong there.
  (disk full)        not damage at rest: a quarter of the runs start with one shard's writes
                     failing with ENOSPC (--test-enospc-shard), so PutRecords answers some
                     records InternalFailure -- those must then be absent (`misreported`).
  fn-orphans         stray code files in a function's directory (a code-<hex>.zip nobody names,
                     a half-unpacked code-<hex>.tmp directory, as a crash mid-upload leaves):
                     removed when the engine opens; the functions' code is unaffected.
"""
import hashlib
import os
import pathlib
import random
import re
import threading
import time

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from crash.test_kill9 import make_record, parse_record, read_everything
from helpers import dynamodb as d
from helpers import kinesis as k
from helpers import lambdafn as lf
from helpers import server as srv

# Switch for damage inside committed segment data (see the module text).
MID_SEGMENT_DAMAGE = os.environ.get("TRIBUTARY_SOAK_MID_SEGMENT", "1") == "1"

SOAK_SECONDS = float(os.environ.get("TRIBUTARY_SOAK_SECONDS", "75"))
SHARDS = 3
K_WRITERS = 2
FUNCTIONS = 2
# small segments (testing option): rounds see sealed segments, their .idx files and rolls
BASE_ARGS = ["--test-segment-kb", "256"]

pytestmark = [pytest.mark.deadline(int(SOAK_SECONDS) + 150)]


# ---- the oracle ---------------------------------------------------------------------------------

class Oracle:
    def __init__(self):
        self.lock = threading.Lock()
        self.next_counter = [0] * K_WRITERS
        self.sent = {}        # (writer, counter) -> (pk, data)
        self.acked = {}       # (writer, counter) -> (shard, seq)
        self.failed = set()   # (writer, counter) answered with an ErrorCode
        self.item_sent = {}   # key -> highest version sent
        self.item_acked = {}  # key -> highest version acknowledged
        self.code_sent = {}   # function -> highest version sent
        self.code_acked = {}  # function -> highest version acknowledged
        self.code_sha = {}    # (function, version) -> CodeSha256
        self.code_hex = set()  # SHA-256 hex of every package sent (names of its code files)


def code_zip(fn, version):
    """A deployment package whose handler answers "<fn>:v<version>" (plus padding so the zips
    differ in size and content)."""
    tag = f"{fn}:v{version}"
    handler = f"handler() {{ printf '%s' '\"{tag}\"'; }}\n# {'x' * (version % 97)}\n"
    return lf.make_zip({"bootstrap": (lf.RICH_BOOTSTRAP, 0o755), "function.sh": handler})


class Writer(threading.Thread):
    """One client doing one kind of write until stopped; failures to reach the server are not
    acknowledgements."""

    def __init__(self, kind, wid, server, names, oracle, stop, seed):
        super().__init__(daemon=True, name=f"soak-{kind}-{wid}")
        self.kind, self.wid, self.server, self.names = kind, wid, server, names
        self.o, self.stop = oracle, stop
        self.rng = random.Random(seed)
        self.failure = None

    def run(self):
        try:
            if self.kind == "kinesis":
                c = k.make_client(self.server, read_timeout=10)
            elif self.kind == "dynamodb":
                c = d.make_client(self.server, read_timeout=10)
            else:
                c = lf.make_client(self.server, read_timeout=20)
            while not self.stop.is_set():
                try:
                    getattr(self, self.kind)(c)
                except (BotoCoreError, ClientError, OSError):
                    self.stop.wait(0.01)  # killed mid-request (or refused): not acknowledged
        except BaseException as e:  # surfaced by the main thread
            self.failure = e

    def kinesis(self, c):
        o, rng = self.o, self.rng
        batch = []
        for _ in range(rng.randint(1, 12)):
            with o.lock:
                counter = o.next_counter[self.wid]
                o.next_counter[self.wid] += 1
            pk = f"w{self.wid}-k{rng.randrange(16)}"
            data = make_record(self.wid, counter, rng)
            o.sent[(self.wid, counter)] = (pk, data)
            batch.append(((self.wid, counter), pk, data))
        if len(batch) == 1 and rng.random() < 0.5:
            r = c.put_record(StreamName=self.names["stream"], PartitionKey=batch[0][1],
                             Data=batch[0][2])
            entries = [r]
        else:
            entries = c.put_records(StreamName=self.names["stream"], Records=[
                {"PartitionKey": pk, "Data": data} for _, pk, data in batch])["Records"]
        with o.lock:
            for (wc, _, _), e in zip(batch, entries):
                if "ErrorCode" in e:
                    o.failed.add(wc)
                else:
                    o.acked[wc] = (e["ShardId"], e["SequenceNumber"])

    def dynamodb(self, c):
        o, rng = self.o, self.rng
        key = f"w{self.wid}-k{rng.randrange(8)}"
        with o.lock:
            v = o.item_sent.get(key, 0) + 1
            o.item_sent[key] = v
        body = rng.randbytes(rng.choice([0, 10, 300, 3000, 20000])).hex()
        sha = hashlib.sha256(f"{key}|{v}|{body}".encode()).hexdigest()
        c.put_item(TableName=self.names["table"], Item={
            "pk": {"S": key}, "ver": {"N": str(v)}, "body": {"S": body}, "sha": {"S": sha}})
        with o.lock:
            o.item_acked[key] = max(o.item_acked.get(key, 0), v)

    def code(self, c):
        o, rng = self.o, self.rng
        fn = rng.choice(self.names["functions"])
        with o.lock:
            v = o.code_sent[fn] + 1
            o.code_sent[fn] = v
        z = code_zip(fn, v)
        o.code_sha[(fn, v)] = lf.code_sha256(z)
        o.code_hex.add(hashlib.sha256(z).hexdigest())
        c.update_function_code(FunctionName=fn, ZipFile=z)
        with o.lock:
            o.code_acked[fn] = max(o.code_acked[fn], v)
        self.stop.wait(rng.uniform(0.05, 0.3))


# ---- damage at rest ---------------------------------------------------------------------------

def segments(data_dir):
    return sorted(p for p in (data_dir / "streams").glob("*/*/*.seg") if p.is_file())


def active_segments(data_dir):
    """The newest segment of each shard directory."""
    last = {}
    for p in segments(data_dir):
        last[p.parent] = p
    return list(last.values())


def frames_hit(path, lo, hi):
    """Counters of the records whose frames overlap bytes [lo, hi) of a segment (format of
    src/log/shard.h: a 16-byte header, then frames u32 len, u32 crc, u64 seq, i64 arrival,
    u16 pk_len, pk, data, little-endian).  Damage to the header hits every record."""
    import struct
    data = pathlib.Path(path).read_bytes()
    out, off = set(), 16
    while off + 26 <= len(data):
        flen, _, seq = struct.unpack_from("<IIQ", data, off)
        if flen < 26 or off + flen > len(data):
            break
        if lo < 16 or (off < hi and lo < off + flen):
            out.add(seq)
        off += flen
    return out


def lmdb_dirs(data_dir):
    return sorted({p.parent for p in data_dir.rglob("data.mdb")})


def damage(data_dir, rng, notes, hit):
    """Apply 1-3 random kinds of damage to the stopped server's files; notes what was done and
    adds to `hit` the (shard index, counter, segment) of every record a byte flip landed in."""
    kinds = ["seg-tail-garbage", "seg-tail-zeros", "seg-tail-replay", "seg-idx", "lmdb-lock",
             "lmdb-tail", "fn-orphans"]
    if MID_SEGMENT_DAMAGE:
        kinds += ["seg-mid-flip"] * 2
    for kind in rng.sample(kinds, rng.randint(1, 3)):
        if kind.startswith("seg-tail"):
            segs = active_segments(data_dir)
            if not segs:
                continue
            p = rng.choice(segs)
            size = p.stat().st_size
            if kind == "seg-tail-garbage":
                extra = rng.randbytes(rng.randint(1, 4096))
            elif kind == "seg-tail-zeros":
                extra = bytes(rng.randint(1, 8192))
            else:
                with open(p, "rb") as f:
                    n = min(size, rng.randint(1, 16384))
                    f.seek(size - n)
                    extra = f.read(n)
                    extra = extra[:rng.randint(1, len(extra))] if extra else b""
            with open(p, "ab") as f:
                f.write(extra)
            notes.append((kind, str(p.relative_to(data_dir)), len(extra)))
        elif kind == "seg-idx":
            idx = sorted((data_dir / "streams").glob("*/*/*.idx"))
            if not idx:
                continue
            p = rng.choice(idx)
            how = rng.choice(["flip", "truncate", "remove"])
            if how == "remove":
                p.unlink()
            elif how == "truncate":
                os.truncate(p, rng.randrange(max(1, p.stat().st_size)))
            else:
                b = bytearray(p.read_bytes())
                if b:
                    i = rng.randrange(len(b))
                    b[i] ^= 1 << rng.randrange(8)
                    p.write_bytes(bytes(b))
            notes.append((kind, str(p.relative_to(data_dir)), how))
        elif kind == "seg-mid-flip":
            segs = [p for p in segments(data_dir) if p.stat().st_size > 64]
            if not segs:
                continue
            p = rng.choice(segs)
            size = p.stat().st_size
            at, n = rng.randrange(size), rng.randint(1, 8)
            rel = str(p.relative_to(data_dir))
            hit.update((int(p.parent.name), c, rel) for c in frames_hit(p, at, at + n))
            with open(p, "r+b") as f:
                for i in range(n):
                    f.seek(min(size - 1, at + i))
                    b = f.read(1)
                    f.seek(min(size - 1, at + i))
                    f.write(bytes([b[0] ^ (1 << rng.randrange(8))]))
            notes.append((kind, str(p.relative_to(data_dir)), at))
        elif kind == "lmdb-lock":
            dirs = lmdb_dirs(data_dir)
            if not dirs:
                continue
            p = rng.choice(dirs) / "lock.mdb"
            if rng.random() < 0.5:
                p.unlink(missing_ok=True)
                notes.append((kind, str(p.relative_to(data_dir)), "removed"))
            else:
                p.write_bytes(rng.randbytes(rng.randint(1, 8192)))
                notes.append((kind, str(p.relative_to(data_dir)), "garbage"))
        elif kind == "lmdb-tail":
            dirs = lmdb_dirs(data_dir)
            if not dirs:
                continue
            p = rng.choice(dirs) / "data.mdb"
            n = rng.randint(1, 3) * 4096
            with open(p, "ab") as f:
                f.write(rng.randbytes(n))
            notes.append((kind, str(p.relative_to(data_dir)), n))
        elif kind == "fn-orphans":
            fdirs = [p for p in (data_dir / "functions").iterdir() if p.is_dir()] \
                if (data_dir / "functions").is_dir() else []
            if not fdirs:
                continue
            fd = rng.choice(fdirs)
            hx = rng.randbytes(32).hex()
            (fd / f"code-{hx}.zip").write_bytes(rng.randbytes(rng.randint(1, 3000)))
            tmp = fd / f"code-{rng.randbytes(32).hex()}.tmp"
            tmp.mkdir()
            (tmp / "bootstrap").write_bytes(b"#!/bin/sh\nexit 1\n")
            notes.append((kind, str(fd.relative_to(data_dir)), hx[:8]))


# ---- verification -----------------------------------------------------------------------------

def verify(server, names, o, counts, log_mark, hit):
    """Read everything back; add to counts; returns a list of human-readable findings.  An
    acknowledged record may be missing only if a byte flip landed in its frame (`hit`) and the
    server's log since its start (text after log_mark) reports that segment damaged -- at
    recovery, or while this read-back met the damage in a sealed segment trusted from its index."""
    found = []
    kc = k.make_client(server)
    shards = read_everything(kc, names["stream"])
    seen = {}
    acked_at = {v: wc for wc, v in o.acked.items()}
    for sid, recs in shards.items():
        last = -1
        for r in recs:
            seq = int(r["SequenceNumber"])
            if seq <= last:
                counts["duplicated"] += 1
                found.append(f"{sid}: sequence {seq} after {last}")
            last = max(last, seq)
            try:
                wc = parse_record(r["Data"])
            except AssertionError as e:
                counts["misreported"] += 1
                found.append(f"{sid}/{seq}: {e}")
                continue
            if o.sent.get(wc) != (r["PartitionKey"], r["Data"]):
                counts["misreported"] += 1
                found.append(f"{sid}/{seq}: record {wc} is not what was sent")
                continue
            if wc in seen:
                counts["duplicated"] += 1
                found.append(f"record {wc} present twice: {seen[wc]} and {sid}/{seq}")
            seen[wc] = (sid, r["SequenceNumber"])
            if wc in o.failed:
                counts["misreported"] += 1
                found.append(f"record {wc} was answered failed but is stored at {sid}/{seq}")
            owner = acked_at.get((sid, r["SequenceNumber"]))
            if owner is not None and owner != wc:
                counts["misreported"] += 1
                found.append(f"{sid}/{seq} holds {wc}, acknowledged for {owner}")
    new_log = server.log_text()[log_mark:]     # after the read-back: readers report too
    reported = {line for line in new_log.splitlines() if re.search(r"(?i)damage|corrupt", line)}
    for wc, (sid, seq) in o.acked.items():
        if seen.get(wc) == (sid, seq):
            continue
        shard, counter = int(sid.split("-")[1]), int(seq[14:])
        segs = {seg for sh, c, seg in hit if (sh, c) == (shard, counter)}
        if any(seg in line for seg in segs for line in reported):
            counts["reported"] += 1
        else:
            counts["lost"] += 1
            found.append(f"acknowledged record {wc} at {sid}/{seq} "
                         f"{'elsewhere: ' + str(seen[wc]) if wc in seen else 'missing'}")

    dc = d.make_client(server)
    items, start = {}, None
    while True:
        kw = {"ExclusiveStartKey": start} if start else {}
        r = dc.scan(TableName=names["table"], ConsistentRead=True, **kw)
        items.update({i["pk"]["S"]: i for i in r["Items"]})
        start = r.get("LastEvaluatedKey")
        if not start:
            break
    for key, it in items.items():
        v = int(it["ver"]["N"])
        want = hashlib.sha256(f"{key}|{v}|{it['body']['S']}".encode()).hexdigest()
        if it["sha"]["S"] != want or v > o.item_sent.get(key, 0):
            counts["misreported"] += 1
            found.append(f"item {key} v{v} is torn or was never sent")
    for key, v in o.item_acked.items():
        got = int(items[key]["ver"]["N"]) if key in items else 0
        if got < v:
            counts["lost"] += 1
            found.append(f"item {key}: acknowledged v{v}, stored v{got or '-'}")

    lc = lf.make_client(server, read_timeout=30)
    for fn in names["functions"]:
        cfg = lc.get_function(FunctionName=fn)["Configuration"]
        versions = [v for (f, v), sha in o.code_sha.items()
                    if f == fn and sha == cfg["CodeSha256"]]
        if not versions:
            counts["misreported"] += 1
            found.append(f"function {fn}: CodeSha256 {cfg['CodeSha256']} was never uploaded")
            continue
        v = max(versions)
        if v < o.code_acked[fn]:
            counts["lost"] += 1
            found.append(f"function {fn}: code v{v}, acknowledged v{o.code_acked[fn]}")
        r, out = lf.invoke_json(lc, fn, {})
        if out != f"{fn}:v{v}":
            counts["lost"] += 1
            found.append(f"function {fn}: registry says v{v}, the code run answered {out!r}")
    fdir = server.data_dir / "functions"
    strays = [p for p in fdir.glob("*/code-*") if p.suffix == ".tmp" or (
        p.suffix == ".zip" and p.stem[5:] not in o.code_hex)]
    if strays:
        counts["leaked"] += len(strays)
        found.append(f"stray code files left after open: {[str(p) for p in strays[:4]]}")
    return found


# ---- the soak ---------------------------------------------------------------------------------

@pytest.fixture
def soak_server():
    with srv.own_server("the soak", extra_args=BASE_ARGS) as s:
        yield s


def test_crash_and_corruption_soak(soak_server):
    s = soak_server
    seed = int(os.environ.get("TRIBUTARY_SOAK_SEED", "0")) or \
        random.Random(time.time()).randrange(1 << 30)
    rng = random.Random(seed)
    o = Oracle()
    names = {"stream": k.unique_name("soak"), "table": d.unique_table("soak"),
             "functions": [lf.unique_name(f"soak{i}") for i in range(FUNCTIONS)]}
    kc = k.make_client(s)
    kc.create_stream(StreamName=names["stream"], ShardCount=SHARDS)
    k.wait_active(kc, names["stream"])
    dc = d.make_client(s)
    dc.create_table(TableName=names["table"], KeySchema=d.key_schema("pk"),
                    AttributeDefinitions=d.attr_defs(pk="S"), BillingMode="PAY_PER_REQUEST")
    d.wait_active(dc, names["table"])
    lc = lf.make_client(s)
    for fn in names["functions"]:
        z = code_zip(fn, 0)
        o.code_sha[(fn, 0)] = lf.code_sha256(z)
        o.code_hex.add(hashlib.sha256(z).hexdigest())
        lc.create_function(FunctionName=fn, Runtime="provided.al2023", Role=lf.ROLE,
                           Handler="function.handler", Code={"ZipFile": z})
        o.code_sent[fn] = o.code_acked[fn] = 0

    counts = {"lost": 0, "duplicated": 0, "misreported": 0, "reported": 0, "leaked": 0}
    hit = set()   # (shard, counter, segment) of records whose frames a byte flip landed in
    history = []
    start = time.monotonic()
    round_no = 0
    while time.monotonic() - start < SOAK_SECONDS:
        round_no += 1
        stop = threading.Event()
        writers = [Writer("kinesis", i, s, names, o, stop, rng.randrange(1 << 30))
                   for i in range(K_WRITERS)]
        writers.append(Writer("dynamodb", 0, s, names, o, stop, rng.randrange(1 << 30)))
        writers.append(Writer("code", 0, s, names, o, stop, rng.randrange(1 << 30)))
        for w in writers:
            w.start()
        # now and then kill almost at once; usually after some traffic
        srv.kill9_amid(s, writers, stop, time.monotonic() + (
            rng.uniform(0.0, 0.1) if rng.random() < 0.2 else rng.uniform(0.3, 2.0)),
            note=f" (seed {seed})")
        notes = []
        damage(s.data_dir, rng, notes, hit)
        # now and then the next run has one shard's disk full (testing option): its records are
        # answered InternalFailure and must then be absent, the other shards' committed
        s.extra_args = list(BASE_ARGS)
        if rng.random() < 0.25:
            full = rng.randrange(SHARDS)
            s.extra_args += ["--test-enospc-shard", str(full)]
            notes.append(("next-run-disk-full", f"shard {full}", ""))
        log_mark = len(s.log_text())
        try:
            s.start()
        except srv.ServerError as e:
            pytest.fail(f"round {round_no} (seed {seed}): the server did not come back after "
                        f"kill -9 and damage {notes}: {e}", pytrace=False)
        found = verify(s, names, o, counts, log_mark, hit)
        history.append((round_no, notes))
        if found:
            pytest.fail(f"round {round_no} (seed {seed}) after damage {notes}: "
                        f"counts {counts}:\n  " + "\n  ".join(found[:20]), pytrace=False)

    acked = len(o.acked)
    print(f"soak: {round_no} rounds in {time.monotonic() - start:.0f} s, seed {seed}, "
          f"mid-segment damage {'on' if MID_SEGMENT_DAMAGE else 'off'}; records acknowledged "
          f"{acked} (answered failed {len(o.failed)}), items {sum(o.item_acked.values())}, "
          f"code versions {sum(o.code_acked.values())}; counts {counts}; damage per round: "
          f"{history}")
    assert counts["lost"] == counts["duplicated"] == counts["misreported"] == 0, counts
    assert counts["leaked"] == 0, counts
    assert acked > 0 and sum(o.item_acked.values()) > 0, "nothing was acknowledged"
    assert round_no >= 3, f"only {round_no} rounds in {SOAK_SECONDS} s"
