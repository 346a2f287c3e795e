# SPDX-License-Identifier: Apache-2.0
"""Start, stop and restart a Tributary server for tests, or stand in for an external endpoint.

A ServerProcess owns one temp root holding ``data/`` (the server's --data dir) and ``server.log``
(its stdout+stderr).  Functions are confined (README, "What a function can reach"): by default
the suite's servers let them write the temp dir (tests hand them marker files there) and read the
repository (tests/js/node_modules); ``fn_dirs=False`` starts a server with no such allowance.
``cwd`` and ``data_arg`` start it elsewhere with another --data spelling (a relative one).  It
binds 127.0.0.1 on a free port, waits for the port to accept a TCP connection (bounded polling, no
fixed sleeps), and is stopped by PID: SIGTERM, then SIGKILL after a bound.  ``restart()`` keeps the data dir and the port, for durability and crash tests.

ExternalServer wraps TRIBUTARY_ENDPOINT (e.g. real AWS): same attributes, no process control.

For fixtures: ``own_server(why, **kw)`` (one server started for a test and closed after it) and
``server_factory(why)`` (a ``make(**kw)`` that starts servers, all closed after the test) skip
when TRIBUTARY_ENDPOINT is set, fail the test with the log when a server does not start, and
fail it when a server's log holds sanitizer reports.  ``metrics_text(server)`` reads /metrics.
"""
import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "build" / "tributary"

TEST_ACCESS_KEY = "AKIATRIBUTARYTEST001"
TEST_SECRET_KEY = "tributary/test/secret/key/0123456789abcd"
LOCAL_ACCOUNT = "000000000000"

START_TIMEOUT = 20.0   # seconds for the port to accept connections
STOP_TIMEOUT = 10.0    # seconds between SIGTERM and SIGKILL

_registry = []


def registered_servers():
    """Servers whose logs are attached to failing test reports."""
    return list(_registry)


def server_bin():
    return pathlib.Path(os.environ.get("TRIBUTARY_BIN", str(DEFAULT_BIN)))


def external_endpoint():
    return os.environ.get("TRIBUTARY_ENDPOINT") or None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerError(RuntimeError):
    pass


class ServerProcess:
    external = False
    session_token = None

    def __init__(self, root=None, region="us-east-1", access_key=TEST_ACCESS_KEY,
                 secret_key=TEST_SECRET_KEY, keys_from_env=True, extra_args=(), binary=None,
                 fn_dirs=True, cwd=None, data_arg=None):
        self.binary = pathlib.Path(binary) if binary else server_bin()
        self._own_root = root is None
        self.root = pathlib.Path(root or tempfile.mkdtemp(prefix="tributary-test-"))
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "server.log"
        self.region = region
        self.access_key = access_key if keys_from_env else None
        self.secret_key = secret_key if keys_from_env else None
        self.keys_from_env = keys_from_env
        self.extra_args = list(extra_args)
        self.fn_dirs = fn_dirs
        self.cwd = cwd
        self.data_arg = data_arg
        self.account = LOCAL_ACCOUNT
        self.port = None
        self.proc = None
        self.starts = 0
        _registry.append(self)

    # -- properties -------------------------------------------------------------------------
    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle --------------------------------------------------------------------------
    def command(self):
        fn = ["--lambda-write-dir", tempfile.gettempdir(), "--lambda-read-dir", str(REPO)] \
            if self.fn_dirs else []
        return [str(self.binary), "serve", "--data", self.data_arg or str(self.data_dir),
                "--port", str(self.port), "--bind", "127.0.0.1", "--region", self.region, *fn,
                *self.extra_args]

    def start(self, timeout=START_TIMEOUT):
        if not self.binary.exists():
            raise ServerError(f"server binary {self.binary} not found; build it (make) or set "
                              f"TRIBUTARY_BIN")
        if self.port is None:
            self.port = free_port()
        env = dict(os.environ)
        env.pop("TRIBUTARY_ACCESS_KEY_ID", None)
        env.pop("TRIBUTARY_SECRET_ACCESS_KEY", None)
        if self.keys_from_env:
            env["TRIBUTARY_ACCESS_KEY_ID"] = self.access_key
            env["TRIBUTARY_SECRET_ACCESS_KEY"] = self.secret_key
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"---- test harness: start #{self.starts}: {' '.join(self.command())}\n"
                      .encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=env, start_new_session=True,
                                         cwd=self.cwd)
        self.wait_listening(timeout)
        if not self.keys_from_env:
            self.load_generated_credentials()
        return self

    def wait_listening(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerError(f"server exited with code {rc} before listening on "
                                  f"{self.host}\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"server not listening on {self.host} after {timeout}s\n"
                                  f"{self.log_tail()}")
            time.sleep(0.02)  # poll interval

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Stop by PID; returns the exit code (negative signal number when killed)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        with open(self.log_path, "ab") as log:
            log.write(f"---- test harness: stopped with {signal.Signals(sig).name}, exit code "
                      f"{proc.returncode}\n".encode())
        return proc.returncode

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self, sig=signal.SIGTERM, timeout=START_TIMEOUT):
        """Stop (SIGTERM or SIGKILL) and start again on the same data dir and port."""
        self.stop(sig)
        return self.start(timeout)

    def close(self):
        """Stop, forget and clean up; returns sanitizer reports found in the log (ASan/UBSan
        builds), which the fixtures turn into an error."""
        self.stop()
        findings = self.sanitizer_reports()
        if self in _registry:
            _registry.remove(self)
        if self._own_root and os.environ.get("TRIBUTARY_KEEP_DATA") != "1" and not findings:
            shutil.rmtree(self.root, ignore_errors=True)
        return findings

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "SUMMARY: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer")

    def sanitizer_reports(self):
        lines = self.log_text().splitlines()
        hits = [i for i, line in enumerate(lines) if any(m in line for m in self.SANITIZER_MARKS)]
        if not hits:
            return ""
        first = hits[0]
        return f"{self.log_path}:\n" + "\n".join(lines[max(0, first - 2):first + 40])

    # -- credentials and logs ---------------------------------------------------------------
    def credentials_path(self):
        return self.data_dir / "credentials"

    def load_generated_credentials(self):
        import configparser
        cp = configparser.ConfigParser()
        path = self.credentials_path()
        if not cp.read(path):
            raise ServerError(f"no credentials file at {path}\n{self.log_tail()}")
        self.access_key = cp["default"]["aws_access_key_id"].strip()
        self.secret_key = cp["default"]["aws_secret_access_key"].strip()

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])


class ExternalServer:
    """TRIBUTARY_ENDPOINT: a server (or AWS) that the suite does not control."""
    external = True
    proc = None
    log_path = "(external endpoint: no log)"

    def __init__(self, endpoint):
        import boto3
        self.endpoint = endpoint.rstrip("/")
        session = boto3.session.Session()
        creds = session.get_credentials()
        if creds is None:
            raise ServerError("TRIBUTARY_ENDPOINT is set but no AWS credentials were found")
        creds = creds.get_frozen_credentials()
        self.access_key, self.secret_key = creds.access_key, creds.secret_key
        self.session_token = creds.token
        self.region = (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                       or session.region_name or "us-east-1")
        from urllib.parse import urlparse
        self.host = urlparse(self.endpoint).netloc
        self.account = None  # learnt from the first ARN seen
        _registry.append(self)

    def running(self):
        return True

    def log_tail(self, lines=40):
        return "(external endpoint: no log)"

    def close(self):
        if self in _registry:
            _registry.remove(self)
        return ""


# ---- fixtures' building blocks ------------------------------------------------------------------

def require_own_server(why="this test"):
    """Skip when the suite runs against TRIBUTARY_ENDPOINT: `why` needs a server of its own."""
    import pytest
    if external_endpoint():
        pytest.skip(f"{why} needs a server started by the suite (TRIBUTARY_ENDPOINT is set)")


def start_or_fail(s):
    """Start ServerProcess s; a server that does not come up fails the test with its log."""
    import pytest
    try:
        s.start()
    except ServerError as e:
        s.close()
        pytest.fail(f"could not start tributary: {e}", pytrace=False)
    return s


def close_or_fail(servers):
    """Close servers; sanitizer reports in their logs fail the test."""
    import pytest
    findings = "".join(s.close() for s in servers)
    if findings:
        pytest.fail(f"sanitizer reports in the server log:\n{findings}", pytrace=False)


@contextlib.contextmanager
def own_server(why="this test", **kw):
    """A ServerProcess(**kw) started for the block and closed after it (see the module text):
    ``with own_server("kill -9") as s: yield s`` in a fixture."""
    require_own_server(why)
    s = start_or_fail(ServerProcess(**kw))
    yield s
    close_or_fail([s])


@contextlib.contextmanager
def server_factory(why="this test"):
    """make(**kw) -> a started ServerProcess(**kw); every one is closed after the block."""
    require_own_server(why)
    started = []

    def make(**kw):
        s = ServerProcess(**kw)
        started.append(s)
        return start_or_fail(s)

    yield make
    close_or_fail(started)


def kill9_amid(s, writers, stop, until, done=lambda: False, note=""):
    """SIGKILL server s amid the load of `writers` (threads with .failure and .name): at
    monotonic time `until`, or earlier once done() is true or a writer has failed; then set
    `stop`, join every writer (each must end within 30 s) and raise the first writer failure.
    `note` (e.g. " (seed 123)") is added to the messages.  The crash tests' kill -9 round."""
    while time.monotonic() < until and not done() and not any(w.failure for w in writers):
        time.sleep(0.002)  # bounded polling for a moment chosen at random: the wait is the test
    s.kill9()
    stop.set()
    for w in writers:
        w.join(timeout=30)
        assert not w.is_alive(), f"{w.name} did not stop within 30 s{note}"
    for w in writers:
        if w.failure:
            raise AssertionError(f"{w.name} failed{note}: {w.failure!r}") from w.failure


def metrics_text(server, timeout=10):
    """The server's GET /metrics (Prometheus text; needs no signature)."""
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=timeout) as r:
        return r.read().decode()


AWS_CLI = os.environ.get("AWS_CLI", "/usr/bin/aws")


def aws_cli(server, service, home):
    """run(*args, check=True) -> (exit code, decoded JSON output or {}, stderr): `aws <service>
    <args>` (AWS_CLI, default /usr/bin/aws) against server with cli_env and HOME=home; a
    missing CLI fails the test.  check: a nonzero exit fails the test with stderr."""
    import json
    import pytest
    if not (os.path.isfile(AWS_CLI) and os.access(AWS_CLI, os.X_OK)) and not shutil.which(AWS_CLI):
        pytest.fail(f"aws CLI not found at {AWS_CLI}; install awscli (scripts/deps.sh test) or "
                    f"set AWS_CLI")
    env = cli_env(server, {"HOME": str(home)})

    def run(*args, check=True):
        cmd = [AWS_CLI, "--endpoint-url", server.endpoint, "--output", "json", service, *args]
        p = subprocess.run(cmd, env=env, capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        if check:
            assert p.returncode == 0, f"{' '.join(args)} -> exit {p.returncode}\n{err}"
        return p.returncode, (json.loads(out) if out.strip() else {}), err

    return run


def cli_env(server, extra=None):
    """Environment for child processes (aws CLI, node): no Python path leaks, isolated config."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": server.region,
        "AWS_REGION": server.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_PAGER": "",
        "AWS_DEFAULT_OUTPUT": "json",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    token = getattr(server, "session_token", None)
    if token:
        env["AWS_SESSION_TOKEN"] = token
    env.update(extra or {})
    return env
