"""What the due NPCs of one NPC file see at a think, as arrays: one row per NPC.

A `Sight` is built once per tick and file from the world's arrays
(`World.columns`, a grid query for the players within `notice`) and the
minds' state table, with no per-NPC Python; everything that decides reads it:
the built-in behaviour (npc/minds/builtin.py, all rows of a file at once), the
policy's observation rows (npc/policy/observe.py), and, for the few NPCs whose
file has hooks, a `Perception` made on demand (`perception(i)`).

Building it also advances the built-in state that belongs to perceiving,
not to deciding, so that it is the same whoever decides: how long each player
has been within notice, which needs are being tended, and the current stop of
a patrol route.

Units: world units (a tile is 32) and world seconds (`now_s`, simulated).
Place indices are into `World.places`; -1 means none. Times that never
happened are -inf (cooldowns over at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from world.intents import ACTION_INDEX

from npc.files.schema import Block, Definition
from npc.minds import state
from npc.minds.perception import Perception, Seen

NEVER = float("-inf")
ACTION_PATROL = ACTION_INDEX["patrol"]


@dataclass(frozen=True, slots=True)
class Sight:
    defn: Definition
    now_s: float  # world seconds
    minute: float  # game minutes since midnight, 0..1440
    day: int  # game day
    block: Block | None  # the file's schedule block now (the same for every row)
    # -- one row per due NPC (n) --
    eid: np.ndarray  # (n,) int64 entity id
    pos: np.ndarray  # (n, 2) float64
    at: np.ndarray  # (n,) int32 the place it is at (within World.place_radius), -1
    stats: np.ndarray  # (n, len(defn.needs)) float64 need levels 0..100, in the file's order
    tending: np.ndarray  # (n, len(defn.needs)) bool: being tended now (below low, not yet back to full)
    patrol: np.ndarray  # (n,) int32 the patrol stop now (index into block.route), after any advance
    sched_place: np.ndarray  # (n,) int32 the schedule's place now: the patrol stop or the block's `at`, -1
    gifts: np.ndarray  # (n,) int64 items given so far (which item is next)
    # the current intent (World.columns)
    action: np.ndarray  # (n,) int8 index into ACTIONS
    place: np.ndarray  # (n,) int32 its place (GOTO), -1
    target: np.ndarray  # (n,) int64 its entity (follow, approach, flee), -1
    arrived: np.ndarray  # (n,) bool
    since: np.ndarray  # (n,) float64 world s when it was set
    arrived_at: np.ndarray  # (n,) float64 world s when it last arrived, nan
    activity: np.ndarray  # (n,) object
    # the intent's target, when it is alive (at any distance)
    t_alive: np.ndarray  # (n,) bool
    t_dist: np.ndarray  # (n,) float64 distance to it, nan when not alive
    t_near_s: np.ndarray  # (n,) float64 seconds it has been within notice (0 when not)
    # players within `notice`, as pairs sorted by (row, distance): row i's are [start[i], start[i + 1])
    start: np.ndarray  # (n + 1,) int64
    p_row: np.ndarray  # (M,) int64
    p_id: np.ndarray  # (M,) int64 entity id
    p_dist: np.ndarray  # (M,) float64
    p_pos: np.ndarray  # (M, 2) float64
    p_near_s: np.ndarray  # (M,) float64 seconds within notice (suspicious after follow.linger)
    # (look reads these two only within the file's talk / give_item distance, where they count: -inf beyond)
    p_greeted: np.ndarray  # (M,) float64 world s this NPC last greeted this player, -inf
    p_given: np.ndarray  # (M,) float64 world s of its last gift to this player, -inf
    p_approached: np.ndarray  # (M,) float64 world s it last approached this player, -inf
    row: np.ndarray | None = (
        None  # (n,) int64 each NPC's row in the state table (npc/minds/state.py), when built by look
    )

    def __len__(self) -> int:
        return len(self.eid)

    @property
    def seen(self) -> np.ndarray:
        """(n,) players within notice per row."""
        return np.diff(self.start)


def look(
    world, defn: Definition, eids: np.ndarray, rows: np.ndarray, table, ledger, players, advance: bool = True
) -> Sight:
    """The Sight of these due NPCs of `defn` (their state rows in `table`, npc/minds/state.py), and
    the perceiving part of the built-in state advanced: noticed times, tending, patrol stop.
    `players`: (ids (P,), centres (P, 2), nearby.Index of the centres) of the players this tick. advance=False: only
    look (a hook or a conversation asking out of turn), leaving the state as it was."""
    return look_many(world, [(defn, 0, len(eids))], eids, rows, table, ledger, players, advance)[0]


def look_many(
    world,
    parts: Sequence[tuple[Definition, int, int]],
    eids: np.ndarray,
    rows: np.ndarray,
    table,
    ledger,
    players,
    advance: bool = True,
) -> list[Sight]:
    """`look` for a whole tick's due NPCs at once: parts[k] = (defn, lo, hi) says that eids[lo:hi] (state
    rows rows[lo:hi]) run `defn`; the parts cover eids in order. The world's columns, the grid query for
    the players within each file's notice radius, the targets and the ledger's times are gathered once
    for all rows (one call each, not one per file); each part's Sight holds slices of them (views),
    and only the file's own rules (needs, schedule, patrol) are computed per part."""
    now = world.time_s
    gt = world.game_time
    eids = np.asarray(eids, np.int64)
    rows = np.asarray(rows, np.int64)
    n = len(eids)
    names: dict[str, int] = {}  # the parts' need names -> column of cols.stats
    for defn, _, _ in parts:
        for nd in defn.needs:
            names.setdefault(nd.name, len(names))
    cols = world.columns(eids, stats=tuple(names))
    radius, talk, give = np.zeros(n), np.zeros(n), np.zeros(n)
    for defn, lo, hi in parts:
        radius[lo:hi] = defn.senses["notice"]
        talk[lo:hi] = defn.params["talk"]["distance"]
        give[lo:hi] = defn.params["give_item"]["distance"]

    # Players within notice: how long each has been (noticed), and this NPC's history with them.
    pids, ppos, index = players
    pairs = index.within(cols.pos, radius)
    p_npc = eids[pairs.query]
    p_id = pids[pairs.entity]
    # this look's pairs from the four tables, sorted once (npc/minds/state.read); greeted and given only
    # within the talk and give distances, where they are read (Sight.p_greeted); the noticed sets are
    # written back in the same sorted order (Ledger.notice)
    keys = state.PairKeys(p_npc, p_id, ledger.noticed.k)
    since, greeted, given, approached = state.read(
        [ledger.noticed, ledger.greeted, ledger.given, ledger.approached],
        keys,
        None,
        [now, NEVER, NEVER, NEVER],
        where=[None, pairs.dist <= talk[pairs.query], pairs.dist <= give[pairs.query], None],
    )
    if advance:
        ledger.notice(eids, keys, None, since)
    alive, tpos = world.locate(cols.target)
    alive &= cols.target >= 0
    t_dist = np.where(alive, np.hypot(tpos[:, 0] - cols.pos[:, 0], tpos[:, 1] - cols.pos[:, 1]), np.nan)
    t_near = np.zeros(n)
    if alive.any():  # the target's time within notice: from this look's pairs
        hit = np.flatnonzero(p_id == cols.target[pairs.query])
        t_near[pairs.query[hit]] = (now - since)[hit]
    at = world.places_at(cols.pos)
    p_pos = np.take(ppos, pairs.entity, axis=0)  # (np.take: ~15x cheaper than ppos[idx] for 15,000 rows of 2)
    p_near_s = now - since
    gifts = table.gifts[rows]
    index_of = {name: i for i, name in enumerate(world.places)}
    out = []
    for defn, lo, hi in parts:
        r = rows[lo:hi]
        m = hi - lo
        needs = defn.needs
        if needs:
            raw = cols.stats[lo:hi][:, [names[nd.name] for nd in needs]]
            start = np.asarray([nd.start for nd in needs], np.float64)
            stats = np.where(np.isnan(raw), start[None, :], raw)
        else:
            stats = np.zeros((m, 0))

        # Tending: below low, or tended before and not yet back to full (needs with a relief only).
        bits = table.tending[r]
        tending = np.zeros((m, len(needs)), bool)
        new_bits = np.zeros(m, np.uint64)
        for k, nd in enumerate(needs):
            was = (bits >> np.uint64(k)) & np.uint64(1) > 0
            tending[:, k] = bool(nd.relief) & ((stats[:, k] < nd.low) | (was & (stats[:, k] < nd.full)))
            new_bits |= tending[:, k].astype(np.uint64) << np.uint64(k)
        if advance:
            table.tending[r] = new_bits

        # The schedule block (the same for all rows of a file), the patrol stop, the schedule's place.
        block = defn.block_at(gt.minute)
        patrol = table.patrol[r].copy()
        sched = np.full(m, -1, np.int32)
        action, place = cols.action[lo:hi], cols.place[lo:hi]
        if block is not None and block.do == "patrol" and block.route:
            route = np.asarray([index_of[x] for x in block.route], np.int32)
            i = patrol % len(route)
            pause = defn.params["patrol"]["pause"]
            arrived_at = cols.arrived_at[lo:hi]
            # arrived_at is nan when not arrived: the comparison is then False (no nan_to_num, 0.9% of
            # the policy tick's py-spy samples)
            done = (action == ACTION_PATROL) & (place == route[i]) & (now - arrived_at >= pause)
            i = np.where(done, (i + 1) % len(route), i)
            patrol = i.astype(np.int32)
            if advance:
                table.patrol[r] = patrol
            sched = route[patrol]
        elif block is not None and block.at is not None:
            sched[:] = index_of[block.at]

        a, b = int(pairs.start[lo]), int(pairs.start[hi])
        out.append(
            Sight(
                defn=defn,
                now_s=now,
                minute=gt.minute,
                day=gt.day,
                block=block,
                eid=eids[lo:hi],
                pos=cols.pos[lo:hi],
                at=at[lo:hi],
                stats=stats,
                tending=tending,
                patrol=patrol,
                sched_place=sched,
                gifts=gifts[lo:hi],
                action=action,
                place=place,
                target=cols.target[lo:hi],
                arrived=cols.arrived[lo:hi],
                since=cols.since[lo:hi],
                arrived_at=cols.arrived_at[lo:hi],
                activity=cols.activity[lo:hi],
                t_alive=alive[lo:hi],
                t_dist=t_dist[lo:hi],
                t_near_s=t_near[lo:hi],
                start=pairs.start[lo : hi + 1] - a,
                p_row=pairs.query[a:b] - lo,
                p_id=p_id[a:b],
                p_dist=pairs.dist[a:b],
                p_pos=p_pos[a:b],
                p_near_s=p_near_s[a:b],
                p_greeted=greeted[a:b],
                p_given=given[a:b],
                p_approached=approached[a:b],
                row=r,
            )
        )
    return out


def perception(s: Sight, i: int, world) -> Perception:
    """Row i as the Perception a hook reads (made on demand: only NPCs whose file has hooks)."""
    from world.clock import GameTime
    from world.sim import PLAYER

    places = world.places
    lo, hi = int(s.start[i]), int(s.start[i + 1])
    seen = tuple(
        Seen(
            int(s.p_id[j]),
            world.name_of(int(s.p_id[j])),
            "player",
            float(s.p_dist[j]),
            float(s.p_pos[j, 0]),
            float(s.p_pos[j, 1]),
            float(s.p_near_s[j]),
        )
        for j in range(lo, hi)
    )
    eid = int(s.eid[i])
    x, y = float(s.pos[i, 0]), float(s.pos[i, 1])
    target = None
    if s.t_alive[i]:
        t = int(s.target[i])
        tx, ty = world.position(t)
        target = Seen(
            t,
            world.name_of(t),
            "player" if world.kind_of(t) == PLAYER else "npc",
            float(s.t_dist[i]),
            tx,
            ty,
            float(s.t_near_s[i]),
        )
    at = int(s.at[i])
    return Perception(
        eid,
        world.name_of(eid),
        s.now_s,
        GameTime(s.day, s.minute),
        x,
        y,
        places[at] if at >= 0 else None,
        {nd.name: float(s.stats[i, k]) for k, nd in enumerate(s.defn.needs)},
        world.intent(eid),
        s.block,
        seen,
        target,
    )
