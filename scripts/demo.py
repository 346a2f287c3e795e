#!/usr/bin/python3
"""The main job: simulated IoT telemetry through Tributary's Kinesis API, read back and checked.

Starts `build/tributary serve` on a free loopback port (data dir: --data, default a fresh
./tributary-data/demo-<time>), creates a stream, and for --duration seconds pushes readings from
--devices simulated devices (temperature, humidity, battery, occasional faults and malformed
messages) with PutRecords from several producer threads, while one consumer per shard reads
them back with GetShardIterator/GetRecords.  Prints live rates and lag every second, then a
summary that checks itself: every acknowledged record was read back exactly once, in order per
device.  Exit status 0 only if the check passes.

Uses boto3 exactly as against AWS (endpoint_url is the only difference).
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

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


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = 0          # records acknowledged by PutRecords
        self.retried = 0        # records the server asked us to resend
        self.read = 0
        self.malformed_sent = 0
        self.malformed_read = 0
        self.faults_read = 0
        self.behind_ms = 0
        self.acked_seq = {}     # device -> list of reading numbers acknowledged
        self.read_seq = {}      # device -> list of reading numbers read back
        self.errors = []


def producer(kin, stream, devices, stop, stats, rnd_seed, batch):
    rnd = random.Random(rnd_seed)
    counters = {d: 0 for d in devices}
    state = {d: (20 + rnd.random() * 10, 40 + rnd.random() * 20, 100.0) for d in devices}
    while not stop.is_set():
        entries, meta = [], []
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
                stats.malformed_sent += 1
            else:
                data = json.dumps({"device": d, "n": n, "ts": round(time.time(), 3),
                                   "temperature": round(t + (80 if fault else 0), 2),
                                   "humidity": round(h, 1), "battery": round(b, 2),
                                   "fault": "overheat" if fault else None}).encode()
            entries.append({"PartitionKey": d, "Data": data})
            meta.append((d, n))
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
                        d, n = meta[i]
                        stats.acked_seq.setdefault(d, []).append(n)
                        stats.acked += 1
            if again:
                time.sleep(0.05)
            pending = again


def consumer(kin, stream, shard_id, stop_reading, stats):
    it = kin.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while it:
        resp = kin.get_records(ShardIterator=it, Limit=10000)
        recs = resp["Records"]
        with stats.lock:
            stats.behind_ms = max(stats.behind_ms, resp.get("MillisBehindLatest", 0))
            for r in recs:
                stats.read += 1
                try:
                    doc = json.loads(r["Data"])
                except ValueError:
                    stats.malformed_read += 1
                    # malformed bodies still carry their device and reading number up front
                    raw = r["Data"].decode(errors="replace")
                    try:
                        n = int(raw.split('"n": ')[1].split(",")[0])
                        stats.read_seq.setdefault(r["PartitionKey"], []).append(n)
                    except (IndexError, ValueError):
                        stats.errors.append(f"unparseable record {r['SequenceNumber']}")
                    continue
                if doc.get("fault"):
                    stats.faults_read += 1
                stats.read_seq.setdefault(doc["device"], []).append(doc["n"])
        it = resp.get("NextShardIterator")
        if not recs:
            if stop_reading.is_set():
                return
            time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=30, help="seconds to produce (default 30; 0 = until Ctrl-C)")
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500, help="records per PutRecords (max 500)")
    ap.add_argument("--data", default=None, help="data directory (default ./tributary-data/demo-<time>)")
    ap.add_argument("--bin", default=os.environ.get("TRIBUTARY_BIN", os.path.join(ROOT, "build", "tributary")))
    args = ap.parse_args()

    data = args.data or os.path.join(ROOT, "tributary-data", time.strftime("demo-%Y%m%d-%H%M%S"))
    os.makedirs(data, exist_ok=True)
    port = free_port()
    key, secret = "AKIADEMO" + "%012d" % random.randrange(10**12), "demo-secret-%d" % random.randrange(10**9)
    log = open(os.path.join(data, "server.log"), "w")
    proc = start_server(args.bin, data, port, key, secret, log)
    print(f"tributary listening on 127.0.0.1:{port}, data in {data} (log: {log.name})")
    try:
        kin = boto3.client("kinesis", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                           aws_access_key_id=key, aws_secret_access_key=secret,
                           config=Config(retries={"max_attempts": 3}, max_pool_connections=32))
        stream = "iot-telemetry"
        kin.create_stream(StreamName=stream, ShardCount=args.shards)
        kin.get_waiter("stream_exists").wait(StreamName=stream)
        shards = [s["ShardId"] for s in kin.list_shards(StreamName=stream)["Shards"]]
        devices = ["dev-%05d" % i for i in range(args.devices)]
        stats = Stats()
        stop, stop_reading = threading.Event(), threading.Event()
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        chunk = (len(devices) + args.producers - 1) // args.producers
        prods = [threading.Thread(target=producer, args=(kin, stream, devices[i * chunk:(i + 1) * chunk], stop,
                                                          stats, i, min(args.batch, 500)), daemon=True)
                 for i in range(args.producers)]
        cons = [threading.Thread(target=consumer, args=(kin, stream, s, stop_reading, stats), daemon=True)
                for s in shards]
        t0 = time.time()
        for t in prods + cons:
            t.start()
        last = (t0, 0, 0)
        print(f"{'time':>6} {'put rec/s':>10} {'read rec/s':>10} {'acked':>10} {'read':>10} {'lag':>8} {'behind ms':>9}")
        while not stop.is_set():
            time.sleep(1)
            now = time.time()
            with stats.lock:
                a, r, behind = stats.acked, stats.read, stats.behind_ms
                stats.behind_ms = 0
            print(f"{now - t0:6.1f} {(a - last[1]) / (now - last[0]):10.0f} {(r - last[2]) / (now - last[0]):10.0f} "
                  f"{a:10d} {r:10d} {max(0, a - r):8d} {behind:9d}", flush=True)
            last = (now, a, r)
            if args.duration and now - t0 >= args.duration:
                stop.set()
        for t in prods:
            t.join()
        produce_s = time.time() - t0
        stop_reading.set()
        for t in cons:
            t.join(timeout=60)
        total_s = time.time() - t0

        # ---- the self-check ----
        ok = True
        problems = list(stats.errors)
        if stats.read != stats.acked:
            problems.append(f"read {stats.read} records but {stats.acked} were acknowledged")
        for d, acked in stats.acked_seq.items():
            got = stats.read_seq.get(d, [])
            if got != sorted(acked):
                missing = set(acked) - set(got)
                dup = len(got) - len(set(got))
                problems.append(f"device {d}: {len(missing)} missing, {dup} duplicated, "
                                f"{'in order' if got == sorted(got) else 'OUT OF ORDER'}")
                if len(problems) > 10:
                    break
        ok = not problems
        summ = kin.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        print()
        print("summary")
        print(f"  stream           {stream}: {summ['OpenShardCount']} shards, retention {summ['RetentionPeriodHours']} h")
        print(f"  devices          {len(stats.acked_seq)} of {args.devices} reported")
        print(f"  acknowledged     {stats.acked} records in {produce_s:.1f} s = {stats.acked / produce_s:,.0f} records/s"
              f" ({stats.retried} throttled and resent)")
        print(f"  read back        {stats.read} records ({stats.read / total_s:,.0f} records/s overall)")
        print(f"  faults flagged   {stats.faults_read}; malformed messages {stats.malformed_read} read of {stats.malformed_sent} sent")
        if ok:
            print("  check            PASS: every acknowledged record read back exactly once, in order per device")
        else:
            print("  check            FAIL:")
            for p in problems[:10]:
                print("    " + p)
        return 0 if ok else 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
