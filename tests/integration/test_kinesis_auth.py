# SPDX-License-Identifier: Apache-2.0
"""SigV4 authentication: the AWS error codes and messages for missing, unknown, wrong and stale
signatures.  Requests are signed either by botocore or by the suite's own signer (helpers)."""
import datetime
import time

import pytest

from helpers import kinesis as k
from helpers.kinesis import aws_error
from helpers.raw import sigv4_authorization

NOW = lambda: datetime.datetime.now(datetime.timezone.utc)  # noqa: E731


def test_own_signer_accepted(raw):
    """Baseline for the raw tests below: a correctly signed raw request succeeds."""
    r = raw.call("ListStreams", {})
    assert r.status == 200, f"correctly signed request refused: {r.status} {r.body[:300]!r}"
    assert "StreamNames" in r.json


def test_wrong_secret_botocore(server):
    c = k.make_client(server, secret_key=server.secret_key[::-1] + "x")
    with aws_error("InvalidSignatureException", status=400) as e:
        c.list_streams()
    assert "signature" in e.message.lower()


def test_unknown_access_key_botocore(server):
    c = k.make_client(server, access_key="AKIAUNKNOWNKEY000000", secret_key="whatever")
    with aws_error("UnrecognizedClientException", status=400,
                   message="The security token included in the request is invalid"):
        c.list_streams()


def test_unknown_access_key_raw(raw):
    r = raw.error("DescribeLimits", {}, "UnrecognizedClientException",
                  access_key="AKIAUNKNOWNKEY000000", secret_key="x")
    assert r.message == "The security token included in the request is invalid."


def test_missing_authentication(raw):
    r = raw.error("ListStreams", {}, "MissingAuthenticationTokenException", sign=False)
    assert r.message == "Missing Authentication Token"


def test_missing_authentication_on_data_plane(raw, make_stream):
    name = make_stream(1)
    raw.error("PutRecord", {"StreamName": name, "PartitionKey": "p", "Data": "eA=="},
              "MissingAuthenticationTokenException", sign=False)


def test_signature_expired(raw):
    r = raw.error("ListStreams", {}, "InvalidSignatureException",
                  when=NOW() - datetime.timedelta(minutes=20))
    assert "Signature expired" in r.message, r.message


def test_signature_from_the_future(raw):
    raw.error("ListStreams", {}, "InvalidSignatureException",
              when=NOW() + datetime.timedelta(minutes=20))


@pytest.mark.parametrize("minutes", [-10, 10])
def test_signature_within_skew_window(raw, minutes):
    r = raw.call("ListStreams", {}, when=NOW() + datetime.timedelta(minutes=minutes))
    assert r.status == 200, f"{minutes} min skew is inside AWS's 15 min window: {r.body!r}"


def test_tampered_body(raw, make_stream):
    name = make_stream(1)
    method, url, body, headers = raw.build("PutRecord", {"StreamName": name, "PartitionKey": "p",
                                                    "Data": "c2lnbmVk"})
    forged = body.replace(b"c2lnbmVk", b"Zm9yZ2Vk")
    r = raw.send(method, url, forged, headers)
    assert r.status == 400 and r.error_type == "InvalidSignatureException", r
    assert k.read_shard(k.make_client(raw.server), name, "shardId-000000000000") == []


def test_tampered_target_header(raw):
    method, url, body, headers = raw.build("ListStreams", {})
    headers["X-Amz-Target"] = "Kinesis_20131202.DescribeLimits"
    r = raw.send(method, url, body, headers)
    assert r.status == 400 and r.error_type == "InvalidSignatureException", r


def test_wrong_service_in_scope(raw):
    method, url, body, headers = raw.build("ListStreams", {}, sign=False)
    headers["Authorization"] = sigv4_authorization(
        method, raw.path, headers, body, raw.server.access_key, raw.server.secret_key,
        raw.server.region, headers["X-Amz-Date"], service="dynamodb")
    r = raw.send(method, url, body, headers)
    assert r.status == 400 and r.error_type == "InvalidSignatureException", r


def test_wrong_region_in_scope(raw):
    other = "eu-west-1" if raw.server.region != "eu-west-1" else "us-west-2"
    raw.error("ListStreams", {}, "InvalidSignatureException", region=other)


def test_malformed_authorization_header(raw):
    r = raw.call("ListStreams", {}, sign=False,
                 extra_headers={"Authorization": "AWS4-HMAC-SHA256 nonsense"})
    assert r.status == 400, r
    assert r.error_type in ("IncompleteSignatureException", "InvalidSignatureException"), r


def test_rejections_do_not_flood_the_log(raw, server):
    """A client sending bad signatures in a loop gets an error each time, but the server logs
    at most 10 rejections a second and then says how many it left out, so bad input cannot
    fill the disk through the log."""
    time.sleep(1.1)  # a fresh one-second window (earlier tests were rejected too)
    before = server.log_text().count("rejected POST")
    for _ in range(300):
        raw.error("ListStreams", {}, "UnrecognizedClientException",
                  access_key="AKIAUNKNOWNKEY000000", secret_key="x")
    text = server.log_text()
    logged = text.count("rejected POST") - before
    assert 1 <= logged <= 40, f"{logged} rejection lines for 300 rejected requests"
    # the requests took under a few seconds, so most were left out; the next logged rejection
    # in a new second reports how many
    time.sleep(1.1)
    raw.error("ListStreams", {}, "UnrecognizedClientException",
              access_key="AKIAUNKNOWNKEY000000", secret_key="x")
    assert "more rejected requests were not logged" in server.log_text()


# ---- authentication before the body --------------------------------------------------------

def _head_only(s, headers, length, body_part=b""):
    """Open a connection, send a request head announcing `length` body bytes and only
    `body_part` of them; return the socket."""
    import socket
    c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    head = b"POST / HTTP/1.1\r\n"
    if not any(n.lower() == "host" for n in headers):
        head += f"Host: {s.host}\r\n".encode()
    for name, value in headers.items():
        head += f"{name}: {value}\r\n".encode()
    head += f"Content-Length: {length}\r\n\r\n".encode()
    c.sendall(head + body_part)
    return c


def _early_answer(c):
    """The response that came before the body was sent (the socket is read to EOF)."""
    got = b""
    while True:
        try:
            b = c.recv(65536)
        except (ConnectionResetError, TimeoutError, OSError):
            break
        if not b:
            break
        got += b
        if b"\r\n\r\n" in got:
            head, _, body = got.partition(b"\r\n\r\n")
            n = [int(h.split(b":")[1]) for h in head.split(b"\r\n")
                 if h.lower().startswith(b"content-length:")]
            if n and len(body) >= n[0]:
                break
    c.close()
    return got


def test_unsigned_partial_bodies_do_not_throttle_signed_writes(private_server):
    """Unsigned requests announcing 8 MiB bodies and sending 64 KiB of each were admitted against
    the in-flight budget until they finished (or timed out), so 24 of them throttled every signed
    PutRecord of a 1 MiB budget.  The SigV4 checks that need no body now run on the head: each is
    refused at once and charges nothing."""
    s = private_server(extra_args=["--max-inflight-mb", "1"])
    c = k.make_client(s)
    name = k.unique_name("budget")
    c.create_stream(StreamName=name, ShardCount=1)
    k.wait_active(c, name)
    target = {"X-Amz-Target": "Kinesis_20131202.PutRecord",
              "Content-Type": "application/x-amz-json-1.1"}
    socks = [_head_only(s, target, 8 << 20, b"x" * (64 << 10)) for _ in range(24)]
    try:
        for _ in range(3):
            r = c.put_record(StreamName=name, Data=b"signed", PartitionKey="p")
            assert r["SequenceNumber"]
        for sock in socks:
            got = _early_answer(sock)
            assert got.startswith(b"HTTP/1.1 400 "), got[:300]
            assert b"MissingAuthenticationTokenException" in got, got[:300]
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("case", ["unknown key", "expired", "wrong region", "bad signature"])
def test_auth_refused_before_the_body(raw, server, case):
    """Everything that can be checked from the head is, before one body byte is read: the AWS
    error arrives though the announced body never does."""
    body = b'{"StreamName":"x","Data":"eA==","PartitionKey":"p"}'
    kw = {}
    if case == "unknown key":
        kw = dict(access_key="AKIAUNKNOWNKEY000000", secret_key="x")
    elif case == "expired":
        kw = dict(when=NOW() - datetime.timedelta(minutes=20))
    elif case == "wrong region":
        kw = dict(region="eu-west-3")
    elif case == "bad signature":   # the hash is given up front: the signature is checked too
        import hashlib
        kw = dict(secret_key="wrong", extra_headers={
            "X-Amz-Content-Sha256": hashlib.sha256(body).hexdigest()})
    method, url, body, headers = raw.build("PutRecord", body=body, **kw)
    headers.pop("Content-Length", None)
    sock = _head_only(server, headers, len(body))    # the body is withheld
    got = _early_answer(sock)
    want = {"unknown key": b"UnrecognizedClientException", "expired": b"InvalidSignatureException",
            "wrong region": b"InvalidSignatureException",
            "bad signature": b"InvalidSignatureException"}[case]
    assert got.startswith(b"HTTP/1.1 400 ") and want in got, got[:400]


def test_signed_with_content_hash_still_checked_against_body(raw, make_stream):
    """A request whose signature was verified on its head (x-amz-content-sha256 given) must still
    carry the body it hashed."""
    import hashlib
    name = make_stream(1)
    good = json_body = ('{"StreamName":"%s","Data":"eA==","PartitionKey":"p"}' % name).encode()
    method, url, body, headers = raw.build("PutRecord", body=good, extra_headers={
        "X-Amz-Content-Sha256": hashlib.sha256(json_body).hexdigest()})
    r = raw.send(method, url, body, headers)
    assert r.status == 200, r
    tampered = good.replace(b'"p"', b'"q"')
    r = raw.send(method, url, tampered, headers)
    assert r.status == 400 and r.error_type == "InvalidSignatureException", r


def test_stalled_body_is_cut_off(private_server):
    """A request that passed the head checks but whose body stops coming is closed at the body
    deadline (--body-timeout plus 1 s per 64 KiB announced), giving its budget back."""
    import time
    s = private_server(extra_args=["--body-timeout", "1"])
    raw = k.RawClient(s)
    method, url, body, headers = raw.build("ListStreams", body=b"{}" + b" " * 98)
    headers.pop("Content-Length", None)
    sock = _head_only(s, headers, len(body), body[:10])     # 90 bytes never sent
    t0 = time.monotonic()
    got = _early_answer(sock)
    assert got == b"", got[:300]          # closed without an answer ...
    assert time.monotonic() - t0 < 4      # ... at the deadline, not the 120 s idle timeout
    assert raw.call("ListStreams", {}).status == 200
