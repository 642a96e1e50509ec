"""Observation vectors for the decision policy: one row per due NPC, built for
all of a tick's due NPCs at once.

Each think the cast hands `Observations.add` what it already computed for
the built-in behaviour (the NPC's perception, its state and the built-in
choice); `build()` then turns the gathered numbers into three arrays with
array operations over all rows together:

    obs    (N, OBS_DIM)  float32   what the policy sees (layout below)
    mask   (N, A)        bool      the actions the NPC's designer allows
    tmask  (N, T)        bool      target slots that name something real

and keeps, per row, what each target slot stands for (an entity id or a
place), so that a policy's answer (action index, target slot) can be turned
back into a decision (`decode`). No torch here: this runs in the server.

Target slots (T = 9):
    0          none (an action without a target: idle, wander)
    1          the entity the current intent is about (follow, flee, ...)
    2..4       the nearest K=3 players within `notice`, nearest first
    5          the schedule's place now (the patrol stop, or the block's `at`)
    6..8       the place of each of the NPC's first 3 needs (`at`)

Observation layout (OBS_DIM = 148), distances in units of the NPC's notice
radius unless said, times in seconds / 30 clipped to 1:
    allowed mask (A) | designer weights / 2 (9) | current action one-hot (A),
    arrived, time since set, time since set / its duration | target: exists,
    distance, distance / give_up, is the nearest player | per need (3 x 17):
    present, value, below low, tending, below full, weight, relief one-hot
    (A) | schedule: has a block, do one-hot (A), has a place, at that place |
    game time sin, cos | players: count, then per player (3 x 11): present,
    distance, dx, dy, suspicious, within talk / give / flee distance, talk /
    give / approach cooldown over | follow and flee "suspicious" flags, has
    items | NPCs in the same 256-unit cell | at any place, distance to the
    schedule place and to the first need's place (/ 1000 units) | x, y / map size
"""

from __future__ import annotations

import math
from itertools import chain
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from world.intents import ACTIONS

from npc.minds.builtin import Choice, Decision
from npc.minds.perception import Perception, State
from npc.files.schema import WEIGHTS, Definition

A = len(ACTIONS)                   # actions in the shared vocabulary
ACTION_INDEX = {a: i for i, a in enumerate(ACTIONS)}
K = 3                              # nearest players seen
NEEDS = 3                          # needs seen (the first ones of the file)
T = 2 + K + 1 + NEEDS              # target slots
NONE, CURRENT, PLAYER0, SCHEDULE, NEED0 = 0, 1, 2, 2 + K, 3 + K
WEIGHT_NAMES = tuple(WEIGHTS)
OBS_DIM = A + len(WEIGHT_NAMES) + A + 3 + 4 + NEEDS * (6 + A) + (2 + A + 1) + 2 + 1 + K * 11 + 3 + 1 + 3 + 2
TARGET_KIND = {a: ("entity" if a in ("follow", "approach", "flee", "talk", "give_item") else
                   "place" if a in ("go_to", "work", "rest", "patrol") else "none") for a in ACTIONS}
NEVER = -1e9                       # "never": a cooldown long over
CELL = 256.0                       # world units: the cell used to count nearby NPCs


def _one_hot(idx: np.ndarray, n: int) -> np.ndarray:
    """(N,) ints, -1 = none -> (N, n) float32."""
    out = np.zeros((len(idx), n), np.float32)
    ok = idx >= 0
    out[np.flatnonzero(ok), idx[ok]] = 1.0
    return out


# Static (per definition) numbers, in this order in Static.vec:
S_ALLOWED = slice(0, A)
S_WEIGHTS = slice(A, A + 9)
S_NEED = A + 9                     # then NEEDS each of: on, low, full, weight, relief
S_NOTICE = S_NEED + 5 * NEEDS      # then linger, talk/give/flee distance, talk/give/approach cooldown, give_up,
S_FLAGS = S_NOTICE + 9             # then 3 flags, then the first need's place x, y
S_LEN = S_FLAGS + 5
# Per-row numbers, in this order in what add() gathers:
D_NOW, D_X, D_Y, D_CUR, D_ARRIVED, D_SINCE, D_DUR, D_HAS_T, D_T_DIST, D_T_FIRST = range(10)
D_VALUES = 10                      # NEEDS values, then NEEDS tending flags
D_B = D_VALUES + 2 * NEEDS         # has block, do (-1: none), minute, players seen, at a place, at the schedule
D_SCHED_XY = D_B + 6               # the schedule place x, y (nan: none)
D_PLAYERS = D_SCHED_XY + 2         # K x (distance, x, y, near_s, greeted, given, approached (world s), present)
D_LEN = D_PLAYERS + 8 * K
NAN2 = (math.nan, math.nan)


@dataclass(frozen=True)
class Static:
    """What a definition contributes to every row of its NPCs (computed once per definition)."""
    vec: tuple                 # S_LEN numbers (layout above)
    need_at: tuple             # (NEEDS,) place or None
    need_names: tuple
    duration: dict             # action -> seconds a talk / give_item lasts


def static_of(d: Definition, places: dict) -> Static:
    prm = d.params
    needs = list(d.needs[:NEEDS]) + [None] * (NEEDS - min(NEEDS, len(d.needs)))
    need = []
    for n in needs:
        need += [0.0, 0.0, 0.0, 0.0, -1.0] if n is None else [
            1.0, n.low, n.full, d.weights["needs"] * n.weight, float(ACTION_INDEX[n.relief]) if n.relief else -1.0]
    vec = ([float(a in d.allowed) for a in ACTIONS] + [d.weights[k] for k in WEIGHT_NAMES] + need + [
        max(1.0, d.senses["notice"]), prm["follow"]["linger"],
        prm["talk"]["distance"], prm["give_item"]["distance"], prm["flee"]["distance"],
        prm["talk"]["cooldown"], prm["give_item"]["cooldown"], prm["approach"]["cooldown"], prm["follow"]["give_up"],
        float(prm["follow"]["who"] == "suspicious"), float(prm["flee"]["who"] == "suspicious"),
        float(bool(prm["give_item"]["items"])), *places.get(needs[0].at if needs[0] else None, NAN2)])
    assert len(vec) == S_LEN
    return Static(tuple(vec), tuple(n.at if n else None for n in needs), tuple(n.name for n in needs if n),
                  {"talk": prm["talk"]["duration"], "give_item": prm["give_item"]["duration"]})


@dataclass
class Row:
    """What decode needs to turn a policy answer back into a decision."""
    eid: int
    slots: tuple               # (T,) entity id (int), place (str) or None, per target slot
    choice: Choice             # the built-in choice made at the same think (the fallback)
    allowed: frozenset


@dataclass
class Observations:
    """Gathers a tick's due NPCs, then builds their rows in one go.

    npc_positions: () -> (M, 2) centres of every NPC in the world, for the
    "NPCs nearby" feature (None: only the rows' own NPCs are counted)."""
    world_size: tuple[float, float]
    places: dict = field(default_factory=dict)            # place name -> (x, y)
    npc_positions: Callable[[], np.ndarray] | None = None
    rows: list[Row] = field(default_factory=list)
    _statics: dict = field(default_factory=dict)           # id(definition) -> (definition, Static)
    _static_rows: list = field(default_factory=list)
    _dyn_rows: list = field(default_factory=list)

    def static(self, d: Definition) -> Static:
        hit = self._statics.get(id(d))
        if hit is None or hit[0] is not d:
            hit = self._statics[id(d)] = (d, static_of(d, self.places))
        return hit[1]

    def __len__(self) -> int:
        return len(self.rows)

    def clear(self) -> None:
        self.rows, self._static_rows, self._dyn_rows = [], [], []

    def add(self, p: Perception, s: State, d: Definition, choice: Choice) -> None:
        """Note one due NPC (after the built-in behaviour chose): copy its numbers, no features yet."""
        st = self.static(d)
        cur = p.intent
        b = p.block
        sched = None
        if b is not None:
            sched = b.route[choice.patrol_index % len(b.route)] if b.do == "patrol" and b.route else b.at
        players = p.players[:K]
        tgt = p.target
        slots = (None, tgt.id if tgt is not None else None, *[q.id for q in players],
                 *[None] * (K - len(players)), sched, *st.need_at)
        dyn = [p.now_s, p.x, p.y, ACTION_INDEX[cur.action], cur.arrived, p.now_s - cur.since_s,
               st.duration.get(cur.action, 30.0), tgt is not None, tgt.distance if tgt is not None else 0.0,
               tgt is not None and bool(players) and players[0].id == tgt.id]
        dyn += [p.stats.get(nm, 100.0) for nm in st.need_names] + [0.0] * (NEEDS - len(st.need_names))
        dyn += [nm in s.tending for nm in st.need_names] + [False] * (NEEDS - len(st.need_names))
        dyn += [b is not None, ACTION_INDEX[b.do] if b is not None else -1, p.time.minute, len(p.players),
                p.place is not None, sched is not None and p.place == sched, *self.places.get(sched, NAN2)]
        for q in players:                    # copied now: the state changes once the decision is applied
            dyn += [q.distance, q.x, q.y, q.near_s, s.greeted.get(q.id, NEVER), s.given.get(q.id, NEVER),
                    s.approached.get(q.id, NEVER), 1.0]
        dyn += [0.0, 0.0, 0.0, 0.0, NEVER, NEVER, NEVER, 0.0] * (K - len(players))
        self.rows.append(Row(p.id, slots, choice, d.allowed))
        self._static_rows.append(st.vec)
        self._dyn_rows.append(dyn)

    def build(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(obs (N, OBS_DIM) float32, mask (N, A) bool, tmask (N, T) bool) for the rows added."""
        n = len(self.rows)
        if n == 0:
            return np.zeros((0, OBS_DIM), np.float32), np.zeros((0, A), bool), np.zeros((0, T), bool)
        S = np.fromiter(chain.from_iterable(self._static_rows), np.float64, n * S_LEN).reshape(n, S_LEN)
        D = np.fromiter(chain.from_iterable(self._dyn_rows), np.float64, n * D_LEN).reshape(n, D_LEN)
        allowed = S[:, S_ALLOWED] > 0.5                                     # (N, A)
        need = S[:, S_NEED:S_NOTICE].reshape(n, NEEDS, 5)                   # (N, NEEDS, on/low/full/w/relief)
        notice = S[:, S_NOTICE:S_NOTICE + 1]                                # (N, 1) world units
        linger = S[:, S_NOTICE + 1:S_NOTICE + 2]
        dist_lim = S[:, S_NOTICE + 2:S_NOTICE + 5]                          # (N, 3) talk, give, flee
        cool = S[:, S_NOTICE + 5:S_NOTICE + 8]                              # (N, 3) talk, give, approach
        give_up = S[:, S_NOTICE + 8]
        now, xy = D[:, D_NOW], D[:, D_X:D_Y + 1]                            # (N,), (N, 2)
        since, t_dist = D[:, D_SINCE], D[:, D_T_DIST]
        values = D[:, D_VALUES:D_VALUES + NEEDS]                            # (N, NEEDS) 0..100
        tending = D[:, D_VALUES + NEEDS:D_B]
        sched_xy = D[:, D_SCHED_XY:D_SCHED_XY + 2]
        need_xy = S[:, S_FLAGS + 3:S_FLAGS + 5]
        pl = D[:, D_PLAYERS:].reshape(n, K, 8)                              # (N, K, 8)

        clip = lambda v: np.clip(v, 0.0, 1.0)                               # noqa: E731
        present = pl[:, :, 7:8]                                             # (N, K, 1)
        ages = now[:, None, None] - pl[:, :, 4:7]                           # (N, K, 3) s since greeted, ...
        players = np.concatenate([
            present,
            clip(pl[:, :, :1] / notice[:, :, None]),                        # distance
            np.clip((pl[:, :, 1:3] - xy[:, None, :]) / notice[:, :, None], -1, 1),  # dx, dy
            pl[:, :, 3:4] >= linger[:, :, None],                            # suspicious
            pl[:, :, :1] <= dist_lim[:, None, :],                           # within talk, give, flee distance
            ages >= cool[:, None, :],                                       # cooldowns over
        ], axis=2) * present                                                # (N, K, 11)
        on = need[:, :, 0:1]
        needs = np.concatenate([
            on, values[..., None] / 100.0, (values[..., None] < need[:, :, 1:2]) * on, tending[..., None],
            (values[..., None] < need[:, :, 2:3]) * on, need[:, :, 3:4] / 2.0,
            _one_hot(need[:, :, 4].astype(np.int64).reshape(-1), A).reshape(n, NEEDS, A),
        ], axis=2).reshape(n, -1)                                           # (N, NEEDS * 17)
        near = self._npcs_near(xy)                                          # (N,)
        angle = 2 * math.pi * D[:, D_B + 2] / 1440.0
        w, h = self.world_size
        far = lambda a, b: clip(np.nan_to_num(np.hypot(*(a - b).T), nan=1000.0) / 1000.0)[:, None]   # noqa: E731
        obs = np.concatenate([
            allowed, S[:, S_WEIGHTS] / 2.0,
            _one_hot(D[:, D_CUR].astype(np.int64), A), D[:, D_ARRIVED:D_ARRIVED + 1], clip(since / 30.0)[:, None],
            np.clip(since / D[:, D_DUR], 0, 2)[:, None],
            D[:, D_HAS_T:D_HAS_T + 1], clip(t_dist[:, None] / notice), clip(t_dist / give_up)[:, None],
            D[:, D_T_FIRST:D_T_FIRST + 1],
            needs,
            D[:, D_B:D_B + 1], _one_hot(D[:, D_B + 1].astype(np.int64), A), ~np.isnan(sched_xy[:, :1]),
            D[:, D_B + 5:D_B + 6],
            np.sin(angle)[:, None], np.cos(angle)[:, None],
            clip(D[:, D_B + 3:D_B + 4] / 5.0), players.reshape(n, -1),
            S[:, S_FLAGS:S_FLAGS + 3],
            clip(near / 10.0)[:, None],
            D[:, D_B + 4:D_B + 5], far(sched_xy, xy), far(need_xy, xy),
            xy / np.asarray([max(w, 1.0), max(h, 1.0)]),
        ], axis=1).astype(np.float32)
        assert obs.shape == (n, OBS_DIM), obs.shape
        tmask = np.asarray([[s is not None for s in r.slots] for r in self.rows])
        tmask[:, NONE] = True
        return obs, allowed, tmask

    def _npcs_near(self, xy: np.ndarray) -> np.ndarray:
        """(N,) NPCs in the same CELL-sized square as each row's NPC (itself included)."""
        every = self.npc_positions() if self.npc_positions is not None else xy
        key = lambda p: (np.floor(p[:, 0] / CELL) * 100_003 + np.floor(p[:, 1] / CELL)).astype(np.int64)  # noqa: E731
        ids, counts = np.unique(key(every), return_counts=True)
        mine = key(xy)
        i = np.clip(np.searchsorted(ids, mine), 0, max(0, len(ids) - 1))
        return np.where((len(ids) > 0) & (ids[i] == mine), counts[i], 1).astype(np.float64)


def label(row: Row, d: Decision, cur_target: int | None = None) -> tuple[int, int]:
    """The (action, target slot) the built-in decision amounts to, in the policy's terms."""
    a = ACTION_INDEX[d.action]
    if d.target is not None:
        for t in range(CURRENT, PLAYER0 + K):
            if row.slots[t] == d.target:
                return a, t
        return a, NONE
    if d.place is not None:
        for t in range(SCHEDULE, T):
            if row.slots[t] == d.place:
                return a, t
    return a, NONE


def decode(row: Row, action: int, target: int, params: dict) -> Decision | None:
    """A policy answer as a decision, or None to keep the built-in one (already applied).

    The action must be allowed (checked again here: the model masks it, and so
    does the runner); the built-in candidate for that action lends its
    details (activity, line to say, distance) when its target agrees.
    """
    if not 0 <= action < A or not 0 <= target < T:
        return None
    name = ACTIONS[action]
    if name not in row.allowed:
        return None
    slot = row.slots[target]
    kind = TARGET_KIND[name]
    built = row.choice.decision
    if built.action == name and (kind == "none" or slot in (built.target, built.place) or built.keep):
        return None                                # the same as what the fallback already did
    cand = next((c.decision for c in row.choice.candidates if c.decision.action == name), None)
    if cand is not None and (kind == "none" or slot in (cand.target, cand.place)):
        return cand
    if kind == "entity" and isinstance(slot, int):
        dist = params[name].get("distance") if name in ("follow", "approach") else \
            params["flee"]["safe"] if name == "flee" else None
        return Decision(name, target=slot, distance=dist, activity=cand.activity if cand else None,
                        reason="policy")
    if kind == "place" and isinstance(slot, str):
        return Decision(name, place=slot, activity=cand.activity if cand else None, reason="policy")
    if kind == "none":
        return Decision(name, reason="policy")
    return cand
