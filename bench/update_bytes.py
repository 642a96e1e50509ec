"""Where an update's bytes go, on scenario S1 uniform (bench/capacity.py's), in one process.

A World on the default map with --npcs wandering NPCs (spawned as `npcworld serve` spawns its
wanderers) and --players players on random free tiles (`--spawn random`), each holding a direction
as the `wander` bots do (a new one every 2 s, cos/sin rounded to 3 places, at full speed), every
player an observer. After --warmup ticks, each of --sample observers' updates is encoded as its
connection sends it (deltas against the update before, a keyframe first) for --ticks ticks, in
every protocol version that has deltas, and split into its parts by re-packing each decoded part
(msgpack packs canonically, so the parts add up to the message: checked):

    ws        the WebSocket frame head (2 bytes to 125, 4 to 65,535)
    head      everything that is not one of the parts below: the map's keys and the array heads,
              tick, ack (version 3: the array head, tick, ack and the arrays' heads)
    whole     whole cell blocks
    d         move blocks' per-entity change (version 2: `d` int8 pairs; version 3: `r`, the change of
              each entity's step, 2 bits a coordinate)
    fix       fix records (index, x, y)
    came      entities that left or came into a cell of a move block (gone, ids, pos[, step])
    block     the rest of the move blocks (array heads, cell numbers, bin heads)
    enter, leave, chat

It also tallies, over the version-2 move blocks of the sampled observers, each entity's step
`d` (quantised units a tick, per coordinate) and its change from the same entity's step in the
previous update (what a client that remembers the step can predict): the distribution that
chooses the version-3 form.

Measured (session 19, the defaults; bytes do not depend on load), bytes an update, v2 -> v3: ws 4.0
-> 3.6, head 55.7 -> 8.7, whole 8.5 -> 12.7, d 265.4 -> 78.6, fix 25.0 -> 3.9, came 26.2 -> 36.7,
block 64.4 -> 50.5, enter 43.1, leave 4.9, total 497.3 -> 242.7 (9.95 -> 4.85 KB/s a client at 20
Hz). The steps: per coordinate |d| 32-127 in 52.8% of the values, 0 in 28.1%, 8-31 12.5%; its change
from the tick before 0 in 64.9%, 1 in 28.2%, 2 0.2%, 3-127 6.4%, beyond 127 0.2% (per entity: both
coordinates unchanged 46.5%, within 1 44.7%, more 8.8%): so 2 bits a coordinate for 0 and +-1, and
an int8 for the rest. A first form with 2-bit changes of -2..1 and a fix for the rest gave 291.6 (fix
46.1: 8.6% of the entities a tick); steps as int8 would make every full-speed player along an axis
(128 units a tick) a fix every tick, as in version 2 (its 25.0 of fixes).

Usage: python bench/update_bytes.py [--players 600] [--npcs 500] [--ticks 200] [--warmup 60]
                                   [--sample 60] [--seed 0]
Prints a table and writes bench/results/update_bytes.json.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from collections import Counter
from pathlib import Path

import msgpack
import numpy as np
from machine import describe, save  # bench/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.game import colour_for  # noqa: E402
from world import protocol  # noqa: E402
from world.sim import NPC, PLAYER, World, WorldConfig  # noqa: E402
from world.snapshot import encode_update  # noqa: E402
from world.tilemap import load_map  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "update_bytes.json"
PARTS = ("ws", "head", "whole", "d", "fix", "came", "block", "enter", "leave", "chat")
TURN_EVERY_S = 2.0


def ws_head(n: int) -> int:
    return 2 if n < 126 else 4 if n < 0x10000 else 10


def packed(x: object) -> int:
    return len(msgpack.packb(x, use_bin_type=True))


def split(msg: object, version: int) -> Counter:
    """The parts of one decoded update (module docstring), each the bytes it packs to."""
    parts: Counter = Counter()
    if version >= 3:
        tick, ack, chat, enter, leave, cells, moves = msg  # type: ignore[misc]
    else:
        m = msg  # type: ignore[assignment]
        cells, moves, enter, leave, chat = m["cells"], m["moves"], m["enter"], m["leave"], m["chat"]  # type: ignore[index]
    parts["whole"] = packed(cells) - packed([])
    parts["enter"] = packed(enter) - packed([])
    parts["leave"] = packed(leave) - packed([])
    parts["chat"] = packed(chat) - packed([])
    for block in moves:
        size = packed(block)
        d, fix = block[1], (block[2] if len(block) > 2 else b"")
        parts["d"] += len(d)
        parts["fix"] += len(fix)
        came = sum(len(b) for b in block[3:])
        parts["came"] += came
        parts["block"] += size - len(d) - len(fix) - came
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--players", type=int, default=600)
    ap.add_argument("--npcs", type=int, default=500)
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--sample", type=int, default=60, help="observers whose updates are split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    load0 = os.getloadavg()

    w = World(load_map(ROOT / "assets" / "maps" / "default.tmj"), WorldConfig(seed=args.seed))
    for i in range(args.npcs):
        w.spawn(NPC, f"wanderer {i + 1}", colour_for(i + 7))
    rng = random.Random(args.seed)
    players = []
    for i in range(args.players):
        eid = w.spawn(PLAYER, f"bot {i}", colour_for(i * 5 + 2), *w.random_open_point())
        w.add_observer(eid)
        players.append([eid, rng.uniform(0, TURN_EVERY_S), 0.0, 0.0])
    sample = [p[0] for p in players[: args.sample]]
    versions = [v for v in protocol.VERSIONS if v >= 2]
    dt, rate = 0.05, 20
    sent: dict[tuple[int, int], int | None] = {(v, e): None for v in versions for e in sample}
    totals = {v: Counter() for v in versions}
    updates = 0
    steps: Counter = Counter()  # |d| per coordinate, in buckets
    change: Counter = Counter()  # |d - d before| per coordinate, in buckets
    pair_change: Counter = Counter()  # per entity: both coordinates' change 0, within 1, beyond
    last_d: dict[int, dict[int, tuple[int, int]]] = {e: {} for e in sample}  # observer -> id -> its last d
    held: dict[int, protocol.Cells] = {e: {} for e in sample}

    def bucket(v: int) -> str:
        v = abs(v)
        return str(v) if v <= 2 else "3-7" if v <= 7 else "8-31" if v <= 31 else "32-127" if v <= 127 else ">127"

    for t in range(args.warmup + args.ticks):
        now = t * dt
        for p in players:
            if now >= p[1]:
                p[1] = now + TURN_EVERY_S
                a = rng.uniform(0, 2 * math.pi)
                p[2], p[3] = round(math.cos(a), 3), round(math.sin(a), 3)
                w.set_direction(p[0], p[2], p[3])
        w.step(dt)
        views = w.build_views()
        measuring = t >= args.warmup
        for e in sample:
            v = views[e]
            for version in versions:
                data = encode_update(w.tick, -1, v, sent[version, e], version=version)
                sent[version, e] = v.build
                if not measuring:
                    if version == 2:
                        m2 = msgpack.unpackb(data)
                        held[e] = protocol.apply_cells(held[e], m2["cells"], m2["moves"])
                    continue
                msg = msgpack.unpackb(data)
                parts = split(msg, version)
                parts["ws"] = ws_head(len(data))
                parts["head"] = len(data) - sum(n for k, n in parts.items() if k != "ws")
                totals[version].update(parts)
                totals[version]["total"] += len(data) + parts["ws"]
                if version == 2:
                    before = held[e]
                    mine = last_d[e]
                    now_d: dict[int, tuple[int, int]] = {}
                    for block in msg["moves"]:
                        cell, d, fix = block[:3]
                        ids = before[cell][0].tolist()
                        dd = np.frombuffer(d, np.int8).reshape(-1, 2).tolist() if d else [[0, 0]] * len(ids)
                        fixed = set(np.frombuffer(fix, protocol.MOVE_FIX)["i"].tolist())
                        for i, (eid, (dx, dy)) in enumerate(zip(ids, dd)):
                            if i in fixed:
                                steps[">127 or fix"] += 1
                                continue
                            steps[bucket(dx)] += 1
                            steps[bucket(dy)] += 1
                            now_d[eid] = (dx, dy)
                            if eid in mine:
                                px, py = mine[eid]
                                cx, cy = dx - px, dy - py
                                change[bucket(cx)] += 1
                                change[bucket(cy)] += 1
                                m = max(abs(cx), abs(cy))
                                pair_change["0" if m == 0 else "<=1" if m <= 1 else "<=2" if m <= 2 else ">2"] += 1
                    last_d[e] = now_d
                    held[e] = protocol.apply_cells(before, msg["cells"], msg["moves"])
        if measuring:
            updates += len(sample)

    result = {"args": vars(args), "updates": updates, "per_update": {}, "steps": dict(steps), "change": dict(change)}
    result["pair_change"] = dict(pair_change)
    print(
        f"S1 uniform in one process: {args.players} players, {args.npcs} NPCs, {updates} updates of {len(sample)} observers"
    )
    print(f"{'bytes an update':<16}" + "".join(f"{'v' + str(v):>10}" for v in versions))
    for part in (*PARTS, "total"):
        print(f"{part:<16}" + "".join(f"{totals[v][part] / updates:>10.1f}" for v in versions))
        result["per_update"][part] = {v: round(totals[v][part] / updates, 2) for v in versions}
    print(f"{'KB/s a client':<16}" + "".join(f"{totals[v]['total'] / updates * rate / 1000:>10.2f}" for v in versions))
    for name, tally in (("|d| per coordinate", steps), ("|d - d before| per coordinate", change)):
        n = sum(tally.values())
        print(f"\n{name} (version-2 move blocks, {n} values):")
        for k, c in sorted(tally.items(), key=lambda kv: -kv[1]):
            print(f"  {k:>12}  {100 * c / n:6.2f}%")
    n = sum(pair_change.values())
    print(f"\nper entity, the larger change of its two coordinates ({n} entities): ", end="")
    print("  ".join(f"{k}: {100 * c / n:.1f}%" for k, c in sorted(pair_change.items())))
    result["machine"] = describe(load0)
    save(args.out, result)


if __name__ == "__main__":
    main()
