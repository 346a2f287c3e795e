"""The server process contract: command line, log line, generated credentials file."""
import configparser
import os
import stat
import subprocess

from helpers import kinesis as k
from helpers import server as srv
from helpers.kinesis import aws_error


def test_serve_help(local_only):
    r = subprocess.run([str(srv.server_bin()), "serve", "--help"], capture_output=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, out
    for opt in ("--data", "--port"):
        assert opt in out, f"serve --help does not mention {opt}:\n{out}"


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
