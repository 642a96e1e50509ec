"""The garbage collector's share of the server's CPU, A/B in one run: Python's defaults against
server/app.py `tune_gc` (after start-up: collect, gc.freeze, a young generation of GC_YOUNG).

Each turn starts a real `npcworld serve` (S1: 500 wandering NPCs, players placed at random) in a
wrapper process that times every collection of its main thread with `gc.callbacks`
(time.thread_time: CPU, not wall) and, for the defaults, makes `tune_gc` do nothing; then
`npcworld bots` (wander) connects N clients. Over the bots' steady window: the server process's
CPU (/proc), the collector's CPU and its share, collections per generation, the longest one
(a full collection stalls the loop: a tick is 50 ms). The two take turns, --rounds times.
A figure of the process's own CPU, so other load on the machine slows a turn but moves it little.

Usage: python bench/gc_share.py [--clients 600] [--seconds 12] [--rounds 2]
Prints a table and writes bench/results/gc_share.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from machine import describe, save, stop  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "gc_share.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY = re.compile(r"serving http://[\d.]+:(\d+)/")
VARIANTS = ("defaults", "tuned")


def serve(variant: str, argv: list[str]) -> None:
    """The wrapper: time the collections of this (main) thread, then run `npcworld serve`."""
    import gc

    sys.path.insert(0, str(ROOT))
    stats = {"cpu": 0.0, "n": [0, 0, 0], "longest": 0.0}
    started = [0.0]

    def timed(phase: str, info: dict) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if phase == "start":
            started[0] = time.thread_time()
        else:
            took = time.thread_time() - started[0]
            stats["cpu"] += took
            stats["n"][info["generation"]] += 1
            stats["longest"] = max(stats["longest"], took)

    def report() -> None:
        while True:  # until the process ends (daemon thread)
            time.sleep(0.5)
            print(f"gc {time.time():.3f} {json.dumps(stats)}", file=sys.stderr, flush=True)
            stats["longest"] = 0.0  # the longest since the last report

    gc.callbacks.append(timed)
    threading.Thread(target=report, daemon=True).start()
    from server import app, cli

    if variant == "defaults":
        app.tune_gc = lambda: None  # type: ignore[assignment]
    sys.argv = ["npcworld", *argv]
    sys.exit(cli.main())


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def turn(variant: str, n: int, seconds: float, workdir: Path) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    from capacity import ramp_for, started_up

    cmd = [
        sys.executable,
        __file__,
        "--serve",
        variant,
        "--",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--npcs",
        "500",
        "--spawn",
        "random",
        "--grace",
        "0",
        "--max-players",
        "100000",
        "--log-level",
        "warning",
        "--no-dialogue",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    gcs: list[tuple[float, dict, float]] = []  # (unix time, stats, server CPU s then)
    port: list[int] = []
    ready = threading.Event()

    def out() -> None:
        for line in proc.stdout:
            m = READY.search(line)
            if m and not port:
                port.append(int(m.group(1)))
                ready.set()
        ready.set()

    def err() -> None:
        for line in proc.stderr:
            if line.startswith("gc "):
                _, t, js = line.split(" ", 2)
                try:
                    gcs.append((float(t), json.loads(js), cpu_seconds(proc.pid)))
                except OSError:
                    pass

    threading.Thread(target=out, daemon=True).start()
    threading.Thread(target=err, daemon=True).start()
    try:
        if not ready.wait(90) or not port:
            raise RuntimeError(f"{variant}: the server did not start")
        started_up(port[0], 60.0)
        ramp = ramp_for(n)
        report = workdir / f"{variant}-{time.time():.0f}"
        bots = subprocess.run(
            [
                sys.executable,
                "-m",
                "server.cli",
                "bots",
                "--url",
                f"ws://127.0.0.1:{port[0]}/ws",
                "--clients",
                str(n),
                "--ramp",
                f"{ramp:g}",
                "--duration",
                f"{ramp + 1 + seconds:g}",
                "--scenario",
                "wander",
                "--report",
                str(report),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=ramp + seconds + 120,
        )
        r = json.loads((report / "report.json").read_text())
    finally:
        stop(proc, wait=15)
    w0, w1 = r["t0_unix"] + r["window"]["from"], r["t0_unix"] + r["window"]["to"]
    inside = [g for g in gcs if w0 <= g[0] <= w1]
    if len(inside) < 2:
        raise RuntimeError(f"{variant}: no collector figures over the window (bots exit {bots.returncode})")
    (_, a, ca), (_, b, cb) = inside[0], inside[-1]
    longest = max(g[1]["longest"] for g in inside[1:])
    cpu, gc_cpu = cb - ca, b["cpu"] - a["cpu"]
    return {
        "variant": variant,
        "clients": n,
        "connected": r["summary"]["connected"],
        "updates_per_s_median": r["summary"]["updates_per_s_median"],
        "server_cpu_s": round(cpu, 2),
        "gc_cpu_s": round(gc_cpu, 3),
        "gc_share_pct": round(100 * gc_cpu / cpu, 1) if cpu else None,
        "collections": [y - x for x, y in zip(a["n"], b["n"])],
        "longest_ms": round(1000 * longest, 1),
        "load": os.getloadavg()[0],
    }


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[sys.argv.index("--") + 1 :])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=600)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    turns = []
    with tempfile.TemporaryDirectory(prefix="npcworld-gc-") as tmp:
        for r in range(args.rounds):
            for v in VARIANTS:
                t = turn(v, args.clients, args.seconds, Path(tmp))
                t["round"] = r
                turns.append(t)
                print(
                    f"round {r + 1}/{args.rounds} {v:8s} GC {t['gc_share_pct']}% of {t['server_cpu_s']} s server CPU, "
                    f"collections {t['collections']}, longest {t['longest_ms']} ms, "
                    f"{t['connected']} connected, {t['updates_per_s_median']} updates/s, load {t['load']:.1f}",
                    flush=True,
                )
    print(f"\n{'variant':9s} {'GC % of server CPU':>19s} {'collections (gen 0/1/2)':>24s} {'longest ms':>11s}")
    for t in turns:
        print(f"{t['variant']:9s} {t['gc_share_pct']:>19} {str(t['collections']):>24s} {t['longest_ms']:>11}")
    save(
        RESULTS,
        {
            "clients": args.clients,
            "seconds": args.seconds,
            "turns": turns,
            "machine": describe(),
        },
        indent=1,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
