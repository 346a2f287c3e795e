# SPDX-License-Identifier: Apache-2.0
"""Cleartext HTTP/2 with prior knowledge (h2c) on the same port as HTTP/1.1.

The AWS SDK for JavaScript v3 talks to Kinesis over HTTP/2 by default; on an http:// endpoint
Node opens with the HTTP/2 connection preface.  These tests drive the server with the sans-IO
`h2` library (Debian python3-h2) over a plain socket, sign requests with the suite's own SigV4
(helpers.kinesis), and check that HTTP/1.1 keep-alive keeps working next to it.  They need a
server started by the suite (AWS endpoints are https).
"""
import base64
import http.client
import json
import os
import socket
import time

import pytest

from helpers import kinesis as k
from helpers.raw import amz_now, sigv4_authorization
from helpers.wait import wait_for

h2 = pytest.importorskip("h2", reason="python3-h2 is not installed (scripts/deps.sh test)")
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402

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
            if self.resp[sid]["done"]:
                break  # answered before its body, and reset (NO_ERROR): stop sending
            try:
                window = min(self.conn.local_flow_control_window(sid),
                             self.conn.max_outbound_frame_size)
            except h2.exceptions.StreamClosedError:
                break
            if window <= 0:
                self.pump()  # wait for the server's WINDOW_UPDATE
                continue
            chunk, view = view[:window], view[window:]
            try:
                self.conn.send_data(sid, bytes(chunk), end_stream=not view)
            except h2.exceptions.StreamClosedError:
                break  # answered before its body (RST_STREAM NO_ERROR): stop sending
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
    amz_date = amz_now()
    regular = {"content-type": k.JSON_CT, "x-amz-target": k.TARGET_PREFIX + operation,
               "x-amz-date": amz_date}
    if server.session_token:
        regular["x-amz-security-token"] = server.session_token
    to_sign = {(":authority" if sign == "authority" else "host"): server.host, **regular}
    regular["authorization"] = sigv4_authorization(
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
    time.sleep(0.5)  # the 40 heads reach the server (nothing to poll for): then puts must pass
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


def test_h2c_unauthenticated_request_answered_before_its_body(h2c):
    """The header-phase check runs on HTTP/2 as on HTTP/1.1: a request signed with an unknown
    key, or declaring a body over the limit, is answered as soon as its headers are in, without
    waiting for (or admitting) its body; the connection goes on serving."""
    c = h2c()
    body = json.dumps({"StreamName": "x", "PartitionKey": "p", "Data": "AAAA"}).encode()
    headers, _ = signed(c.server, "PutRecord", body=body)
    bad = [(n, v.replace(c.server.access_key, "AKIDUNKNOWNKEY000000") if n == "authorization"
            else v) for n, v in headers]
    big = [(n, str(64 << 20) if n == "content-length" else v) for n, v in headers]
    for hdrs, status, err in [(bad, 400, "UnrecognizedClientException"),
                              (big, 413, "SerializationException")]:
        sid = c.conn.get_next_available_stream_id()
        c.resp[sid] = {"status": None, "headers": {}, "body": b"", "done": False}
        c.conn.send_headers(sid, hdrs, end_stream=False)  # the body never comes
        c.flush()
        c.sock.settimeout(5)
        r = c.wait([sid])[0]
        assert r["status"] == status, r
        assert json.loads(r["body"])["__type"].endswith(err), r
    c.sock.settimeout(30)
    ok_json(c.call("ListStreams", {}))
    # Once answered, the stream is reset with NO_ERROR (stop sending), not left open holding
    # its budget until the client ends a body nobody reads.
    a = RawH2(c.server)
    sid = a.open_stream(0, auth=False)
    assert a.wait_reset(sid, 5), "an early-answered stream was left open"
    assert a.resets[sid] == 0
    a.close()


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
        method, url, body, headers = raw.build("ListStreams", {})
        hc.request(method, url, body=body, headers=headers)
        assert hc.getresponse().status == 200
    finally:
        silent.close()
        slow.close()


# ---- header-block budgets and request deadlines (issue #8, item 9) ---------------------------
#
# The attacker below speaks raw frames: HPACK literals without indexing, no Huffman, so that a
# 60 KB header block costs 60 KB on the wire and 60 KB (or a refusal) on the server, without
# the h2 library's pure-Python encoder in the way.

def _hpack_int(n, prefix_bits, first=0):
    top = (1 << prefix_bits) - 1
    if n < top:
        return bytes([first | n])
    out = [first | top]
    n -= top
    while n >= 128:
        out.append((n & 127) | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def _hpack_literal(name, value):
    name, value = name.encode(), value.encode()
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


def _frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


F_DATA, F_HEADERS, F_RST, F_SETTINGS, F_PING, F_GOAWAY, F_CONT = 0, 1, 3, 4, 6, 7, 9


class RawH2:
    """A hand-rolled HTTP/2 client connection that opens streams and never finishes them."""

    def __init__(self, server, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        self.server = server
        self.host = server.host
        self.buf = b""
        self.resets = {}           # stream id -> error code
        self.goaway = None
        self.closed = False
        self.next_sid = 1
        self.ping_n = 0
        self.sock.sendall(PREFACE + _frame(F_SETTINGS, 0, 0))

    def open_stream(self, pad, data=b"", length=1000, end_headers=True, auth=True):
        """HEADERS (+ CONTINUATIONs) with a pad header of `pad` bytes, no END_STREAM; then
        `data` in a DATA frame without END_STREAM if given.  end_headers=False: the header block
        is left unfinished (the connection can then carry nothing else)."""
        sid = self.next_sid
        self.next_sid += 2
        # Signed headers that pass the header-phase check (known key, scope, date): the
        # signature itself is only checked with the body, which never comes.
        signed_headers, _ = signed(self.server, "PutRecord", body=b"{}")
        regular = [(n, v) for n, v in signed_headers
                   if not n.startswith(":") and n != "content-length" and
                   (auth or n != "authorization")]
        block = b"".join(_hpack_literal(n, v) for n, v in [
            (":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", self.host),
            *regular, ("content-length", str(length))])
        if pad:
            block += _hpack_literal("x-pad", ("%08d" % sid) * (pad // 8))
        chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        out = b""
        for i, ch in enumerate(chunks):
            flags = 0x4 if i == len(chunks) - 1 and end_headers else 0  # END_HEADERS
            out += _frame(F_HEADERS if i == 0 else F_CONT, flags, sid, ch)
        if data:
            out += _frame(F_DATA, 0, sid, data)
        self.sock.sendall(out)
        return sid

    def authenticate(self):
        """A complete signed request (ListStreams): the connection is trusted from then on (not
        closed --header-timeout after it opened, as unauthenticated ones are)."""
        sid = self.next_sid
        self.next_sid += 2
        headers, body = signed(self.server, "ListStreams", {})
        block = b"".join(_hpack_literal(n, v) for n, v in headers)
        self.sock.sendall(_frame(F_HEADERS, 0x4, sid, block) + _frame(F_DATA, 0x1, sid, body))
        return self.sync()

    def _read_frames(self):
        try:
            chunk = self.sock.recv(1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            return []
        self.buf += chunk
        frames = []
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + n]
            self.buf = self.buf[9 + n:]
            frames.append((ftype, flags, sid, payload))
            if ftype == F_RST:
                self.resets[sid] = int.from_bytes(payload[:4], "big")
            elif ftype == F_GOAWAY:
                self.goaway = int.from_bytes(payload[4:8], "big")
            elif ftype == F_SETTINGS and not flags & 1:
                self.sock.sendall(_frame(F_SETTINGS, 1, 0))
        return frames

    def ping(self):
        """Send a PING; return its opaque payload."""
        self.ping_n += 1
        opaque = self.ping_n.to_bytes(8, "big")
        try:
            self.sock.sendall(_frame(F_PING, 0, 0, opaque))
        except OSError:
            self.closed = True
        return opaque

    def sync(self):
        """PING and read until its ACK: the server has processed everything sent before.
        False when the server closed the connection instead."""
        opaque = self.ping()
        while not self.closed:
            for ftype, flags, _sid, payload in self._read_frames():
                if ftype == F_PING and flags & 1 and payload == opaque:
                    return True
        return False

    def wait_reset(self, sid, timeout):
        """Read (no PINGs) until sid is reset or the connection closes; False after timeout."""
        self.sock.settimeout(timeout)
        try:
            while sid not in self.resets and not self.closed:
                self._read_frames()
        except socket.timeout:
            return False
        return sid in self.resets

    def close(self):
        self.sock.close()


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _sanitized(pid):
    """ASan keeps freed memory in quarantine: RSS says nothing about what the server holds."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def _header_flood(server, conns, streams, pad):
    """`conns` connections each opening `streams` streams with `pad`-byte header blocks and no
    END_STREAM; returns the connections once the server has read everything."""
    attackers = [RawH2(server) for _ in range(conns)]
    for a in attackers:
        for _ in range(streams):
            try:
                a.open_stream(pad)
            except OSError:
                a.closed = True
                break
    for a in attackers:
        a.sync()
    return attackers


def test_h2c_header_blocks_are_bounded_per_connection(private_server):
    """Many streams with large header blocks and no END_STREAM, kept alive with PINGs, on many
    connections: the server charges header bytes to a per-connection budget (streams past it
    are refused), its RSS stays bounded, and a signed request on a fresh connection is served
    meanwhile.  Before the budget: ~8 MB held per connection (20 connections: +150 MB RSS)."""
    server = private_server()
    c = H2Client(server)
    ok_json(c.call("ListStreams", {}))
    before = _rss_kb(server.pid)
    attackers = _header_flood(server, conns=20, streams=128, pad=60000)
    for _ in range(3):  # PINGs keep the connections busy; nothing is released by them
        for a in attackers:
            a.sync()
    grown_mb = (_rss_kb(server.pid) - before) / 1024
    refused = sum(len(a.resets) for a in attackers)
    if not _sanitized(server.pid):
        assert grown_mb < 48, f"RSS grew by {grown_mb:.0f} MB under a header-block flood"
    assert refused >= 20 * 100, f"only {refused} of {20 * 128} streams were refused"
    assert all(code == 7 for a in attackers for code in a.resets.values())  # REFUSED_STREAM
    fresh = H2Client(server)
    ok_json(fresh.call("ListStreams", {}))
    fresh.close()
    c.close()
    for a in attackers:
        a.close()


def test_h2c_header_blocks_share_a_global_budget(private_server):
    """With a small in-flight budget (--max-inflight-mb 16: 2 MiB of it for header blocks), the
    header bytes of all connections together stay under it, and once the flood is gone the
    budget is whole again."""
    server = private_server(extra_args=["--max-inflight-mb", "16"])
    c = H2Client(server)
    ok_json(c.call("ListStreams", {}))
    before = _rss_kb(server.pid)
    attackers = _header_flood(server, conns=10, streams=20, pad=60000)
    grown_mb = (_rss_kb(server.pid) - before) / 1024
    accepted = sum(20 - len(a.resets) for a in attackers)
    # 2 MiB of 60 KB blocks: ~34 streams in all, though every connection has room for 16.
    assert accepted <= 40, f"{accepted} header blocks of 60 KB held with a 2 MiB budget"
    if not _sanitized(server.pid):
        assert grown_mb < 24, f"RSS grew by {grown_mb:.0f} MB"
    for a in attackers:
        a.close()
    # The closed connections gave their charge back: a request with a header block is served.
    deadline = time.monotonic() + 10
    while True:
        fresh = RawH2(server)
        fresh.open_stream(60000)
        fresh.sync()
        fresh.close()
        if not fresh.resets or time.monotonic() > deadline:
            break
    assert not fresh.resets, "the header budget was not given back by closed connections"
    ok_json(c.call("ListStreams", {}))
    c.close()


def test_h2c_streams_must_finish_within_the_deadlines_despite_pings(private_server):
    """HTTP/1.1's deadlines hold for each HTTP/2 stream, whatever else its connection sends: a
    header block must be complete --header-timeout seconds after its HEADERS frame, the request
    --body-timeout seconds (plus 1 s per 64 KiB declared) after its headers.  Streams stuck in
    their headers or their body are reset (and free what they held) although the client keeps
    sending PINGs; the connections and new requests are unaffected.  (The connections have
    authenticated first: unauthenticated ones are closed at --header-timeout anyway.)"""
    server = private_server(extra_args=["--header-timeout", "1", "--body-timeout", "2"])
    stuck = RawH2(server)  # a header block that never ends: nothing else can follow it
    attackers = [RawH2(server) for _ in range(3)]
    for a in [stuck] + attackers:
        assert a.authenticate()
    t0 = time.monotonic()
    stuck_sid = stuck.open_stream(4000, end_headers=False)
    sids = {}
    for a in attackers:
        sids[a] = [a.open_stream(4000) for _ in range(5)] + \
                  [a.open_stream(0, data=b"{\"StreamName\":") for _ in range(5)]
        a.sync()
    # Keep the connections chatty with PINGs until every stream has been reset.

    def all_reset():
        for a in attackers:
            a.sync()
        return all(set(sids[a]) <= set(a.resets) for a in attackers)
    wait_for(all_reset, max(0.0, 15 - (time.monotonic() - t0)), interval=0.2,  # PING interval
             what=lambda: "every stream reset; left: " + "; ".join(
                 str(sorted(set(sids[a]) - set(a.resets))) for a in attackers))
    took = time.monotonic() - t0
    for a in attackers:
        assert set(a.resets.values()) == {8}  # CANCEL
        assert not a.closed and a.goaway is None
    assert took >= 2.0, f"streams reset after {took:.1f}s, before the 2 s body deadline"
    assert stuck.wait_reset(stuck_sid, 5), "a header block left unfinished was not reset"
    # A legitimate request is served on a fresh connection.
    c = H2Client(server)
    ok_json(c.call("ListStreams", {}))
    c.close()
    stuck.close()
    for a in attackers:
        a.close()


# ---- per-address caps, unauthenticated connections, responses nobody reads -------------------

class _H2Trickler:
    """`n` HTTP/2 connections from 127.0.0.1 that never authenticate: each keeps a stream open
    whose signed headers pass the header-phase check (its body, which would be checked, never
    comes), opens another every `every` seconds (before the stream deadlines) and PINGs; they
    are reopened as the server closes them, until stop()."""

    def __init__(self, server, n, every=0.5):
        import threading
        self.server, self.n, self.every = server, n, every
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _stream(self, c):
        sid = c["sid"]
        c["sid"] += 2
        headers, _ = signed(self.server, "PutRecord", body=b"{}")
        block = b"".join(_hpack_literal(n, "1000" if n == "content-length" else v)
                         for n, v in headers)
        c["sock"].send(_frame(F_HEADERS, 0x4, sid, block) + _frame(F_PING, 0, 0, b"p" * 8))

    def _open(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.server.port), timeout=1)
            s.sendall(PREFACE + _frame(F_SETTINGS, 0, 0))
            s.setblocking(False)
            c = {"sock": s, "sid": 1}
            self._stream(c)
            return c
        except OSError:
            return None

    def _run(self):
        conns = [self._open() for _ in range(self.n)]
        while not self._stop.wait(self.every):
            for i, c in enumerate(conns):
                try:
                    if c is None:
                        raise OSError
                    try:
                        while True:  # drain: the server closing shows as EOF or a reset
                            if c["sock"].recv(1 << 16) == b"":
                                raise OSError
                    except BlockingIOError:
                        pass
                    self._stream(c)
                except OSError:
                    if c is not None:
                        self.closed_by_server += 1
                        c["sock"].close()
                    conns[i] = self._open()
        for c in conns:
            if c is not None:
                c["sock"].close()

    def stop(self):
        self._stop.set()
        self._t.join(10)


def _h2_from(server, addr, timeout=5):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout,
                                    source_address=(addr, 0))
    return H2Client(server, timeout=timeout, sock=sock)


def _signed_h2_call(server, addr, within=3.0):
    """A signed ListStreams on a new HTTP/2 connection from addr, retried (as SDKs do) while a
    connection is closed under it before its request authenticated -- the oldest
    unauthenticated connection of an address at its cap gives way, and the attackers sharing
    the address churn.  Returns the client, whose connection has authenticated."""
    t0 = time.monotonic()
    while True:
        c = None
        try:
            c = _h2_from(server, addr)
            ok_json(c.call("ListStreams", {}))
            return c
        except (OSError, ConnectionError) as e:
            if c:
                c.sock.close()
            if time.monotonic() - t0 > within:
                pytest.fail(f"signed HTTP/2 client from {addr} locked out for {within} s: {e!r}")


def test_h2c_unauthenticated_connections_cannot_lock_out_signed_clients(private_server):
    """60 unauthenticated HTTP/2 connections from one address, kept busy with new streams and
    PINGs, against 40 connection slots: they count against --max-connections-per-ip like
    HTTP/1.1 ones, so a signed client from another address gets a reserved slot and one from
    the same address takes the place of the oldest of them; each is closed (GOAWAY) once it has
    gone --header-timeout without an authenticated request.  Before: HTTP/2 connections left
    the per-address accounting and held every slot; the signed clients waited in the backlog."""
    s = private_server(extra_args=["--max-connections", "40", "--max-connections-per-ip", "30",
                                   "--header-timeout", "2", "--body-timeout", "2"])
    attack = _H2Trickler(s, 60)
    clients = []
    try:
        time.sleep(1.5)  # the attackers hold every slot one address may have
        for addr in ("127.0.0.2", "127.0.0.1"):
            clients.append(_signed_h2_call(s, addr))
        raw = k.RawClient(s, timeout=5)
        assert raw.call("ListStreams", {}).status == 200  # HTTP/1.1, the attackers' address
        before = attack.closed_by_server
        # by the header timeout (2 s) and a little: the server closed the attackers' connections
        wait_for(lambda: attack.closed_by_server - before >= 30, 3.5,
                 what=lambda: f"30 attacker connections closed "
                              f"({attack.closed_by_server - before})")
    finally:
        attack.stop()
        for c in clients:
            c.close()


def test_h2c_authenticated_connection_outlives_the_header_timeout(private_server):
    """An HTTP/2 connection on which a request authenticated is trusted: neither closed by the
    unauthenticated-connection deadline nor chosen to give way to newcomers from its address,
    while unauthenticated connections from that address churn around it.  Before: it could not
    even connect (HTTP/2 attackers held every slot)."""
    s = private_server(extra_args=["--max-connections", "40", "--max-connections-per-ip", "30",
                                   "--header-timeout", "2", "--body-timeout", "2"])
    attack = _H2Trickler(s, 60)
    c = None
    try:
        time.sleep(1.5)  # the attackers hold every slot one address may have
        c = _signed_h2_call(s, "127.0.0.1")
        time.sleep(5)  # 2.5 header timeouts, attackers being closed and reopened meanwhile
        assert attack.closed_by_server >= 30, attack.closed_by_server
        ok_json(c.call("ListStreams", {}))  # the same connection
        assert not c.closed
    finally:
        attack.stop()
        if c:
            c.close()


def _get_records_setup(s, records=4, size=60000):
    """A one-shard stream with `records` records of `size` bytes; returns (client, iterator, the
    size of one GetRecords response)."""
    kc = k.make_client(s)
    name = k.unique_name("drain")
    kc.create_stream(StreamName=name, ShardCount=1)
    k.wait_active(kc, name)
    for i in range(records):
        kc.put_record(StreamName=name, Data=bytes([65 + i]) * size, PartitionKey="p")
    shard = kc.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    it = k.iterator(kc, name, shard)
    raw = k.RawClient(s, timeout=10)
    r = raw.call("GetRecords", {"ShardIterator": it})
    assert r.status == 200, r
    return kc, it, len(r.body)


@pytest.mark.parametrize("window", ["default", "open"])
def test_h2c_responses_not_read_are_dropped_within_the_deadline(private_server, window):
    """A client that asks for large GetRecords responses on 100 streams and never reads holds
    them -- and the in-flight budget they are charged to -- only until each is due
    (--body-timeout + 1 s per 64 KiB, as for bodies): then its streams are reset (CANCEL) or, when
    its output is backed up (window "open": flow control lets the server send until the socket
    is full), its connection closed; the memory is given back and other clients' GetRecords are
    served again.  Before: the responses were held for as long as the connection stayed open."""
    s = private_server(extra_args=["--body-timeout", "1", "--max-inflight-mb", "24"])
    kc, it, resp_len = _get_records_setup(s)
    due = 1 + resp_len // 65536
    base = _rss_kb(s.pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # the kernel takes little
    sock.connect(("127.0.0.1", s.port))
    greedy = H2Client(s, timeout=30, sock=sock)
    if window == "open":
        greedy.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        greedy.conn.increment_flow_control_window(2**31 - 1 - 65535)
        greedy.flush()
    sids = [greedy.start(*signed(s, "GetRecords", {"ShardIterator": it})) for _ in range(100)]
    t0 = time.monotonic()
    time.sleep(1.0)  # the unread responses pile up for a second before RSS is measured
    grown_mb = (_rss_kb(s.pid) - base) / 1024
    # Meanwhile the server answers other clients at once, though with the budget spent by the
    # unread responses it refuses what would need memory (REFUSED_STREAM, throttling: retry).
    other = H2Client(s, timeout=5)
    r = other.call("ListStreams", {})
    assert r["status"] in (200, 400) or r.get("reset") == 7, r
    # After the deadline every response held was released: GetRecords fits the budget again.

    def served():
        try:
            kc.get_records(ShardIterator=it)
            return True
        except kc.exceptions.ProvisionedThroughputExceededException:
            return False
    wait_for(served, max(0.0, due + 6 - (time.monotonic() - t0)), interval=0.25,
             what=f"GetRecords to be served again (a client stopped reading {len(sids)} "
                  f"responses of {resp_len} bytes, due after {due} s)")
    ok_json(other.call("ListStreams", {}))
    other.close()
    # The greedy client reads only once its responses are past due: the unread ones were reset,
    # or (output backed up) its connection closed.
    time.sleep(max(0.0, t0 + due + 2 - time.monotonic()))  # past due on purpose: the test
    greedy.sock.settimeout(5)
    try:
        while not greedy.closed and not all(greedy.resp[x]["done"] for x in sids):
            greedy.pump()
    except (ConnectionError, OSError):
        greedy.closed = True
    if window == "open":
        assert greedy.closed, "a connection whose output was backed up past its responses' " \
            "deadline was not closed"
    else:
        assert not greedy.closed
        # Each stream was either refused by the budget at once (REFUSED_STREAM, or a throttling
        # error) or held a response that was reset (CANCEL) when it fell due: none was kept.
        reset = [x for x in sids if greedy.resp[x].get("reset") == 8]
        throttled = [x for x in sids if x not in reset and
                     (greedy.resp[x]["status"] == 400 or greedy.resp[x].get("reset") == 7)]
        assert len(reset) + len(throttled) == len(sids), \
            [greedy.resp[x] for x in sids if x not in reset and x not in throttled][:2]
        assert len(reset) >= 20, f"only {len(reset)} unread responses held and reset"
    if not _sanitized(s.pid) and os.environ.get("TRIBUTARY_ASAN") != "1":
        assert grown_mb < 64, f"RSS grew by {grown_mb:.0f} MB holding unread responses"
    greedy.close()
