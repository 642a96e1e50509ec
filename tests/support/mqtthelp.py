"""A real Mosquitto broker on a free loopback port, and `npcworld worker`
processes, for the remote-worker tests. Both are ended by their PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from .paths import ROOT

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
WAIT = 60.0  # seconds: the bound on anything a test waits for (never reached when all is well)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """mosquitto -c CONF with `listener PORT 127.0.0.1` and anonymous access.
    stop() kills it (SIGKILL: no goodbye to the clients); start() again binds the same port."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None):
        if not os.access(MOSQUITTO, os.X_OK):
            pytest.skip("mosquitto is not installed (scripts/setup --test installs it)")
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        access = "allow_anonymous true\n"
        if users:  # only these users, by password (mosquitto_passwd writes the hashed file)
            passwd = folder / "passwd"
            for i, (user, password) in enumerate(users.items()):
                subprocess.run(
                    ["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd), user, password],
                    check=True,
                    capture_output=True,
                )
            passwd.chmod(0o600)
            access = f"allow_anonymous false\npassword_file {passwd}\n"
        if os.getuid() == 0:
            access += "user root\n"  # else mosquitto drops to user "mosquitto", who cannot read the test's files
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{access}persistence false\nset_tcp_nodelay true\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        end = time.monotonic() + WAIT
        while time.monotonic() < end:  # until it accepts connections
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)  # polling a port that is not open yet (not a timing assertion)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class Worker:
    """`npcworld worker` as a subprocess; its output lines are kept for failure messages."""

    def __init__(self, broker: str, name: str, *args: str, env: dict[str, str] | None = None):
        cmd = [sys.executable, "-m", "server.cli", "worker", "--broker", broker, "--name", name, *args]
        self.name = name
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            if " ready: serving " in line:
                self.ready.set()
        self.ready.set()

    def wait_ready(self, timeout: float = WAIT) -> None:
        assert self.ready.wait(timeout) and self.proc.poll() is None, "\n".join(self.output)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def workers(broker):
    """workers(name, *args) starts `npcworld worker --broker <the test's broker>`; all stopped after."""
    started: list[Worker] = []

    def _start(name: str, *args: str) -> Worker:
        w = Worker(broker.url, name, *args)
        started.append(w)
        return w

    yield _start
    for w in started:
        w.stop()
