# SPDX-License-Identifier: Apache-2.0
"""What a function can reach (README, "What a function can reach"): a provided.al2023 shell function
and a native one (tests/functions/privprobe.c) try to read the server's credentials, list its data
directory, read another function's code, write outside their scratch dir, read the server's
environment, signal it, and list their own descriptors and environment.  The sandbox (Landlock)
must deny the file accesses; descriptor and environment hygiene hold everywhere.

Also #18: a server started with a relative --data (from another cwd) runs provided and native
functions, and a failing bootstrap's log names the path it could not run."""
import ctypes
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile

import pytest

from helpers import esm
from helpers import lambdafn as lf
from helpers import server as srv
from helpers.lambdafn import lam, make_function  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("local_only")


def landlock_abi():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    r = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint(1))   # x86-64/arm64 number
    return max(int(r), 0)


ABI = landlock_abi()


def namespaces_allowed():
    """Can this machine give a process a mount namespace (through a user namespace if need be)?"""
    try:
        return subprocess.run(["unshare", "-m" if os.geteuid() == 0 else "-Urm", "true"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


NAMESPACES = namespaces_allowed()
needs_landlock = pytest.mark.skipif(
    ABI < 1, reason="the kernel has no Landlock: functions run unconfined here (the server logs "
                    "it at start); the denials cannot be checked")

# A provided.al2023 handler (RICH_BOOTSTRAP): each probe "ok" or the error; fds of the bootstrap
# process itself ($$), whose descriptors are what it inherited from the server.
SHELL_PROBE = r'''handler() {
  local fds; fds=$(for f in /proc/$$/fd/*; do printf '%s %s\n' "${f##*/}" "$(readlink "$f")"; done)
  FDS="$fds" BOOT_PID=$$ PARENT_PID=$PPID python3 -c '
import json, os, sys, signal
ev = json.loads(sys.argv[1])
def t(f):
    try:
        f(); return "ok"
    except OSError as e:
        return e.strerror
def w(p, keep=False):
    with open(p, "w") as fh: fh.write("x")
    if not keep: os.unlink(p)
def ls(p):
    try:
        return ":".join(["ok"] + sorted(os.listdir(p)))
    except OSError as e:
        return e.strerror
res = {
  "read_credentials": t(lambda: open(ev["data"] + "/credentials").read()),
  "list_data": ls(ev["data"]),
  "read_other_code": t(lambda: open(ev["other"]).read()),
  "write_data": t(lambda: w(ev["data"] + "/shell-was-here")),
  "write_tmp": t(lambda: w("/tmp/tributary-privprobe-escape-sh", keep=True)),
  "tmpdir": os.environ.get("TMPDIR"),
  "write_scratch": t(lambda: w(os.environ.get("TMPDIR", "/no-tmpdir") + "/x")),
  "read_own_code": t(lambda: open(os.environ["LAMBDA_TASK_ROOT"] + "/function.sh").read()),
  "write_own_code": t(lambda: w(os.environ["LAMBDA_TASK_ROOT"] + "/function.sh", keep=True)),
  "read_etc": t(lambda: open("/etc/passwd").read()),
  "open_tty": t(lambda: os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))),
  "read_repo": t(lambda: open(ev["repo_file"]).read()) if ev.get("repo_file") else "Invalid argument",
  "read_shadow": t(lambda: open("/etc/shadow").read()),
  "dev_stderr": t(lambda: open("/dev/stderr", "w").write("")),
  "read_ca_certs": t(lambda: os.listdir("/etc/ssl/certs")),
  "server_environ": t(lambda: open("/proc/%d/environ" % ev["server_pid"]).read()),
  "signal_server": t(lambda: os.kill(ev["server_pid"], 0)),
  "fds": os.environ["FDS"].splitlines(),
  "env": sorted(k for k in os.environ if k not in ("FDS", "BOOT_PID", "PARENT_PID")),
  "uid": os.getuid(),
  "root": os.environ["LAMBDA_TASK_ROOT"],
  "cap_eff": [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff:")][0],
}
print(json.dumps(res))' "$1"
}'''

# What AWS gives a function, plus ours: nothing else of the server's environment.
ALLOWED_ENV = {
    "AWS_LAMBDA_RUNTIME_API", "_HANDLER", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "AWS_DEFAULT_REGION", "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_EXECUTION_ENV", "TZ", "LANG", "PATH", "LD_LIBRARY_PATH",
    "TMPDIR", "TRIBUTARY_FN_PARENT", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
    # bash's own, and the test's variables
    "PWD", "SHLVL", "_", "OLDPWD", "PRIV_DATA", "PRIV_OTHER", "PRIV_REPO_FILE", "HEADERS",
    "REQUEST_ID",
    "EVENT_FILE",
    "LC_CTYPE",   # python3 sets it itself (PEP 538 locale coercion)
}


@pytest.fixture(scope="module")
def confined(tmp_path_factory):
    """A server with no --lambda-*-dir allowance and, in its environment, a secret-looking
    variable the functions must not see."""
    s = srv.ServerProcess(fn_dirs=False, keys_from_env=False)   # DATA/credentials generated
    os.environ["AWS_SECRET_ACCESS_KEY_FNPRIV_CANARY"] = "canary"
    try:
        s.start()
    finally:
        os.environ.pop("AWS_SECRET_ACCESS_KEY_FNPRIV_CANARY", None)
    yield s
    findings = s.close()
    assert not findings, findings


@pytest.fixture(scope="module")
def clam(confined):
    return lf.make_client(confined)


def create(lam, name, zip_, runtime, handler, env):
    lam.create_function(FunctionName=name, Runtime=runtime, Role=lf.ROLE, Handler=handler,
                        Code={"ZipFile": zip_}, Environment={"Variables": env}, Timeout=20)


def other_code_file(server, name):
    """A file of another function's unpacked package (DATA/functions/...)."""
    for p in (server.data_dir / "functions").rglob("function.sh"):
        return str(p)
    raise AssertionError(f"no unpacked package under {server.data_dir}/functions for {name}")


def probe_both(confined, clam):
    """Run the shell and the native probe; returns {runtime: result}."""
    for tag in ("sh", "c"):
        try:
            os.unlink(f"/tmp/tributary-privprobe-escape-{tag}")
        except FileNotFoundError:
            pass
    other = lf.unique_name("other")
    create(clam, other, lf.handler_zip("echo"), "provided.al2023", "function.handler", {})
    lf.invoke_json(clam, other, {})
    data = str(confined.data_dir.resolve())
    env = {"PRIV_DATA": data, "PRIV_OTHER": other_code_file(confined, other),
           "PRIV_REPO_FILE": str(srv.REPO / "README.md")}
    out = {}
    sh = lf.unique_name("privsh")
    create(clam, sh, lf.make_zip({"bootstrap": (lf.RICH_BOOTSTRAP, 0o755),
                                  "function.sh": SHELL_PROBE}),
           "provided.al2023", "function.handler", env)
    r, body = lf.invoke_json(clam, sh, {"data": data, "other": env["PRIV_OTHER"],
                                        "server_pid": confined.pid,
                                        "repo_file": env["PRIV_REPO_FILE"]})
    assert "FunctionError" not in r, body
    out["provided"] = body
    nat = lf.unique_name("privc")
    create(clam, nat, esm.native_zip("privprobe"), esm.NATIVE_RUNTIME, "libprivprobe.so:handler",
           env)
    r, body = lf.invoke_json(clam, nat, {})
    assert "FunctionError" not in r, body
    out["native"] = body
    for n in (other, sh, nat):
        clam.delete_function(FunctionName=n)
    assert not (confined.data_dir / "shell-was-here").exists()
    assert not (confined.data_dir / "privprobe-was-here").exists()
    return out


@pytest.fixture(scope="module")
def probed(confined, clam):
    return probe_both(confined, clam)


@needs_landlock
@pytest.mark.parametrize("runtime", ["provided", "native"])
def test_function_cannot_reach_the_data_directory(probed, runtime):
    # Denied (Landlock), or out of sight: where namespaces are allowed the function's /tmp is its
    # own, and the suite's data dir (under the server's /tmp) is not there at all -- only the
    # empty mount points leading to its package.  Writes never reach the real data dir (see
    # probe_both) nor the real /tmp (test_function_tmp_is_its_own).
    r = probed[runtime]
    assert r["read_credentials"] in ("Permission denied", "No such file or directory"), r
    assert r["read_other_code"] in ("Permission denied", "No such file or directory"), r
    assert r["list_data"] in ("Permission denied", "ok:functions"), r
    # its package is read-only (also where the private /tmp binds it beneath the scratch dir)
    assert r["write_own_code"] in ("Permission denied", "Read-only file system"), r
    # what it needs still works
    assert r["write_scratch"] == "ok" and r["read_own_code"] == "ok" and r["read_etc"] == "ok", r
    if runtime == "provided":
        assert r["dev_stderr"] == "ok" and r["read_ca_certs"] == "ok", r
        assert r["read_shadow"] in ("Permission denied", "No such file or directory"), r


@needs_landlock
@pytest.mark.parametrize("runtime", ["provided", "native"])
def test_function_tmp_is_its_own(probed, runtime):
    r = probed[runtime]
    escape = f"/tmp/tributary-privprobe-escape-{'sh' if runtime == 'provided' else 'c'}"
    assert not os.path.exists(escape), f"the function wrote the server's /tmp: {escape}"
    if NAMESPACES:
        assert r["tmpdir"] == "/tmp", r
    if r["tmpdir"] == "/tmp":          # a private /tmp (mount namespace)
        assert r["write_tmp"] == "ok", r
    else:                              # namespaces not allowed here: /tmp is denied instead
        assert r["write_tmp"] == "Permission denied", r
        assert "/fn-tmp/tributary-fn-" in r["tmpdir"], r


@needs_landlock
@pytest.mark.parametrize("runtime", ["provided", "native"])
def test_function_cannot_read_or_signal_the_server(probed, runtime):
    r = probed[runtime]
    assert r["server_environ"] == "Permission denied", r
    if ABI >= 6:   # Landlock scopes signals from ABI 6
        assert r["signal_server"] == "Operation not permitted", r


@pytest.mark.parametrize("runtime", ["provided", "native"])
def test_function_inherits_no_server_descriptor_or_secret(probed, confined, runtime):
    r = probed[runtime]
    # descriptors: stdin /dev/null, stdout/stderr its log pipe, the bootstrap script (bash's 255)
    # or the native host's one socket (3); no listening socket, LMDB file or segment
    data = str(confined.data_dir.resolve())
    for line in r["fds"]:
        fd, _, target = line.partition(" ")
        own = target.startswith(r["root"] + "/")   # the bootstrap script bash reads (fd 255)
        assert own or data not in target, r["fds"]
        if target.startswith("socket:"):
            assert runtime == "native" and fd == "3", r["fds"]
        assert not target.startswith("anon_inode:"), r["fds"]
    extra = set(r["env"]) - ALLOWED_ENV
    assert not extra, f"the function sees the server's environment: {sorted(extra)}"
    assert "TRIBUTARY_SECRET_ACCESS_KEY" not in r["env"]
    assert "AWS_SECRET_ACCESS_KEY" not in r["env"] and "AWS_ACCESS_KEY_ID" not in r["env"]


@pytest.mark.parametrize("runtime", ["provided", "native"])
def test_function_has_no_capabilities(probed, runtime):
    assert int(probed[runtime]["cap_eff"], 16) == 0, probed[runtime]


def test_unconfined_is_logged_or_confinement_is(confined):
    log = confined.log_text()
    if ABI >= 1:
        assert "functions run confined (Landlock ABI" in log
    else:
        assert "functions run UNCONFINED" in log


# ---- the data directory inside a readable directory; the server's terminal ------------------

@pytest.fixture(scope="module")
def nested():
    """A server whose data directory lies inside a directory every function may read (the
    repository: --lambda-read-dir, as the suite's servers have it), like --data
    /opt/tributary/data where /opt is readable.  It runs with a terminal of its own as its
    controlling terminal, as in a shell (the README's tour)."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="tributary-nested-", dir=srv.REPO / "build"))
    wrapper = root / "with-tty"
    wrapper.write_text(TTY_WRAPPER.replace("@BIN@", str(srv.server_bin())))
    wrapper.chmod(0o755)
    # Only the repository is given (as a reader): the suite's usual --lambda-write-dir /tmp
    # would hold the data directory whole when the checkout itself lies in /tmp (CI's).
    s = srv.ServerProcess(root=root, fn_dirs=False, keys_from_env=False, binary=wrapper,
                          extra_args=["--lambda-read-dir", str(srv.REPO)])
    s.start()
    yield s
    findings = s.close()
    shutil.rmtree(root, ignore_errors=True)
    assert not findings, findings


# Gives the server (a session leader: the harness starts it in a new session) a pseudo-terminal
# as its controlling terminal, then becomes the server (same pid).
TTY_WRAPPER = """#!/usr/bin/python3
import fcntl, os, pty, sys, termios
m, s = pty.openpty()
fcntl.ioctl(s, termios.TIOCSCTTY, 0)
os.set_inheritable(m, True)
os.execv("@BIN@", ["@BIN@"] + sys.argv[1:])
"""


@pytest.fixture(scope="module")
def nested_probed(nested):
    return probe_both(nested, lf.make_client(nested))


@needs_landlock
@pytest.mark.parametrize("runtime", ["provided", "native"])
def test_data_directory_inside_a_readable_directory_is_fenced(nested_probed, nested, runtime):
    r = nested_probed[runtime]
    assert r["read_credentials"] == "Permission denied", r
    assert r["read_other_code"] == "Permission denied", r
    assert r["list_data"] == "Permission denied", r
    # the rest of the readable directory, and what the function needs, still work
    assert r["read_repo"] == "ok" and r["read_own_code"] == "ok", r
    assert r["write_scratch"] == "ok" and r["read_etc"] == "ok", r


@pytest.mark.parametrize("runtime", ["provided", "native"])
def test_function_cannot_use_the_servers_terminal(nested_probed, nested, runtime):
    # The server has a controlling terminal (as in a shell); a function must have none, or it
    # could write to it or push input into the operator's shell (TIOCSTI), outside any sandbox.
    assert os.path.exists(f"/proc/{nested.pid}/fd") and \
        open(f"/proc/{nested.pid}/stat").read().split(") ")[1].split()[4] != "0", \
        "the test server did not get a controlling terminal"
    assert nested_probed[runtime]["open_tty"] != "ok", nested_probed[runtime]


def test_lambda_dir_inside_the_data_directory_is_refused(tmp_path):
    s = srv.ServerProcess(root=tmp_path, fn_dirs=False)
    (s.data_dir / "share").mkdir()
    s.extra_args = ["--lambda-read-dir", str(s.data_dir / "share")]
    with pytest.raises(srv.ServerError):
        s.start(timeout=10)
    assert "is inside the data directory" in s.log_text()
    s.close()


@pytest.mark.parametrize("runtime", ["provided", "native"])
def test_scratch_dirs_are_removed_with_the_instance(confined, clam, runtime):
    """Scratch dirs live in DATA/fn-tmp: removed with their instance (a bootstrap that is
    killed, a native host that stops gracefully), and a crash's leftovers at the next start."""
    root = confined.data_dir / "fn-tmp"
    scratch = lambda: set(root.glob("tributary-fn-*"))  # noqa: E731
    before = scratch()
    name = lf.unique_name("scratch")
    if runtime == "provided":
        create(clam, name, lf.handler_zip("env"), "provided.al2023", "function.handler", {})
        _, body = lf.invoke_json(clam, name, {})
        tmpdir = body["env"]["TMPDIR"]
    else:
        create(clam, name, esm.native_zip("privprobe"), esm.NATIVE_RUNTIME,
               "libprivprobe.so:handler", {})
        _, body = lf.invoke_json(clam, name, {})
        tmpdir = body["tmpdir"]
    assert tmpdir == "/tmp" or tmpdir.startswith(str(root.resolve()) + "/tributary-fn-")
    new = scratch() - before
    assert new, "no scratch directory was made for the instance"
    assert all(os.stat(d).st_mode & 0o777 == 0o700 for d in new)
    clam.delete_function(FunctionName=name)
    lf.wait_for(lambda: not any(d.exists() for d in new), 15, what=f"{new} removed")
    left = root / "tributary-fn-left-by-a-crash"
    (left / "sub").mkdir(parents=True)
    (left / "sub" / "f").write_text("x")
    confined.restart(signal.SIGKILL)
    assert not left.exists() and root.is_dir()


# ---- #18: a relative --data ----------------------------------------------------------------

@pytest.fixture
def relative_server(tmp_path):
    """Started from tmp_path/cwd with --data ./rel-data, as the README's tour does."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    s = srv.ServerProcess(root=tmp_path / "root", cwd=str(cwd), data_arg="./rel-data")
    s.data_dir = cwd / "rel-data"
    s.start()
    yield s
    findings = s.close()
    assert not findings, findings


def test_relative_data_dir_runs_provided_and_native_functions(relative_server):
    lam = lf.make_client(relative_server)
    sh = lf.unique_name("relsh")
    create(lam, sh, lf.tutorial_zip(), "provided.al2023", "function.handler", {})
    r, body = lf.invoke_json(lam, sh, {"hi": 1})
    assert "FunctionError" not in r, body
    assert body == "Echoing request: '{\"hi\": 1}'"
    nat = lf.unique_name("relc")
    create(lam, nat, esm.native_zip(), esm.NATIVE_RUNTIME, "libprobe.so:handler", {})
    r, body = lf.invoke_json(lam, nat, {"x": 1})
    assert "FunctionError" not in r, body
    assert body["echo"] == {"x": 1}


def test_unrunnable_bootstrap_names_the_path(server, lam, make_function):
    # a bootstrap whose #! interpreter does not exist: exec fails in the child
    z = lf.make_zip({"bootstrap": ("#!/no/such/interpreter\n", 0o755)})
    fn = make_function(zip=z)
    r, body = lf.invoke_json(lam, fn, {})
    assert r.get("FunctionError") == "Unhandled"

    def logged():
        p = subprocess.run([str(server.binary), "logs", fn, "--data", str(server.data_dir)],
                           capture_output=True, text=True, timeout=20)
        return p.stdout if "cannot execute" in p.stdout else None
    log = lf.wait_for(logged, 10, what="the exec failure in the function's log")
    assert "cannot execute /" in log and "/bootstrap: no such file" in log, log


def test_missing_native_library_names_the_path(lam, make_function):
    fn = make_function(zip=esm.native_zip(), runtime=esm.NATIVE_RUNTIME,
                       handler_name="libnothere.so:handler")
    r, body = lf.invoke_json(lam, fn, {})
    assert r.get("FunctionError") == "Unhandled"
    msg = body["errorMessage"]
    assert "libnothere.so" in msg and "cannot open /" in msg and "/libnothere.so:" in msg, msg
