# SPDX-License-Identifier: Apache-2.0
"""Measure CreateFunction of a large package (issue #8 item 12): time to create one function
from a zip of N small files, and whether other API calls are served meanwhile (the slowest
ListFunctions answer while the create(s) run).

    TRIBUTARY_BIN=build/tributary python3 bench/fn_bigzip.py [--files 60000] [--parallel 1]
"""
import argparse
import io
import multiprocessing
import os
import sys
import threading
import time
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from helpers.server import ServerProcess  # noqa: E402
from helpers.lambdafn import make_client, ROLE  # noqa: E402


def big_zip(n):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        z.writestr(info, "#!/bin/sh\necho hi\n")
        for i in range(n - 1):
            z.writestr(f"lib/d{i // 1000}/f{i}.txt", f"file {i}\n")
    return buf.getvalue()


def probe(endpoint, stop, q):
    import boto3
    from botocore.config import Config
    from helpers.server import TEST_ACCESS_KEY, TEST_SECRET_KEY
    c = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id=TEST_ACCESS_KEY, aws_secret_access_key=TEST_SECRET_KEY,
                     config=Config(retries={"max_attempts": 1}))
    lat = []
    while not stop.is_set():
        t0 = time.monotonic()
        c.list_functions()
        lat.append(time.monotonic() - t0)
        time.sleep(0.05)
    q.put(lat)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=60000)
    ap.add_argument("--parallel", type=int, default=1)
    a = ap.parse_args()
    z = big_zip(a.files)
    srv = ServerProcess()
    srv.start()
    try:
        lam = make_client(srv)
        lam.list_functions()
        results = []

        def create(i):
            c = make_client(srv, read_timeout=600)
            t0 = time.monotonic()
            try:
                c.create_function(FunctionName=f"big{i}", Runtime="provided.al2023", Role=ROLE,
                                  Handler="x", Code={"ZipFile": z})
                results.append(("ok", time.monotonic() - t0))
            except Exception as e:  # noqa: BLE001
                results.append((type(e).__name__ + ": " + str(e)[:100], time.monotonic() - t0))

        # the probe runs in its own process: the uploading threads' JSON and base64 work would
        # otherwise hold its GIL and show up as server latency
        stop = multiprocessing.Event()
        q = multiprocessing.Queue()
        pt = multiprocessing.Process(target=probe, args=(srv.endpoint, stop, q))
        pt.start()
        t0 = time.monotonic()
        ts = [threading.Thread(target=create, args=(i,)) for i in range(a.parallel)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.monotonic() - t0
        stop.set()
        lat = q.get()
        pt.join()
        print(f"binary {srv.binary}; zip {len(z)} bytes, {a.files} files; {a.parallel} create(s)")
        for r, t in results:
            print(f"  create: {r} in {t:.2f} s")
        print(f"  wall {wall:.2f} s; ListFunctions during it: {len(lat)} calls, max "
              f"{max(lat) * 1000:.0f} ms, median {sorted(lat)[len(lat) // 2] * 1000:.0f} ms")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
