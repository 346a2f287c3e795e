# SPDX-License-Identifier: Apache-2.0
"""The JSON 1.1 wire protocol itself: bad bodies, content types and targets, response headers,
connection reuse and robustness against junk."""
import base64
import concurrent.futures
import socket

import pytest

from helpers import kinesis as k


def test_bad_json_is_serialization_exception(raw):
    for body in (b"{not json", b"{\"StreamName\": ", b"\xff\xfe"):
        r = raw.error("DescribeStreamSummary", None, "SerializationException", body=body)
        assert r.status == 400


def test_json_not_an_object(raw):
    for body in (b"123", b"\"s\"", b"null"):
        raw.error("ListStreams", None, "SerializationException", body=body)


def test_wrong_member_type_is_serialization_exception(raw):
    raw.error("CreateStream", {"StreamName": k.unique_name("type"), "ShardCount": "abc"},
              "SerializationException")
    raw.error("ListStreams", {"Limit": "ten"}, "SerializationException")


def test_bad_base64_data(raw, make_stream):
    name = make_stream(1)
    raw.error("PutRecord", {"StreamName": name, "PartitionKey": "p", "Data": "!!!not-base64!!!"},
              "SerializationException", "ValidationException", "InvalidArgumentException")


def test_unknown_operation(raw):
    r = raw.error("FrobnicateStream", {}, "UnknownOperationException")
    assert r.status == 400


def test_unknown_service_prefix(raw):
    raw.error(None, {}, "UnknownOperationException", target="Frobnicate_20200101.ListThings")


def test_unsupported_kinesis_operation(raw):
    """Operations outside Tributary's list are refused cleanly (AWS has them, we don't)."""
    r = raw.call("ListStreamConsumers", {"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:"
                                                      "stream/x"})
    if r.status != 200:
        assert r.error_type in ("UnknownOperationException", "ResourceNotFoundException",
                                "InvalidArgumentException"), r


def test_wrong_content_type(raw):
    r = raw.call("ListStreams", {}, content_type="text/plain")
    assert r.status in (400, 404), r
    assert r.error_type in ("UnknownOperationException", "SerializationException"), r


def test_missing_target(raw):
    r = raw.call(None, {})
    assert 400 <= r.status < 500, r
    assert r.error_type in ("UnknownOperationException", "AccessDeniedException",
                            "MissingAuthenticationTokenException", "SerializationException"), r


def test_get_method_refused(raw):
    r = raw.call("ListStreams", None, method="GET", body=b"")
    assert 400 <= r.status < 500, r


def test_response_headers(raw, make_stream):
    r = raw.call("ListStreams", {"Limit": 1})
    assert r.status == 200
    assert r.headers.get("x-amzn-requestid"), "every response carries x-amzn-RequestId"
    assert r.headers.get("content-type", "").startswith("application/x-amz-json-1.1")
    e = raw.error("DescribeStreamSummary", {"StreamName": k.unique_name("hdr")},
                  "ResourceNotFoundException")
    assert e.headers.get("x-amzn-requestid"), "error responses carry x-amzn-RequestId too"
    assert e.headers.get("content-type", "").startswith("application/x-amz-json-1.1")
    assert set(e.json) >= {"__type", "message"}, f"AWS error body shape: {e.json}"
    assert e.message, "ResourceNotFoundException should say which stream"


def test_keep_alive_reuses_connection(raw):
    conn = raw.connection()
    try:
        for _ in range(5):
            r = raw.call("ListStreams", {"Limit": 1}, conn=conn)
            assert r.status == 200
    finally:
        conn.close()


def test_empty_body(raw):
    r = raw.call("ListStreams", None, body=b"")
    # AWS: an empty body with application/x-amz-json-1.1 is a SerializationException
    assert r.status == 400 and r.error_type == "SerializationException", r


def test_oversized_body_refused_and_server_survives(private_server):
    server = private_server()
    raw = k.RawClient(server)
    name = k.unique_name("big")
    k.make_client(server).create_stream(StreamName=name, ShardCount=1)
    k.wait_active(k.make_client(server), name)
    data = base64.b64encode(b"\0" * (12 * 1024 * 1024)).decode()
    try:
        r = raw.call("PutRecord", {"StreamName": name, "PartitionKey": "p", "Data": data})
        assert 400 <= r.status < 500, r
    except (ConnectionError, OSError):
        pass  # closing the connection on an oversized body is acceptable
    assert raw.call("ListStreams", {}).status == 200, "server must survive an oversized request"
    assert k.read_shard(k.make_client(server), name, "shardId-000000000000") == []


def test_garbage_bytes_do_not_kill_server(private_server):
    server = private_server()
    raw = k.RawClient(server)
    host, port = "127.0.0.1", server.port
    for junk in (b"GARBAGE\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                 b"\x00" * 4096, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection((host, port), timeout=5) as s:
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(5)
                while s.recv(65536):
                    pass
            except OSError:
                pass
    assert raw.call("ListStreams", {}).status == 200
    assert server.running()


def test_half_sent_request_does_not_block_others(private_server):
    """A client that sends headers and stalls must not stop the server serving others, nor
    kill it when it goes away."""
    server = private_server()
    raw = k.RawClient(server)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        assert raw.call("ListStreams", {}).status == 200
    finally:
        s.close()
    assert raw.call("ListStreams", {}).status == 200
    assert server.running()


def test_concurrent_requests(server, make_stream, local_only):
    name = make_stream(2)

    def work(i):
        c = k.make_client(server)
        r = c.put_record(StreamName=name, PartitionKey=f"c{i}", Data=b"%d" % i)
        c.describe_stream_summary(StreamName=name)
        return r["SequenceNumber"]

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        seqs = list(ex.map(work, range(64)))
    assert len(set(seqs)) == 64
    c = k.make_client(server)
    got = sorted(r["Data"] for sid in ("shardId-000000000000", "shardId-000000000001")
                 for r in k.read_shard(c, name, sid))
    assert got == sorted(b"%d" % i for i in range(64))


@pytest.mark.parametrize("op", ["DescribeStream", "DescribeStreamSummary", "ListShards",
                                "DeleteStream", "ListTagsForStream"])
def test_missing_required_stream_name(raw, op):
    raw.error(op, {}, "ValidationException", "InvalidArgumentException")
