"""The Colyseus S1 peer (../shared/peers/colyseus-s1), run by bench/capacity.py
at the same N and for the same time as npcworld.

The peer's own files are used as they are: `server.mjs` (Colyseus 0.18, 500
NPCs walking to random targets, players spawned uniformly at random, full
state patches at 20 Hz) and `bots.mjs` (the official SDK, a move input at
10 Hz with a new direction every 2 s, a ping a second, LEAN=1: the SDK handles
the protocol but skips decoding the state, as our bots read only an update's
head). They are copied to a work folder (the peer's folder may be read-only)
and `npm ci` installs the pinned packages there once.

One step: start the server on a free loopback port, sample its CPU while it
idles, start P bot processes (each connecting its share of N over the same
ramp), and read what they wrote: per process, the patch rate median and p5
over the measured window (which starts when the ramp ends), the update-gap
and round-trip p99 (every ping of the run) and bytes. The caller samples the
server's and the bots' CPU time and the bytes the bots read from /proc, the
same way for both servers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("server.mjs", "bots.mjs", "package.json", "package-lock.json")
DEFAULT_WORK = Path(os.environ.get("TMPDIR", "/tmp")) / "npcworld-colyseus-peer"


def find_source() -> Path | None:
    """The peer's folder: ../shared/peers/colyseus-s1 beside the repository (or beside a worktree's parent)."""
    for base in (ROOT.parent, ROOT.parent.parent):
        candidate = base / "shared" / "peers" / "colyseus-s1"
        if (candidate / "server.mjs").is_file():
            return candidate
    return None


def prepare(source: Path, work: Path) -> Path:
    """Copy the peer's files to `work` and install its pinned packages there (once)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("the Colyseus peer needs Node >= 20 and npm on the PATH")
    missing = [f for f in FILES if not (source / f).is_file()]
    if missing:
        raise RuntimeError(f"{source}: not the Colyseus peer (missing {', '.join(missing)})")
    work.mkdir(parents=True, exist_ok=True)
    for f in FILES:
        shutil.copyfile(source / f, work / f)
    if not (work / "node_modules" / "@colyseus" / "core").is_dir():
        print(f"installing the Colyseus peer's packages in {work} (npm ci)...", flush=True)
        out = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"npm ci in {work} failed:\n{out.stderr[-2000:]}")
    return work


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeerServer:
    """`node server.mjs` on a free loopback port; its stats lines (one every 2 s) kept with their arrival time."""

    def __init__(self, work: Path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["node", "server.mjs"],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PORT": str(self.port)},
        )
        self.stats: list[tuple[float, dict]] = []  # (unix time, {"cpu_pct", "tick_p50_ms", "tick_p99_ms", ...})
        self.lines: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            for line in self.proc.stdout:
                self.lines.append(line.rstrip())
                if line.startswith("{"):
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue
                    if "listening" in msg:
                        ready.set()
                    elif "t" in msg:
                        self.stats.append((time.time(), msg))
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(30) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("the Colyseus peer did not start:\n" + "\n".join(self.lines[-20:]))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tick_p99_ms(self, t_from: float, t_to: float) -> float | None:
        """The worst of its 2-second tick p99s whose period lies in the window (its simulation step only)."""
        inside = [m["tick_p99_ms"] for t, m in self.stats if t_from + 2.0 <= t <= t_to]
        return max(inside) if inside else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_bots(
    work: Path, port: int, n: int, procs: int, ramp: float, measure: float, out_dir: Path
) -> list[tuple[subprocess.Popen, Path]]:
    """P `node bots.mjs` processes sharing N, each ramping its share over `ramp` s, then measuring `measure` s."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shares = [n // procs + (1 if k < n % procs else 0) for k in range(procs)]
    started = []
    for k, share in enumerate(s for s in shares if s):
        out = out_dir / f"bots-{k}.json"
        proc = subprocess.Popen(
            ["node", "bots.mjs", f"ws://127.0.0.1:{port}", str(share), f"{measure:g}", f"{ramp:g}", str(out)],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LEAN": "1"},
        )
        started.append((proc, out))
    return started


def collect(bots: list[tuple[subprocess.Popen, Path]], n: int, timeout: float) -> dict:
    """Wait for the bot processes and merge what they wrote (as the peer's run.sh merges its two)."""
    parts, problems = [], []
    deadline = time.monotonic() + timeout
    for proc, out in bots:
        try:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            problems.append(f"a peer bot process ran past {timeout:.0f} s and was killed")
        if out.is_file():
            parts.append(json.loads(out.read_text()))
        else:
            problems.append(f"a peer bot process wrote no results (exit {proc.returncode}): {(err or '')[-300:]}")
    joined = sum(p["joined"] for p in parts)

    def weighted(key):
        vals = [(p[key], p["joined"]) for p in parts if p.get(key) is not None and p["joined"]]
        return sum(v * w for v, w in vals) / sum(w for _, w in vals) if vals else None

    def worst(key, pick):
        vals = [p[key] for p in parts if p.get(key) is not None]
        return pick(vals) if vals else None

    errors = sum(p.get("joinErrors", 0) for p in parts)
    if errors:
        problems.append(f"{errors} peer bots could not join")
    if parts and n - joined - errors > 0:
        problems.append(f"{n - joined - errors} peer bots had not joined when their run ended (still connecting)")
    return {
        "connected": joined,
        "join_errors": errors,
        "updates_per_s_median": weighted("rate_med"),
        "updates_per_s_p5": worst("rate_p5", min),
        "gap_p99_ms": worst("gap_p99_ms", max),
        "rtt_p50_ms": weighted("rtt_p50_ms"),
        "rtt_p99_ms": worst("rtt_p99_ms", max),
        "own_bytes_per_s_per_client": weighted("bytes_per_s_med"),
        "problems": problems,
    }


def sockets_of(pid: int) -> int:
    """Open sockets of a process (its listening socket and every connection)."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            except OSError:
                continue
    except OSError:
        pass
    return n


def first_connection(server_pid: int, timeout: float) -> float | None:
    """Unix time at which the server first holds more sockets than it did when this was called."""
    base = sockets_of(server_pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sockets_of(server_pid) > base:
            return time.time()
        time.sleep(0.02)
    return None
