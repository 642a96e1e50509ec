"""One NPC in detail, for a designer's inspector (GET /npcs/<id>): what it does and why.

`detail(cast, eid)` reads; it changes nothing (the built-in's scores are
computed with advance=False, as a hook's `npc.suggestion()` is). Cost: one
perception and one built-in scoring of one NPC, microseconds: fine per
request, never per tick. The dialogue memory of the nearest player is read by
the caller (a future: server/inspect.py), as it lives in another thread.

Units: world units, world seconds; rates per game hour.
"""

from __future__ import annotations

import math


from npc.minds import builtin, think

TOP = 3  # the built-in's best candidates shown
MEMORY_KEYS = 20  # hook memory entries shown at most
MEMORY_TEXT = 200  # characters of each shown value at most


def _score(v: float) -> float | str:
    return "kept" if v == math.inf else round(float(v), 3)


def builtin_view(cast, m) -> dict:
    """What the built-in behaviour would do now, and its best-scored candidates (JSON-safe)."""
    s = think.look_one(cast, m)
    v = builtin.decide(s, cast.world.places)
    scores = v.scores[0]
    ranked = sorted((i for i in range(len(builtin.CANDIDATES)) if scores[i] > -math.inf), key=lambda i: -scores[i])[
        :TOP
    ]
    d = builtin.decision(v, 0, s, cast.world.places, cast.world.name_of)
    return {
        "would": {"action": d.action, "place": d.place, "target": d.target, "activity": d.activity, "reason": d.reason},
        "top": [{"candidate": builtin.CANDIDATES[i], "score": _score(scores[i])} for i in ranked],
    }


def _needs(cast, m) -> list[dict]:
    stats, rates = cast.world.stats(m.eid), cast.world.stat_rates(m.eid)
    return [
        {
            "name": n.name,
            "value": round(stats.get(n.name, n.start), 2),
            "per_game_hour": round(rates.get(n.name, 0.0), 3),
            "low": n.low,
            "full": n.full,
            "relief": n.relief,
        }
        for n in m.defn.needs
    ]


def _block(b) -> dict | None:
    if b is None:
        return None
    return {
        "from": f"{b.start // 60:02d}:{b.start % 60:02d}",
        "to": f"{b.end // 60:02d}:{b.end % 60:02d}",
        "do": b.do,
        "at": b.at,
        "route": list(b.route),
        "activity": b.activity,
        "line": b.line,
    }


def _next_block(blocks, minute: float):
    """The block that starts next after `minute` (of the day), the day's first when none is left today."""
    later = [b for b in blocks if b.start > minute]
    return min(later, key=lambda b: b.start) if later else min(blocks, key=lambda b: b.start, default=None)


def _shown(v) -> object:
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v if not isinstance(v, str) else v[:MEMORY_TEXT]
    return repr(v)[:MEMORY_TEXT]


def detail(cast, eid: int) -> dict:
    """GET /npcs/<id>; KeyError when no NPC of an NPC file has that id."""
    m = cast.minds.get(eid)
    if m is None:
        raise KeyError(f"no NPC of an NPC file with id {eid}; see GET /npcs")
    w = cast.world
    out = cast.entry(m)
    p = cast.perceive(m)
    gt = w.game_time
    near = p.players[0] if p.players else None
    guard = cast.guards.get(m.defn.id)
    out.update(
        {
            "hooks_file": m.defn.hooks,
            "target_name": w.name_of(out["target"]) if out["target"] is not None and w.alive(out["target"]) else None,
            "builtin": builtin_view(cast, m),
            "needs": _needs(cast, m),
            "schedule": {
                "now": gt.clock,
                "block": _block(p.block),
                "next": _block(_next_block(m.defn.schedule, gt.minute)),
                "blocks": len(m.defn.schedule),
            },
            "nearest_player": (
                {"id": near.id, "name": near.name, "distance": round(near.distance, 1), "near_s": round(near.near_s, 1)}
                if near is not None
                else None
            ),
            "lines": [{"text": t, "at_s": round(at, 2)} for at, t in m.lines],
            "hook_memory": {str(k): _shown(v) for k, v in list(m.memory.items())[:MEMORY_KEYS]},
            "held": eid in cast.holding,
            "version": cast.versions.get(m.defn.id, 0),
            "hooked": sorted(guard.fns) if guard is not None else [],
            "time": {"day": gt.day, "clock": gt.clock},
            "tick": w.tick,
        }
    )
    out["reason"] = out["reason"] or think.reason_now(cast, m)
    return out
