"""A Sight from scalar perceptions: n (Perception, State) pairs of one NPC file
become the rows of one `Sight` (npc/minds/sight.py), the inverse of what the
cast's Sight builder does from the world. Tending, the patrol stop and the
schedule's place are advanced by the scalar rule (tests/support/reference_builtin.py)
from each State, so the vectorised and the scalar built-in see the same thing.
"""

from __future__ import annotations

import numpy as np

from world.intents import ACTION_INDEX

from npc.files.schema import Definition
from npc.minds.perception import Perception, State
from npc.minds.sight import NEVER, Sight


def place_index(places: list[str], name: str | None) -> int:
    return places.index(name) if name is not None else -1


def tending(p: Perception, s: State, d: Definition) -> list[bool]:
    """The scalar rule: relief and (below low, or tended already and not back to full)."""
    out = []
    for need in d.needs:
        v = p.stats.get(need.name, need.start)
        out.append(bool(need.relief) and (v < need.low or (need.name in s.tending and v < need.full)))
    return out


def patrol_stop(p: Perception, s: State, d: Definition) -> int:
    """The scalar rule: the route stop now, advanced once paused long enough at the current one."""
    b, cur = p.block, p.intent
    if b is None or b.do != "patrol" or not b.route:
        return s.patrol_index
    i = s.patrol_index % len(b.route)
    if (
        cur.action == "patrol"
        and cur.place == b.route[i]
        and cur.arrived_s is not None
        and p.now_s - cur.arrived_s >= d.params["patrol"]["pause"]
    ):
        i = (i + 1) % len(b.route)
    return i


def sched_place(p: Perception, patrol: int, places: list[str]) -> int:
    b = p.block
    if b is None:
        return -1
    if b.do == "patrol" and b.route:
        return place_index(places, b.route[patrol])
    return place_index(places, b.at)


def build_sight(d: Definition, rows: list[tuple[Perception, State]], places: list[str]) -> Sight:
    """One Sight of len(rows) rows; every perception must share now_s, the game time and the block."""
    if rows:
        p0 = rows[0][0]
        assert all(p.now_s == p0.now_s and p.time == p0.time and p.block == p0.block for p, _ in rows)
        now_s, minute, day, block = p0.now_s, p0.time.minute, p0.time.day, p0.block
    else:
        now_s, minute, day, block = 0.0, 0.0, 0, None
    n, k = len(rows), len(d.needs)
    patrol = [patrol_stop(p, s, d) for p, s in rows]
    pairs = [(i, q, s) for i, (p, s) in enumerate(rows) for q in p.players]
    start = np.zeros(n + 1, np.int64)
    start[1:] = np.cumsum([len(p.players) for p, _ in rows])
    f64 = lambda xs: np.asarray(xs, np.float64)  # noqa: E731
    targets = [p.target for p, _ in rows]
    return Sight(
        defn=d,
        now_s=now_s,
        minute=minute,
        day=day,
        block=block,
        eid=np.asarray([p.id for p, _ in rows], np.int64),
        pos=f64([(p.x, p.y) for p, _ in rows]).reshape(n, 2),
        at=np.asarray([place_index(places, p.place) for p, _ in rows], np.int32),
        stats=f64([[p.stats.get(need.name, need.start) for need in d.needs] for p, _ in rows]).reshape(n, k),
        tending=np.asarray([tending(p, s, d) for p, s in rows], bool).reshape(n, k),
        patrol=np.asarray(patrol, np.int32),
        sched_place=np.asarray([sched_place(p, i, places) for (p, _), i in zip(rows, patrol)], np.int32),
        gifts=np.asarray([s.gifts for _, s in rows], np.int64),
        action=np.asarray([ACTION_INDEX[p.intent.action] for p, _ in rows], np.int8),
        place=np.asarray([place_index(places, p.intent.place) for p, _ in rows], np.int32),
        target=np.asarray([-1 if p.intent.target is None else p.intent.target for p, _ in rows], np.int64),
        arrived=np.asarray([p.intent.arrived for p, _ in rows], bool),
        since=f64([p.intent.since_s for p, _ in rows]),
        arrived_at=f64([np.nan if p.intent.arrived_s is None else p.intent.arrived_s for p, _ in rows]),
        activity=np.asarray([p.intent.activity for p, _ in rows] + [None], object)[:n],
        t_alive=np.asarray([t is not None for t in targets], bool),
        t_dist=f64([np.nan if t is None else t.distance for t in targets]),
        t_near_s=f64([0.0 if t is None else t.near_s for t in targets]),
        start=start,
        p_row=np.asarray([i for i, _, _ in pairs], np.int64),
        p_id=np.asarray([q.id for _, q, _ in pairs], np.int64),
        p_dist=f64([q.distance for _, q, _ in pairs]),
        p_pos=f64([(q.x, q.y) for _, q, _ in pairs]).reshape(len(pairs), 2),
        p_near_s=f64([q.near_s for _, q, _ in pairs]),
        p_greeted=f64([s.greeted.get(q.id, NEVER) for _, q, s in pairs]),
        p_given=f64([s.given.get(q.id, NEVER) for _, q, s in pairs]),
        p_approached=f64([s.approached.get(q.id, NEVER) for _, q, s in pairs]),
    )
