"""Capacity benchmark, scenario S1: how many wandering players one server holds.

S1: the default 2048 x 2048 map with 500 wandering NPCs, world updates at
20 Hz, N bots playing `wander` (inputs at 10 Hz, a new direction every 2 s, a
ping every second). For each N in the sweep (50, 100, 200, 400, ...) this
script starts a fresh `npcworld serve --npcs 500 --port 0` and a separate
`npcworld bots` run against it (both as subprocesses of this script, on this
machine), and measures over the bots' steady window:

    server CPU % (with its inference workers), bots CPU % (the bots' parent and worker processes), from
        /proc/<pid>/stat of the processes this script started (100 % = a core);
        their ratio (bots/srv: below 1 the server costs more per client than
        the bots, so it saturates first); and other CPU %, what the rest of
        the machine used meanwhile (on a shared machine, a step where other
        work took the cores measures that, not the server)
    updates/s per client (median and 5th percentile over the bots)
    update gap p99, round trip p50/p99 (ping/pong), bytes/s per client
    server tick duration p99 (from its /metrics)

A step holds when every bot connected, the p5 of updates/s per client is at
least 19 and the round-trip p99 is at most 100 ms. The sweep stops at the
first step that does not hold (saturation); the largest N that held is the
result. With --profile, the saturating N is run once more with py-spy
sampling the server and the busiest bot process, and their top functions are
printed and saved.

Usage: python bench/capacity.py [--npcs 500] [--start 50] [--max 25600]
                                [--measure 6] [--procs P] [--profile]
Prints a table and writes bench/results/capacity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NPCWORLD = [sys.executable, "-m", "server.cli"]
RESULTS = ROOT / "bench" / "results" / "capacity.json"
READY = re.compile(r"serving http://[\d.]+:(\d+)/")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIN_UPDATES_P5 = 19.0  # updates/s per client, at a 20 Hz tick
MAX_RTT_P99_MS = 100.0


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


class CpuSampler(threading.Thread):
    """Every 0.25 s: (unix time, server CPU s, bots CPU s summed over the bots' process tree,
    the whole machine's busy CPU s). The machine's share that is neither server
    nor bots ("other CPU%") says how far other work on a shared machine skews a step."""

    def __init__(self, server_pid: int, bots_pid: int):
        super().__init__(daemon=True)
        self.server_pid, self.bots_pid = server_pid, bots_pid
        self.samples: list[tuple[float, float, float, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.25):
            # the server with its inference workers (a decision-policy worker by default)
            srv = sum(c for p in descendants(self.server_pid) if (c := cpu_seconds(p)) is not None) or None
            bots = sum(c for p in descendants(self.bots_pid) if (c := cpu_seconds(p)) is not None)
            if srv is not None:
                self.samples.append((time.time(), srv, bots, machine_busy_seconds()))

    def percent(self, t_from: float, t_to: float) -> tuple[float | None, float | None, float | None]:
        """(server, bots, everything else on the machine) CPU % between two times (100 % = a core)."""
        inside = [s for s in self.samples if t_from <= s[0] <= t_to]
        if len(inside) < 2:
            return None, None, None
        (ta, sa, ba, ma), (tb, sb, bb, mb) = inside[0], inside[-1]
        srv, bots, busy = (100 * (b - a) / (tb - ta) for a, b in ((sa, sb), (ba, bb), (ma, mb)))
        return srv, bots, max(0.0, busy - srv - bots)


def start_server(npcs: int) -> tuple[subprocess.Popen, int, list[str]]:
    proc = subprocess.Popen([*NPCWORLD, "serve", "--host", "127.0.0.1", "--port", "0", "--npcs", str(npcs),
                             "--grace", "0", "--max-players", "100000", "--log-level", "warning",
                             # S1 measures the world stream: wander bots never talk, and loading the
                             # dialogue model would eat the first step's CPU
                             "--no-dialogue"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
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

def step(n: int, args, workdir: Path, profile: bool = False) -> dict:
    ramp = min(6.0, max(1.0, n / 400))  # ~400 connections/s: a handshake storm is not what S1 measures
    duration = ramp + 1.0 + args.measure  # ramp, settle, measure (see bots.plan.Plan.window)
    srv, port, srv_lines = start_server(args.npcs)
    report_dir = workdir / f"n{n}{'-profile' if profile else ''}"
    cmd = [*NPCWORLD, "bots", "--url", f"ws://127.0.0.1:{port}/ws", "--clients", str(n), "--ramp", f"{ramp:g}",
           "--duration", f"{duration:g}", "--scenario", "wander", "--report", str(report_dir)]
    if args.procs:
        cmd += ["--procs", str(args.procs)]
    try:
        bots = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sampler = CpuSampler(srv.pid, bots.pid)
        sampler.start()
        spies = []
        if profile:
            spies = start_profilers(srv.pid, bots.pid, ramp + 2.0, args.measure - 1.0, workdir)
        out, err = bots.communicate(timeout=duration + 60)
        sampler.halt.set()
        sampler.join()
    finally:
        stop(srv)
    report_path = report_dir / "report.json"
    if not report_path.exists():
        raise RuntimeError(f"npcworld bots wrote no report (exit {bots.returncode}):\n{out}\n{err}")
    r = json.loads(report_path.read_text())
    s, st = r["summary"], (r["server"].get("steady") or {})
    t0 = r["t0_unix"]
    server_cpu, bots_cpu, other_cpu = sampler.percent(t0 + r["window"]["from"], t0 + r["window"]["to"])
    held = (s["connected"] == n and s["updates_per_s_p5"] is not None and s["updates_per_s_p5"] >= MIN_UPDATES_P5
            and s["rtt_p99"] is not None and s["rtt_p99"] <= MAX_RTT_P99_MS)
    row = {
        "n": n, "connected": s["connected"], "server_cpu_pct": _r(server_cpu, 0), "bots_cpu_pct": _r(bots_cpu, 0),
        "other_cpu_pct": _r(other_cpu, 0),
        "bots_per_server_cpu": _r(bots_cpu / server_cpu, 2) if bots_cpu is not None and server_cpu else None,
        "updates_per_s_median": s["updates_per_s_median"], "updates_per_s_p5": s["updates_per_s_p5"],
        "gap_p99_ms": s["gap_p99"], "rtt_p50_ms": s["rtt_p50"], "rtt_p99_ms": s["rtt_p99"],
        "bytes_per_s_per_client": s["bytes_per_s_median"], "tick_p99_ms": st.get("tick_p99_ms"),
        "overruns": st.get("overruns"), "bots_exit": bots.returncode, "problems": s["problems"], "held": held,
        "ramp_s": ramp, "duration_s": duration, "procs": r["plan"]["procs"],
    }
    if spies:
        row["profile"] = finish_profilers(spies)
    return row


def _r(v, nd):
    return None if v is None else round(v, nd)


# -- py-spy ------------------------------------------------------------------

def start_profilers(server_pid: int, bots_pid: int, delay: float, seconds: float, workdir: Path) -> list:
    """py-spy on the server and on the busiest bot worker, for `seconds` of the steady window."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy not found (pip install py-spy): no profile", file=sys.stderr)
        return []
    time.sleep(delay)  # into the steady window
    workers = [p for p in descendants(bots_pid) if p != bots_pid]
    busiest = max(workers, key=lambda p: cpu_seconds(p) or 0.0, default=None)
    spies = []
    for label, pid in (("server", server_pid), ("bots worker", busiest)):
        if pid is None:
            continue
        out = workdir / f"pyspy-{label.replace(' ', '-')}.txt"
        proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                                 "--rate", "100", "--format", "raw", "--nonblocking", "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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
        result[label] = top_functions(out.read_text())
    return result


def top_functions(collapsed: str, k: int = 15) -> dict:
    """From py-spy's collapsed stacks: the functions with the most samples on
    top of the stack (self) and anywhere in it (total), in % of samples."""
    own: Counter = Counter()
    total: Counter = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [f.split(" (", 1)[0] + " (" + f.split(" (", 1)[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            total[f] += n

    def top(c):
        return [[f, round(100 * n / samples, 1)] for f, n in c.most_common(k)] if samples else []

    return {"samples": samples, "self": top(own), "total": top(total)}


# -- the sweep -----------------------------------------------------------------

COLUMNS = [("N", "n", "{}"), ("conn", "connected", "{}"), ("srv CPU%", "server_cpu_pct", "{:.0f}"),
           ("bots CPU%", "bots_cpu_pct", "{:.0f}"), ("bots/srv", "bots_per_server_cpu", "{:.2f}"),
           ("other CPU%", "other_cpu_pct", "{:.0f}"), ("upd/s med", "updates_per_s_median", "{:.1f}"),
           ("upd/s p5", "updates_per_s_p5", "{:.1f}"), ("gap p99 ms", "gap_p99_ms", "{:.1f}"),
           ("rtt p50 ms", "rtt_p50_ms", "{:.2f}"), ("rtt p99 ms", "rtt_p99_ms", "{:.1f}"),
           ("B/s/client", "bytes_per_s_per_client", "{:,.0f}"), ("tick p99 ms", "tick_p99_ms", "{:.1f}"),
           ("held", "held", "{}")]


def table(rows: list[dict]) -> str:
    cells = [[h for h, _, _ in COLUMNS]]
    for row in rows:
        cells.append(["-" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--npcs", type=int, default=500)
    ap.add_argument("--start", type=int, default=50, help="first N; each next step doubles it")
    ap.add_argument("--max", type=int, default=25600, help="largest N tried")
    ap.add_argument("--measure", type=float, default=6.0, help="seconds of steady window per step")
    ap.add_argument("--procs", type=int, default=None, help="bot processes (default: npcworld bots' own)")
    ap.add_argument("--profile", action="store_true", help="re-run the saturating N under py-spy")
    args = ap.parse_args()

    rows: list[dict] = []
    saturated = None
    with tempfile.TemporaryDirectory(prefix="npcworld-capacity-") as tmp:
        workdir = Path(tmp)
        n = args.start
        while n <= args.max:
            row = step(n, args, workdir)
            rows.append(row)
            print(f"N={n}: {'held' if row['held'] else 'SATURATED'}  "
                  + "  ".join(f"{h}={'-' if row.get(k) is None else f.format(row[k])}" for h, k, f in COLUMNS[2:-1]),
                  flush=True)
            if not row["held"]:
                saturated = n
                break
            n *= 2
        profile = None
        if args.profile:
            target = saturated or rows[-1]["n"]
            print(f"profiling N={target} with py-spy...", flush=True)
            profile = step(target, args, workdir, profile=True).get("profile")
    held = [r["n"] for r in rows if r["held"]]
    largest = max(held) if held else None
    print()
    print(table(rows))
    print(f"\nlargest N that held: {largest if largest is not None else 'none'}"
          + (f"; saturated at N={saturated}" if saturated else f"; not saturated up to N={rows[-1]['n']}")
          + f"  (held = all connected, updates/s p5 >= {MIN_UPDATES_P5:g}, round trip p99 <= {MAX_RTT_P99_MS:g} ms)")
    for row in rows:
        for problem in row["problems"]:
            print(f"  N={row['n']}: {problem}")
    if profile:
        for label, prof in profile.items():
            print(f"\npy-spy, {label} at N={saturated or rows[-1]['n']} ({prof.get('samples', 0)} samples), "
                  "top functions by own time:")
            if "error" in prof:
                print("  " + prof["error"])
            for name, pct in prof.get("self", [])[:12]:
                print(f"  {pct:5.1f} %  {name}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "scenario": "S1", "npcs": args.npcs, "tick_rate": 20,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "criteria": {"updates_per_s_p5_min": MIN_UPDATES_P5, "rtt_p99_ms_max": MAX_RTT_P99_MS},
        "largest_n_held": largest, "saturated_at": saturated, "steps": rows, "profile": profile,
    }, indent=1) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
