"""SigV4 authentication: the AWS error codes and messages for missing, unknown, wrong and stale
signatures.  Requests are signed either by botocore or by the suite's own signer (helpers)."""
import datetime
import time

import pytest

from helpers import kinesis as k
from helpers.kinesis import aws_error

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
    method, body, headers = raw.build("PutRecord", {"StreamName": name, "PartitionKey": "p",
                                                    "Data": "c2lnbmVk"})
    forged = body.replace(b"c2lnbmVk", b"Zm9yZ2Vk")
    r = raw.send(method, forged, headers)
    assert r.status == 400 and r.error_type == "InvalidSignatureException", r
    assert k.read_shard(k.make_client(raw.server), name, "shardId-000000000000") == []


def test_tampered_target_header(raw):
    method, body, headers = raw.build("ListStreams", {})
    headers["X-Amz-Target"] = "Kinesis_20131202.DescribeLimits"
    r = raw.send(method, body, headers)
    assert r.status == 400 and r.error_type == "InvalidSignatureException", r


def test_wrong_service_in_scope(raw):
    method, body, headers = raw.build("ListStreams", {}, sign=False)
    headers["Authorization"] = k.sigv4_authorization(
        method, raw.path, headers, body, raw.server.access_key, raw.server.secret_key,
        raw.server.region, headers["X-Amz-Date"], service="dynamodb")
    r = raw.send(method, body, headers)
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
