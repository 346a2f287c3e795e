# SPDX-License-Identifier: Apache-2.0
"""Bounded waits: the one way the Python suites wait for a condition.

A test never sleeps to let something happen: it polls a condition with wait_for (or poll, for
a probe that also returns what it saw) and fails with a message naming what it waited for once
the timeout has passed.  A sleep that remains in a test IS the test (a deadline waited out on
purpose, a pause between requests whose gap is measured) and says so in a comment.
"""
import time


def wait_for(cond, timeout=20.0, what="condition", interval=0.05):
    """Call cond() every `interval` seconds until it returns a true value, and return that value.
    After `timeout` seconds raise AssertionError("timed out after ...s waiting for <what>");
    `what` may be a function, called then, to say what state things were left in."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.3g}s waiting for {text}")
        time.sleep(interval)  # bounded polling


def poll(probe, timeout, failure):
    """Call probe() -> (done, value) with backoff (50 ms doubling to 2 s) until done; return
    value.  After timeout seconds raise AssertionError(failure(value))."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        done, value = probe()
        if done:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(failure(value))
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
