"""A seeded town run tick by tick with the shipped policy on a real pool, and what its NPCs decided,
as one digest per tick: the guard that a change to how decisions are made cheaper (the think step, the
world's gathers, observations, the ledger) does not change a single decision.

Per tick, over every NPC in id order: its intent in the world (action, activity, place, target), who
decided it and the WHY / need codes (the cast's rows), its last line; at the end, GET /npcs's who
decided and why, per NPC. Answers are waited for on the requests (never on the clock) with a deadline
far away, so every answer is on time and the run does not depend on the machine's speed.

Regenerate the recorded digests (only for an intended change of behaviour, and say so in the commit):
    .venv/bin/python -m support.decision_trace   (with tests/ on PYTHONPATH)
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

from npc.minds.cast import Cast
from npc.policy.decider import start_decider
from world.sim import PLAYER, World, WorldConfig
from world.tilemap import load_map

from support.paths import DEFAULT_MAP, ROOT

WEIGHTS = ROOT / "assets" / "policy" / "policy.safetensors"
RECORDED = Path(__file__).with_name("decision_trace.json")
NPCS, PLAYERS, TICKS = 600, 120, 60


def weights_digest() -> str:
    return hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()[:16]


def town(seed: int = 0):
    """The shipped NPC files multiplied up to NPCS (as bench/decisions.py does), PLAYERS players."""
    tilemap = load_map(str(DEFAULT_MAP))
    world = World(tilemap, WorldConfig(seed=seed))
    cast = Cast(world, str(ROOT / "assets" / "npcs"), tick_rate=20, think_s=0.5)
    decider = start_decider(world, weights=str(WEIGHTS), workers=1, devices=["cpu"], budget_s=600.0, guard=False)
    cast.decider = decider
    cast.load_all()
    ids = sorted(k for k, d in cast.defs.items() if not d.hooks)
    points = list(cast.spawn_points)
    extra = max(0, NPCS - len(cast.minds))
    for j, def_id in enumerate(ids):
        for i in range(extra // len(ids) + (j < extra % len(ids))):
            cast.spawn(def_id, place=points[i % len(points)])
    rng = np.random.default_rng(seed + 1)
    free = np.argwhere(~tilemap.blocked)
    ts = tilemap.tile_size
    players = []
    for k in range(PLAYERS):
        r, c = free[rng.integers(len(free))]
        players.append(world.spawn(PLAYER, f"p{k}", "#4080d0", (c + 0.5) * ts, (r + 0.5) * ts))
    return world, cast, decider, players, rng


def _tick_digest(world, cast) -> str:
    h = hashlib.sha256()
    rows = cast.rows
    for eid in sorted(cast.minds):
        it = world.intent(eid)
        r = rows.row_of[eid]
        m = cast.minds[eid]
        h.update(
            repr(
                (eid, it.action, it.activity, it.place, it.target, int(rows.by[r]), int(rows.why[r]), int(rows.need[r]))
            ).encode()
        )
        h.update(repr((m.last_said, m.last_said_s)).encode())
    return h.hexdigest()[:16]


def trace(ticks: int = TICKS) -> dict:
    """{"weights": digest of the weights, "ticks": [digest per tick], "npcs": digest of GET /npcs's who and why,
    "policy_rows": on-time policy decisions (so a run the policy did not decide is seen)}."""
    world, cast, decider, players, rng = town()
    try:
        assert decider.pool.wait_ready(300), f"the policy worker did not start: {decider.pool.workers()}"
        out = []
        for _ in range(ticks):
            for p in players:
                if rng.random() < 0.05:
                    a = rng.uniform(0, 2 * math.pi)
                    world.set_direction(p, math.cos(a), math.sin(a))
            cast.tick()
            world.step(0.05)
            for fut, *_ in list(decider.pending.values()):
                fut.wait(120.0)
            out.append(_tick_digest(world, cast))
        who = [(n["id"], n["decided_by"], n["reason"]) for n in sorted(cast.listing()["npcs"], key=lambda n: n["id"])]
        missed = {k: v for k, v in decider.decisions.items() if k != "on_time"}
        return {
            "weights": weights_digest(),
            "ticks": out,
            "npcs": hashlib.sha256(repr(who).encode()).hexdigest()[:16],
            "policy_rows": decider.decisions["on_time"],
            "missed": missed,
        }
    finally:
        cast.decider = None
        decider.close()


if __name__ == "__main__":
    result = trace()
    RECORDED.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RECORDED}: {result['policy_rows']} policy decisions, missed {result['missed']}", file=sys.stderr)
