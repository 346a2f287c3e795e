#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The main job: simulated IoT devices -> Kinesis stream -> a native C function -> DynamoDB tables.

Starts `build/tributary serve` on a free loopback port (data dir: --data, default a fresh
./tributary-data/demo-<time>), creates the stream `iot-telemetry` (--shards, default 4), an
on-failure stream, and the tables device_latest (device), device_minute (device, minute) and
alerts (device, seq).  Builds examples/functions/iot.c with scripts/tributary-cc, deploys it as
Runtime tributary.c1 and maps the stream to it (MAPPING below: BatchSize 10000,
ParallelizationFactor 10, TRIM_HORIZON, ReportBatchItemFailures, MaximumRetryAttempts 1,
BisectBatchOnFunctionError, OnFailure -> the on-failure stream).  The function writes the tables
in-process (trf_table_send/flush), folding each batch's readings per device and per minute
before writing: latest reading per device, per-device-per-minute count/sum/min/max, and alerts
in one TransactWriteItems with the aggregate.

For --duration seconds (0: until Ctrl-C) --devices simulated devices send readings
(temperature, humidity, battery, occasional faults, ~0.05% malformed messages) with PutRecords;
every second it prints the put rate, the mapping's invocations and records per second, its
IteratorAge and the alerts so far.  Then it waits (at most --wait seconds) until every
acknowledged valid reading is applied -- on this 2-core machine under a second after the
producers stop (bench/results/pipeline.md) -- reads the whole stream back (the longest part
after producing: 20-30 s for the default run's ~475,000 records) and checks itself:
  - every acknowledged record is in the stream, and is either applied to the tables or inside
    a batch range (shard, start..end sequence number) that the mapping sent to the on-failure
    stream;
  - malformed records never reached the tables (each is inside such a range);
  - device_minute (count, sum, min, max, alerts), device_latest and alerts equal a recount made
    by reading the stream with GetRecords over the records not sent to the on-failure stream.
Exit status 0 only if the check passes.  The summary says how long each part took.  A malformed
reading costs no function error (expect 0): iot.c reports it as a batch item failure, so the
mapping splits the batch there -- the reading alone is retried once and then sent to the
on-failure stream, the readings after it come back as a new batch -- at most 2 more invocations
per malformed reading.

The data directory (50-150 MB) is removed at the end of a passing run, unless --keep (or
TRIBUTARY_DEMO_KEEP=1) is given or the directory existed before; a failing run keeps it (with
server.log) for a look.

Uses boto3 exactly as against AWS (endpoint_url is the only difference).
"""
import argparse
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tempfile
import time
import urllib.request
import zipfile
from decimal import Decimal

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, data, port, key, secret, log):
    env = dict(os.environ, TRIBUTARY_ACCESS_KEY_ID=key, TRIBUTARY_SECRET_ACCESS_KEY=secret)
    proc = subprocess.Popen([binary, "serve", "--data", data, "--port", str(port), "--bind", "127.0.0.1"],
                            env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: server exited with status {proc.returncode}; see {log.name}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("demo: server did not start listening within 30 s")


ALERT_TEMP = Decimal(60)
REGION = "us-east-1"
# The event source mapping's settings (bench/pipeline.py measures the pipeline with these too;
# bench/results/pipeline.md has the figures behind each choice).
#   BatchSize 10000 (AWS's maximum): a batch is whatever has arrived while the previous one ran,
#     so batches stay small (and latency low) while the function keeps up and grow when it falls
#     behind -- and iot.c folds a batch's readings per device-minute (one counter update and two
#     guarded min/max writes however many readings), so a big batch costs little more than a
#     small one.
#   ParallelizationFactor 10 (AWS's maximum): 10 batches of each shard in flight, each on its
#     own partition keys (order per device is kept).  A malformed reading stalls one lane for its
#     retry (a 20 ms back-off and an invocation of the reading alone), not the whole shard.
#   BisectBatchOnFunctionError: needed for the split at a reported reading; without it the
#     mapping retries the reading with every reading after it and, after MaximumRetryAttempts,
#     sends them all to the on-failure stream unapplied.
#   No MaximumBatchingWindowInSeconds: it would hold every batch up to a whole second.
MAPPING = dict(BatchSize=10000, ParallelizationFactor=10,
               FunctionResponseTypes=["ReportBatchItemFailures"],
               MaximumRetryAttempts=1, BisectBatchOnFunctionError=True)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = 0          # records acknowledged by PutRecords
        self.retried = 0        # records the server asked us to resend
        self.malformed_sent = 0
        self.malformed_acked = 0
        self.faults_sent = 0
        self.acked_seqs = []    # (shard id, sequence number) of every acknowledged record


def producer(kin, stream, devices, stop, stats, rnd_seed, batch):
    rnd = random.Random(rnd_seed)
    counters = {d: 0 for d in devices}
    state = {d: (20 + rnd.random() * 10, 40 + rnd.random() * 20, 100.0) for d in devices}
    while not stop.is_set():
        entries, bad = [], set()
        for _ in range(batch):
            d = rnd.choice(devices)
            counters[d] += 1
            n = counters[d]
            t, h, b = state[d]
            t += rnd.gauss(0, 0.3)
            h += rnd.gauss(0, 0.5)
            b = max(0.0, b - rnd.random() * 0.01)
            state[d] = (t, h, b)
            fault = rnd.random() < 0.001
            if rnd.random() < 0.0005:
                data = b'{"device": "' + d.encode() + b'", "n": ' + str(n).encode() + b', "temp'  # malformed
                bad.add(len(entries))
                with stats.lock:
                    stats.malformed_sent += 1
            else:
                data = json.dumps({"device": d, "n": n, "ts": int(time.time() * 1000),
                                   "temperature": round(t + (80 if fault else 0), 2),
                                   "humidity": round(h, 1), "battery": round(b, 2),
                                   "fault": "overheat" if fault else None}).encode()
                if fault:
                    with stats.lock:
                        stats.faults_sent += 1
            entries.append({"PartitionKey": d, "Data": data})
        pending = list(range(len(entries)))
        while pending:
            resp = kin.put_records(StreamName=stream, Records=[entries[i] for i in pending])
            again = []
            with stats.lock:
                for i, r in zip(pending, resp["Records"]):
                    if "ErrorCode" in r:
                        again.append(i)
                        stats.retried += 1
                    else:
                        stats.acked_seqs.append((r["ShardId"], int(r["SequenceNumber"])))
                        stats.acked += 1
                        stats.malformed_acked += i in bad
            if again:
                time.sleep(0.05)
            pending = again


# ---- reading back ------------------------------------------------------------------------------

def read_stream(kin, stream):
    """Every record of every shard: [(shard id, sequence number, data bytes)]."""
    out = []
    for sh in kin.list_shards(StreamName=stream)["Shards"]:
        it = kin.get_shard_iterator(StreamName=stream, ShardId=sh["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            resp = kin.get_records(ShardIterator=it, Limit=10000)
            out.extend((sh["ShardId"], int(r["SequenceNumber"]), r["Data"]) for r in resp["Records"])
            it = resp.get("NextShardIterator")
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break
    return out


def failure_ranges(kin, stream):
    """The on-failure destination's batch ranges: {shard id: [(start, end)]}."""
    ranges = {}
    for _, _, data in read_stream(kin, stream):
        info = json.loads(data)["KinesisBatchInfo"]
        ranges.setdefault(info["shardId"], []).append(
            (int(info["startSequenceNumber"]), int(info["endSequenceNumber"])))
    return ranges


def covered(ranges, shard, seq):
    return any(a <= seq <= b for a, b in ranges.get(shard, ()))


def parse_reading(data):
    """The reading as the function sees it, or None when malformed (iot.c's rule)."""
    try:
        doc = json.loads(data, parse_float=Decimal)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    t, d = doc.get("temperature"), doc.get("device")
    if isinstance(t, bool) or not isinstance(t, (int, Decimal)) or not isinstance(d, str) or not d:
        return None
    return doc


def recount(records, ranges):
    """Expected tables from the records not sent to the on-failure destination."""
    minutes, latest, alerts, applied, malformed_applied = {}, {}, 0, 0, 0
    for shard, seq, data in records:
        if covered(ranges, shard, seq):
            continue
        doc = parse_reading(data)
        if doc is None:
            malformed_applied += 1      # a malformed record outside every range: a failure
            continue
        applied += 1
        t = Decimal(doc["temperature"])
        minute = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(doc["ts"] // 1000))
        m = minutes.setdefault((doc["device"], minute),
                               {"count": 0, "sum": Decimal(0), "min": t, "max": t, "alerts": 0})
        m["count"] += 1
        m["sum"] += t
        m["min"] = min(m["min"], t)
        m["max"] = max(m["max"], t)
        if doc.get("fault") or t > ALERT_TEMP:
            m["alerts"] += 1
            alerts += 1
        if doc["device"] not in latest or latest[doc["device"]] < doc["n"]:
            latest[doc["device"]] = doc["n"]
    return minutes, latest, alerts, applied, malformed_applied


def scan(ddb, table, **kw):
    items, start = [], None
    while True:
        if start:
            kw["ExclusiveStartKey"] = start
        resp = ddb.scan(TableName=table, **kw)
        items.extend(resp["Items"])
        start = resp.get("LastEvaluatedKey")
        if not start:
            return items


def applied_count(ddb):
    return sum(int(i["count"]["N"]) for i in scan(ddb, "device_minute", ProjectionExpression="#c",
                                                  ExpressionAttributeNames={"#c": "count"})
               if "count" in i)


def metrics(port):
    """The mapping's counters from GET /metrics (Prometheus text)."""
    out = {}
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("tributary_esm_"):
            name, _, v = line.rpartition(" ")
            out[name.split("{")[0]] = out.get(name.split("{")[0], 0) + float(v)
    return out


# ---- setup ------------------------------------------------------------------------------------

def build_function(work):
    """examples/functions/iot.c -> libiot.so with the project's tributary-cc, zipped."""
    so = os.path.join(work, "libiot.so")
    subprocess.run([os.path.join(ROOT, "scripts", "tributary-cc"), "-o", so,
                    os.path.join(ROOT, "examples", "functions", "iot.c")], check=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("libiot.so")
        info.external_attr = (0o100755) << 16
        info.create_system = 3
        z.writestr(info, open(so, "rb").read())
    return buf.getvalue()


def create_tables(ddb):
    specs = {"device_latest": [("device", "HASH")],
             "device_minute": [("device", "HASH"), ("minute", "RANGE")],
             "alerts": [("device", "HASH"), ("seq", "RANGE")]}
    for name, keys in specs.items():
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
                         AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"}
                                               for k, _ in keys])
    for name in specs:
        ddb.get_waiter("table_exists").wait(TableName=name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=30, help="seconds to produce (default 30; 0 = until Ctrl-C)")
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500, help="records per PutRecords (max 500)")
    ap.add_argument("--wait", type=float, default=300, help="seconds to wait for the mapping to catch up (default 300)")
    ap.add_argument("--data", default=None, help="data directory (default ./tributary-data/demo-<time>)")
    ap.add_argument("--keep", action="store_true", default=os.environ.get("TRIBUTARY_DEMO_KEEP") == "1",
                    help="keep the data directory after a passing run (also TRIBUTARY_DEMO_KEEP=1); "
                         "by default it is removed unless the check fails or it existed before")
    ap.add_argument("--bin", default=os.environ.get("TRIBUTARY_BIN", os.path.join(ROOT, "build", "tributary")))
    args = ap.parse_args()

    t_start = time.time()
    data = args.data or os.path.join(ROOT, "tributary-data", time.strftime("demo-%Y%m%d-%H%M%S"))
    existed = os.path.exists(data)
    os.makedirs(data, exist_ok=True)
    port = free_port()
    key, secret = "AKIADEMO" + "%012d" % random.randrange(10**12), "demo-secret-%d" % random.randrange(10**9)
    log = open(os.path.join(data, "server.log"), "w")
    proc = start_server(args.bin, data, port, key, secret, log)
    print(f"tributary listening on 127.0.0.1:{port}, data in {data} (log: {log.name})")
    rc = 1
    try:
        kw = dict(endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
                  aws_access_key_id=key, aws_secret_access_key=secret,
                  config=Config(retries={"max_attempts": 3}, max_pool_connections=32))
        kin, ddb, lam = (boto3.client(s, **kw) for s in ("kinesis", "dynamodb", "lambda"))
        stream, failures = "iot-telemetry", "iot-failures"
        kin.create_stream(StreamName=stream, ShardCount=args.shards)
        kin.create_stream(StreamName=failures, ShardCount=1)
        for s in (stream, failures):
            kin.get_waiter("stream_exists").wait(StreamName=s)
        arn = {s: kin.describe_stream_summary(StreamName=s)["StreamDescriptionSummary"]["StreamARN"]
               for s in (stream, failures)}
        create_tables(ddb)
        with tempfile.TemporaryDirectory() as work:
            code = build_function(work)
        lam.create_function(FunctionName="iot", Runtime="tributary.c1", Handler="libiot.so:handler",
                            Role="arn:aws:iam::000000000000:role/iot", Code={"ZipFile": code},
                            Timeout=60, MemorySize=256,
                            Environment={"Variables": {"IOT_ALERT_TEMP": str(ALERT_TEMP)}})
        esm = lam.create_event_source_mapping(
            EventSourceArn=arn[stream], FunctionName="iot", StartingPosition="TRIM_HORIZON",
            DestinationConfig={"OnFailure": {"Destination": arn[failures]}}, **MAPPING)
        deadline = time.time() + 30
        while lam.get_event_source_mapping(UUID=esm["UUID"])["State"] != "Enabled":
            if time.time() > deadline:
                raise SystemExit("demo: the event source mapping did not become Enabled")
            time.sleep(0.1)
        print(f"function iot (tributary.c1) <- {stream} ({args.shards} shards), on failure -> {failures}")

        devices = ["dev-%05d" % i for i in range(args.devices)]
        stats = Stats()
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        chunk = (len(devices) + args.producers - 1) // args.producers
        prods = [threading.Thread(target=producer, args=(kin, stream, devices[i * chunk:(i + 1) * chunk], stop,
                                                          stats, i, min(args.batch, 500)), daemon=True)
                 for i in range(args.producers)]
        print(f"producing for {args.duration:.0f} s, then waiting for the mapping to apply the rest, "
              f"then checking (reading the stream back and recounting: 20-30 s per 475,000 records)"
              if args.duration else "producing until Ctrl-C")
        t0 = time.time()
        setup_s = t0 - t_start
        for t in prods:
            t.start()
        m0 = metrics(port)
        last = (t0, 0, m0.get("tributary_esm_invocations_total", 0), m0.get("tributary_esm_records_total", 0))
        print(f"{'time':>6} {'put rec/s':>10} {'invokes/s':>10} {'fn rec/s':>10} {'acked':>10} "
              f"{'iter age ms':>11} {'alerts':>7}")
        while not stop.is_set():
            stop.wait(1)
            now = time.time()
            with stats.lock:
                a = stats.acked
            m = metrics(port)
            inv, recs = m.get("tributary_esm_invocations_total", 0), m.get("tributary_esm_records_total", 0)
            n_alerts = ddb.scan(TableName="alerts", Select="COUNT")["Count"]
            dt = now - last[0]
            print(f"{now - t0:6.1f} {(a - last[1]) / dt:10.0f} {(inv - last[2]) / dt:10.0f} "
                  f"{(recs - last[3]) / dt:10.0f} {a:10d} "
                  f"{m.get('tributary_esm_iterator_age_milliseconds', 0):11.0f} {n_alerts:7d}", flush=True)
            last = (now, a, inv, recs)
            if args.duration and now - t0 >= args.duration:
                stop.set()
        for t in prods:
            t.join()
        produce_s = time.time() - t0

        # ---- catch up, then the self-check ----
        # Caught up: every acknowledged valid reading is counted in device_minute.  Should some
        # valid reading have gone to the on-failure stream instead, the mapping goes idle first
        # (no invocation for 5 s) and the check below says which.
        want = stats.acked - stats.malformed_acked
        print(f"producers stopped after {produce_s:.1f} s; waiting for the mapping to apply "
              f"{want} valid readings")
        t1 = last_print = time.time()
        idle_since, last_inv = t1, None
        while True:
            got = applied_count(ddb)
            if got >= want:
                break
            inv = metrics(port).get("tributary_esm_invocations_total", 0)
            if inv != last_inv:
                idle_since, last_inv = time.time(), inv
            if time.time() - idle_since > 5:
                print(f"  the mapping is idle with {got} of {want} readings applied")
                break
            if time.time() - t1 > args.wait:
                print(f"  (gave up waiting after {args.wait:.0f} s: {got} of {want} applied)")
                break
            if time.time() - last_print >= 1:
                print(f"  {time.time() - t1:5.1f} s: {got} of {want} readings applied", flush=True)
                last_print = time.time()
            time.sleep(0.1)
        catchup_s = time.time() - t1
        print(f"caught up {catchup_s:.1f} s after the producers stopped; reading the stream back "
              f"for the check", flush=True)
        t2 = time.time()
        records = read_stream(kin, stream)
        ranges = failure_ranges(kin, failures)
        minutes, latest, n_alerts, applied, malformed_applied = recount(records, ranges)

        problems = []
        in_stream = {(sh, seq) for sh, seq, _ in records}
        missing = [x for x in stats.acked_seqs if x not in in_stream]
        if missing:
            problems.append(f"{len(missing)} acknowledged records are not in the stream (e.g. {missing[0]})")
        if len(records) != stats.acked:
            problems.append(f"the stream holds {len(records)} records but {stats.acked} were acknowledged")
        if malformed_applied:
            problems.append(f"{malformed_applied} malformed records are neither applied nor sent to {failures}")
        table = {(i["device"]["S"], i["minute"]["S"]): i for i in scan(ddb, "device_minute", ConsistentRead=True)}
        for k in sorted(set(table) | set(minutes)):
            want, have = minutes.get(k), table.get(k)
            if want is None or have is None:
                problems.append(f"device_minute {k}: {'not expected' if want is None else 'missing'}")
            else:
                h = {f: Decimal(have[f]["N"]) if f in have else None for f in ("count", "sum", "min", "max")}
                h["alerts"] = Decimal(have["alerts"]["N"]) if "alerts" in have else 0
                bad = [f"{f} {h[f]} != {want[f]}" for f in ("count", "sum", "min", "max", "alerts")
                       if h[f] != want[f]]
                if bad:
                    problems.append(f"device_minute {k}: " + ", ".join(bad))
            if len(problems) > 20:
                break
        lt = {i["device"]["S"]: int(i["n"]["N"]) for i in scan(ddb, "device_latest", ConsistentRead=True)}
        if lt != latest:
            diff = [d for d in set(lt) | set(latest) if lt.get(d) != latest.get(d)]
            problems.append(f"device_latest differs from the recount for {len(diff)} devices (e.g. {diff[0]})")
        table_alerts = len(scan(ddb, "alerts", ConsistentRead=True))
        if table_alerts != n_alerts:
            problems.append(f"alerts table has {table_alerts} items, the recount {n_alerts}")
        ok = not problems

        n_ranges = sum(len(v) for v in ranges.values())
        sent_dest = len(records) - sum(1 for sh, seq, _ in records if not covered(ranges, sh, seq))
        malformed = sum(1 for _, _, d in records if parse_reading(d) is None)
        m = metrics(port)
        print()
        print("summary")
        print(f"  stream           {stream}: {args.shards} shards; devices {len(latest)} of {args.devices} in device_latest")
        print(f"  acknowledged     {stats.acked} records in {produce_s:.1f} s = {stats.acked / produce_s:,.0f} records/s"
              f" ({stats.retried} throttled and resent)")
        print(f"  function         {int(m.get('tributary_esm_invocations_total', 0))} invocations, "
              f"{int(m.get('tributary_esm_errors_total', 0))} of them function errors; caught up "
              f"{catchup_s:.1f} s after the producers stopped "
              f"({applied / (produce_s + catchup_s):,.0f} records/s applied overall)")
        n_inv = int(m.get('tributary_esm_invocations_total', 0))
        print(f"                   (a malformed reading is no function error: the function reports it as a "
              f"batch item failure and the mapping splits the batch there -- the reading alone is retried "
              f"once and sent to the on-failure stream, the readings after it come back as a new batch: "
              f"at most 2 more invocations per malformed reading, here at most {2 * malformed} of {n_inv} "
              f"({200 * malformed / max(1, n_inv):.0f}%).  A function error means something else went "
              f"wrong: a crash, a timeout, no table service)")
        print(f"  applied          {applied} readings -> {len(table)} device_minute items, {n_alerts} alerts"
              f" ({stats.faults_sent} faults sent)")
        print(f"  on-failure       {n_ranges} batch ranges covering {sent_dest} records "
              f"({malformed} malformed of {stats.malformed_sent} sent, all among them: {'yes' if not malformed_applied else 'NO'})")
        check_s = time.time() - t2
        print(f"  time             {time.time() - t_start:.0f} s in all: setup {setup_s:.0f} s, producing "
              f"{produce_s:.0f} s, catching up {catchup_s:.1f} s, check {check_s:.0f} s")
        if ok:
            print("  check            PASS: every acknowledged record applied or in an on-failure range; "
                  "no malformed record in the tables; aggregates, latest readings and alerts equal a recount from the stream")
        else:
            print("  check            FAIL:")
            for p in problems[:20]:
                print("    " + p)
        rc = 0 if ok else 1
        return rc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if rc == 0 and not args.keep and not existed:
            shutil.rmtree(data, ignore_errors=True)
            print(f"  data             {data} removed (--keep or TRIBUTARY_DEMO_KEEP=1 keeps it)")
        else:
            why = "--keep" if args.keep and rc == 0 else "it existed before" if existed and rc == 0 else "the run did not pass"
            print(f"  data             kept in {data} ({why})")


if __name__ == "__main__":
    sys.exit(main())
