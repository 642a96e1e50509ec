"""What the bots themselves cost: `npcworld bots` (wander) from two source trees, taking turns
against one server, their CPU per update received and per client-second, side by side in one run.

bench/capacity.py runs the bots on the same machine as the server, so every bit of CPU a bot
spends is taken from the server at saturation; this measures the bots alone. One `npcworld serve`
(this tree; --npcs NPCs, players spread at random, --ws picows, no dialogue) serves every turn; each
turn is one `npcworld bots --scenario wander` run of N clients from one tree (its own bots/ and
world/), sampled as capacity.py samples it (utime + stime from /proc of the bots' processes,
every 0.25 s) over the report's steady window; updates received in that window are the sum over
bots of their window rate x the window. The server is the same for both trees and below
saturation at the N given (check `updates/s p5` in the table: 20 at 20 Hz), so each tree's bots
get the same updates to read.

Usage: python bench/bots_cpu.py --baseline-src /tmp/base [--clients 1200] [--seconds 12] [--rounds 2]
Prints a table and writes bench/results/bots_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from capacity import NPCWORLD, CpuSampler, procs_for, ramp_for, start_server, started_up  # bench/capacity.py
from machine import describe, save, stop  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "bots_cpu.json"


def one_turn(src: Path, port: int, server_pid: int, n: int, seconds: float, procs: int, workdir: Path) -> dict:
    ramp = ramp_for(n)
    report_dir = Path(tempfile.mkdtemp(dir=workdir))
    cmd = [*NPCWORLD, "bots", "--url", f"ws://127.0.0.1:{port}/ws", "--clients", str(n), "--ramp", f"{ramp:g}"]
    cmd += ["--duration", f"{ramp + 1.0 + seconds:g}", "--scenario", "wander", "--report", str(report_dir)]
    bots = subprocess.Popen([*cmd, "--procs", str(procs)], cwd=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = CpuSampler(server_pid, [bots.pid])
    sampler.start()
    try:
        out, err = bots.communicate(timeout=ramp + seconds + 120)
    finally:
        sampler.halt.set()
        stop(bots)
    report_path = report_dir / "report.json"
    if not report_path.exists():
        raise RuntimeError(f"npcworld bots from {src} wrote no report (exit {bots.returncode}): {err[-2000:]!r}")
    report = json.loads(report_path.read_text())
    w0, w1 = report["window"]["from"], report["window"]["to"]
    t0 = report["t0_unix"]
    server_pct, bots_pct, other_pct = sampler.percent(t0 + w0, t0 + w1)
    if bots_pct is None:
        raise RuntimeError("the steady window was too short to sample")
    updates = sum((b["updates_per_s"] or 0.0) * (w1 - w0) for b in report["bots"])
    clients = report["summary"]["connected"]
    cpu_s = bots_pct / 100 * (w1 - w0)
    return {
        "src": str(src),
        "clients": clients,
        "window_s": w1 - w0,
        "bots_cpu_pct": round(bots_pct, 1),
        "server_cpu_pct": round(server_pct, 1) if server_pct is not None else None,
        "other_cpu_pct": round(other_pct, 1) if other_pct is not None else None,
        "updates": round(updates),
        "us_per_update": round(1e6 * cpu_s / updates, 2) if updates else None,
        "ms_per_client_s": round(1e3 * cpu_s / clients / (w1 - w0), 4) if clients else None,
        "updates_per_s_p5": report["summary"]["updates_per_s_p5"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline-src", type=Path, required=True, help="the other tree (`git archive main | tar -x`)")
    ap.add_argument("--clients", type=int, default=1200)
    ap.add_argument("--seconds", type=float, default=12.0, help="steady seconds per turn (after the ramp)")
    ap.add_argument("--rounds", type=int, default=2, help="turns of each tree (they alternate)")
    ap.add_argument("--npcs", type=int, default=500)
    ap.add_argument("--procs", type=int, default=0, help="bot processes (default: npcworld bots' own rule)")
    args = ap.parse_args()
    if not (args.baseline_src / "bots" / "bot.py").exists():
        ap.error("--baseline-src: expected a source tree of this project (with bots/bot.py)")
    trees = {"this tree": ROOT, "baseline": args.baseline_src.resolve()}
    procs = procs_for(args.clients, args)
    srv, port, _ = start_server(args.npcs, "random", ("--ws", "picows"), ROOT)
    turns: list[dict] = []
    try:
        started_up(port, 60.0)
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                order = list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]
                for label, src in order:
                    got = one_turn(src, port, srv.pid, args.clients, args.seconds, procs, Path(tmp))
                    got.update(tree=label, round=r)
                    turns.append(got)
                    print(
                        f"round {r + 1} {label}: bots {got['bots_cpu_pct']}% CPU, {got['us_per_update']} us per update"
                        f" ({got['clients']} clients, server {got['server_cpu_pct']}%, p5 {got['updates_per_s_p5']}"
                        " updates/s)",
                        flush=True,
                    )
                    time.sleep(2.0)  # the last turn's connections are gone from the server
    finally:
        stop(srv)
    rows = [["tree", "us per update", "ms per client-s", "bots CPU %", "server CPU %", "updates/s p5"]]
    summary = {}
    for label in trees:
        mine = [t for t in turns if t["tree"] == label]
        med = {k: statistics.median(t[k] for t in mine) for k in ("us_per_update", "ms_per_client_s", "bots_cpu_pct")}
        summary[label] = med
        srv_pct = statistics.median(t["server_cpu_pct"] or 0.0 for t in mine)
        p5 = min(t["updates_per_s_p5"] or 0.0 for t in mine)
        rows.append([label, f"{med['us_per_update']:.2f}", f"{med['ms_per_client_s']:.4f}"])
        rows[-1] += [f"{med['bots_cpu_pct']:.0f}", f"{srv_pct:.0f}", f"{p5:.1f}"]
    ratio = summary["this tree"]["us_per_update"] / summary["baseline"]["us_per_update"]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(f"this tree / baseline, CPU per update: {ratio:.2f}x")
    save(RESULTS, {"machine": describe(), "clients": args.clients, "summary": summary, "ratio": ratio, "turns": turns})
    return 0


if __name__ == "__main__":
    sys.exit(main())
