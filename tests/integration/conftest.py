# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the Kinesis integration suite.

server         session-scoped: a Tributary process on 127.0.0.1:<free port> with a fresh temp
               data dir and fixed test credentials (TRIBUTARY_ACCESS_KEY_ID/SECRET in its env),
               or the external TRIBUTARY_ENDPOINT (e.g. real AWS) when that is set.
kinesis        boto3 client for it (us-east-1, one attempt, bounded timeouts).
kinesis_nv     same with client-side parameter validation off, so the server's own validation
               (ValidationException, ...) is what the test sees.
raw            RawClient: hand-signed JSON 1.1 requests (any header, date, key or body).
make_stream    factory: creates a stream, waits ACTIVE, deletes it at teardown.
private_server factory for a dedicated server the test may restart / kill (durability tests).
ddb, ddb_nv    boto3 DynamoDB clients (ddb_nv: client-side validation off); ddb_res the resource.
ddb_raw        RawClient for hand-signed DynamoDB JSON 1.0 requests.
make_table     factory: creates a table (HASH [+ RANGE], PAY_PER_REQUEST by default), waits
               ACTIVE, deletes it at teardown.
"""
import pytest
from botocore.exceptions import ClientError

from helpers import dynamodb as d
from helpers import kinesis as k
from helpers import server as srv


@pytest.fixture(scope="session")
def server():
    ext = srv.external_endpoint()
    if ext:
        s = srv.ExternalServer(ext)
        yield s
        s.close()
        return
    s = srv.start_or_fail(srv.ServerProcess())
    yield s
    srv.close_or_fail([s])


@pytest.fixture(scope="session")
def kinesis(server):
    return k.make_client(server)


@pytest.fixture(scope="session")
def kinesis_nv(server):
    return k.make_client(server, validate=False)


@pytest.fixture(scope="session")
def raw(server):
    return k.RawClient(server)


@pytest.fixture
def local_only(server):
    if server.external:
        pytest.skip("needs a server started by the suite (TRIBUTARY_ENDPOINT is set)")


@pytest.fixture
def make_stream(kinesis, server, request):
    created = []

    def make(shards=1, name=None, mode=None, wait=True):
        name = name or k.unique_name(request.node.name)
        kw = {"StreamName": name}
        if shards is not None:
            kw["ShardCount"] = shards
        if mode:
            kw["StreamModeDetails"] = {"StreamMode": mode}
        kinesis.create_stream(**kw)
        created.append(name)
        if wait:
            summary = k.wait_active(kinesis, name)
            if server.account is None:
                server.account = summary["StreamARN"].split(":")[4]
        return name

    yield make
    for name in created:
        try:
            kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        except ClientError:
            pass
        except Exception:  # server may be down after a failure; don't mask the test's error
            pass


@pytest.fixture
def private_server(server):
    """Factory for dedicated servers (own data dir) that a test may restart or kill."""
    with srv.server_factory() as make:
        yield make


# ---- DynamoDB ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def ddb(server):
    return d.make_client(server)


@pytest.fixture(scope="session")
def ddb_nv(server):
    return d.make_client(server, validate=False)


@pytest.fixture(scope="session")
def ddb_res(server):
    return d.make_resource(server)


@pytest.fixture(scope="session")
def ddb_raw(server):
    return d.RawClient(server)


@pytest.fixture
def make_table(ddb, request):
    """make_table(hash=("pk", "S"), range=None, **CreateTable members) -> table name."""
    created = []

    def make(hash=("pk", "S"), range=None, name=None, attrs=None, wait=True, **kw):
        name = name or d.unique_table(request.node.name)
        defs = {hash[0]: hash[1]}
        if range:
            defs[range[0]] = range[1]
        defs.update(attrs or {})
        args = {"TableName": name, "KeySchema": d.key_schema(hash[0], range and range[0]),
                "AttributeDefinitions": d.attr_defs(**defs)}
        if "ProvisionedThroughput" not in kw:
            args["BillingMode"] = "PAY_PER_REQUEST"
        args.update(kw)
        ddb.create_table(**args)
        created.append(name)
        if wait:
            d.wait_active(ddb, name)
        return name

    yield make
    for name in created:
        try:
            ddb.delete_table(TableName=name)
        except Exception:  # already deleted by the test, or the server is down
            pass
