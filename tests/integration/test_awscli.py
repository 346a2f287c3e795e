# SPDX-License-Identifier: Apache-2.0
"""The same server driven by the aws CLI v2 (Debian's awscli), in an isolated environment."""
import base64
import os
import subprocess

import pytest

from helpers import kinesis as k
from helpers.server import AWS_CLI, aws_cli, cli_env

AWS = AWS_CLI


@pytest.fixture(scope="module")
def aws(server, tmp_path_factory):
    return aws_cli(server, "kinesis", tmp_path_factory.mktemp("awshome"))


def test_cli_version_is_v2():
    p = subprocess.run([AWS, "--version"], capture_output=True, timeout=30,
                       env={"PATH": os.environ.get("PATH", "")})
    assert p.stdout.decode().startswith("aws-cli/2."), p.stdout + p.stderr


def test_cli_stream_lifecycle(aws, server):
    name = k.unique_name("cli")
    aws("create-stream", "--stream-name", name, "--shard-count", "2")
    try:
        aws("wait", "stream-exists", "--stream-name", name)
        _, s, _ = aws("describe-stream-summary", "--stream-name", name)
        s = s["StreamDescriptionSummary"]
        assert s["StreamName"] == name and s["StreamStatus"] == "ACTIVE"
        assert s["OpenShardCount"] == 2

        payload = "hello \u00e9 from the cli"
        _, put, _ = aws("put-record", "--stream-name", name, "--partition-key", "cli-pk",
                        "--data", payload, "--cli-binary-format", "raw-in-base64-out")
        shard, seq = put["ShardId"], put["SequenceNumber"]
        k.check_seq(server, seq)

        _, it, _ = aws("get-shard-iterator", "--stream-name", name, "--shard-id", shard,
                       "--shard-iterator-type", "AT_SEQUENCE_NUMBER",
                       "--starting-sequence-number", seq)
        _, got, _ = aws("get-records", "--shard-iterator", it["ShardIterator"])
        assert len(got["Records"]) == 1
        rec = got["Records"][0]
        assert base64.b64decode(rec["Data"]) == payload.encode()
        assert rec["PartitionKey"] == "cli-pk" and rec["SequenceNumber"] == seq
        assert got["NextShardIterator"]

        _, ls, _ = aws("list-streams")
        assert name in ls["StreamNames"]
    finally:
        aws("delete-stream", "--stream-name", name)
    aws("wait", "stream-not-exists", "--stream-name", name)
    _, ls, _ = aws("list-streams")
    assert name not in ls["StreamNames"]


def test_cli_error_exit_code_and_message(aws):
    name = k.unique_name("cli-missing")
    rc, _, err = aws("describe-stream-summary", "--stream-name", name, check=False)
    assert rc == 254, f"aws CLI v2 exits 254 on a service error, got {rc}: {err}"
    assert "ResourceNotFoundException" in err, err
    assert "DescribeStreamSummary" in err, err


def test_cli_auth_error(server, tmp_path):
    env = cli_env(server, {"HOME": str(tmp_path), "AWS_SECRET_ACCESS_KEY": "wrong-secret"})
    p = subprocess.run([AWS, "--endpoint-url", server.endpoint, "kinesis", "list-streams"],
                       env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 254
    assert b"InvalidSignatureException" in p.stderr, p.stderr
