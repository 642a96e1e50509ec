"""`npcworld bots` runs as a subprocess (tests/e2e/test_bots.py, test_bots_talk.py), and the
server's figures they are checked against."""

from __future__ import annotations

import subprocess
import sys
import time

from .paths import ROOT

BOTS = [sys.executable, "-m", "server.cli", "bots"]


def run_bots(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*BOTS, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def start_bots(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*BOTS, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def metrics(srv) -> dict[str, float]:
    """The server's /metrics, read independently of the code under test."""
    return srv.metrics()


def wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def clean(res_out: str, res_err: str) -> None:
    assert "Traceback" not in res_out + res_err, res_out + res_err
