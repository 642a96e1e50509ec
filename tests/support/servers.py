"""`npcworld serve` as a subprocess on a free loopback port, ended by its PID when the test is done
(tests/conftest.py's `server` and `launch` fixtures start theirs with `start_server`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .paths import ROOT

NPCWORLD = [sys.executable, "-m", "server.cli"]
READY = re.compile(r"serving (http://[\d.]+:(\d+)/)")
STARTS: list[float] = []  # each start_server's seconds from the command to its URL line (support/costs.py)


@dataclass
class RunningServer:
    proc: subprocess.Popen
    http_url: str
    port: int
    output: list[str] = field(default_factory=list)  # every line it printed, for failure messages

    def metrics(self) -> dict[str, float]:
        """The server's /metrics as {'name{label=value,...}': value} (labels sorted, unquoted)."""
        return scrape(self.http_url, quoted=False)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start_server(*args: str, timeout: float = 60, preexec_fn=None) -> RunningServer:
    """Start `npcworld serve` on a free loopback port and wait for its URL line.
    preexec_fn: run in the child before it starts (e.g. resource limits)."""
    if not any(a.startswith(("--dialogue", "--no-dialogue")) for a in args):
        # The dialogue model's worker costs seconds of CPU to start: only tests that talk ask for it.
        args = ("--no-dialogue", *args)
    own = Path(tempfile.mkdtemp(prefix="npcworld-store-"))
    for flag, name in (("--store", "world.sqlite"), ("--memory-db", "memory.sqlite")):
        if not any(a == flag or a.startswith(flag + "=") for a in args):
            # each server its own store and NPC memory: the defaults (var/world.sqlite, var/memory.sqlite)
            # would carry one test's world into the next, and be written by two servers at once under xdist
            args = (flag, str(own / name), *args)
    cmd = [*NPCWORLD, "serve", "--host", "127.0.0.1", "--port", "0", *args]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=preexec_fn,
    )
    output: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            output.append(line.rstrip())
            m = READY.search(line)
            if m and not found.is_set():
                url.extend([m.group(1), m.group(2)])
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    if not found.wait(timeout) or not url:
        proc.kill()
        raise RuntimeError("server did not start:\n" + "\n".join(output))
    STARTS.append(time.monotonic() - started)
    return RunningServer(proc, url[0], int(url[1]), output)


def scrape(http_url: str, quoted: bool = True) -> dict[str, float]:
    """A server's /metrics, read by prometheus-client's parser, as {'name{k="v",...}': value} with the
    labels sorted by name (`quoted=False`: {'name{k=v,...}': value}, as RunningServer.metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(http_url + "metrics", timeout=10) as resp:
        body = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            labels = ",".join(f'{k}="{v}"' if quoted else f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[s.name + ("{" + labels + "}" if labels else "")] = s.value
    return out
