# SPDX-License-Identifier: Apache-2.0
"""The server process contract: command line, log line, generated credentials file."""
import configparser
import os
import stat
import subprocess

import pytest

from helpers import kinesis as k
from helpers import server as srv
from helpers.kinesis import aws_error
from helpers.wait import wait_for


def test_serve_help(local_only):
    r = subprocess.run([str(srv.server_bin()), "serve", "--help"], capture_output=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, out
    for opt in ("--data", "--port"):
        assert opt in out, f"serve --help does not mention {opt}:\n{out}"


def test_serve_help_and_parser_agree(local_only):
    """Every option `serve --help` lists is one the parser knows (both come from one table): a
    numeric option given a non-number is refused by name, not as an unknown option."""
    import re
    out = subprocess.run([str(srv.server_bin()), "serve", "--help"], capture_output=True,
                         timeout=10, stdin=subprocess.DEVNULL).stdout.decode()
    opts = re.findall(r"^  --([a-z-]+)(?: ([A-Z]+))?", out, re.M)
    assert len(opts) >= 20, out
    for name, arg in opts:
        if arg not in ("N", "S", "MS", "PORT"):
            continue
        r = subprocess.run([str(srv.server_bin()), "serve", f"--{name}", "x"], capture_output=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        err = r.stderr.decode()
        assert r.returncode == 2 and err.startswith(f"tributary serve: --{name} x "), (name, err)


def test_logs_listening_line(server, local_only):
    assert f"listening on 127.0.0.1:{server.port}" in server.log_text()


def test_generated_credentials_file(private_server):
    s = private_server(keys_from_env=False)
    path = s.credentials_path()
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, f"{path} has mode {oct(mode)}, expected 0600"
    cp = configparser.ConfigParser()
    cp.read(path)
    assert cp["default"]["aws_access_key_id"] and cp["default"]["aws_secret_access_key"]
    key, secret = s.access_key, s.secret_key
    assert key != srv.TEST_ACCESS_KEY
    assert "StreamNames" in k.make_client(s).list_streams()
    with aws_error("UnrecognizedClientException"):
        k.make_client(s, access_key=srv.TEST_ACCESS_KEY,
                      secret_key=srv.TEST_SECRET_KEY).list_streams()
    # the generated pair is kept across restarts
    s.restart()
    assert (s.access_key, s.secret_key) == (key, secret)
    assert "StreamNames" in k.make_client(s).list_streams()


def test_env_credentials_written_nowhere_else(server, local_only):
    """With keys from the environment the server still accepts exactly that pair."""
    c = k.make_client(server, access_key=server.access_key, secret_key=server.secret_key)
    assert "StreamNames" in c.list_streams()


def test_bad_data_dir_fails_fast(tmp_path, local_only):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    s = srv.ServerProcess(root=tmp_path / "root")
    s.data_dir = blocker / "sub"
    try:
        s.start(timeout=10)
    except srv.ServerError as e:
        assert "exited" in str(e), e  # exited with a message, did not hang
    else:
        raise AssertionError("server started with an unusable --data directory")
    finally:
        s.close()


def _answers(socks, want, within):
    """Read until `want` of socks have a complete 200 response (or `within` seconds pass);
    the sockets that got one."""
    import selectors
    import time
    sel = selectors.DefaultSelector()
    got = {}
    for c in socks:
        c.setblocking(False)
        sel.register(c, selectors.EVENT_READ)
        got[c] = b""
    done, deadline = [], time.monotonic() + within
    while len(done) < want and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            got[key.fileobj] += data
            head, sep, body = got[key.fileobj].partition(b"\r\n\r\n")
            if not sep:
                continue
            length = [int(h.split(b":")[1]) for h in head.split(b"\r\n")
                      if h.lower().startswith(b"content-length:")]
            if length and len(body) >= length[0]:
                assert head.startswith(b"HTTP/1.1 200"), head
                done.append(key.fileobj)
                sel.unregister(key.fileobj)
    sel.close()
    return done


def test_connections_per_thread_are_capped_and_bursts_answered(private_server):
    """libmicrohttpd 0.9.75 sleeps with requests unread when one epoll_wait fills its 128-event
    buffer and nothing else becomes ready: 256 keep-alive clients of one thread sending at once
    waited for the 120 s idle timeout.  A thread now serves at most 126 connections (more wait in
    the backlog until one closes), and a burst of requests on all of them is answered."""
    import signal
    import socket
    # every client is 127.0.0.1: let one address hold all 126 (by default it may hold 7/8)
    s = private_server(extra_args=["--threads", "1", "--max-connections-per-ip", "126"])
    req = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(200)]
    try:
        for c in socks:
            c.sendall(req)
        served = _answers(socks, 126, within=30)
        assert len(served) == 126
        waiting = [c for c in socks if c not in served]
        assert _answers(waiting, 1, within=1) == []   # no 127th connection is served
        for c in served[:10]:         # closing ten lets ten waiting clients in
            c.close()
        admitted = _answers(waiting, 10, within=30)
        assert len(admitted) == 10
        # all 126 connections of the thread ready at once: every request answered
        live = served[10:] + admitted
        os.kill(s.pid, signal.SIGSTOP)
        try:
            for c in live:
                c.setblocking(True)
                c.sendall(req)
        finally:
            os.kill(s.pid, signal.SIGCONT)
        assert len(_answers(live, len(live), within=30)) == len(live) == 126
    finally:
        for c in socks:
            c.close()


def test_max_connections_adds_threads(private_server):
    """--max-connections above 126 per thread starts more threads rather than refusing."""
    import socket
    s = private_server(extra_args=["--threads", "1", "--max-connections", "300"])
    req = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(200)]
    try:
        for c in socks:
            c.sendall(req)
        assert len(_answers(socks, 200, within=30)) == 200
    finally:
        for c in socks:
            c.close()


# ---- hardening: framing, slow clients, per-address caps ------------------------------------

def _raw_exchange(port, data, timeout=5):
    """Send raw bytes on a new connection; (status line + headers + body so far, closed?)."""
    import socket
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        c.sendall(data)
        got, closed = b"", False
        while True:
            try:
                b = c.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            got += b
        return got, closed
    finally:
        c.close()


@pytest.mark.parametrize("name,raw,status", [
    ("differing Content-Length",
     b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}", 400),
    ("Transfer-Encoding with Content-Length",
     b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400),
    ("Transfer-Encoding gzip, chunked",
     b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 501),
    ("duplicate Authorization",
     b"Authorization: AWS4-HMAC-SHA256 x\r\nAuthorization: AWS4-HMAC-SHA256 y\r\n"
     b"Content-Length: 2\r\n\r\n{}", 400),
    ("duplicate X-Amz-Target",
     b"X-Amz-Target: Kinesis_20131202.DeleteStream\r\nContent-Length: 2\r\n\r\n{}", 400),
])
def test_smuggling_shapes_refused(server, local_only, name, raw, status):
    """Request-smuggling shapes get 400 (501 for an unsupported transfer coding) at once and the
    connection is closed: never a hang, never a second reading of the same bytes."""
    import time
    head = (b"POST / HTTP/1.1\r\nHost: " + server.host.encode() +
            b"\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
            b"Content-Type: application/x-amz-json-1.1\r\n")
    t0 = time.monotonic()
    got, closed = _raw_exchange(server.port, head + raw)
    assert got.startswith(b"HTTP/1.1 %d " % status), f"{name}: {got[:300]!r}"
    assert closed and time.monotonic() - t0 < 4, f"{name}: connection left open"


class _Trickler:
    """`n` connections from 127.0.0.1 that send a request head one byte at a time (never idle,
    never complete), reopened as the server closes them, until stop()."""

    def __init__(self, port, n, every=0.2):
        import threading
        self.port, self.n, self.every = port, n, every
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _open(self):
        import socket
        try:
            c = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            c.setblocking(False)
            c.send(b"POST / HTTP/1.1\r\nHost: x\r\n")
            return c
        except OSError:
            return None

    def _run(self):
        socks = [self._open() for _ in range(self.n)]
        while not self._stop.wait(self.every):
            for i, c in enumerate(socks):
                try:
                    if c is None:
                        raise OSError
                    try:
                        if c.recv(1, 0) == b"":
                            raise OSError
                    except BlockingIOError:
                        pass
                    c.send(b"X")
                except OSError:
                    if c is not None:
                        self.closed_by_server += 1
                        c.close()
                    socks[i] = self._open()
        for c in socks:
            if c is not None:
                c.close()

    def stop(self):
        self._stop.set()
        self._t.join(10)


def test_slowloris_does_not_lock_out_signed_clients(private_server):
    """80 connections trickling header bytes from one address against 40 connection slots: a
    signed client from another address gets a reserved slot, one from the same address takes
    the place of a trickler, and trickled heads are closed at the head deadline."""
    import http.client
    import time
    s = private_server(extra_args=["--max-connections", "40", "--max-connections-per-ip", "30",
                                   "--header-timeout", "2"])
    attack = _Trickler(s.port, 80)
    try:
        time.sleep(1.0)    # the trickle holds every slot one address may have
        raw = k.RawClient(s, timeout=5)
        other = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5,
                                           source_address=("127.0.0.2", 0))
        for conn in (other, None):       # another address, then the attacker's own
            t0 = time.monotonic()
            r = raw.call("ListStreams", {}, conn=conn)
            assert r.status == 200, r
            assert time.monotonic() - t0 < 3, "signed client waited for a slot"
        other.close()
        assert "StreamNames" in k.make_client(s).list_streams()
        # by the head deadline (2 s) and a little: the server closed the tricklers
        wait_for(lambda: attack.closed_by_server >= 30, 2.5,
                 what=lambda: f"the server to close 30 tricklers "
                              f"(closed {attack.closed_by_server})")
    finally:
        attack.stop()


def test_unauthenticated_keepalive_cannot_chain_requests_to_stay_open(private_server):
    """A connection that never authenticates but sends a request before each head deadline
    (GET /metrics needs none; a request failing SigV4 is answered with Connection: close) must
    not keep its slot for ever: it lives --header-timeout from its opening.  A signed
    connection stays open past that."""
    import socket
    import time
    s = private_server(extra_args=["--header-timeout", "2"])
    c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    f = c.makefile("rb")
    t0, answers, closed = time.monotonic(), 0, False
    try:
        while time.monotonic() - t0 < 8:
            try:
                c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                status = f.readline()
                n = 0
                while True:
                    line = f.readline()
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":")[1])
                    if line in (b"\r\n", b""):
                        break
                body = f.read(n) if status else b""
            except (ConnectionResetError, BrokenPipeError):
                status = b""
            if not status:
                closed = True
                break
            assert status.startswith(b"HTTP/1.1 200") and len(body) == n, status
            answers += 1
            time.sleep(0.5)  # one request every 0.5 s, each before the head deadline (the test)
    finally:
        f.close()
        c.close()
    assert answers >= 2, answers
    assert closed, "an unauthenticated connection stayed open 8 s by chaining requests"
    assert time.monotonic() - t0 < 4.5
    # a signed keep-alive connection outlives the header timeout
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
    raw = k.RawClient(s, timeout=5)
    assert raw.call("ListStreams", {}, conn=conn).status == 200
    time.sleep(3)  # past the header timeout on purpose: the wait is the test
    assert raw.call("ListStreams", {}, conn=conn).status == 200
    conn.close()


@pytest.mark.slow
def test_http11_response_not_read_is_cut_off_at_its_deadline(private_server):
    """A client that asks for a large GetRecords response and reads nothing (a tiny receive
    window) holds it -- memory charged to the in-flight budget -- only until it is due,
    --body-timeout plus 1 s per 64 KiB as for bodies: then the server closes the connection.
    Before: libmicrohttpd kept it for as long as the client took (its 120 s idle timeout is
    refreshed by every byte read).  Slow (~110 s): the response must be larger than the 4 MiB
    the kernel's send buffer takes off the server's hands (6.7 MB: due after ~100 s)."""
    import socket
    import time
    s = private_server(extra_args=["--body-timeout", "1"])
    kc = k.make_client(s)
    name = k.unique_name("slowread")
    kc.create_stream(StreamName=name, ShardCount=1)
    k.wait_active(kc, name)
    for i in range(5):
        kc.put_record(StreamName=name, Data=bytes([65 + i]) * 1000000, PartitionKey="p")
    shard = kc.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    it = k.iterator(kc, name, shard)
    raw = k.RawClient(s)
    method, url, body, headers = raw.build("GetRecords", {"ShardIterator": it})
    req = (f"{method} {url} HTTP/1.1\r\n" + "".join(f"{h}: {v}\r\n" for h, v in headers.items()) +
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.connect(("127.0.0.1", s.port))
    c.sendall(req)
    t0 = time.monotonic()
    time.sleep(0.5)  # the server fills the small socket buffers before the client reads at all
    got = c.recv(4096)  # the head (and some body): the response is on its way
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), got[:300]
    length = int([ln.split(b":")[1] for ln in head.split(b"\r\n")
                  if ln.lower().startswith(b"content-length:")][0])
    due = 1 + length // 65536
    time.sleep(due + 1.5 - (time.monotonic() - t0))  # past the response's deadline: the test
    c.settimeout(5)
    total = len(rest)
    try:
        while total < length:
            chunk = c.recv(1 << 16)
            if not chunk:
                break
            total += len(chunk)
    except (socket.timeout, ConnectionResetError):
        pass
    c.close()
    assert total < length, f"a {length}-byte response the client did not read for " \
        f"{due + 1.5:.1f} s (due after {due} s) was still being sent"
    assert "StreamNames" in kc.list_streams()  # the server is fine


N_PUTS = 64


def test_sigterm_answers_puts_waiting_for_their_commit(private_server):
    """SIGTERM while puts wait for a (slow) commit: the shutdown completes them, sends their
    answers before it stops HTTP (net_server_drain), exits 0, and the records are durable."""
    import signal
    import socket
    import time
    s = private_server(extra_args=["--test-commit-delay-ms", "3000"])
    c = k.make_client(s)
    c.create_stream(StreamName="drain", ShardCount=1)
    k.wait_active(c, "drain")
    raw = k.RawClient(s)
    socks = []
    for i in range(N_PUTS):
        method, target, body, headers = raw.build("PutRecord", {"StreamName": "drain",
                                                                "PartitionKey": f"p{i}",
                                                                "Data": "AAAA"})
        head = "".join(f"{h}: {v}\r\n" for h, v in headers.items())
        wire = (f"{method} {target} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n"
                .encode() + body)
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=20)
        sock.sendall(wire)
        socks.append(sock)
    try:
        # The puts reach the commit queue within milliseconds; the 3 s commit delay keeps them
        # there well past this pause, so SIGTERM finds them waiting.
        time.sleep(0.5)
        os.kill(s.pid, signal.SIGTERM)
        for sock in socks:
            resp = b""
            while b"SequenceNumber" not in resp:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                resp += chunk
            assert resp.startswith(b"HTTP/1.1 200") and b"SequenceNumber" in resp, resp[:300]
        assert s.stop(signal.SIGTERM) == 0
    finally:
        for sock in socks:
            sock.close()
    s.start()
    c = k.make_client(s)
    assert len(k.read_shard(c, "drain", "shardId-000000000000")) == N_PUTS
