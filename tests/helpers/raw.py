# SPDX-License-Identifier: Apache-2.0
"""Raw signed requests: the one SigV4 signer and HTTP client of the Python helpers.

Tests need requests that boto3 will not make: any date, key, region, service, header or body,
members the installed botocore model lacks (StreamARN and ReturnValuesOnConditionCheckFailure
with botocore 1.29), requests altered after signing, and a look at the raw status, headers and
body.  This module signs with its own SigV4 implementation (not botocore's) and sends over
http.client.  kinesis.py and dynamodb.py subclass RawClient with their protocol's target prefix,
content type and service; a REST API (Lambda) passes path= and method= instead of an operation.

Sockets that send malformed bytes on purpose (test_kinesis_server.py, test_http2.py) do not come
here: they are the test.
"""
import datetime
import hashlib
import hmac
import http.client
import json
import re
from urllib.parse import quote, urlparse

_DEFAULT = object()


# ------------------------------------------------------------------------------------------
# signing
# ------------------------------------------------------------------------------------------

def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def canonical_query(query):
    """SigV4's canonical query string of a {name: value} dict (or a list of pairs)."""
    items = query.items() if isinstance(query, dict) else (query or [])
    enc = sorted((quote(str(n), safe="-_.~"), quote(str(v), safe="-_.~")) for n, v in items)
    return "&".join(f"{n}={v}" for n, v in enc)


def sigv4_authorization(method, path, headers, body, access_key, secret_key, region, amz_date,
                        service="kinesis", query=""):
    """Authorization header value for a request; signs every header given (pseudo-headers such
    as :authority too, as the JS SDK does over HTTP/2).  path is the canonical URI (already
    URI-encoded), query the canonical query string (canonical_query)."""
    lower = {k.lower(): " ".join(str(v).strip().split()) for k, v in headers.items()}
    signed = sorted(lower)
    canonical_headers = "".join(f"{k}:{lower[k]}\n" for k in signed)
    signed_headers = ";".join(signed)
    canonical = "\n".join([method, path, query, canonical_headers, signed_headers,
                           hashlib.sha256(body).hexdigest()])
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret_key).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    k = _hmac(k, "aws4_request")
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={sig}")


def amz_now(when=None):
    """X-Amz-Date of `when` (a datetime; default now, UTC)."""
    return (when or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


# ------------------------------------------------------------------------------------------
# responses
# ------------------------------------------------------------------------------------------

class RawResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def error_type(self):
        """AWS error type from the JSON __type, the x-amzn-ErrorType header or an XML root."""
        if isinstance(self.json, dict):
            t = self.json.get("__type")
            if t is None and isinstance(self.json.get("Output"), dict):
                t = self.json["Output"].get("__type")
            if t:
                return t.split("#")[-1]
        h = self.headers.get("x-amzn-errortype")
        if h:
            return h.split(":")[0]
        m = re.search(rb"<\s*([A-Za-z]+Exception)\b", self.body or b"")
        if m:
            return m.group(1).decode()
        return None

    @property
    def message(self):
        if isinstance(self.json, dict):
            return self.json.get("message") or self.json.get("Message") or ""
        m = re.search(rb"<Message>(.*?)</Message>", self.body or b"", re.S)
        return m.group(1).decode(errors="replace") if m else ""

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:300]!r}>"


# ------------------------------------------------------------------------------------------
# the client
# ------------------------------------------------------------------------------------------

class RawClient:
    """Requests over http.client, signed (or not) exactly as a test wants.

    JSON protocols (Kinesis 1.1, DynamoDB 1.0): call(operation, payload) posts payload as JSON
    with X-Amz-Target = target_prefix + operation.  REST protocols (Lambda): call(path=...,
    method=..., payload=...) sends to that path (query= for a query string).  Subclasses (or
    the constructor) set service, target_prefix and content_type."""

    service = "kinesis"
    target_prefix = ""
    content_type = None

    def __init__(self, server, timeout=60, *, service=None, target_prefix=None,
                 content_type=None):
        self.server = server
        u = urlparse(server.endpoint)
        self.scheme = u.scheme
        self.netloc = u.netloc
        self.path = u.path or "/"
        self.timeout = timeout
        if service is not None:
            self.service = service
        if target_prefix is not None:
            self.target_prefix = target_prefix
        if content_type is not None:
            self.content_type = content_type

    def connection(self):
        host, _, port = self.netloc.partition(":")
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(host, int(port) if port else None, timeout=self.timeout)

    def build(self, operation=None, payload=None, *, body=None, target=None,
              content_type=_DEFAULT, sign=True, access_key=None, secret_key=None, when=None,
              amz_date=None, extra_headers=None, region=None, method="POST", service=None,
              path=None, query=None):
        """(method, url, body, headers) of a request; url is the path with its query string.
        A JSON call's body defaults to {}, a REST call's (path=...) to nothing."""
        rest = path is not None
        if body is None:
            if payload is not None or not rest:
                body = json.dumps(payload if payload is not None else {}).encode()
            else:
                body = b""
        elif isinstance(body, str):
            body = body.encode()
        if content_type is _DEFAULT:
            content_type = ("application/json" if body else None) if rest else self.content_type
        path = path if rest else self.path
        qs = canonical_query(query) if query else ""
        headers = {"Host": self.netloc}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if target is None and operation is not None:
            target = self.target_prefix + operation
        if target is not None:
            headers["X-Amz-Target"] = target
        if amz_date is None:
            amz_date = amz_now(when)
        headers["X-Amz-Date"] = amz_date
        token = getattr(self.server, "session_token", None)
        if token and access_key is None:
            headers["X-Amz-Security-Token"] = token
        if extra_headers:
            headers.update(extra_headers)
        if sign:
            headers["Authorization"] = sigv4_authorization(
                method, path, headers, body, access_key or self.server.access_key,
                secret_key or self.server.secret_key, region or self.server.region, amz_date,
                service=service or self.service, query=qs)
        return method, path + ("?" + qs if qs else ""), body, headers

    def call(self, operation=None, payload=None, conn=None, **kw):
        return self.send(*self.build(operation, payload, **kw), conn=conn)

    def send(self, method, url, body, headers, conn=None):
        """Send a request as built (possibly altered after signing)."""
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request(method, url, body=body, headers=headers)
            r = conn.getresponse()
            return RawResponse(r.status, r.getheaders(), r.read())
        finally:
            if own:
                conn.close()

    def ok(self, operation=None, payload=None, **kw):
        """Call and require HTTP 2xx; returns the decoded JSON body ({} when empty)."""
        r = self.call(operation, payload, **kw)
        what = operation or f"{kw.get('method', 'POST')} {kw.get('path')}"
        assert 200 <= r.status < 300, (f"{what} {payload!r}: expected HTTP 2xx, got {r.status} "
                                       f"{r.error_type}: {r.message!r}")
        return r.json if r.json is not None else {}

    def error(self, operation, payload, *types, status=400, **kw):
        """Call and require an error of one of types (and HTTP status, unless None)."""
        r = self.call(operation, payload, **kw)
        what = operation or f"{kw.get('method', 'POST')} {kw.get('path')}"
        assert not 200 <= r.status < 300, \
            f"{what} {payload!r}: expected {types}, got HTTP {r.status} {r.body!r}"
        assert r.error_type in types, (f"{what}: expected {' or '.join(types)}, got "
                                       f"{r.error_type} (HTTP {r.status}) {r.body[:300]!r}")
        if status is not None:
            assert r.status == status, \
                f"{what}: {r.error_type}: expected HTTP {status}, got {r.status}"
        return r
