"""Observation rows for the decision policy, built from the tick's Sights with
array operations only (no loop over NPCs; one short loop over the Sights,
one per NPC file that is due).

    r = rows(sights, world_size, place_xy, npc_xy, places)
    r = build(request(sights, world_size, place_xy, npc_xy, places))   (the same)

    r.obs       (N, OBS_DIM)  float32  what the policy sees (LAYOUT below)
    r.mask      (N, A)        bool     the actions the policy may choose (structural, below)
    r.tmask     (N, T)        bool     target slots that name something real
    r.slots     (N, T)        int64    what each slot names: an entity id (slots 1..4), a place
                                       index into World.places (slots 5..8), -1: nothing
    r.eid       (N,)          int64    the NPC of each row

`label(sight, verdict)` turns the built-in's verdict into the policy's terms
(action, slot); `decode(slots, action, target, mask, tmask, finishing)` turns
a policy's answer back into (action, entity, place, ok), re-checking both
masks. No torch here: this runs in the server's tick.

The tick sends `request(...)` to a policy worker, which calls `build` (npc/policy/model.py):
the request holds the Sights' columns end to end and each file's features once (PER_SIGHT,
repeated over its rows by `build`), of the pairs only what the rows read, every NPC as its
CELL square (777 KB at 1,000 rows against 868 KB of rows), so the tick's share of the rows is the gather alone (s18c:
the build was ~11.5% of the policy tick's py-spy samples; npc/policy/decider.py has the figures).
The rows read the tick's Sights where they lie: the think asks the policy's
files first, so their Sights are consecutive slices of one look's gathers
and `_joined` takes them as views (a copy only when they are not). Rows are
gathered with np.take (2-D fancy indexing costs 4-15x more under numpy 2.4).
Tried and dropped (s17a): the per-pair file numbers by one np.repeat per file
instead of a gather per column, and the fields written without a float64
copy: both 1.00x of the rows' thread CPU (interleaved, on 10 captured ticks).

Target slots (T = 9):
    0          none (an action without a target: idle, wander, work here)
    1          the entity of the current intent (the one followed, fled, approached), when alive
    2..4       the nearest K=3 players within `notice`, nearest first
    5          the schedule's place now (the patrol stop, or the block's `at`)
    6..8       the place (`at`) of each of the file's first 3 needs

The mask is structural: action a is in it when the file allows a AND some
way of scoring a in the built-in behaviour has a weight > 0 (`_routes`).
With a positive baseline (idle or wander allowed with a weight > 0: a
candidate at every think) every chosen action scores > 0, so an action
whose every route weighs 0 is never the built-in's choice. Without one,
ties at score 0 go to the earliest candidate, which may be any allowed
action: the mask is then the allowed set. A row finishing a talk or a gift
(the built-in keeps it, unscored) may only keep it: its mask is that action
alone and its target slot "none".

The definition's own parameters (allowed actions, weights, needs,
distances, cooldowns, whom to follow or flee) are part of every row, so that
the policy can follow a file it never saw (it is trained on randomised
files, npc/policy/randomise.py). They are computed once per Definition
(cached by identity) and repeated over its rows.

Each row also carries, per action, whether it has a candidate now (a
player who fits, an ongoing intent, the schedule's `do`, a tended need's
relief, the baseline: `candidate`), the facts the built-in scores, but not
its scores. The policy (npc/policy/model.py `route_terms`) reads each
action's routes from these fields, in torch in the worker (the tick builds
nothing more): `candidate` of an action with its own candidate at its
`action_weight`, the block's `do` at weights.schedule, the tended need's
relief at its `need_pull`. Measured (train-policy, seed 0, held-out
randomised files never trained on): parameters and per-player facts only,
200 files: 72% (the MLP memorised the files); with `candidate` and 20000
synthetic files, the plain MLP: 95.8% (leave one shipped file out: 92.2% to
100%; 60000 files, 12 epochs, width 256: 95.5%, overfitted); the same
rows, the routes policy: 99.84% (leave one file out: 100% on all six); the
misses left are near-ties (mostly rest vs idle within 0.05 weight units).
With the built-in's own scores, margins, best flags and order per action as
inputs it was 100%, but then the tick computes the built-in's utility table
for every row, which is what the policy is there to replace; so they are
not in the layout.

Units: distances in units of the NPC's `notice` radius unless said, times in
world seconds scaled as the field's doc says, clipped where said.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from world.intents import ACTIONS, GOTO, mode_for

from npc.actions import BASELINE, VOCABULARY
from npc.files.schema import WEIGHTS, Definition
from npc.minds.builtin import CANDIDATES, WHY_APPROACHING, WHY_FLEEING, WHY_FOLLOWING, WHY_NEED
from npc.minds.sight import Sight

A = len(ACTIONS)  # actions in the shared vocabulary
ACTION_INDEX = {a: i for i, a in enumerate(ACTIONS)}
K = 3  # nearest players seen
NEEDS = 3  # needs seen (the first ones of the file)
T = 2 + K + 1 + NEEDS  # target slots
NONE, CURRENT, PLAYER0, SCHEDULE, NEED0 = 0, 1, 2, 2 + K, 3 + K
WEIGHT_NAMES = tuple(WEIGHTS)
CELL = 256.0  # world units: the cell used to count nearby NPCs
FAR = 1000.0  # world units: distances to places are / FAR, clipped to 1

# What each action's target is (npc/actions.py), and which slots can name it.
TARGET_KIND = {a: VOCABULARY[a].target for a in ACTIONS}
SLOT_KIND = np.asarray(["none", "entity"] + ["entity"] * K + ["place"] * (1 + NEEDS))
ENTITY_SLOT = SLOT_KIND == "entity"  # (T,)
PLACE_SLOT = SLOT_KIND == "place"  # (T,)
KIND = np.asarray([TARGET_KIND[a] for a in ACTIONS])  # (A,)
# The world refuses go_to / patrol without a place; work, rest and idle stay where they are.
NEEDS_PLACE = np.asarray([mode_for(a, False) == GOTO for a in ACTIONS])  # (A,)
# May action a (row) take a target in slot t (column)? Entity actions an entity; place actions a
# place, or none when the world allows it; idle and wander none, or a place (the built-in gives
# them the schedule's or the need's `at`: idle walks there first, wander ignores it).
# The actions with a candidate of their own in the built-in (its columns named after them: flee ..
# idle); the others (go_to, work, rest, patrol) only come from the schedule or a need.
OWN_ROUTE = np.asarray([a in CANDIDATES for a in ACTIONS])  # (A,)
FITS = np.where(
    (KIND == "entity")[:, None],
    ENTITY_SLOT[None, :],
    PLACE_SLOT[None, :] | ((SLOT_KIND == "none")[None, :] & ~NEEDS_PLACE[:, None]),
)  # (A, T)


@dataclass(frozen=True)
class Field:
    name: str
    width: int
    doc: str


# -- the observation layout: one table, offsets and OBS_DIM derived --------------------------------
# Fields of the definition (the same on every row of a file), then fields of the row.
DEFINITION_FIELDS = (
    Field("allowed", A, "the file allows the action"),
    Field("can", A, "the action is in the mask (allowed, and some route to it weighs > 0)"),
    Field(
        "action_weight",
        A,
        "per action, the weight of its own candidate (talk: weights.talk, ..., idle: "
        "weights.idle; go_to, work, rest, patrol: 0, they come from the schedule or a need) / 2, clipped 0..4",
    ),
    Field("weights", len(WEIGHT_NAMES), "the file's [weights] / 2, clipped to 0..4, in schema.WEIGHTS order"),
    Field("need_on", NEEDS, "the need exists"),
    Field("need_relief", NEEDS * A, "one-hot of the need's relief action, per need"),
    Field("need_has_place", NEEDS, "the need has a place (`at`)"),
    Field("need_weight", NEEDS, "weights.needs x need.weight / 2, clipped to 0..4"),
    Field("need_low", NEEDS, "need.low / 100"),
    Field("need_full", NEEDS, "need.full / 100"),
    Field("senses", 2, "notice, hear / 512 world units"),
    Field(
        "distances",
        7,
        "talk, give_item, flee distance, flee safe, follow distance, follow give_up, "
        "approach distance, each / notice, clipped to 0..4",
    ),
    Field(
        "times",
        7,
        "talk, give_item, approach cooldown / 120 s (clip 0..4); talk, give_item duration / 6 s; "
        "follow linger / 8 s; patrol pause / 8 s (clip 0..4)",
    ),
    Field("who", 3, "follow who = suspicious, flee who = suspicious, give_item has items"),
)
ROW_FIELDS = (
    Field("current", A, "one-hot of the current intent's action"),
    Field("arrived", 1, "the current intent has arrived"),
    Field("since", 1, "seconds since the intent was set / 30, clipped to 0..1"),
    Field("finishing", 1, "finishing a talk or gift (within its duration): the built-in keeps it"),
    Field("target", 3, "the current intent's entity: alive, distance (clip 0..4), within follow.give_up"),
    Field("ongoing", 3, "an ongoing flee (not yet safe), follow (within give_up), approach (not yet there)"),
    Field("need_value", NEEDS, "the need's level / 100"),
    Field("need_tending", NEEDS, "being tended (fell below low, not yet back to full)"),
    Field(
        "candidate",
        A,
        "per action, it has a candidate now: a player who fits, an ongoing intent, the "
        "schedule block's `do`, a tended need's relief, the baseline (allowed actions only)",
    ),
    Field(
        "need_pull",
        NEEDS,
        "tended and has a relief: weights.needs x need.weight x (1 + urgency) / 4 "
        "(urgency = 1 - level / 100), clipped to 0..4; else 0",
    ),
    Field("block", 1, "a schedule block covers the game time"),
    Field("block_do", A, "one-hot of the block's action (`do`)"),
    Field("sched_place", 3, "the schedule names a place now, the NPC is at it, distance to it / 1000"),
    Field("need_place", NEEDS, "distance to each need's place / 1000 (1: none)"),
    Field("clock", 2, "sin, cos of the game time of day"),
    Field("seen", 1, "players within notice / 5, clipped to 0..1"),
    Field("p_present", K, "player slot k holds a player"),
    Field("p_distance", K, "its distance / notice"),
    Field("p_dx", K, "its x offset / notice"),
    Field("p_dy", K, "its y offset / notice"),
    Field("p_suspicious", K, "it stayed within notice for follow.linger s"),
    Field("p_flee", K, "within flee.distance and of flee.who"),
    Field("p_follow", K, "of follow.who"),
    Field("p_give", K, "within give_item.distance, not given to for its cooldown, there are items"),
    Field("p_talk", K, "within talk.distance, not greeted for its cooldown"),
    Field("p_approach", K, "not approached for approach.cooldown"),
    Field("p_current", K, "it is the current intent's entity"),
    Field("any", 5, "some player seen (any of them, not only the first K) fits flee, follow, give, talk, approach"),
    Field("at_place", 1, "the NPC is at some place"),
    Field("npcs_near", 1, "NPCs in the same 256-unit cell / 10, clipped to 0..1"),
    Field("position", 2, "x, y / map size"),
)
LAYOUT = DEFINITION_FIELDS + ROW_FIELDS


def _offsets(fields) -> dict[str, slice]:
    out, at = {}, 0
    for f in fields:
        out[f.name] = slice(at, at + f.width)
        at += f.width
    return out


OFFSET = _offsets(LAYOUT)  # field name -> its columns in obs
DEFINITION_DIM = sum(f.width for f in DEFINITION_FIELDS)
OBS_DIM = sum(f.width for f in LAYOUT)

# Raw numbers of a definition that the row features need (not in the observation as such).
RAW = (
    "notice",
    "talk_distance",
    "give_distance",
    "flee_distance",
    "give_up",
    "linger",
    "talk_cooldown",
    "give_cooldown",
    "approach_cooldown",
    "talk_duration",
    "give_duration",
    "follow_suspicious",
    "flee_suspicious",
    "has_items",
    "w_needs",
    "w_schedule",
)
R = {name: i for i, name in enumerate(RAW)}


@dataclass(frozen=True)
class DefinitionFeatures:
    vec: np.ndarray  # (DEFINITION_DIM,) float32: the definition fields, in layout order
    own: np.ndarray  # (A,) float64 the weight of each action's own candidate (0: none, not allowed)
    raw: np.ndarray  # (len(RAW),) float64
    can: np.ndarray  # (A,) bool: the structural mask
    allowed: np.ndarray  # (A,) bool
    need_at: np.ndarray  # (NEEDS,) int64 place index of each need, -1
    need_weight: np.ndarray  # (NEEDS,) float64 weights.needs x need.weight (0: no need)
    relief: np.ndarray  # (NEEDS,) int64 the need's relief action (index into ACTIONS), -1


def _routes(d: Definition) -> np.ndarray:
    """(A,) the greatest weight with which the built-in behaviour can score each action."""
    w = d.weights
    best = np.zeros(A)
    for name in ("talk", "give_item", "follow", "flee", "approach", "wander", "idle"):
        best[ACTION_INDEX[name]] = w[name]
    for b in d.schedule:
        i = ACTION_INDEX[b.do]
        best[i] = max(best[i], w["schedule"])
    for n in d.needs:
        if n.relief:
            i = ACTION_INDEX[n.relief]
            best[i] = max(best[i], w["needs"] * n.weight)
    return best


def structural_mask(d: Definition) -> np.ndarray:
    """(A,) bool: the actions the built-in behaviour can choose for this file (module doc)."""
    allowed = np.asarray([a in d.allowed for a in ACTIONS])
    if not d.params["give_item"]["items"]:
        allowed[ACTION_INDEX["give_item"]] = False
    can = allowed & (_routes(d) > 0)
    # a baseline is a candidate at every think: with one above 0, a candidate scoring 0 never wins
    positive_baseline = any(a in d.allowed and d.weights[a] > 0 for a in BASELINE)
    return can if positive_baseline else allowed


def definition_features(d: Definition, places: Sequence[str]) -> DefinitionFeatures:
    prm, w = d.params, d.weights
    index = {p: i for i, p in enumerate(places)}
    notice = max(1.0, d.senses["notice"])
    needs = d.needs[:NEEDS]
    on = np.zeros(NEEDS)
    relief = np.zeros((NEEDS, A))
    need_at = np.full(NEEDS, -1, np.int64)
    nw, low, full = np.zeros(NEEDS), np.zeros(NEEDS), np.zeros(NEEDS)
    for k, n in enumerate(needs):
        on[k], nw[k], low[k], full[k] = 1.0, w["needs"] * n.weight, n.low, n.full
        if n.relief:
            relief[k, ACTION_INDEX[n.relief]] = 1.0
        if n.at is not None:
            need_at[k] = index.get(n.at, -1)
    allowed = np.asarray([a in d.allowed for a in ACTIONS])
    can = structural_mask(d)
    own = np.asarray([w.get(a, 0.0) for a in ACTIONS]) * allowed  # the weights named after actions
    if not prm["give_item"]["items"]:
        own[ACTION_INDEX["give_item"]] = 0.0
    clip4 = lambda v: np.clip(np.asarray(v, np.float64), 0.0, 4.0)  # noqa: E731
    f = {
        "allowed": allowed,
        "can": can,
        "action_weight": clip4(own / 2.0),
        "weights": clip4([w[k] / 2.0 for k in WEIGHT_NAMES]),
        "need_on": on,
        "need_relief": relief.reshape(-1),
        "need_has_place": need_at >= 0,
        "need_weight": clip4(nw / 2.0),
        "need_low": low / 100.0,
        "need_full": full / 100.0,
        "senses": np.asarray([d.senses["notice"], d.senses["hear"]]) / 512.0,
        "distances": clip4(
            np.asarray(
                [
                    prm["talk"]["distance"],
                    prm["give_item"]["distance"],
                    prm["flee"]["distance"],
                    prm["flee"]["safe"],
                    prm["follow"]["distance"],
                    prm["follow"]["give_up"],
                    prm["approach"]["distance"],
                ]
            )
            / notice
        ),
        "times": np.concatenate(
            [
                clip4(
                    np.asarray([prm["talk"]["cooldown"], prm["give_item"]["cooldown"], prm["approach"]["cooldown"]])
                    / 120.0
                ),
                np.asarray([prm["talk"]["duration"], prm["give_item"]["duration"]]) / 6.0,
                clip4(np.asarray([prm["follow"]["linger"], prm["patrol"]["pause"]]) / 8.0),
            ]
        ),
        "who": np.asarray(
            [prm["follow"]["who"] == "suspicious", prm["flee"]["who"] == "suspicious", bool(prm["give_item"]["items"])]
        ),
    }
    vec = np.concatenate([_check(fl, np.asarray(f[fl.name], np.float64).reshape(-1)) for fl in DEFINITION_FIELDS])
    raw = np.zeros(len(RAW))
    raw[[R[k] for k in RAW]] = [
        notice,
        prm["talk"]["distance"],
        prm["give_item"]["distance"],
        prm["flee"]["distance"],
        prm["follow"]["give_up"],
        prm["follow"]["linger"],
        prm["talk"]["cooldown"],
        prm["give_item"]["cooldown"],
        prm["approach"]["cooldown"],
        prm["talk"]["duration"],
        prm["give_item"]["duration"],
        prm["follow"]["who"] == "suspicious",
        prm["flee"]["who"] == "suspicious",
        bool(prm["give_item"]["items"]),
        w["needs"],
        w["schedule"],
    ]
    return DefinitionFeatures(
        vec.astype(np.float32),
        own,
        raw,
        can,
        allowed,
        need_at,
        nw,
        np.where(relief.any(axis=1), relief.argmax(axis=1), -1),
    )


def _check(f: Field, v: np.ndarray) -> np.ndarray:
    assert v.shape[-1] == f.width, f"observation field {f.name!r}: {v.shape[-1]} columns, the layout says {f.width}"
    return v


class Rows(NamedTuple):
    obs: np.ndarray  # (N, OBS_DIM) float32
    mask: np.ndarray  # (N, A) bool
    tmask: np.ndarray  # (N, T) bool
    slots: np.ndarray  # (N, T) int64 entity id / place index / -1
    eid: np.ndarray  # (N,) int64
    current: np.ndarray  # (N,) int8 the current intent's action
    finishing: np.ndarray  # (N,) bool finishing a talk or gift: the only answer is to keep it

    def __len__(self) -> int:
        return len(self.eid)


def empty_rows() -> Rows:
    return Rows(
        np.zeros((0, OBS_DIM), np.float32),
        np.zeros((0, A), bool),
        np.zeros((0, T), bool),
        np.zeros((0, T), np.int64),
        np.zeros(0, np.int64),
        np.zeros(0, np.int8),
        np.zeros(0, bool),
    )


def _pad(x: np.ndarray, fill) -> np.ndarray:
    """(n, k) -> (n, NEEDS): the first NEEDS columns, padded with `fill`."""
    out = np.full((len(x), NEEDS), fill, dtype=x.dtype if x.dtype != bool else bool)
    k = min(NEEDS, x.shape[1]) if x.ndim == 2 else 0
    out[:, :k] = x[:, :k]
    return out


_CACHE: dict[int, tuple[Definition, tuple, DefinitionFeatures]] = {}
_CACHE_LOCK = threading.Lock()  # the guard builds rows in a thread while the tick does
MAX_CACHED = 4096  # definitions whose features are kept (oldest dropped first; ~2 kB each)


def features(d: Definition, places: Sequence[str]) -> DefinitionFeatures:
    """definition_features, cached by the definition's identity (and the map's place names)."""
    key = tuple(places)
    with _CACHE_LOCK:
        hit = _CACHE.get(id(d))
        if hit is not None and hit[0] is d and hit[1] == key:
            return hit[2]
    f = definition_features(d, places)
    with _CACHE_LOCK:
        if len(_CACHE) >= MAX_CACHED:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[id(d)] = (d, key, f)
    return f


def rows(
    sights: Sequence[Sight],
    world_size: tuple[float, float],
    place_xy: np.ndarray,
    npc_xy: np.ndarray | None,
    places: Sequence[str],
) -> Rows:
    """The rows of every due NPC of the given Sights, in order (module doc).

    world_size: the map's (width, height) in world units; place_xy (P, 2): the centres of
    `places` (World.places, World.place_positions()); npc_xy (M, 2): every NPC in the world, for
    "NPCs nearby" (None: only the rows' own NPCs count). The same as build(request(...)): the
    tick may send the request to a policy worker, which builds the rows there (npc/policy/model.py)."""
    return build(request(sights, world_size, place_xy, npc_xy, places))


def request(
    sights: Sequence[Sight],
    world_size: tuple[float, float],
    place_xy: np.ndarray,
    npc_xy: np.ndarray | None,
    places: Sequence[str],
) -> dict:
    """What `build` needs to make the rows of these Sights (arguments as `rows`), compact and msgpack-able
    (npc/inference/wire.py): the definitions' features once per Sight (repeated over its rows by `build`),
    the Sights' columns end to end (views where they lie in one look's gathers), the map's places, every
    NPC's position. The tick's only share of the rows when a worker builds them."""
    sights = [s for s in sights if len(s)]
    if not sights:
        return {"n": np.zeros(0, np.int64)}
    g = _gather(sights, lambda d: features(d, places))
    # what the rows read of the pairs and NPCs, no more (the same values; 1,203 -> ~830 KB at 1,000 rows):
    # p_row is the runs `start` says; p_id and p_pos are read for each row's nearest K pairs only; every
    # NPC's position only as its CELL square (integers)
    pr = g.pop("p_row")
    near = np.flatnonzero(np.arange(len(pr)) - g["start"][pr] < K)
    g["p_id"], g["p_pos"] = g["p_id"][near], np.take(g["p_pos"], near, axis=0)
    every = None if npc_xy is None else np.asarray(npc_xy, np.float64).reshape(-1, 2)
    return {
        **g,
        "place_xy": np.asarray(place_xy, np.float64).reshape(-1, 2),
        "size": [max(1.0, float(world_size[0])), max(1.0, float(world_size[1]))],
        "npc_squares": None if every is None else np.floor(every / CELL).astype(np.int32),
    }


def build(req: dict) -> Rows:
    """The rows of a `request` (in the tick, or in a policy worker: the same values bit for bit)."""
    n = np.asarray(req["n"], np.int64)
    if not n.sum():
        return empty_rows()
    g = dict(req)
    for name in PER_SIGHT:  # each Sight's values over its rows
        g[name] = np.repeat(np.asarray(req[name]), n, axis=0)
    g["pos"] = np.asarray(g["pos"]).reshape(-1, 2)
    start = np.asarray(req["start"], np.int64)
    g["p_row"] = pr = np.repeat(np.arange(len(start) - 1, dtype=np.int64), np.diff(start))
    near = np.flatnonzero(np.arange(len(pr)) - start[pr] < K)  # the pairs request() sent p_id, p_pos of
    g["p_id"] = np.full(len(pr), -1, np.int64)
    g["p_id"][near] = req["p_id"]
    g["p_pos"] = np.zeros((len(pr), 2), np.float64)
    g["p_pos"][near] = np.asarray(req["p_pos"], np.float64).reshape(-1, 2)
    squares = req["npc_squares"]
    place_xy = np.asarray(req["place_xy"], np.float64).reshape(-1, 2)
    return _build(g, place_xy, tuple(req["size"]), None, None if squares is None else np.asarray(squares))


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays end to end, read-only: a view when they are consecutive slices of one array (the Sights
    of one look: npc/minds/sight.look_many hands each file a slice of its gathers, and the think asks
    the policy's files first, npc/minds/think._think_due), else a copy."""
    first = arrays[0]
    base = first.base
    if isinstance(base, np.ndarray) and base.ndim == first.ndim and base.strides == first.strides:
        step = base.strides[0] if base.ndim else 0
        at = first.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        total = sum(len(a) for a in arrays)
        ok = step > 0 and at % step == 0 and base.shape[1:] == first.shape[1:] and at // step + total <= len(base)
        end = first.__array_interface__["data"][0] + len(first) * step
        for a in arrays[1:] if ok else ():
            if a.base is not base or a.strides != first.strides or a.__array_interface__["data"][0] != end:
                ok = False
                break
            end += len(a) * step
        if ok:
            out = base[at // step : at // step + total]
            out.flags.writeable = False
            return out
    out = np.concatenate(arrays) if len(arrays) > 1 else first[:]
    out.flags.writeable = False
    return out


# request()'s values of one per Sight (build repeats them over the Sight's rows)
PER_SIGHT = ("vec", "raw", "can", "own", "allowed", "need_at", "need_w", "relief", "now", "minute", "block", "block_do")


def _gather(sights: Sequence[Sight], features) -> dict:
    """The Sights' arrays end to end (N rows; one short loop over the Sights), and their definitions'
    features and scalars once per Sight (PER_SIGHT: `build` repeats them over the rows)."""
    feats = [features(s.defn) for s in sights]
    n = np.asarray([len(s) for s in sights], np.int64)
    one = lambda vals, dtype=np.float64: np.asarray(vals, dtype)  # noqa: E731  (S, ...)
    cat = lambda name: _joined([getattr(s, name) for s in sights])  # noqa: E731
    base = np.concatenate([[0], np.cumsum(n)[:-1]])
    pairs = np.concatenate([[0], np.cumsum([len(s.p_row) for s in sights])[:-1]])
    g = {
        "n": n,
        "vec": one([f.vec for f in feats], np.float32),
        "raw": one([f.raw for f in feats]),
        "can": one([f.can for f in feats], bool),
        "own": one([f.own for f in feats]),
        "allowed": one([f.allowed for f in feats], bool),
        "need_at": one([f.need_at for f in feats], np.int64),
        "need_w": one([f.need_weight for f in feats]),
        "relief": one([f.relief for f in feats], np.int64),
        "now": one([s.now_s for s in sights]),
        "minute": one([s.minute for s in sights]),
        "block": one([s.block is not None for s in sights], bool),
        "block_do": one([ACTION_INDEX[s.block.do] if s.block is not None else -1 for s in sights], np.int64),
        "stats": np.concatenate([_pad(np.asarray(s.stats, np.float64).reshape(len(s), -1), np.nan) for s in sights]),
        "tending": np.concatenate([_pad(np.asarray(s.tending, bool).reshape(len(s), -1), False) for s in sights]),
        "p_row": np.concatenate([s.p_row + b for s, b in zip(sights, base)]).astype(np.int64),
        "start": np.concatenate(
            [s.start[:-1] + p for s, p in zip(sights, pairs)] + [[pairs[-1] + len(sights[-1].p_row)]]
        ),
    }
    for name in (
        "eid",
        "pos",
        "at",
        "sched_place",
        "action",
        "place",
        "target",
        "arrived",
        "since",
        "t_alive",
        "t_dist",
        "p_id",
        "p_dist",
        "p_pos",
        "p_near_s",
        "p_greeted",
        "p_given",
        "p_approached",
    ):
        g[name] = cat(name)
    return g


# Rows are gathered with np.take(x, idx, axis=0), not x[idx]: for a 2-D x numpy 2.4's fancy indexing
# costs 4-15x more (15,000 rows of 2: 390 -> 17-27 us, thread CPU, load ~4)
_EYE = np.eye(A + 1, A)  # one_hot's table: row A is all zeros (-1: none)


def _build(g: dict, place_xy: np.ndarray, world_size: tuple[float, float], npc_xy, squares=None) -> Rows:
    """The rows of the gathered Sights: features (ROW_FIELDS) next to the definitions' own, masks, slots.
    squares (M, 2) int: every NPC's CELL square, instead of npc_xy (its positions)."""
    N = len(g["eid"])
    col = lambda name: g["raw"][:, R[name]]  # noqa: E731  (N,)
    clip = lambda v, lo=0.0, hi=1.0: np.clip(v, lo, hi)  # noqa: E731
    one_hot = lambda idx: np.take(_EYE, np.where(idx >= 0, idx, A), axis=0)  # noqa: E731  -1: all zeros
    cur, now, xy, notice = g["action"].astype(np.int64), g["now"], g["pos"], col("notice")
    it = _intent(g, col)
    f, player_slots = _players(g, col, it["t_alive"])
    level = np.nan_to_num(g["stats"], nan=100.0)  # (N, NEEDS) the first needs
    tending = g["tending"]
    pull = np.where(tending & (g["relief"] >= 0), g["need_w"] * (2.0 - level / 100.0), 0.0)
    cand = _candidates(g, col, f["any"], it["ongoing"], tending, pull)
    sched, need_at = g["sched_place"].astype(np.int64), g["need_at"]

    def far(idx: np.ndarray) -> np.ndarray:
        """(N,) or (N, k) place indices -> distance from each row's NPC / FAR, 1 where none."""
        i = idx.reshape(N, -1)
        if not len(place_xy):
            return np.ones(idx.shape)
        p = np.take(place_xy, np.clip(i, 0, len(place_xy) - 1), axis=0)  # (N, k, 2)
        d = np.hypot(p[..., 0] - xy[:, None, 0], p[..., 1] - xy[:, None, 1])
        return np.where(i >= 0, clip(d / FAR), 1.0).reshape(idx.shape)

    angle = 2 * math.pi * g["minute"] / 1440.0
    f.update(
        {
            "current": one_hot(cur),
            "arrived": g["arrived"][:, None],
            "since": clip((now - g["since"]) / 30.0)[:, None],
            "finishing": it["finishing"][:, None],
            "target": np.stack([it["t_alive"], clip(it["t_dist"] / notice, 0, 4), it["within_give_up"]], axis=1),
            "ongoing": it["ongoing"],
            "candidate": cand,
            "need_value": level / 100.0,
            "need_tending": tending,
            "need_pull": clip(pull / 4.0, 0, 4),
            "block": g["block"][:, None],
            "block_do": one_hot(g["block_do"]),
            "sched_place": np.stack([sched >= 0, (sched >= 0) & (g["at"] == sched), far(sched)], axis=1),
            "need_place": far(need_at),
            "clock": np.stack([np.sin(angle), np.cos(angle)], axis=1),
            "seen": clip(np.bincount(g["p_row"], minlength=N) / 5.0)[:, None],
            "at_place": (g["at"] >= 0)[:, None],
            "npcs_near": clip(_npcs_near(xy, npc_xy, squares) / 10.0)[:, None],
            "position": xy / np.asarray(world_size),
        }
    )
    obs = np.empty((N, OBS_DIM), np.float32)
    obs[:, :DEFINITION_DIM] = g["vec"]
    for fl in ROW_FIELDS:
        obs[:, OFFSET[fl.name]] = _check(fl, np.asarray(f[fl.name], np.float64).reshape(N, -1))

    slots = np.concatenate(
        [
            np.full((N, 1), -1, np.int64),
            np.where(it["t_alive"], g["target"], -1)[:, None],
            player_slots,
            sched[:, None],
            need_at,
        ],
        axis=1,
    )
    tmask = slots >= 0
    tmask[:, NONE] = True
    mask = g["can"].copy()
    keep = np.flatnonzero(it["finishing"])  # finishing a talk or gift: keeping it is the only answer
    mask[keep] = False
    mask[keep, cur[keep]] = True
    tmask[keep] = False
    tmask[keep, NONE] = True
    return Rows(obs, mask, tmask, slots, g["eid"].astype(np.int64), cur.astype(np.int8), it["finishing"])


def _intent(g: dict, col) -> dict[str, np.ndarray]:
    """The current intent: finishing a talk or gift, its entity, and the ongoing flight, follow, approach."""
    cur, now = g["action"].astype(np.int64), g["now"]
    is_cur = lambda a: cur == ACTION_INDEX[a]  # noqa: E731
    t_alive = g["t_alive"].astype(bool)
    t_dist = np.where(t_alive, np.nan_to_num(g["t_dist"], nan=0.0), 0.0)
    arrived = g["arrived"].astype(bool)
    duration = np.where(is_cur("talk"), col("talk_duration"), col("give_duration"))
    finishing = (
        (is_cur("talk") | is_cur("give_item")) & g["allowed"][np.arange(len(cur)), cur] & (now - g["since"] < duration)
    )
    within_give_up = t_alive & (t_dist <= col("give_up"))
    ongoing = np.stack(
        [
            is_cur("flee") & ~arrived & t_alive,
            is_cur("follow") & within_give_up,
            is_cur("approach") & ~arrived & t_alive,
        ],
        axis=1,
    )
    return {
        "t_alive": t_alive,
        "t_dist": t_dist,
        "finishing": finishing,
        "within_give_up": within_give_up,
        "ongoing": ongoing,
    }


def _players(g: dict, col, t_alive: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The p_* fields (N, K) of the nearest K players, "any" (N, 5) over all of them, and the player
    slots' ids (N, K). The Sight's pairs are one per (row, player within notice), nearest first: the
    five facts "any" reads are made for every pair, the rest for the nearest K only (~a third of the
    pairs at 10,000 NPCs and 1,000 players: 1.62 -> 1.33 ms a tick)."""
    N = len(g["eid"])
    pr, pd, now = g["p_row"], g["p_dist"], g["now"]
    rank = np.arange(len(pr)) - g["start"][pr]
    susp = g["p_near_s"] >= col("linger")[pr]
    who = lambda flag: (col(flag)[pr] < 0.5) | susp  # noqa: E731  players, or suspicious
    fits = {
        "p_flee": (pd <= col("flee_distance")[pr]) & who("flee_suspicious"),
        "p_follow": who("follow_suspicious"),
        "p_give": (
            (pd <= col("give_distance")[pr])
            & (now[pr] - g["p_given"] >= col("give_cooldown")[pr])
            & (col("has_items")[pr] > 0.5)
        ),
        "p_talk": (pd <= col("talk_distance")[pr]) & (now[pr] - g["p_greeted"] >= col("talk_cooldown")[pr]),
        "p_approach": now[pr] - g["p_approached"] >= col("approach_cooldown")[pr],
    }
    first = np.flatnonzero(rank < K)
    r1, k1 = pr[first], rank[first]
    notice = col("notice")[r1]
    pos = np.take(g["pos"], r1, axis=0)
    per = {
        "p_suspicious": susp[first],
        "p_flee": fits["p_flee"][first],
        "p_follow": fits["p_follow"][first],
        "p_give": fits["p_give"][first],
        "p_talk": fits["p_talk"][first],
        "p_approach": fits["p_approach"][first],
        "p_current": t_alive[r1] & (g["p_id"][first] == g["target"][r1]),
        "p_present": np.ones(len(first), bool),
        "p_distance": pd[first] / notice,
        "p_dx": np.clip((g["p_pos"][:, 0][first] - pos[:, 0]) / notice, -1, 1),
        "p_dy": np.clip((g["p_pos"][:, 1][first] - pos[:, 1]) / notice, -1, 1),
    }
    # every field's nearest K in one scatter (N, K, fields), not one per field
    out = np.zeros((N, K, len(per)), np.float64)
    out[r1, k1] = np.stack([np.asarray(v, np.float64) for v in per.values()], axis=1)
    f: dict[str, np.ndarray] = {name: out[:, :, j] for j, name in enumerate(per)}
    # "any": the five facts as bits per pair, OR-ed over each row's run of pairs (one pass, not five)
    bits = np.zeros(len(pr), np.uint8)
    for b, v in enumerate(fits.values()):
        bits |= np.asarray(v, np.uint8) << np.uint8(b)
    has = np.zeros(N, np.uint8)
    runs = np.flatnonzero(g["start"][1:] > g["start"][:-1])  # rows with pairs
    if len(runs):
        has[runs] = np.bitwise_or.reduceat(bits, g["start"][runs])
    f["any"] = (has[:, None] >> np.arange(5, dtype=np.uint8)[None, :]) & 1 > 0
    ids = np.full((N, K), -1, np.int64)
    ids[r1, k1] = g["p_id"][first]
    return f, ids


def _candidates(
    g: dict, col, any_: np.ndarray, ongoing: np.ndarray, tending: np.ndarray, pull: np.ndarray
) -> np.ndarray:
    """(N, A) whether each action has a candidate now, as the built-in behaviour would offer it
    (npc/minds/builtin.py), without scoring any: the relief of the tended need that pulls hardest
    (the earlier need on a tie: the one the built-in would offer), the schedule block's `do`, a
    player who fits or an ongoing intent for flee / follow / give_item / talk / approach, and the
    baselines wander and idle; only where the file allows the action."""
    N = len(g["eid"])
    rows = np.arange(N)
    allowed = g["allowed"]
    cand = np.zeros((N, A), bool)
    relief = g["relief"]  # (N, NEEDS) action, -1
    best, best_k = np.full(N, -np.inf), np.full(N, -1)
    for k in range(NEEDS):
        better = tending[:, k] & (relief[:, k] >= 0) & allowed[rows, relief[:, k]] & (pull[:, k] > best)
        best[better], best_k[better] = pull[better, k], k
    hit = np.flatnonzero(best_k >= 0)
    cand[hit, relief[hit, best_k[hit]]] = True
    on = np.flatnonzero(g["block"])
    cand[on, g["block_do"][on]] = True
    present = {
        "flee": any_[:, 0] | ongoing[:, 0],
        "follow": any_[:, 1] | ongoing[:, 1],
        "give_item": any_[:, 2] & (col("has_items") > 0.5),
        "talk": any_[:, 3],
        "approach": any_[:, 4] | ongoing[:, 2],
        "wander": np.ones(N, bool),
        "idle": np.ones(N, bool),
    }
    for name, rows_with in present.items():
        cand[:, ACTION_INDEX[name]] |= rows_with
    return cand & allowed


def _npcs_near(xy: np.ndarray, every: np.ndarray | None, squares: np.ndarray | None = None) -> np.ndarray:
    """(N,) NPCs in the same CELL-sized square as each row's NPC (itself included; 1 where none is counted).
    Counted by one bincount over the squares the NPCs span (a map's: ~200); np.unique of every NPC's
    square (a sort of 10,000 keys a tick) only when they span more than DENSE_SQUARES."""
    if squares is not None and len(squares):  # (M, 2) every NPC's square, as np.floor(every / CELL) made it
        sq = np.asarray(squares).reshape(-1, 2).astype(np.float64)
        ex, ey = sq[:, 0], sq[:, 1]
    else:
        every = xy if every is None or not len(every) else np.asarray(every, np.float64).reshape(-1, 2)
        ex, ey = np.floor(every[:, 0] / CELL), np.floor(every[:, 1] / CELL)
    mx, my = np.floor(xy[:, 0] / CELL), np.floor(xy[:, 1] / CELL)
    if len(ex) and len(mx):
        x0, y0 = min(ex.min(), mx.min()), min(ey.min(), my.min())
        w = int(max(ex.max(), mx.max()) - x0) + 1
        h = int(max(ey.max(), my.max()) - y0) + 1
        if w * h <= DENSE_SQUARES:
            counts = np.bincount(((ex - x0) * h + (ey - y0)).astype(np.int64), minlength=w * h)
            mine = counts[((mx - x0) * h + (my - y0)).astype(np.int64)]
            return np.where(mine > 0, mine, 1).astype(np.float64)
    key = lambda x, y: (x * 100_003 + y).astype(np.int64)  # noqa: E731
    ids, counts = np.unique(key(ex, ey), return_counts=True)
    mine = key(mx, my)
    i = np.clip(np.searchsorted(ids, mine), 0, max(0, len(ids) - 1))
    return np.where((len(ids) > 0) & (ids[i] == mine), counts[i], 1).astype(np.float64)


DENSE_SQUARES = 1 << 16  # squares _npcs_near counts densely at most (a 512 KB count array)


# -- labels and answers ---------------------------------------------------------------------------

ONGOING = (WHY_FLEEING, WHY_FOLLOWING, WHY_APPROACHING)  # verdicts that go on with the current target


def nearest_players(sight: Sight) -> np.ndarray:
    """(n, K) the ids of each row's nearest K players within notice (slots 2..4), -1 where fewer."""
    n, pr = len(sight), np.asarray(sight.p_row, np.int64)
    rank = np.arange(len(pr)) - np.asarray(sight.start, np.int64)[pr]
    first = rank < K
    out = np.full((n, K), -1, np.int64)
    out[pr[first], rank[first]] = np.asarray(sight.p_id, np.int64)[first]
    return out


def label(sight: Sight, verdict, slots: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(action (n,) int64, slot (n,) int64): a verdict (npc/minds/builtin.py) in the policy's terms.

    A kept intent (finishing a talk or gift) is the current action with slot "none" (its only
    answer, see the mask). An entity is the slot of the candidate that won: the current intent's
    (slot 1) for going on with a flight, follow or approach, else the player's (the nearest first),
    else slot 1 when only it names the entity; a place is the slot of the candidate that won: the need's (WHY_NEED, one of the first
    NEEDS), else the schedule's when it is that place, else (given the rows' `slots`) the first need
    slot naming it. A target or place no slot names becomes "none": the policy cannot say it (a miss)."""
    keep = np.asarray(verdict.keep, bool)
    action = np.where(keep, sight.action, verdict.action).astype(np.int64)
    target = np.where(keep, -1, verdict.target).astype(np.int64)
    place = np.where(keep, -1, verdict.place).astype(np.int64)
    if slots is None:
        ent = np.concatenate([np.where(sight.t_alive, sight.target, -1)[:, None], nearest_players(sight)], axis=1)
    else:
        ent = slots[:, CURRENT : PLAYER0 + K]
    hit = (ent == target[:, None]) & (target >= 0)[:, None]  # (n, 1 + K)
    going = np.isin(np.asarray(verdict.why), ONGOING) & hit[:, 0]
    player = hit[:, 1:].any(axis=1)
    e_slot = np.where(
        going, CURRENT, np.where(player, PLAYER0 + hit[:, 1:].argmax(axis=1), np.where(hit[:, 0], CURRENT, NONE))
    )
    need = np.asarray(verdict.need, np.int64)
    by_need = (np.asarray(verdict.why) == WHY_NEED) & (need >= 0) & (need < NEEDS)
    p_slot = np.where(by_need, NEED0 + need, np.where(place == sight.sched_place, SCHEDULE, NONE))
    if slots is not None:
        same = slots[:, NEED0:] == place[:, None]
        p_slot = np.where(p_slot == NONE, np.where(same.any(axis=1), NEED0 + same.argmax(axis=1), NONE), p_slot)
    slot = np.where(target >= 0, e_slot, np.where(place >= 0, p_slot, NONE))
    return action, slot.astype(np.int64)


class Decoded(NamedTuple):
    action: np.ndarray  # (N,) int8 index into ACTIONS, -1 where not ok
    target: np.ndarray  # (N,) int64 entity id, -1
    place: np.ndarray  # (N,) int32 place index into World.places, -1
    ok: np.ndarray  # (N,) bool: a decision the NPC may take (else: the built-in decides)


def decode(
    slots: np.ndarray,
    action: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    tmask: np.ndarray,
    finishing: np.ndarray | None = None,
) -> Decoded:
    """A policy's answer (action (N,), target slot (N,); any integers) as decisions, from the rows'
    slots (N, T), mask (N, A) and tmask (N, T).

    Both masks are checked again (a module may ignore them), and the slot must fit the action
    (FITS): entity actions take an entity slot, go_to / patrol a place slot, work / rest a place
    or none, idle / wander none or a place. `finishing` (Rows.finishing): those rows may only
    keep their current intent (the mask allows it alone): ok, with target and place -1; the
    caller keeps the intent (never re-applies a talk or gift). Without it, such an answer is
    not ok (an entity action with no entity)."""
    a = np.asarray(action, np.int64).reshape(-1)
    t = np.asarray(target, np.int64).reshape(-1)
    n = len(slots)
    if len(a) != n or len(t) != n:
        raise ValueError(f"{len(a)} actions and {len(t)} targets for {n} rows")
    r = np.arange(n)
    ok = (a >= 0) & (a < A) & (t >= 0) & (t < T)
    ac, tc = np.where(ok, a, 0), np.where(ok, t, 0)
    ok &= mask[r, ac] & tmask[r, tc]
    keep = ok & (np.asarray(finishing, bool) if finishing is not None else np.zeros(n, bool))
    ok &= keep | FITS[ac, tc]
    value = slots[r, tc]
    ent = ok & ~keep & ENTITY_SLOT[tc]
    plc = ok & ~keep & PLACE_SLOT[tc]
    return Decoded(
        np.where(ok, ac, -1).astype(np.int8),
        np.where(ent, value, -1).astype(np.int64),
        np.where(plc, value, -1).astype(np.int32),
        ok,
    )
