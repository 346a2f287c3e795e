"""Cleartext HTTP/2 with prior knowledge (h2c) on the same port as HTTP/1.1.

The AWS SDK for JavaScript v3 talks to Kinesis over HTTP/2 by default; on an http:// endpoint
Node opens with the HTTP/2 connection preface.  These tests drive the server with the sans-IO
`h2` library (Debian python3-h2) over a plain socket, sign requests with the suite's own SigV4
(helpers.kinesis), and check that HTTP/1.1 keep-alive keeps working next to it.  They need a
server started by the suite (AWS endpoints are https).
"""
import base64
import datetime
import http.client
import json
import socket
import time

import pytest

from helpers import kinesis as k

h2 = pytest.importorskip("h2", reason="python3-h2 is not installed (scripts/deps.sh test)")
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class H2Client:
    """One HTTP/2 connection; requests are (headers, body); responses are collected by stream."""

    def __init__(self, server, timeout=30, sock=None, preface_sent=0):
        """sock/preface_sent: continue on a socket that already carries that many bytes of the
        connection preface."""
        self.server = server
        self.sock = sock or socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        self.sock.settimeout(timeout)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        data = self.conn.data_to_send()
        assert data.startswith(PREFACE)
        self.sock.sendall(data[preface_sent:])
        self.resp = {}
        self.closed = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self):
        data = self.sock.recv(1 << 16)
        if not data:
            self.closed = True
            raise ConnectionError("server closed the HTTP/2 connection")
        for ev in self.conn.receive_data(data):
            r = self.resp.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                r["headers"] = dict(ev.headers)
                r["status"] = int(r["headers"][":status"])
            elif isinstance(ev, h2.events.DataReceived):
                r["body"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                r["done"] = True
            elif isinstance(ev, h2.events.StreamReset) and r is not None:
                r["reset"] = ev.error_code
                r["done"] = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.closed = True
                self.goaway = ev
        self.flush()

    def start(self, headers, body=b"", flush=True):
        """Open a stream and send the request (flush=False: small bodies only, leave the
        frames queued so that several requests leave in one write)."""
        sid = self.conn.get_next_available_stream_id()
        self.resp[sid] = {"status": None, "headers": {}, "body": b"", "done": False}
        self.conn.send_headers(sid, headers, end_stream=not body)
        if not flush:
            if body:
                self.conn.send_data(sid, body, end_stream=True)
            return sid
        self.flush()
        view = memoryview(body)
        while view:
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pump()  # wait for the server's WINDOW_UPDATE
                continue
            chunk, view = view[:window], view[window:]
            self.conn.send_data(sid, bytes(chunk), end_stream=not view)
            self.flush()
        return sid

    def wait(self, sids):
        while not all(self.resp[s]["done"] for s in sids):
            self.pump()
        return [self.resp.pop(s) for s in sids]

    def call(self, operation, payload=None, **kw):
        sid = self.start(*signed(self.server, operation, payload, **kw))
        return self.wait([sid])[0]

    def close(self):
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:
            pass
        self.sock.close()


def signed(server, operation, payload=None, sign="authority", body=None):
    """HTTP/2 request headers for a JSON 1.1 call.  sign: "authority" signs the :authority
    pseudo-header as the JS SDK does; "host" signs host (the value of :authority)."""
    if body is None:
        body = json.dumps(payload or {}).encode()
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    regular = {"content-type": k.JSON_CT, "x-amz-target": k.TARGET_PREFIX + operation,
               "x-amz-date": amz_date}
    if server.session_token:
        regular["x-amz-security-token"] = server.session_token
    to_sign = {(":authority" if sign == "authority" else "host"): server.host, **regular}
    regular["authorization"] = k.sigv4_authorization(
        "POST", "/", to_sign, body, server.access_key, server.secret_key, server.region, amz_date)
    headers = [(":method", "POST"), (":scheme", "http"), (":authority", server.host),
               (":path", "/"), *regular.items(), ("content-length", str(len(body)))]
    return headers, body


@pytest.fixture
def h2c(server, local_only):
    clients = []

    def make(**kw):
        c = H2Client(server, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def ok_json(r):
    assert r["status"] == 200, f"HTTP {r['status']}: {r['body'][:300]!r}"
    return json.loads(r["body"]) if r["body"] else {}


@pytest.mark.parametrize("sign", ["authority", "host"])
def test_h2c_list_streams_signed(h2c, make_stream, sign):
    """A signed ListStreams over h2c; the JS SDK signs :authority, other clients host."""
    name = make_stream()
    c = h2c()
    r = c.call("ListStreams", {}, sign=sign)
    assert name in ok_json(r)["StreamNames"]
    assert r["headers"]["content-type"] == k.JSON_CT
    assert r["headers"].get("x-amzn-requestid")
    assert r["headers"].get("date")
    # Errors come back as on HTTP/1.1.
    r = c.call("DescribeStreamSummary", {"StreamName": name + "-missing"}, sign=sign)
    assert r["status"] == 400
    assert json.loads(r["body"])["__type"].endswith("ResourceNotFoundException")


def test_h2c_bad_signature_refused(h2c):
    c = h2c()
    headers, body = signed(c.server, "ListStreams", {})
    headers = [(n, v.replace(c.server.host, "127.0.0.1:1") if n == ":authority" else v)
               for n, v in headers]
    r = c.wait([c.start(headers, body)])[0]
    assert r["status"] == 400, r
    assert json.loads(r["body"])["__type"].endswith("InvalidSignatureException"), r


def test_h2c_many_concurrent_streams_one_connection(h2c, make_stream):
    """Many requests in flight on one connection (PutRecord defers until the write is durable),
    responses matched to streams."""
    name = make_stream(shards=2)
    c = h2c()
    seqs = set()
    for wave in range(3):
        sids = {}
        for i in range(100):
            data = f"wave{wave}-rec{i}".encode()
            sid = c.start(*signed(c.server, "PutRecord", {
                "StreamName": name, "PartitionKey": f"pk{i}",
                "Data": base64.b64encode(data).decode()}))
            sids[sid] = i
        for sid, r in zip(sids, c.wait(list(sids))):
            seqs.add(ok_json(r)["SequenceNumber"])
    assert len(seqs) == 300


def test_h2c_large_bodies_respect_flow_control(h2c, make_stream, kinesis):
    """A 1 MiB record: the request body passes the server's stream window (it must send
    WINDOW_UPDATE) and the GetRecords answer passes the client's 64 KiB window."""
    name = make_stream()
    c = h2c()
    blobs = [bytes((i * 7 + j) & 0xFF for j in range(256)) * 4096 for i in range(3)]  # 1 MiB each
    for b in blobs:
        ok_json(c.call("PutRecord", {"StreamName": name, "PartitionKey": "p",
                                      "Data": base64.b64encode(b).decode()}))
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    it = ok_json(c.call("GetShardIterator", {"StreamName": name, "ShardId": shard,
                                             "ShardIteratorType": "TRIM_HORIZON"}))["ShardIterator"]
    got = []
    for _ in range(10):
        out = ok_json(c.call("GetRecords", {"ShardIterator": it}))
        got += [base64.b64decode(r["Data"]) for r in out["Records"]]
        if len(got) >= 3:
            break
        it = out["NextShardIterator"]
    assert got == blobs


def test_h2c_body_over_limit_is_refused_and_connection_survives(h2c):
    c = h2c()
    body = b"{" + b" " * (17 << 20) + b"}"
    headers, _ = signed(c.server, "ListStreams", body=body)
    r = c.wait([c.start(headers, body)])[0]
    assert r["status"] == 413, r
    ok_json(c.call("ListStreams", {}))


def test_h2c_stalled_bodies_do_not_pin_the_inflight_budget(h2c, make_stream, kinesis):
    """An unauthenticated client opening many streams that each claim a 16 MB body, sending one
    byte and going silent, must not hold everybody else's in-flight budget: bodies are charged
    as their bytes arrive (beyond a small preallocation), not by their declared length."""
    name = make_stream()
    probe = h2c()
    kinesis_server = probe.server
    c = H2Client(kinesis_server)
    for _ in range(40):
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "POST"), (":path", "/"), (":scheme", "http"),
                                  (":authority", f"127.0.0.1:{kinesis_server.port}"),
                                  ("content-length", str((16 << 20) - 1))])
        c.conn.send_data(sid, b"x")
    c.flush()
    time.sleep(0.5)
    for i in range(5):  # would be ProvisionedThroughputExceededException (in-flight budget)
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey=f"p{i}")
    c.sock.close()


def test_h2c_client_resets_and_disconnects_with_requests_in_flight(server, h2c, make_stream):
    """Streams reset or a connection dropped while their writes are pending must not disturb the
    server (the deferred requests complete into the void)."""
    name = make_stream()
    for _ in range(3):
        c = H2Client(server)
        # Requests and resets in one write: the server reads the resets before the writes can
        # complete, so those requests are still deferred when their streams close.
        sids = [c.start(*signed(server, "PutRecord", {
            "StreamName": name, "PartitionKey": f"k{i}", "Data": "AAAA"}), flush=False)
            for i in range(40)]
        for sid in sids[::2]:
            c.conn.reset_stream(sid)
        c.flush()
        c.sock.close()  # abrupt: no GOAWAY
    c = h2c()
    ok_json(c.call("ListStreams", {}))


def test_h2c_garbage_after_preface_closes_only_that_connection(server, h2c):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(PREFACE + b"\x00\x00\x04\xff\x00\x00\x00\x00\x00garbage-garbage")
    data = b""
    while True:  # the server answers with SETTINGS / GOAWAY and closes
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    ok_json(h2c().call("ListStreams", {}))


def test_http11_keepalive_alongside_h2c(server, local_only, raw, h2c):
    """HTTP/1.1 keep-alive connections and HTTP/2 connections interleave on one port."""
    conn = raw.connection()
    try:
        r = raw.call("ListStreams", {}, conn=conn)
        assert r.status == 200
        first_sock = conn.sock
        c = h2c()
        ok_json(c.call("ListStreams", {}))
        r = raw.call("ListStreams", {}, conn=conn)
        assert r.status == 200
        assert conn.sock is first_sock, "HTTP/1.1 connection was not kept alive"
        ok_json(c.call("ListStreams", {}))
        for _ in range(5):
            assert raw.call("ListStreams", {}, conn=conn).status == 200
        assert conn.sock is first_sock
    finally:
        conn.close()


def test_silent_and_slow_clients_do_not_block_the_acceptor(server, local_only, raw):
    """The acceptor peeks at the first bytes of each connection; a client that sends nothing, or
    only part of the preface, must not hold up anyone else."""
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        slow.sendall(PREFACE[:10])
        t0 = time.monotonic()
        assert raw.call("ListStreams", {}).status == 200
        assert time.monotonic() - t0 < 5
        # The slow client finishes its preface and speaks HTTP/2.
        c = H2Client(server, sock=slow, preface_sent=10)
        ok_json(c.call("ListStreams", {}))
        # The silent one turns out to be an HTTP/1.1 client.
        hc = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        hc.sock = silent
        method, body, headers = raw.build("ListStreams", {})
        hc.request(method, "/", body=body, headers=headers)
        assert hc.getresponse().status == 200
    finally:
        silent.close()
        slow.close()
