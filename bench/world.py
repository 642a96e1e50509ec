"""Benchmark the world's tick: step + build_views + encode_update for every observer.

For each (NPCs, observers) pair: a World on the default map, NPCs spawned
near POIs, observers spawned as players on random free tiles across the map,
each holding a random direction that changes every ~2 s (sometimes stopping).
The collector is tuned as the server tunes it after its start-up (server/app.py
`tune_gc`). After a warm-up, times --ticks ticks at 20 Hz and reports the tick's median
and p99 (ms) in wall time and in CPU time (this thread's: on a loaded machine
the wall time includes waits for a core), its parts in CPU time (medians),
and the bytes each observer receives per
second (mean update size * tick rate), each update encoded as its connection
sends it (moves against the update before: docs/protocol.md).

With `--speeds K` the NPCs walk at K different speeds (as NPC files with
their own `speed` do), K = 1 by default: the world's npc_speed.

Side by side: `--compare PATH` (a checkout of another commit, e.g. made with
`git worktree add /tmp/old-world main`) runs every case `--rounds` times
alternately under this tree's world/ and PATH's, each in its own process,
and prints both, with the ratio of this tree's medians to PATH's. The bench
code is this file for both; only world/ differs. With `--interleave` both
worlds (same seed) live in this one process instead, PATH's world/ imported
from a copy, and are ticked alternately, tick by tick: on a loaded machine
separate processes drift 5-25% apart with the same code; this stays within ~1%. With `--same`
as well, every observer's update must be the same bytes under both trees at every tick (for a
change meant to leave the world's arithmetic and the frames as they were).

Usage: python bench/world.py [--npcs 500 2000 10000] [--observers 100 1000]
                             [--ticks 400] [--warmup 40] [--seed 0] [--speeds 1]
                             [--compare PATH [--rounds 3 | --interleave [--same]]]
Prints a table and writes bench/results/world.json.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from machine import describe, save  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
# --tree PATH (internal, for --compare): import world/ from that checkout instead of this one
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve() if "--tree" in sys.argv[:-1] else ROOT
sys.path.insert(0, str(TREE))

from server.app import tune_gc  # noqa: E402
from world.sim import NPC, PLAYER, World, WorldConfig  # noqa: E402
from world.snapshot import encode_update  # noqa: E402
from world.tilemap import load_map  # noqa: E402

TICK_RATE = 20
DT = 1.0 / TICK_RATE
TURN_EVERY_S = 2.0


def populated(
    tilemap, n_npcs: int, n_obs: int, seed: int, speeds: int = 1, sim=None
) -> tuple[World, list[int], Callable]:
    """The bench's world: n_npcs NPCs (spawned near POIs), n_obs observers as players on random free
    tiles, each walking a random direction. Returns the world, the players' ids and `walk()`, which
    turns the players due to turn this tick (each about every TURN_EVERY_S; call it before each step).
    `sim`: another tree's world.sim module (--interleave), else this one's.
    bench/gateway_ipc.py builds its world here too."""
    world_, npc, player, config = (World, NPC, PLAYER, WorldConfig) if sim is None else _sim_types(sim)
    w = world_(tilemap, config(seed=seed))
    rng = np.random.default_rng(seed + 1)
    free = np.argwhere(~tilemap.blocked)  # (row, col) of free tiles
    ts = tilemap.tile_size
    for i in range(n_npcs):
        e = w.spawn(npc, f"npc{i}", "#d08040")
        if speeds > 1:  # as NPC files with their own `speed`: 40, 50, ... world units/s
            w.set_speed(e, 40.0 + 10.0 * (i % speeds))
    players = []
    for i in range(n_obs):
        r, c = free[rng.integers(len(free))]
        e = w.spawn(player, f"bot{i}", "#4080d0", (c + 0.5) * ts, (r + 0.5) * ts)
        players.append(e)
        w.add_observer(e)

    def turn(p):
        if rng.random() < 0.1:
            w.set_direction(p, 0.0, 0.0)
        else:
            a = rng.uniform(0, 2 * math.pi)
            w.set_direction(p, math.cos(a), math.sin(a))

    def walk() -> None:
        for i in np.flatnonzero(rng.random(n_obs) < DT / TURN_EVERY_S):
            turn(players[i])

    for p in players:
        turn(p)
    return w, players, walk


def _sim_types(sim) -> tuple:
    return sim.World, sim.NPC, sim.PLAYER, sim.WorldConfig


class _Side:
    """One world ticked by the bench, and what it measured per tick after the warm-up."""

    def __init__(self, w, players: list[int], walk: Callable, encode: Callable, warmup: int):
        self.w, self.players, self.walk, self.encode, self.warmup = w, players, walk, encode, warmup
        self.t = 0
        self.sent: dict[int, int] = {}
        self.wall: list[tuple[float, float, float]] = []  # (step, views, encode) ms
        self.cpu: list[tuple[float, float, float]] = []  # the same in this thread's CPU time
        self.sizes: list[float] = []
        self.shared: list[float] = []
        self.out: list[bytes] = []  # the last tick's updates, in the order of `players`

    def tick(self) -> None:
        w, players, clock = self.w, self.players, time.thread_time
        self.walk()
        c0, t0 = clock(), time.perf_counter()
        w.step(DT)
        c1, t1 = clock(), time.perf_counter()
        views = w.build_views()
        c2, t2 = clock(), time.perf_counter()
        tick = w.tick
        # as each connection sends it: moves against the build it sent before (the first a keyframe)
        out = [self.encode(tick, tick, views[p], self.sent.get(p)) for p in players]
        self.sent = {p: views[p].build for p in players}
        self.out = out
        c3, t3 = clock(), time.perf_counter()
        if self.t >= self.warmup:
            self.cpu.append(((c1 - c0) * 1e3, (c2 - c1) * 1e3, (c3 - c2) * 1e3))
            self.wall.append(((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3))
            self.sizes.append(sum(map(len, out)) / max(1, len(players)))
            self.shared.append(1 - len({id(v) for v in views.values()}) / max(1, len(players)))
        self.t += 1

    def result(self, n_npcs: int, n_obs: int, speeds: int) -> dict:
        wall, c = np.asarray(self.wall).reshape(-1, 3), np.asarray(self.cpu).reshape(-1, 3)
        total = wall.sum(axis=1)
        return {
            # CPU time of the bench's thread: what the tick costs, less the waits for a core that wall
            # time includes on a loaded machine (compare with these there)
            "cpu_tick_ms_median": float(np.median(c.sum(axis=1))),
            "cpu_tick_ms_p99": float(np.percentile(c.sum(axis=1), 99)),
            "cpu_step_ms_median": float(np.median(c[:, 0])),
            "cpu_views_ms_median": float(np.median(c[:, 1])),
            "cpu_encode_ms_median": float(np.median(c[:, 2])),
            "npcs": n_npcs,
            "observers": n_obs,
            "ticks": len(total),
            "speeds": speeds,
            "tick_ms_median": float(np.median(total)),
            "tick_ms_p99": float(np.percentile(total, 99)),
            "step_ms_median": float(np.median(wall[:, 0])),
            "views_ms_median": float(np.median(wall[:, 1])),
            "encode_ms_median": float(np.median(wall[:, 2])),
            "bytes_per_observer_per_s": float(np.mean(self.sizes) * TICK_RATE),
            "update_bytes_mean": float(np.mean(self.sizes)),
            "views_shared_fraction": float(np.mean(self.shared)),
        }


def run(tilemap, n_npcs: int, n_obs: int, ticks: int, warmup: int, seed: int, speeds: int = 1) -> dict:
    w, players, walk = populated(tilemap, n_npcs, n_obs, seed, speeds)
    tune_gc()  # the collector as the server has it once started (server/app.py)
    side = _Side(w, players, walk, encode_update, warmup)
    for _ in range(warmup + ticks):
        side.tick()
    return side.result(n_npcs, n_obs, speeds)


def run_interleaved(
    other: Path,
    map_path: str,
    n_npcs: int,
    n_obs: int,
    ticks: int,
    warmup: int,
    seed: int,
    speeds: int = 1,
    same: bool = False,
    protocol: int = 2,
) -> tuple[dict, dict]:
    """The same world (same seed) under this tree's world/ and under `other`'s, in this process, ticked
    alternately tick by tick (which goes first alternates too): both see the same load at the same
    moments, which separate processes on a loaded machine do not (their medians drifted 5-25% apart
    with the same code). `other`'s world/ is imported from a copy as the package `world_other` (its
    modules import each other relatively). `same`: every tick, every observer's update must be the same
    bytes under both trees (SystemExit naming the first tick and observer that differ): a change meant
    to be bit for bit (the world's arithmetic and the frames) is checked on the bench's whole world.
    `protocol`: the version this tree's updates are encoded in (the other tree's: version 2, which
    every tree speaks). Returns (this tree's result, other's)."""
    dest = Path(tempfile.mkdtemp(prefix="bench-world-"))
    shutil.copytree(other / "world", dest / "world_other")
    sys.path.insert(0, str(dest))
    sim = importlib.import_module("world_other.sim")
    snapshot = importlib.import_module("world_other.snapshot")
    tilemap = importlib.import_module("world_other.tilemap")
    encode = encode_update if protocol == 2 else functools.partial(encode_update, version=protocol)
    mine = _Side(*populated(load_map(map_path), n_npcs, n_obs, seed, speeds), encode, warmup)
    theirs = _Side(
        *populated(tilemap.load_map(map_path), n_npcs, n_obs, seed, speeds, sim=sim), snapshot.encode_update, warmup
    )
    tune_gc()
    for t in range(warmup + ticks):
        for side in (mine, theirs) if t % 2 else (theirs, mine):
            side.tick()
        if same and mine.out != theirs.out:
            i = next(i for i, (a, b) in enumerate(zip(mine.out, theirs.out)) if a != b)
            raise SystemExit(f"tick {t}: observer {i}'s update differs between the trees")
    return mine.result(n_npcs, n_obs, speeds), theirs.result(n_npcs, n_obs, speeds)


PARTS = ("tick_ms_median", "tick_ms_p99", "step_ms_median", "views_ms_median", "encode_ms_median")
PARTS = PARTS + tuple("cpu_" + k for k in PARTS)


def _row(label: str, r: dict) -> str:
    return (
        f"{r['npcs']:>6} {r['observers']:>5} {label:>5} | {r['tick_ms_median']:>8.2f} {r['tick_ms_p99']:>7.2f} | "
        f"{r['cpu_tick_ms_median']:>7.2f} {r['cpu_tick_ms_p99']:>7.2f} {r['cpu_step_ms_median']:>6.2f} "
        f"{r['cpu_views_ms_median']:>6.2f} {r['cpu_encode_ms_median']:>6.2f} | "
        f"{r['bytes_per_observer_per_s'] / 1000:>8.1f} {r['views_shared_fraction']:>6.0%}"
    )


def _in_process(tree: Path, args: argparse.Namespace, n: int, o: int) -> dict:
    """One case under the world/ of `tree`, in a fresh process (this file, --tree tree --one)."""
    cmd = [
        sys.executable,
        __file__,
        "--tree",
        str(tree),
        "--one",
        "--npcs",
        str(n),
        "--observers",
        str(o),
        "--ticks",
        str(args.ticks),
        "--warmup",
        str(args.warmup),
        "--seed",
        str(args.seed),
        "--speeds",
        str(args.speeds),
        "--map",
        args.map,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    r: dict = json.loads(out.strip().splitlines()[-1])
    return r


def _median_of(rounds: list[dict]) -> dict:
    r = dict(rounds[0])
    for k in PARTS + ("bytes_per_observer_per_s", "views_shared_fraction"):
        r[k] = float(np.median([x[k] for x in rounds]))
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark world step + views + encode per tick.")
    ap.add_argument("--npcs", type=int, nargs="+", default=[500, 2000, 10000])
    ap.add_argument("--observers", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--ticks", type=int, default=400, help="timed ticks per case")
    ap.add_argument("--warmup", type=int, default=40, help="untimed ticks first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speeds", type=int, default=1, help="different NPC walking speeds (1: npc_speed for all)")
    ap.add_argument("--compare", default=None, help="another checkout: run each case under both, alternately")
    ap.add_argument("--rounds", type=int, default=3, help="with --compare: runs of each case per tree")
    ap.add_argument(
        "--interleave",
        action="store_true",
        help="with --compare: both trees' worlds in this process, ticked alternately (one round)",
    )
    ap.add_argument(
        "--same",
        action="store_true",
        help="with --interleave: fail unless every update is the same bytes under both trees, every tick",
    )
    ap.add_argument(
        "--protocol",
        type=int,
        default=2,
        help="with --interleave: the protocol version of this tree's updates (the other's: 2); 3 measures version 3 "
        "against an older tree's version 2",
    )
    ap.add_argument("--tree", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # print one case as JSON
    ap.add_argument("--map", default=str(ROOT / "assets" / "maps" / "default.tmj"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "world.json"))
    args = ap.parse_args()

    if args.one:
        r = run(load_map(args.map), args.npcs[0], args.observers[0], args.ticks, args.warmup, args.seed, args.speeds)
        print(json.dumps(r))
        return
    tilemap = load_map(args.map)
    rows = []
    head = (
        f"{'npcs':>6} {'obs':>5} {'tree':>5} | {'tick med':>8} {'p99':>7} | {'cpu med':>7} {'p99':>7} "
        f"{'step':>6} {'views':>6} {'encode':>6} | {'KB/obs/s':>8} {'shared':>6}"
    )
    print(head)
    print("-" * len(head))
    other = Path(args.compare).resolve() if args.compare else None
    for n in args.npcs:
        for o in args.observers:
            if other is None:
                r = run(tilemap, n, o, args.ticks, args.warmup, args.seed, args.speeds)
                rows.append(r)
                print(_row("", r), flush=True)
                continue
            if args.interleave:
                a, b = run_interleaved(
                    other, args.map, n, o, args.ticks, args.warmup, args.seed, args.speeds, args.same, args.protocol
                )
            else:
                mine: list[dict] = []
                theirs: list[dict] = []
                for _ in range(args.rounds):  # alternately, so that both see the same load
                    theirs.append(_in_process(other, args, n, o))
                    mine.append(_in_process(ROOT, args, n, o))
                a, b = _median_of(mine), _median_of(theirs)
            ratio = {k: a[k] / b[k] if b[k] else float("nan") for k in PARTS}
            rows.append(
                {
                    **a,
                    "compare": {"tree": str(other), **b},
                    "ratio": ratio,
                    "rounds": 1 if args.interleave else args.rounds,
                    "interleaved": args.interleave,
                }
            )
            print(_row("this", a))
            print(_row("other", b))
            print(
                f"{'':>12} {'ratio':>5} | {ratio['tick_ms_median']:>8.2f} {ratio['tick_ms_p99']:>7.2f} | "
                f"{ratio['cpu_tick_ms_median']:>7.2f} {ratio['cpu_tick_ms_p99']:>7.2f} "
                f"{ratio['cpu_step_ms_median']:>6.2f} {ratio['cpu_views_ms_median']:>6.2f} "
                f"{ratio['cpu_encode_ms_median']:>6.2f} |",
                flush=True,
            )
    print(
        "times in ms per tick (medians unless p99): wall time, then the CPU time of the tick and of its parts;"
        " KB = 1000 bytes at 20 ticks/s"
    )
    if other is not None:
        print(
            f"this = {ROOT}, other = {other}; "
            + ("one process, the two worlds ticked alternately; " if args.interleave else "")
            + f"medians of {1 if args.interleave else args.rounds} alternating runs each; "
            f"ratio = this / other; load average at the end: {os.getloadavg()[0]:.1f}"
        )
    out = Path(args.out)
    save(
        out,
        {
            "bench": "world",
            "map": args.map,
            "tick_rate": TICK_RATE,
            "speeds": args.speeds,
            "machine": describe(),
            "results": rows,
        },
        indent=2,
    )


if __name__ == "__main__":
    main()
