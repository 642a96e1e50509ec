"""Benchmark the store: what checkpoints cost the tick, the writer's time and bytes, restart time.

One server room (server/game.py: the real Game, its world, its store and writer thread) with
--npcs wandering NPCs and --players players (accounts entered as on a join, moving at random;
no sockets: views are built and kept in a Mailbox, not sent). Ticks run at 20 Hz real time, so the writer thread works
between ticks as it does in the server. Blocks of --block ticks alternate: checkpoints every
--checkpoint-s, then none (the same run, the same world), --blocks of each. Reports the tick's
p50/p99 per mode side by side, the copy inside the tick (p50/p99/max), the writer's transaction
time and bytes, and the restart: opening the store and building the room from the checkpoint,
beside building it afresh.

Usage: python bench/store.py [--npcs 2000] [--players 1000] [--block 100] [--blocks 6]
                             [--checkpoint-s 5]
Prints a table and writes bench/results/store.json. Targets (issue 12): tick p99 with
checkpoints within 5% of without; the copy in the tick under 1 ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe, save  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.app import build_room  # noqa: E402
from server.config import ServerConfig, flat  # noqa: E402
from server.events import Mailbox  # noqa: E402
from server.game import Game  # noqa: E402
from server.metrics import Metrics  # noqa: E402
from server.store import Store  # noqa: E402
from world import checkpoint as world_checkpoint  # noqa: E402
from world.tilemap import load_map  # noqa: E402

TICK_RATE = 20


def build(cfg: ServerConfig, tilemap) -> Game:
    store = Store.open(cfg.store.path) if cfg.store.path else None
    return build_room(cfg, tilemap, Metrics(), Mailbox(), store=store)


def recorded(hist, into: list) -> None:
    """Keep every observation of a Histogram too (for percentiles), not only its buckets."""
    observe = hist.observe
    hist.observe = lambda v: (into.append(v), observe(v))


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, q)) if len(xs) else math.nan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--npcs", type=int, default=2000)
    ap.add_argument("--players", type=int, default=1000)
    ap.add_argument("--block", type=int, default=100, help="ticks per block (100 = 5 s: one checkpoint)")
    ap.add_argument("--blocks", type=int, default=6, help="blocks of each mode (many short ones: less drift)")
    ap.add_argument("--checkpoint-s", type=float, default=5.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "store.json"))
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="npcworld-bench-store-"))
    cfg = flat(
        port=0,
        npcs=args.npcs,
        npc_dir="",
        decider="builtin",
        dialogue=False,
        memory_db="",
        max_players=args.players + 1,
        store=str(folder / "world.sqlite"),
        checkpoint_s=args.checkpoint_s,
    ).validate()
    tilemap = load_map(cfg.world.map)
    game = build(cfg, tilemap)
    rng = np.random.default_rng(1)
    players = []
    for i in range(args.players):
        a = game.accounts.create(f"bot {i}", time.time())
        players.append(game._enter(a).eid)
    copies, writes = [], []
    recorded(game.store.writer.copy_s, copies)
    recorded(game.store.writer.write_s, writes)
    every = game.checkpoints.every
    ticks: dict[str, list[float]] = {"checkpoints": [], "none": []}
    slot = 1.0 / TICK_RATE
    next_at = time.perf_counter()
    for _ in range(20):  # warm-up
        game.tick()
    order = ["checkpoints", "none"] * args.blocks
    for mode in order:
        game.checkpoints.every = every if mode == "checkpoints" else 10**9
        for _ in range(args.block):
            if rng.random() < 0.05 * len(players) / max(1, len(players)):
                for e in rng.choice(players, size=max(1, len(players) // 20), replace=False).tolist():
                    ang = rng.uniform(0, 2 * math.pi)
                    game.world.set_direction(e, math.cos(ang), math.sin(ang))
            t0 = time.perf_counter()
            game.tick()
            ticks[mode].append(time.perf_counter() - t0)
            next_at += slot
            time.sleep(max(0.0, next_at - time.perf_counter()))
            if next_at < time.perf_counter() - 1.0:
                next_at = time.perf_counter()  # far behind (a busy machine): no burst to catch up
    # The copy alone, many times (the in-tick samples are few, one per checkpoint, and a busy
    # machine's preemption shows in them): world_checkpoint.copy as the tick calls it.
    alone = []
    for _ in range(200):
        t0 = time.perf_counter()
        world_checkpoint.copy(game.world)
        alone.append(time.perf_counter() - t0)
        time.sleep(0.005)
    copies = list(copies)  # the in-tick ones only: not the final checkpoint at the stop below
    game.final_checkpoint()
    t0 = time.perf_counter()
    game.close()
    close_s = time.perf_counter() - t0
    written, nbytes, size = game.store.writer.written, game.store.writer.last_bytes, game.store.size()

    # Restart: the store opened and the room built from its checkpoint, beside a fresh room.
    t0 = time.perf_counter()
    store = Store.open(cfg.store.path)
    open_s = time.perf_counter() - t0
    store.writer.conn.close()
    t0 = time.perf_counter()
    again = build(cfg, tilemap)
    restart_s = time.perf_counter() - t0
    restored_tick = again.world.tick
    again.close()
    fresh_cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, path=""))
    t0 = time.perf_counter()
    fresh = build(fresh_cfg, tilemap)
    fresh_s = time.perf_counter() - t0
    fresh.close()

    rows = {
        m: {"ticks": len(v), "p50_ms": pct(v, 50), "p99_ms": pct(v, 99), "mean_ms": float(np.mean(v) * 1000)}
        for m, v in ticks.items()
    }
    ratio = rows["checkpoints"]["p99_ms"] / rows["none"]["p99_ms"]
    result = {
        "npcs": args.npcs,
        "players": args.players,
        "checkpoint_s": args.checkpoint_s,
        "modes": rows,
        "p99_ratio": ratio,
        "copy_ms": {
            "n": len(copies),
            "p50": pct(copies, 50),
            "p99": pct(copies, 99),
            "max": pct(copies, 100),
            "samples": [round(c * 1000, 3) for c in copies],
        },
        "copy_alone_ms": {"n": len(alone), "p50": pct(alone, 50), "p99": pct(alone, 99), "max": pct(alone, 100)},
        "write_ms": {"n": len(writes), "p50": pct(writes, 50), "p99": pct(writes, 99), "max": pct(writes, 100)},
        "checkpoints_written": written,
        "checkpoint_bytes": nbytes,
        "store_bytes": size,
        "close_ms": close_s * 1000,
        "open_ms": open_s * 1000,
        "restart_ms": restart_s * 1000,
        "fresh_start_ms": fresh_s * 1000,
        "restored_tick": restored_tick,
        "machine": describe(),
    }
    print(
        f"store bench: {args.npcs} NPCs, {args.players} players, checkpoint every {args.checkpoint_s} s, "
        f"{args.blocks} x {args.block} ticks per mode, alternating, 20 Hz"
    )
    print(f"{'mode':<12} {'ticks':>6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for m, r in rows.items():
        print(f"{m:<12} {r['ticks']:>6} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['mean_ms']:>8.2f}")
    mark = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    print(f"tick p99 with / without checkpoints: {ratio:.3f}  (target <= 1.05: {mark(ratio <= 1.05)})")
    c, w = result["copy_ms"], result["write_ms"]
    print(
        f"copy in the tick  n={c['n']:<4} p50 {c['p50']:.3f} ms  p99 {c['p99']:.3f} ms  max {c['max']:.3f} ms  "
        f"(target < 1 ms: {mark(c['max'] < 1.0)})"
    )
    a = result["copy_alone_ms"]
    print(
        f"copy alone        n={a['n']:<4} p50 {a['p50']:.3f} ms  p99 {a['p99']:.3f} ms  max {a['max']:.3f} ms  "
        f"(in-tick samples: {', '.join(f'{x:.2f}' for x in c['samples'])} ms)"
    )
    print(f"write (thread)    n={w['n']:<4} p50 {w['p50']:.2f} ms  p99 {w['p99']:.2f} ms  max {w['max']:.2f} ms")
    print(
        f"checkpoint        {nbytes / 1024:.1f} KiB of columns; store on disk {size / 1024:.1f} KiB; {written} written"
    )
    print(
        f"restart           open {open_s * 1000:.1f} ms; room from the checkpoint {restart_s * 1000:.1f} ms "
        f"(tick {restored_tick}) vs a fresh room {fresh_s * 1000:.1f} ms; final write at stop {close_s * 1000:.1f} ms"
    )
    out = Path(args.out)
    save(out, result, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
