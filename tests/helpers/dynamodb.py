# SPDX-License-Identifier: Apache-2.0
"""DynamoDB test helpers: boto3 clients/resources, a raw signed JSON 1.0 caller, table factory.

The raw caller is helpers/raw.py's client with service "dynamodb", target prefix
"DynamoDB_20120810." and content type application/x-amz-json-1.0, so tests can send members the
installed botocore lacks (botocore 1.29 has no ReturnValuesOnConditionCheckFailure on PutItem)
and can look at raw bodies, headers (x-amz-crc32) and __type values.
"""
import re
import uuid

import boto3
from botocore.config import Config

from helpers import kinesis as k
from helpers import raw

TARGET_PREFIX = "DynamoDB_20120810."
JSON_CT = "application/x-amz-json-1.0"
ERR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
VALIDATION_TYPE = "com.amazon.coral.validate#ValidationException"

aws_error = k.aws_error


def _session(server, access_key=None, secret_key=None):
    return boto3.session.Session(
        aws_access_key_id=access_key or server.access_key,
        aws_secret_access_key=secret_key or server.secret_key,
        aws_session_token=getattr(server, "session_token", None) if access_key is None else None,
        region_name=server.region)


def _config(validate=True, read_timeout=60, pool=16):
    return Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5,
                  read_timeout=read_timeout, parameter_validation=validate,
                  max_pool_connections=pool)


def make_client(server, validate=True, read_timeout=60, pool=16, **kw):
    """A boto3 DynamoDB client: one attempt, bounded timeouts (botocore checks x-amz-crc32)."""
    return _session(server, **kw).client("dynamodb", endpoint_url=server.endpoint,
                                          config=_config(validate, read_timeout, pool))


def make_resource(server, validate=True):
    return _session(server).resource("dynamodb", endpoint_url=server.endpoint,
                                     config=_config(validate))


def unique_table(tag="t"):
    tag = re.sub(r"[^a-zA-Z0-9_.-]", "-", tag)[:60]
    return f"tr-{tag}-{uuid.uuid4().hex[:10]}"


def wait_active(client, name, timeout=120):
    """DescribeTable until the table and all its GSIs are ACTIVE."""
    def probe():
        t = client.describe_table(TableName=name)["Table"]
        return t["TableStatus"] == "ACTIVE" and all(
            g.get("IndexStatus") == "ACTIVE" for g in t.get("GlobalSecondaryIndexes", [])), t
    return k.poll(probe, timeout, lambda t: f"table {name} not ACTIVE after {timeout}s: {t}")


def wait_gone(client, name, timeout=120):
    k.poll(k.absent(lambda: client.describe_table(TableName=name)), timeout,
           lambda _: f"table {name} still exists {timeout}s after DeleteTable")


def key_schema(hash_key, range_key=None):
    ks = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        ks.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return ks


def attr_defs(**types):
    return [{"AttributeName": n, "AttributeType": t} for n, t in types.items()]


class RawClient(raw.RawClient):
    """Hand-signed DynamoDB JSON 1.0 requests (helpers/raw.py)."""
    service = "dynamodb"
    target_prefix = TARGET_PREFIX
    content_type = JSON_CT


def full_type(r):
    """The raw __type of an error response."""
    return (r.json or {}).get("__type")
