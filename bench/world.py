"""Benchmark the world's tick: step + build_views + encode_update for every observer.

For each (NPCs, observers) pair: a World on the default map, NPCs spawned
near POIs, observers spawned as players on random free tiles across the map,
each holding a random direction that changes every ~2 s (sometimes stopping).
After a warm-up, times --ticks ticks at 20 Hz and reports the tick's median
and p99 (ms), its parts (medians), and the bytes each observer receives per
second (mean update size * tick rate), each update encoded as its connection
sends it (moves against the update before: docs/protocol.md).

Usage: python bench/world.py [--npcs 500 2000 10000] [--observers 100 1000]
                             [--ticks 400] [--warmup 40] [--seed 0]
Prints a table and writes bench/results/world.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from world.sim import NPC, PLAYER, World, WorldConfig  # noqa: E402
from world.snapshot import encode_update  # noqa: E402
from world.tilemap import load_map  # noqa: E402

TICK_RATE = 20
DT = 1.0 / TICK_RATE
TURN_EVERY_S = 2.0


def run(tilemap, n_npcs: int, n_obs: int, ticks: int, warmup: int, seed: int) -> dict:
    w = World(tilemap, WorldConfig(seed=seed))
    rng = np.random.default_rng(seed + 1)
    free = np.argwhere(~tilemap.blocked)          # (row, col) of free tiles
    ts = tilemap.tile_size
    for i in range(n_npcs):
        w.spawn(NPC, f"npc{i}", "#d08040")
    players = []
    for i in range(n_obs):
        r, c = free[rng.integers(len(free))]
        e = w.spawn(PLAYER, f"bot{i}", "#4080d0", (c + 0.5) * ts, (r + 0.5) * ts)
        players.append(e)
        w.add_observer(e)

    def turn(p):
        if rng.random() < 0.1:
            w.set_direction(p, 0.0, 0.0)
        else:
            a = rng.uniform(0, 2 * math.pi)
            w.set_direction(p, math.cos(a), math.sin(a))

    for p in players:
        turn(p)
    step_ms, views_ms, enc_ms, sizes, shared = [], [], [], [], []
    sent: dict[int, int] = {}
    for t in range(warmup + ticks):
        for i in np.flatnonzero(rng.random(n_obs) < DT / TURN_EVERY_S):
            turn(players[i])
        t0 = time.perf_counter()
        w.step(DT)
        t1 = time.perf_counter()
        views = w.build_views()
        t2 = time.perf_counter()
        tick = w.tick
        # as each connection sends it: moves against the build it sent before (the first a keyframe)
        out = [encode_update(tick, tick, views[p], sent.get(p)) for p in players]
        sent = {p: views[p].build for p in players}
        t3 = time.perf_counter()
        if t >= warmup:
            step_ms.append((t1 - t0) * 1e3)
            views_ms.append((t2 - t1) * 1e3)
            enc_ms.append((t3 - t2) * 1e3)
            sizes.append(sum(map(len, out)) / max(1, n_obs))
            shared.append(1 - len({id(v) for v in views.values()}) / max(1, n_obs))
    total = np.add(np.add(step_ms, views_ms), enc_ms)
    return {
        "npcs": n_npcs, "observers": n_obs, "ticks": ticks,
        "tick_ms_median": float(np.median(total)),
        "tick_ms_p99": float(np.percentile(total, 99)),
        "step_ms_median": float(np.median(step_ms)),
        "views_ms_median": float(np.median(views_ms)),
        "encode_ms_median": float(np.median(enc_ms)),
        "bytes_per_observer_per_s": float(np.mean(sizes) * TICK_RATE),
        "update_bytes_mean": float(np.mean(sizes)),
        "views_shared_fraction": float(np.mean(shared)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark world step + views + encode per tick.")
    ap.add_argument("--npcs", type=int, nargs="+", default=[500, 2000, 10000])
    ap.add_argument("--observers", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--ticks", type=int, default=400, help="timed ticks per case")
    ap.add_argument("--warmup", type=int, default=40, help="untimed ticks first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--map", default=str(ROOT / "assets" / "maps" / "default.tmj"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "world.json"))
    args = ap.parse_args()

    tilemap = load_map(args.map)
    rows = []
    head = (f"{'npcs':>6} {'obs':>5} | {'tick med':>8} {'p99':>7} | {'step':>6} {'views':>6} "
            f"{'encode':>6} | {'KB/obs/s':>8} {'shared':>6}")
    print(head)
    print("-" * len(head))
    for n in args.npcs:
        for o in args.observers:
            r = run(tilemap, n, o, args.ticks, args.warmup, args.seed)
            rows.append(r)
            print(f"{n:>6} {o:>5} | {r['tick_ms_median']:>8.2f} {r['tick_ms_p99']:>7.2f} | "
                  f"{r['step_ms_median']:>6.2f} {r['views_ms_median']:>6.2f} {r['encode_ms_median']:>6.2f} | "
                  f"{r['bytes_per_observer_per_s'] / 1000:>8.1f} {r['views_shared_fraction']:>6.0%}",
                  flush=True)
    print("times in ms per tick (medians unless p99); KB = 1000 bytes at 20 ticks/s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "bench": "world", "map": args.map, "tick_rate": TICK_RATE,
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(), "results": rows,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
