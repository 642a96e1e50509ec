"""Capacity benchmark, scenario S1: how many wandering players one server holds,
npcworld and (with --peer colyseus) the Colyseus peer, side by side.

S1: the default 2048 x 2048 map with 500 wandering NPCs, world updates at
20 Hz, N bots playing `wander` (inputs at 10 Hz, a new direction every 2 s, a
ping every second), players placed uniformly at random over the free tiles
(`--spawn random`, as the peer places them; `--spawn spawn` is the crowded
case, everyone at the plaza and in one view). For each N this script starts
a fresh `npcworld serve --npcs 500 --port 0`, measures its CPU with no client,
then runs a separate `npcworld bots` against it (both subprocesses of this
script, on this machine), and measures over the bots' steady window:

    server CPU % (with its inference workers), and its marginal cost: CPU ms
        per client per second above the idle base; bots CPU % (the bots'
        processes), from /proc/<pid>/stat of the processes this script
        started (100 % = a core); their ratio (bots/srv: below 1 the server
        costs more per client than the bots, so it saturates first); and
        other CPU %, what the rest of the machine used meanwhile (on a shared
        machine, a step where other work took the cores measures that, not
        the server)
    updates/s per client (median and 5th percentile over the bots)
    update gap p99, round trip p50/p99 (ping/pong)
    bytes/s per client: what the bots' processes read (/proc/<pid>/io rchar)
    server tick duration p99 (from its /metrics)

With --peer colyseus the peer (bench/colyseus_peer.py) runs after npcworld at
every N, with the same ramp, measured seconds and number of bot processes,
its CPU and bytes sampled the same way, and a side-by-side table gives each
figure for both and their ratio (npcworld / colyseus).

A step holds when every bot connected, the p5 of updates/s per client is at
least 19 and the round-trip p99 is at most 100 ms. The doubling sweep (50,
100, 200, ...) stops at the first step that does not hold (saturation);
--clients 400,800,1200 runs exactly those N instead. With --profile, the
saturating N is run once more with py-spy sampling the server and the
busiest bot process: their top functions, and the server's samples grouped by
part (edge, outbox and encoding, interest, tick, event loop, other: PARTS),
are printed and saved (--native: the server's C frames too, uvloop, picows and the syscalls);
--profile-dir keeps py-spy's raw stacks. --serve-args
gives npcworld's server more `npcworld serve` flags (the profiled run too).

--gateways 1,2 runs npcworld once per value at every N, taking turns, and prints
the later ones side by side with the first; "srv CPU%" is then every process of
the server (the tick process, its gateway processes, its workers) and "main
CPU%" the tick process alone. --server-cpus and --bots-cpus pin the servers
(both, the peer's too) and the bots to CPU sets (taskset -c), so that 1 and 2
gateways get the same cores and the bots never take theirs: on a 2-core
machine `--server-cpus 0 --bots-cpus 1` gives 2 gateways no spare core (a
measure of what the link costs), on a bigger one `--server-cpus 0-3
--bots-cpus 4-15` gives them three.

Usage: python bench/capacity.py [--clients N,N,...] [--seconds 20] [--peer colyseus]
                                [--spawn random|spawn] [--npcs 500] [--start 50] [--max 25600]
                                [--procs P] [--profile] [--native] [--profile-dir DIR] [--serve-args FLAGS]
                                [--baseline-args FLAGS] [--baseline-src DIR] [--baseline-protocol V]
                                [--gateways G,G,...]
                                [--server-cpus CPUS] [--bots-cpus CPUS] [--out FILE]
Prints a table and writes bench/results/capacity.json (--out: elsewhere).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import colyseus_peer  # bench/colyseus_peer.py (this script's folder is on sys.path)
from machine import describe, save  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
NPCWORLD = [sys.executable, "-m", "server.cli"]
RESULTS = ROOT / "bench" / "results" / "capacity.json"
READY = re.compile(r"serving http://[\d.]+:(\d+)/")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIN_UPDATES_P5 = 19.0  # updates/s per client, at a 20 Hz tick
MAX_RTT_P99_MS = 100.0
STARTED_SETTLE_S = 2.0  # after start-up work is done, before the bots come
IDLE_SETTLE_S, IDLE_S = 1.5, 3.0  # after the bots: wait, then measure the server's CPU with no client (idle_cpu)


# -- processes and their CPU time --------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process, in seconds; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def machine_busy_seconds() -> float:
    """CPU time all processes on this machine have used (every core, not idle or iowait), in seconds."""
    with open("/proc/stat", "rb") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK  # user..steal, less idle and iowait


def descendants(pid: int) -> list[int]:
    """pid and every process below it (children, grandchildren...)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    parent[int(entry)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [pid], [pid]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        found.extend(kids)
        frontier = kids
    return found


def bytes_read(pid: int) -> int:
    """rchar of /proc/<pid>/io: bytes the process has read by any read call (its sockets, here), 0 once gone."""
    try:
        with open(f"/proc/{pid}/io", "rb") as f:
            for line in f:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def parse_cpus(text: str) -> set[int]:
    """A CPU list as taskset -c takes it ("0", "0-3,8"), checked against this machine's CPUs."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a CPU list such as 0 or 0-3,8")
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CPUs among {sorted(allowed)}")
    return cpus


def cpu_list(cpus: set[int] | None) -> str:
    return "-" if cpus is None else ",".join(map(str, sorted(cpus)))


def pinned(cmd: list[str], cpus: set[int] | None) -> list[str]:
    """`cmd` on `cpus` only, with every process and thread it starts (taskset -c); None: as it is."""
    return cmd if cpus is None else ["taskset", "-c", cpu_list(cpus), *cmd]


def affinity_of(pid: int) -> set[int]:
    """The CPUs a process may run on (empty once it is gone)."""
    try:
        return os.sched_getaffinity(pid)
    except OSError:
        return set()


def pin_tree(pid: int, cpus: set[int] | None) -> None:
    """A process already running (the peer's, which this script starts through colyseus_peer), with
    its threads and every process under it, onto `cpus` (as `taskset -a -p`); what it starts later
    inherits them."""
    if cpus is None:
        return
    for p in descendants(pid):
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                os.sched_setaffinity(int(tid), cpus)
        except OSError:  # gone meanwhile
            continue


class CpuSampler(threading.Thread):
    """Every 0.25 s: (unix time, server CPU s, bots CPU s summed over the bots' process trees,
    the whole machine's busy CPU s, bytes the bots' processes have read). The machine's share that is
    neither server nor bots ("other CPU%") says how far other work on a shared machine skews a step.
    The same sampler measures npcworld and the Colyseus peer, so their figures compare."""

    def __init__(self, server_pid: int, bots_pids: list[int]):
        super().__init__(daemon=True)
        self.server_pid, self.bots_pids = server_pid, bots_pids
        self.samples: list[tuple[float, float, float, float, int, float]] = []
        self.pids_seen: set[int] = set()  # every process of the server's tree seen while sampling
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.25):
            # the server with every process under it: its gateway processes (--gateways N) and its
            # inference workers (a decision-policy worker by default); `main` is its own process alone
            # (the tick, and with one gateway the sockets too)
            main = cpu_seconds(self.server_pid)
            tree = descendants(self.server_pid)
            self.pids_seen.update(tree)
            srv = sum(c for p in tree if (c := cpu_seconds(p)) is not None) or None
            bot_pids = [p for root in self.bots_pids for p in descendants(root)]
            bots = sum(c for p in bot_pids if (c := cpu_seconds(p)) is not None)
            read = sum(bytes_read(p) for p in bot_pids)
            if srv is not None and main is not None:
                self.samples.append((time.time(), srv, bots, machine_busy_seconds(), read, main))

    def percent(self, t_from: float, t_to: float) -> tuple[float | None, float | None, float | None]:
        """(server, bots, everything else on the machine) CPU % between two times (100 % = a core)."""
        inside = [s for s in self.samples if t_from <= s[0] <= t_to]
        if len(inside) < 2:
            return None, None, None
        (ta, sa, ba, ma, _, _), (tb, sb, bb, mb, _, _) = inside[0], inside[-1]
        srv, bots, busy = (100 * (b - a) / (tb - ta) for a, b in ((sa, sb), (ba, bb), (ma, mb)))
        return srv, bots, max(0.0, busy - srv - bots)

    def main_percent(self, t_from: float, t_to: float) -> float | None:
        """The server's own process's CPU % between two times (the tick process, with --gateways N)."""
        inside = [s for s in self.samples if t_from <= s[0] <= t_to]
        if len(inside) < 2:
            return None
        return 100 * (inside[-1][5] - inside[0][5]) / (inside[-1][0] - inside[0][0])

    def read_per_s(self, t_from: float, t_to: float) -> float | None:
        """Bytes/s the bots' processes read between two times: wire bytes (frames, headers and all)."""
        inside = [s for s in self.samples if t_from <= s[0] <= t_to]
        if len(inside) < 2:
            return None
        return (inside[-1][4] - inside[0][4]) / (inside[-1][0] - inside[0][0])


def idle_cpu(server_pid: int) -> float | None:
    """The server's CPU % (with its workers) with no client: the base that marginal cost counts from.

    Taken after the bots have left, not before they come: start-up (a decision worker loading
    torch, the policy's check of each NPC file) takes ~10 s of CPU after the server says it is
    serving, while the end of a run is the same world with its players gone (grace 0)."""
    time.sleep(IDLE_SETTLE_S)  # the last connections close, their players are removed
    pids = descendants(server_pid)
    a, ta = sum(cpu_seconds(p) or 0.0 for p in pids), time.monotonic()
    time.sleep(IDLE_S)
    b, tb = sum(cpu_seconds(p) or 0.0 for p in pids), time.monotonic()
    return 100 * (b - a) / (tb - ta)


def started_up(port: int, most_s: float) -> float:
    """Wait until the server's start-up work is done: its decision workers answer and the policy has
    checked every NPC file (/metrics), then STARTED_SETTLE_S more; at most `most_s`. Seconds waited."""
    from bots.scrape import fetch, parse

    t0 = time.monotonic()
    while time.monotonic() - t0 < most_s:
        try:
            m = parse(fetch(f"http://127.0.0.1:{port}/metrics", 5.0))
        except Exception:  # noqa: BLE001 - busy or not yet up: ask again
            m = {}
        ready = m.get("npcworld_inference_workers_ready")  # the decision pool's (absent: the built-in decides)
        if m and m.get("npcworld_npc_policy_checks_running", 0) == 0 and (ready is None or ready > 0):
            time.sleep(min(STARTED_SETTLE_S, max(0.0, most_s - (time.monotonic() - t0))))
            break
        time.sleep(0.5)
    return time.monotonic() - t0


def start_server(
    npcs: int, spawn: str = "random", extra: tuple[str, ...] = (), src: Path = ROOT, cpus: set[int] | None = None
) -> tuple[subprocess.Popen, int, list[str]]:
    """`npcworld serve` from the source tree `src` (another one: an A/B against an older commit), on
    `cpus` (None: any) with every process it starts (gateways, workers)."""
    proc = subprocess.Popen(
        pinned(
            [
                *NPCWORLD,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--npcs",
                str(npcs),
                "--spawn",
                spawn,
                *extra,
                "--grace",
                "0",
                "--max-players",
                "100000",
                "--log-level",
                "warning",
                # S1 measures the world stream: wander bots never talk, and loading the
                # dialogue model would eat the first step's CPU
                "--no-dialogue",
            ],
            cpus,
        ),
        cwd=src,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    port: list[int] = []
    ready = threading.Event()

    def pump() -> None:  # keeps reading, so the server never blocks on a full pipe
        for line in proc.stdout:
            lines.append(line.rstrip())
            m = READY.search(line)
            if m and not port:
                port.append(int(m.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(60) or not port:
        proc.kill()
        raise RuntimeError("the server did not start:\n" + "\n".join(lines[-20:]))
    return proc, port[0], lines


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- one step of the sweep -----------------------------------------------------


def ramp_for(n: int) -> float:
    return min(6.0, max(1.0, n / 400))  # ~400 connections/s: a handshake storm is not what S1 measures


def procs_for(n: int, args) -> int:
    """Bot processes, the same number for both servers: npcworld bots' own rule unless --procs."""
    return args.procs or max(1, min(os.cpu_count() or 1, math.ceil(n / 250)))


def step(
    n: int,
    args,
    workdir: Path,
    profile: bool = False,
    label: str = "npcworld",
    extra: tuple[str, ...] = (),
    src: Path = ROOT,
    gateways: int | None = None,
    protocol: int | None = None,
) -> dict:
    """npcworld at N; `extra`: more `npcworld serve` flags, `src`: the server's source tree (the
    baseline of an A/B run; the bots always come from this tree); `gateways`: its --gateways (None:
    what `extra` says, else the default, 1); `protocol`: the bots' --protocol (None: their default)."""
    ramp = ramp_for(n)
    duration = ramp + 1.0 + args.measure  # ramp, settle, measure (see bots.plan.Plan.window)
    if gateways is not None:
        extra = (*extra, "--gateways", str(gateways))
    srv, port, srv_lines = start_server(args.npcs, args.spawn, extra, src, args.server_cpus)
    tag = "" if gateways is None else f"-g{gateways}"
    report_dir = workdir / f"{label}{tag}-n{n}{'-profile' if profile else ''}"
    cmd = [
        *NPCWORLD,
        "bots",
        "--url",
        f"ws://127.0.0.1:{port}/ws",
        "--clients",
        str(n),
        "--ramp",
        f"{ramp:g}",
        "--duration",
        f"{duration:g}",
        "--scenario",
        "wander",
        "--report",
        str(report_dir),
        "--procs",
        str(procs_for(n, args)),
        *(() if protocol is None else ("--protocol", str(protocol))),
    ]
    try:
        waited = started_up(port, args.warmup)  # start-up over before the bots come (see --warmup)
        bots = subprocess.Popen(
            pinned(cmd, args.bots_cpus), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        sampler = CpuSampler(srv.pid, [bots.pid])
        sampler.start()
        spies = []
        if profile:
            outdir = args.profile_dir or workdir
            spies = start_profilers(
                srv.pid, bots.pid, ramp + 2.0, args.measure - 1.0, outdir, f"-{label}-n{n}", args.native
            )
        out, err = bots.communicate(timeout=duration + 60)
        sampler.halt.set()
        sampler.join()
        affinity = sorted({c for p in descendants(srv.pid) for c in affinity_of(p)})  # the pinning, as it is
        idle = idle_cpu(srv.pid)
    finally:
        stop(srv)
    report_path = report_dir / "report.json"
    if not report_path.exists():
        raise RuntimeError(f"npcworld bots wrote no report (exit {bots.returncode}):\n{out}\n{err}")
    r = json.loads(report_path.read_text())
    s, st = r["summary"], (r["server"].get("steady") or {})
    t0 = r["t0_unix"]
    w0, w1 = t0 + r["window"]["from"], t0 + r["window"]["to"]
    row = measured_row(
        label,
        n,
        sampler,
        w0,
        w1,
        idle,
        {
            "connected": s["connected"],
            "updates_per_s_median": s["updates_per_s_median"],
            "updates_per_s_p5": s["updates_per_s_p5"],
            "gap_p99_ms": s["gap_p99"],
            "rtt_p50_ms": s["rtt_p50"],
            "rtt_p99_ms": s["rtt_p99"],
            "own_bytes_per_s_per_client": s["bytes_per_s_median"],
            "tick_p99_ms": st.get("tick_p99_ms"),
            "overruns": st.get("overruns"),
            "problems": s["problems"],
        },
    )
    row.update(
        gateways=gateways if gateways is not None else gateways_in(extra),
        server_processes=len(sampler.pids_seen),
        server_affinity=affinity,
        bots_exit=bots.returncode,
        ramp_s=ramp,
        duration_s=duration,
        procs=r["plan"]["procs"],
        started_up_s=round(waited, 1),
    )
    trouble = [line for line in srv_lines if " ERROR " in line or "Traceback" in line or "Error:" in line]
    if trouble:  # what the server said went wrong (it runs at --log-level warning)
        row["problems"] = row["problems"] + [f"server log: {line[:300]}" for line in trouble[:5]]
        row["server_log"] = srv_lines[-200:]
    if spies:
        row["profile"] = finish_profilers(spies)
    return row


def gateways_in(flags: tuple[str, ...]) -> int:
    """The --gateways that `npcworld serve` flags ask for (the last one wins, as argparse's), else 1."""
    g = 1
    for i, flag in enumerate(flags):
        if flag == "--gateways" and i + 1 < len(flags):
            g = int(flags[i + 1])
        elif flag.startswith("--gateways="):
            g = int(flag.partition("=")[2])
    return g


def peer_step(n: int, args, workdir: Path, peer_work: Path, wait_s: float) -> dict:
    """The Colyseus peer at the same N, ramp and measured time (see bench/colyseus_peer.py), on the
    same CPUs as npcworld's server and bots (--server-cpus, --bots-cpus)."""
    ramp = ramp_for(n)
    procs = procs_for(n, args)
    srv = colyseus_peer.PeerServer(peer_work)
    try:
        pin_tree(srv.pid, args.server_cpus)
        time.sleep(wait_s)  # as long as npcworld's start-up took, though Node starts in well under a second
        bots = colyseus_peer.start_bots(peer_work, srv.port, n, procs, ramp, args.measure, workdir / f"peer-n{n}")
        for p, _ in bots:
            pin_tree(p.pid, args.bots_cpus)
        sampler = CpuSampler(srv.pid, [p.pid for p, _ in bots])
        sampler.start()
        # bots.mjs measures from the end of its ramp to `measure` s later, its ramp starting once Node
        # has loaded the SDK: the first connection the server accepts marks it (its processes start together)
        t0 = colyseus_peer.first_connection(srv.pid, timeout=30.0) or time.time()
        got = colyseus_peer.collect(bots, n, timeout=ramp + args.measure + 60)
        sampler.halt.set()
        sampler.join()
        idle = idle_cpu(srv.pid)
    finally:
        srv.stop()
    w0, w1 = t0 + ramp, t0 + ramp + args.measure
    got["tick_p99_ms"] = srv.tick_p99_ms(w0, w1)
    row = measured_row("colyseus", n, sampler, w0, w1, idle, got)
    row.update(ramp_s=ramp, duration_s=ramp + args.measure, procs=procs)
    return row


def measured_row(
    server: str, n: int, sampler: CpuSampler, w0: float, w1: float, idle: float | None, seen: dict
) -> dict:
    """One step's figures: what the bots saw (`seen`), and what /proc says over the window [w0, w1]
    (unix times), measured the same way for either server."""
    server_cpu, bots_cpu, other_cpu = sampler.percent(w0, w1)
    main_cpu = sampler.main_percent(w0, w1)
    read = sampler.read_per_s(w0, w1)
    conn = seen["connected"]
    held = (
        conn == n
        and seen["updates_per_s_p5"] is not None
        and seen["updates_per_s_p5"] >= MIN_UPDATES_P5
        and seen["rtt_p99_ms"] is not None
        and seen["rtt_p99_ms"] <= MAX_RTT_P99_MS
    )
    # marginal cost: the server's CPU above its idle base, per client, in ms of CPU per second
    marginal = (server_cpu - idle) * 10.0 / conn if server_cpu is not None and idle is not None and conn else None
    return {
        "server": server,
        "n": n,
        **{k: v for k, v in seen.items() if k != "problems"},
        "server_cpu_pct": _r(server_cpu, 1),
        "server_main_cpu_pct": _r(main_cpu, 1),
        "server_idle_cpu_pct": _r(idle, 1),
        "cpu_ms_per_client_s": _r(marginal, 3),
        "bots_cpu_pct": _r(bots_cpu, 0),
        "other_cpu_pct": _r(other_cpu, 0),
        "bots_per_server_cpu": _r(bots_cpu / server_cpu, 2) if bots_cpu is not None and server_cpu else None,
        "bytes_per_s_per_client": round(read / conn) if read is not None and conn else None,
        "held": held,
        "problems": seen["problems"],
    }


def _r(v, nd):
    return None if v is None else round(v, nd)


# -- py-spy ------------------------------------------------------------------


def start_profilers(
    server_pid: int, bots_pid: int, delay: float, seconds: float, outdir: Path, tag: str = "", native: bool = False
) -> list:
    """py-spy on the server and on the busiest bot worker, for `seconds` of the steady window; each one's
    raw stacks go to outdir/pyspy-<label><tag>.txt (py-spy's raw format: collapsed stacks and counts).
    `native`: the server's C frames too (py-spy --native: uvloop, picows, the sends' syscalls)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy not found (pip install py-spy): no profile", file=sys.stderr)
        return []
    time.sleep(delay)  # into the steady window
    workers = [p for p in descendants(bots_pid) if p != bots_pid]
    busiest = max(workers, key=lambda p: cpu_seconds(p) or 0.0, default=None)
    spies = []
    outdir.mkdir(parents=True, exist_ok=True)
    for label, pid in (("server", server_pid), ("bots worker", busiest)):
        if pid is None:
            continue
        out = outdir / f"pyspy-{label.replace(' ', '-')}{tag}.txt"
        proc = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                "100",
                "--format",
                "raw",
                # --native cannot be --nonblocking: py-spy then pauses the server for each sample
                *(["--native"] if native and label == "server" else ["--nonblocking"]),
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        spies.append((label, proc, out))
    return spies


def finish_profilers(spies: list) -> dict:
    result = {}
    for label, proc, out in spies:
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            err = "timed out"
        if not out.exists():
            result[label] = {"error": (err or "no output").strip()[-300:]}
            continue
        collapsed = out.read_text()
        result[label] = {**top_functions(collapsed), "raw": str(out)}
        if label == "server":
            result[label]["parts"] = parts(collapsed)
    return result


def stacks(collapsed: str) -> Iterator[tuple[list[tuple[str, str]], int]]:
    """Each line of py-spy's raw output: (its frames as frames_of gives them, its samples)."""
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield frames_of(stack), int(count)


def frames_of(stack: str) -> list[tuple[str, str]]:
    """A py-spy collapsed stack, root first, as (function, file path) pairs; process and thread lines dropped."""
    out = []
    for f in stack.split(";"):
        if f.startswith(("process ", "thread ")):
            continue
        name, _, where = f.partition(" (")
        out.append((name, where.rsplit(":", 1)[0] if where else ""))
    return out


def top_functions(collapsed: str, k: int = 15) -> dict:
    """From py-spy's collapsed stacks: the functions with the most samples on
    top of the stack (self) and anywhere in it (total), in % of samples."""
    own: Counter = Counter()
    total: Counter = Counter()
    samples = 0
    for stack, n in stacks(collapsed):
        samples += n
        frames = [f"{name} ({where.rsplit('/', 1)[-1]})" if where else name for name, where in stack]
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            total[f] += n

    def top(c):
        return [[f, round(100 * n / samples, 1)] for f, n in c.most_common(k)] if samples else []

    return {"samples": samples, "self": top(own), "total": top(total)}


# The server's parts, for grouping its profile (what a gateway process could take off the tick's core,
# and what it could not). Each rule: (part, a file path ending, the functions of it, or None: all).
# A sample belongs to the part of its innermost frame that a rule names (so numpy under interest.py
# is interest, msgpack under the outbox is the outbox), else to the event loop: uvloop's run loop
# and picows' frame parser are C, so their own time shows as asyncio's `Runner.run`.
# world/protocol.py's encoders are named by no rule: they count for whoever calls them (a cell block
# for interest, an update head for the outbox), its decoders are the edge's (inbound messages), and so
# is the room's intake of them (Game.command: called per message by the gateway, not by the tick).
OUTBOX_GATEWAY = ("flush", "write_forever", "update", "mark", "send_error", "push_update", "take_pieces")
PART_RULES: tuple[tuple[str | None, str, tuple[str, ...] | None], ...] = (
    ("outbox+encoding", "server/gateway.py", OUTBOX_GATEWAY),
    ("edge", "server/gateway.py", None),  # inbound messages, limits, the read check, connections' tasks
    ("outbox+encoding", "server/outbox.py", None),
    ("outbox+encoding", "server/frames.py", None),
    ("outbox+encoding", "server/events.py", None),
    ("outbox+encoding", "world/snapshot.py", None),
    ("edge", "world/protocol.py", ("decode", "read_int", "clean_text", "name_problem", "_field")),
    ("edge", "world/protocol.py", tuple(f"_decode_{t}" for t in ("hello", "input", "ping", "chat", "talk"))),
    (None, "world/protocol.py", None),  # its encoders: the caller's part
    ("edge", "server/limits.py", None),
    ("outbox+encoding", "server/edge_picows.py", ("send_nowait", "send_message")),
    ("outbox+encoding", "server/edge_websockets.py", ("send_nowait", "send_message")),
    ("edge", "server/edge_picows.py", None),
    ("edge", "server/edge_websockets.py", None),
    ("edge", "server/http.py", None),
    ("edge", "server/game.py", ("command", "join", "leave", "connected")),
    ("edge", "/picows/", None),
    ("edge", "/websockets/", None),
    ("interest", "world/interest.py", None),
    ("interest", "world/moves.py", None),
    ("tick", "server/game.py", None),  # the tick: commands applied, NPC minds, dialogue, the world's step
    ("tick", "server/ticker.py", None),
    ("tick", "server/checkpoints.py", None),
    ("tick", "server/metrics.py", None),
    ("tick", "/world/", None),
    ("tick", "/npc/", None),
    ("event loop", "/asyncio/", None),
    ("event loop", "/uvloop/", None),
)
PARTS = ("edge", "outbox+encoding", "interest", "tick", "event loop", "other threads", "other")


def part_of(frames: list[tuple[str, str]]) -> str:
    """Which of PARTS one sample (its frames, root first) counts for: see PART_RULES. py-spy writes a
    path from its package's folder (server/gateway.py, asyncio/runners.py) or in full. A thread other
    than the loop's (the inference pool's engine, the store's writer) is "other threads": not the tick's core."""
    if frames[0][0] == "Thread._bootstrap":
        return "other threads"
    for name, where in reversed(frames):
        named = set(name.split("."))  # a method with its class, a generator with its function
        where = "/" + where
        for part, path, names in PART_RULES:
            if (where.endswith(path) if path.endswith(".py") else path in where) and (
                names is None or not named.isdisjoint(names)
            ):
                if part is None:
                    break  # a frame that counts for its caller
                return part
    return "other"


def parts(collapsed: str, k: int = 5) -> dict:
    """The server's samples grouped by part (PARTS): % of samples each, and each part's top functions
    by own time (% of all samples)."""
    count: Counter = Counter()
    top: dict[str, Counter] = {p: Counter() for p in PARTS}
    samples = 0
    for frames, n in stacks(collapsed):
        if not frames:
            continue
        part = part_of(frames)
        count[part] += n
        name, where = frames[-1]
        top[part][f"{name} ({where.rsplit('/', 1)[-1]})"] += n
        samples += n
    if not samples:
        return {}
    return {
        p: {
            "pct": round(100 * count[p] / samples, 1),
            "top": [[f, round(100 * c / samples, 1)] for f, c in top[p].most_common(k)],
        }
        for p in PARTS
    }


def parts_table(grouped: dict) -> str:
    cells = [["part", "% of samples", "its top functions by own time (% of samples)"]]
    for p in PARTS:
        g = grouped.get(p)
        if g:
            cells.append([p, f"{g['pct']:.1f}", ", ".join(f"{f} {pct:.1f}" for f, pct in g["top"][:3])])
    return render(cells)


# -- the sweep -----------------------------------------------------------------

COLUMNS = [
    ("N", "n", "{}"),
    ("conn", "connected", "{}"),
    ("gw", "gateways", "{}"),
    ("srv CPU%", "server_cpu_pct", "{:.0f}"),
    ("main CPU%", "server_main_cpu_pct", "{:.0f}"),
    ("idle CPU%", "server_idle_cpu_pct", "{:.0f}"),
    ("CPU ms/client/s", "cpu_ms_per_client_s", "{:.3f}"),
    ("bots CPU%", "bots_cpu_pct", "{:.0f}"),
    ("bots/srv", "bots_per_server_cpu", "{:.2f}"),
    ("other CPU%", "other_cpu_pct", "{:.0f}"),
    ("upd/s med", "updates_per_s_median", "{:.1f}"),
    ("upd/s p5", "updates_per_s_p5", "{:.1f}"),
    ("gap p99 ms", "gap_p99_ms", "{:.1f}"),
    ("rtt p50 ms", "rtt_p50_ms", "{:.2f}"),
    ("rtt p99 ms", "rtt_p99_ms", "{:.1f}"),
    ("B/s/client", "bytes_per_s_per_client", "{:,.0f}"),
    ("tick p99 ms", "tick_p99_ms", "{:.1f}"),
    ("held", "held", "{}"),
]

# The side-by-side comparison: (label, key, format, better) where better says which way wins.
COMPARED = [
    ("clients connected", "connected", "{:,}", "more"),
    ("server CPU % (every process)", "server_cpu_pct", "{:.1f}", "less"),
    ("its main process's CPU % (the tick)", "server_main_cpu_pct", "{:.1f}", "less"),
    ("CPU ms per client-second", "cpu_ms_per_client_s", "{:.3f}", "less"),
    ("bytes/s per client", "bytes_per_s_per_client", "{:,.0f}", "less"),
    ("updates/s p5", "updates_per_s_p5", "{:.1f}", "more"),
    ("RTT p99 ms", "rtt_p99_ms", "{:.1f}", "less"),
    ("update gap p99 ms", "gap_p99_ms", "{:.1f}", "less"),
    ("tick p99 ms (colyseus: its simulation step only)", "tick_p99_ms", "{:.2f}", "less"),
]


def render(cells: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    head = ["server"] if any(r.get("server") != "npcworld" for r in rows) else []
    cells = [head + [h for h, _, _ in COLUMNS]]
    for row in rows:
        cells.append(
            ([row["server"]] if head else [])
            + ["-" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in COLUMNS]
        )
    return render(cells)


def ratio(ours, theirs) -> float | None:
    return round(ours / theirs, 3) if ours is not None and theirs else None


def side_by_side(pairs: list[tuple[dict, dict]], a: str = "npcworld", b: str = "colyseus") -> str:
    """Per N: each compared figure for both, and their ratio a / b."""
    cells = [["N", "figure", a, b, f"{a}/{b}", "better"]]
    for ours, theirs in pairs:
        for label, key, fmt, better in COMPARED:
            a, b = ours.get(key), theirs.get(key)
            r = ratio(a, b)
            cells.append(
                [
                    str(ours["n"]),
                    label,
                    "-" if a is None else fmt.format(a),
                    "-" if b is None else fmt.format(b),
                    "-" if r is None else f"{r:.2f}x",
                    f"{better} is better",
                ]
            )
        cells.append(
            [str(ours["n"]), "held (all in, p5 >= 19, RTT p99 <= 100)", str(ours["held"]), str(theirs["held"]), "", ""]
        )
    return render(cells)


def parse_clients(text: str) -> list[int]:
    try:
        ns = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected client counts separated by commas, e.g. 400,800,1200")
    if not ns or min(ns) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected client counts >= 1")
    return ns


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--npcs", type=int, default=500)
    ap.add_argument(
        "--clients",
        type=parse_clients,
        default=None,
        metavar="N,N,...",
        help="run exactly these N (every one, no stop at saturation) instead of the doubling sweep",
    )
    ap.add_argument("--start", type=int, default=50, help="first N of the sweep; each next step doubles it")
    ap.add_argument("--max", type=int, default=25600, help="largest N the sweep tries")
    ap.add_argument(
        "--measure",
        "--seconds",
        dest="measure",
        type=float,
        default=6.0,
        help="seconds of steady window per step (each server gets the same)",
    )
    ap.add_argument(
        "--warmup",
        type=float,
        default=60.0,
        metavar="S",
        help="most seconds npcworld may take to start up before its bots connect: its decision worker "
        "loading torch and the policy's check of each NPC file (~10 s of a core on a 2-core "
        "machine; /metrics says when they are done), then 2 s; the peer waits as long as npcworld "
        "did (default: 60)",
    )
    ap.add_argument(
        "--spawn",
        choices=("random", "spawn"),
        default="random",
        help="where npcworld places players: random (S1, uniform, as the peer does; default) or "
        "spawn (the crowded case: every player at the plaza, all in one view)",
    )
    ap.add_argument(
        "--peer",
        choices=("colyseus",),
        default=None,
        help="also run the Colyseus peer at each N, taking turns, and print them side by side",
    )
    ap.add_argument(
        "--peer-src", type=Path, default=None, help="the peer's folder (default: ../shared/peers/colyseus-s1)"
    )
    ap.add_argument(
        "--peer-work",
        type=Path,
        default=colyseus_peer.DEFAULT_WORK,
        help=f"where the peer is copied and its npm packages installed (default: {colyseus_peer.DEFAULT_WORK})",
    )
    ap.add_argument(
        "--baseline-args",
        default=None,
        metavar="FLAGS",
        help="A/B: at each N also run npcworld with these extra serve flags (e.g. "
        "--baseline-args=--no-direct-writes), taking turns, side by side",
    )
    ap.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="A/B: at each N also run the server from this source tree (an older commit, e.g. "
        "`git archive HEAD~1 | tar -x -C /tmp/base`), with --baseline-args if given, taking "
        "turns, side by side; the bots are this tree's",
    )
    ap.add_argument(
        "--baseline-protocol",
        type=int,
        default=None,
        metavar="V",
        help="the protocol version the bots speak to the baseline (default: theirs, 3; 2 for a baseline "
        "tree older than version 3, which refuses 3 with 4001)",
    )
    ap.add_argument(
        "--procs",
        type=int,
        default=None,
        help="bot processes, for both servers (default: one per 250 bots, at most one per core)",
    )
    ap.add_argument("--profile", action="store_true", help="re-run the saturating N (or the last) under py-spy")
    ap.add_argument(
        "--native",
        action="store_true",
        help="with --profile: py-spy --native on the server (its C frames: uvloop, picows, the syscalls)",
    )
    ap.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --profile: keep py-spy's raw stacks here (pyspy-server-npcworld-n<N>.txt and the bots "
        "worker's; default: a temporary folder, deleted)",
    )
    ap.add_argument(
        "--serve-args",
        default="",
        metavar="FLAGS",
        help="extra `npcworld serve` flags for npcworld's server at every N, the profiled run included "
        "(e.g. --serve-args=--ws=websockets); the baseline gets --baseline-args instead",
    )
    ap.add_argument(
        "--gateways",
        type=parse_clients,
        default=None,
        metavar="G,G,...",
        help="npcworld's `serve --gateways` (e.g. 1,2): at each N one run of each, taking turns on the same "
        "CPUs, with their side by side (the later ones against the first); the server's CPU counts every "
        "process of it (the tick's and the gateways'), the main one apart (default: once, as --serve-args says)",
    )
    ap.add_argument(
        "--server-cpus",
        type=parse_cpus,
        default=None,
        metavar="CPUS",
        help="run every server (npcworld's, with its gateways and workers; the peer's) on these CPUs only, "
        "as `taskset -c CPUS` (e.g. 0-3): 1 vs 2 gateways then compete for the same cores (default: any)",
    )
    ap.add_argument(
        "--bots-cpus",
        type=parse_cpus,
        default=None,
        metavar="CPUS",
        help="run every bot process (both servers') on these CPUs only (e.g. 4-15), so the bots never take "
        "the server's cores (default: any)",
    )
    ap.add_argument(
        "--out", type=Path, default=RESULTS, metavar="FILE", help=f"where the results go (default: {RESULTS})"
    )
    args = ap.parse_args()
    try:
        serve_args = tuple(shlex.split(args.serve_args))
    except ValueError as e:
        ap.error(f"--serve-args: {e}")
    if args.profile_dir is not None and not args.profile:
        ap.error("--profile-dir: needs --profile")
    if args.measure < 2:
        ap.error("--seconds: expected at least 2 seconds of steady window")
    if args.npcs != 500 and args.peer:
        print("note: the peer always runs 500 NPCs (server.mjs); --npcs changes only npcworld's", file=sys.stderr)
    peer_work = None
    if args.peer:
        source = args.peer_src or colyseus_peer.find_source()
        if source is None:
            ap.error("--peer colyseus: the peer's folder was not found; give it with --peer-src")
        peer_work = colyseus_peer.prepare(source, args.peer_work)

    rows: list[dict] = []
    pairs: list[tuple[dict, dict]] = []  # (npcworld, colyseus), for each --gateways at each N
    ab_pairs: list[tuple[dict, dict]] = []  # (npcworld, baseline) with --baseline-args
    gw_pairs: list[tuple[dict, dict]] = []  # (npcworld --gateways G, npcworld --gateways <the first>)
    configs: list[int | None] = args.gateways or [None]
    saturated = None
    sweep = args.clients is None
    with tempfile.TemporaryDirectory(prefix="npcworld-capacity-") as tmp:
        workdir = Path(tmp)
        ns = args.clients or []
        n = args.start
        while (n <= args.max) if sweep else ns:
            if not sweep:
                n = ns.pop(0)
            ours_n = []
            for g in configs:  # taking turns at this N, on the same CPUs
                ours_n.append(step(n, args, workdir, extra=serve_args, gateways=g))
                rows.append(ours_n[-1])
                print_step(ours_n[-1])
            gw_pairs += [(r, ours_n[0]) for r in ours_n[1:]]
            row = ours_n[0]
            if args.baseline_args or args.baseline_src:
                base = step(
                    n,
                    args,
                    workdir,
                    label="baseline",
                    extra=tuple(shlex.split(args.baseline_args or "")),
                    src=(args.baseline_src or ROOT).resolve(),
                    protocol=args.baseline_protocol,
                )
                rows.append(base)
                ab_pairs.append((row, base))
                print_step(base)
            if peer_work is not None:
                theirs = peer_step(n, args, workdir, peer_work, row["started_up_s"])
                rows.append(theirs)
                pairs += [(r, theirs) for r in ours_n]
                print_step(theirs)
            if not any(r["held"] for r in ours_n) and saturated is None:
                saturated = n
                if sweep:
                    break
            n *= 2
        profile = None
        if args.profile:
            target = saturated or rows[-1]["n"]
            print(f"profiling N={target} with py-spy...", flush=True)
            profile = step(target, args, workdir, profile=True, extra=serve_args, gateways=configs[-1]).get("profile")
    ours = [r for r in rows if r["server"] == "npcworld"]  # (the baseline does not decide saturation)
    held = [r["n"] for r in ours if r["held"]]
    largest = max(held) if held else None
    print()
    print(table(rows))
    if args.server_cpus is not None or args.bots_cpus is not None:
        print(f"\npinned: servers on CPUs {cpu_list(args.server_cpus)}, bots on CPUs {cpu_list(args.bots_cpus)}")
    print(
        f"\nnpcworld (--spawn {args.spawn}): largest N that held: {largest if largest is not None else 'none'}"
        + (f"; saturated at N={saturated}" if saturated else f"; not saturated up to N={ours[-1]['n']}")
        + f"  (held = all connected, updates/s p5 >= {MIN_UPDATES_P5:g}, round trip p99 <= {MAX_RTT_P99_MS:g} ms)"
    )
    if len(configs) > 1:
        for g in configs:
            mine = [r["n"] for r in ours if r["gateways"] == g and r["held"]]
            print(f"  --gateways {g}: largest N that held: {max(mine) if mine else 'none'}")
        for g in configs[1:]:
            print(f"\n--gateways {g} vs --gateways {configs[0]} (taking turns in this run):")
            print(side_by_side([p for p in gw_pairs if p[0]["gateways"] == g], f"gw {g}", f"gw {configs[0]}"))
    if pairs:
        peer_held = [t["n"] for _, t in pairs if t["held"]]
        theirs = max(peer_held) if peer_held else None
        print(
            f"colyseus: largest N that held: {theirs if theirs is not None else 'none'}"
            + (f"; npcworld / colyseus = {largest / theirs:.2f}x" if largest and theirs else "")
        )
        for g in configs:
            with_g = "" if g is None else f" --gateways {g}"
            print(
                f"\nside by side, npcworld{with_g} (the same N, ramp and measured seconds, taking turns in this run):"
            )
            print(side_by_side([p for p in pairs if p[0]["gateways"] == (g or p[0]["gateways"])]))
        print(MEASURED_HOW)
    if ab_pairs:
        base = " ".join(
            x for x in (f"from {args.baseline_src}" if args.baseline_src else "", args.baseline_args or "") if x
        )
        print(f"\nA/B (npcworld as is vs. baseline = npcworld {base}, taking turns in this run):")
        print(side_by_side(ab_pairs, "npcworld", "baseline"))
    for row in rows:
        for problem in row["problems"]:
            print(f"  {row['server']} N={row['n']}: {problem}")
    if profile:
        for label, prof in profile.items():
            print(
                f"\npy-spy, {label} at N={saturated or ours[-1]['n']} ({prof.get('samples', 0)} samples), "
                "top functions by own time:"
            )
            if "error" in prof:
                print("  " + prof["error"])
            for name, pct in prof.get("self", [])[:12]:
                print(f"  {pct:5.1f} %  {name}")
            if prof.get("parts"):
                print(f"\n{label}'s samples by part (bench/capacity.py PART_RULES):")
                print(parts_table(prof["parts"]))
            if args.profile_dir is not None:
                print(f"  raw stacks: {prof.get('raw')}")
    save(
        args.out,
        {
            "scenario": "S1" if args.spawn == "random" else "S1-crowded",
            "spawn": args.spawn,
            "npcs": args.npcs,
            "tick_rate": 20,
            "measure_s": args.measure,
            "machine": describe(),
            "criteria": {"updates_per_s_p5_min": MIN_UPDATES_P5, "rtt_p99_ms_max": MAX_RTT_P99_MS},
            "largest_n_held": largest,
            "saturated_at": saturated,
            "steps": rows,
            "side_by_side": [
                {
                    "n": a["n"],
                    "gateways": a["gateways"],
                    "npcworld": a,
                    "colyseus": b,
                    "ratios": {key: ratio(a.get(key), b.get(key)) for _, key, _, _ in COMPARED},
                }
                for a, b in pairs
            ],
            "gateways": args.gateways,
            "server_cpus": None if args.server_cpus is None else sorted(args.server_cpus),
            "bots_cpus": None if args.bots_cpus is None else sorted(args.bots_cpus),
            "gateways_side_by_side": [
                {
                    "n": a["n"],
                    "gateways": [a["gateways"], b["gateways"]],
                    "rows": [a, b],
                    "ratios": {key: ratio(a.get(key), b.get(key)) for _, key, _, _ in COMPARED},
                }
                for a, b in gw_pairs
            ],
            "serve_args": args.serve_args,
            "baseline_args": args.baseline_args,
            "baseline_src": str(args.baseline_src) if args.baseline_src else None,
            "a_b": [
                {
                    "n": a["n"],
                    "npcworld": a,
                    "baseline": b,
                    "ratios": {key: ratio(a.get(key), b.get(key)) for _, key, _, _ in COMPARED},
                }
                for a, b in ab_pairs
            ],
            "measured_how": MEASURED_HOW if pairs else None,
            "profile": profile,
        },
        indent=1,
    )
    return 0


MEASURED_HOW = """how each figure is measured, the same way for both unless said:
  server CPU %: utime+stime from /proc of the server process and its children over the steady window
    (100 = a core); CPU ms per client-second: (that - the server's CPU with no client) * 10 / clients
  bytes/s per client: what the bot processes read from their sockets (rchar in /proc/<pid>/io) over the
    window / clients: wire bytes, WebSocket framing included
  npcworld bots (bots/, one asyncio.Protocol each): read each update's tick and ack from its head, no full
    decode; updates/s p5 and RTT p99 over the window (from a second after the ramp)
  colyseus bots (the peer's bots.mjs, official SDK, LEAN=1: protocol handled, state not decoded):
    updates/s p5 over the window (from the end of the ramp), the lowest of its processes; RTT p99 over every
    ping of the run, the highest of its processes; its tick p99 is its simulation step only (server.mjs)"""


def print_step(row: dict) -> None:
    print(
        f"{row['server']} N={row['n']}: {'held' if row['held'] else 'NOT HELD'}  "
        + "  ".join(f"{h}={'-' if row.get(k) is None else f.format(row[k])}" for h, k, f in COLUMNS[1:-1]),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
