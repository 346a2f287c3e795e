# SPDX-License-Identifier: Apache-2.0
"""Shared pytest hooks for tests/integration and tests/crash.

- A hard per-test time limit (marker ``deadline(seconds)``, default 120 s) so that a hung server
  fails one test instead of the whole run.  It uses SIGALRM, which interrupts blocking socket
  calls in the main thread.
- On failure, the tail of every Tributary server log started by the suite is attached to the
  report, so the server's side of a failure is visible without digging in temp dirs.
- ``slow`` tests run only with TRIBUTARY_SLOW=1.
"""
import os
import signal

import pytest

from helpers import server as srv

DEFAULT_DEADLINE = 120


class TestDeadlineExceeded(Exception):
    pass


def pytest_report_header(config):
    import boto3
    import botocore
    ext = srv.external_endpoint()
    return [f"boto3 {boto3.__version__} ({os.path.dirname(boto3.__file__)}), "
            f"botocore {botocore.__version__}",
            f"tributary: {'external endpoint ' + ext if ext else srv.server_bin()}"]


def pytest_collection_modifyitems(config, items):
    if os.environ.get("TRIBUTARY_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test; set TRIBUTARY_SLOW=1 to run it")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("deadline")
    seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE

    def on_alarm(signum, frame):
        raise TestDeadlineExceeded(f"test exceeded its {seconds:.0f}s deadline")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for s in srv.registered_servers():
            rep.sections.append((f"tributary log {s.log_path} (last 60 lines)", s.log_tail(60)))
