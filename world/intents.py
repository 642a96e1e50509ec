"""NPC intents: what each NPC is doing, executed by the world every tick.

An intent is an action from the shared vocabulary (`ACTIONS`), an activity
label (free text shown to admins, e.g. "forging"; the action's name by
default) and a target: a place (point of interest) or an entity. The world
turns it into one of five movement modes, vectorised over all NPCs:

  STAY    stand still                  idle, talk, give_item; work/rest with no place
  WANDER  walk between POIs, pause     wander (the default of every new NPC)
  GOTO    walk to a spot near a POI    go_to, patrol; work/rest at a place
          on its flow field, then stay
  FOLLOW  steer straight at an entity, follow, approach
          stop within `distance`
  FLEE    steer straight away from an  flee
          entity until `distance` away

FOLLOW and FLEE steer in a straight line and rely on movement's wall
sliding: good for short range; a target behind a long wall may not be
reached. An intent whose target entity is gone becomes `idle` (STAY).

Per NPC (columns of the entity table):
  i_action    index into ACTIONS         i_mode      the movement mode
  i_poi       GOTO: index into nav.names i_tslot/i_tid FOLLOW/FLEE: target slot and id
  i_dist      FOLLOW: stop distance; FLEE: safe distance (world units)
  i_arrived   at the spot / within distance / safe
  i_since     world seconds when the intent was set
  i_arrived_at  world seconds when i_arrived last became true (-1: not arrived)
  activity    the activity label (object column)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import wander
from .entities import EntityTable
from .navigation import Navigation

ACTIONS = ("idle", "wander", "go_to", "follow", "approach", "flee", "work", "rest", "talk", "give_item", "patrol")
ACTION_INDEX = {a: i for i, a in enumerate(ACTIONS)}
STAY, WANDER, GOTO, FOLLOW, FLEE = range(5)
DEFAULT_FOLLOW_DISTANCE = 48.0  # world units
DEFAULT_FLEE_DISTANCE = 256.0  # world units


@dataclass(frozen=True, slots=True)
class Intent:
    """An NPC's current intent, as the world executes it."""

    action: str
    activity: str
    place: str | None  # GOTO: the POI
    target: int | None  # FOLLOW/FLEE: the entity id
    distance: float | None  # FOLLOW: stop distance; FLEE: safe distance
    arrived: bool  # at the place / within distance / safe; always True when STAY
    since_s: float  # world seconds when it was set
    arrived_s: float | None  # world seconds when `arrived` last became true


def add_columns(table: EntityTable) -> None:
    table.column("i_action", np.int8, fill=ACTION_INDEX["wander"])
    table.column("i_mode", np.int8, fill=WANDER)
    table.column("i_poi", np.int32, fill=-1)
    table.column("i_tslot", np.int32, fill=0)
    table.column("i_tid", np.int64, fill=0)
    table.column("i_dist", np.float64, fill=0.0)
    table.column("i_arrived", np.bool_, fill=False)
    table.column("i_since", np.float64, fill=0.0)
    table.column("i_arrived_at", np.float64, fill=-1.0)
    table.column("activity", object, fill="wander")
    table.column("speed", np.float64, fill=0.0)  # world units/s when it walks; 0: the world's npc_speed


def speeds(table: EntityTable, slots: np.ndarray, default: float) -> np.ndarray:
    """Each slot's walking speed, world units per second."""
    run = wander.run_of(slots) if len(slots) else None
    s: np.ndarray = table.speed[slots] if run is None else table.speed[run]  # (one run: a slice, no gather)
    return np.where(s > 0, s, default)


def speed_of(table: EntityTable, slots: np.ndarray, default: float) -> wander.Speed:
    """The walking speed of the slots: one float when they all walk at one (the usual case, and the
    arithmetic of the steering is then that of a scalar), else (M,) one per slot. Measured (10,000
    wandering NPCs at 5 speeds, World.step, side by side in one run): one pass with per-slot speeds
    instead of one pass per speed (bench/world.py --speeds 5)."""
    s = speeds(table, slots, default)
    if not len(slots) or (s == s[0]).all():
        return float(s[0]) if len(slots) else default
    return s


def mode_for(action: str, has_place: bool) -> int:
    if action == "wander":
        return WANDER
    if action in ("follow", "approach"):
        return FOLLOW
    if action == "flee":
        return FLEE
    if action in ("go_to", "patrol") or (has_place and action in ("idle", "work", "rest")):
        return GOTO
    return STAY


# MODES[action index, has a place]: mode_for as a table, for many intents at once
MODES = np.asarray([[mode_for(a, False), mode_for(a, True)] for a in ACTIONS], dtype=np.int8)


class Groups:
    """NPC slots by mode, recomputed only when an intent or the table changed."""

    def __init__(self) -> None:
        self.npcs: np.ndarray | None = None  # the array they were computed from (compared by identity)
        self.stale = True  # set on every intent change
        self.by_mode: list[np.ndarray] = []

    def get(self, table: EntityTable, npcs: np.ndarray) -> list[np.ndarray]:
        if self.stale or self.npcs is not npcs:
            modes = table.i_mode[npcs]
            self.by_mode = [npcs[modes == m] for m in range(5)]
            self.npcs, self.stale = npcs, False
        return self.by_mode


def steer(
    table: EntityTable,
    npcs: np.ndarray,
    groups: Groups,
    nav: Navigation,
    rng: np.random.Generator,
    dt: float,
    speed: float,
    idle_s: tuple[float, float],
    now_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Velocities of the NPCs that move, by mode; returns (slots, velocities (M,2)).
    `speed`: world units/s of the NPCs whose `speed` column is 0 (the others walk at theirs).

    Also updates i_arrived / i_arrived_at, and turns FOLLOW/FLEE intents whose
    target is gone into idle.
    """
    parts_s, parts_v = [], []
    by_mode = groups.get(table, npcs)
    wand, goto, follow, flee = by_mode[WANDER], by_mode[GOTO], by_mode[FOLLOW], by_mode[FLEE]
    if len(wand):
        parts_s.append(wand)
        parts_v.append(wander.steer(table, wand, nav, rng, dt, speed_of(table, wand, speed), idle_s))
    if len(goto):
        v, at = wander.travel(table, goto, nav, rng, dt, speed_of(table, goto, speed))
        _mark(table, goto, at, now_s)
        parts_s.append(goto)
        parts_v.append(v)
    for chasing, away in ((follow, False), (flee, True)):
        if len(chasing):
            v, ok = _chase(table, chasing, dt, speed_of(table, chasing, speed), away, now_s)
            if not ok.all():
                groups.stale = True
            parts_s.append(chasing[ok])
            parts_v.append(v[ok])
    if not parts_s:
        return np.zeros(0, dtype=np.intp), np.zeros((0, 2))
    return np.concatenate(parts_s), np.concatenate(parts_v)


def _mark(table: EntityTable, slots: np.ndarray, arrived: np.ndarray, now_s: float) -> None:
    was = table.i_arrived[slots]
    table.i_arrived_at[slots[arrived & ~was]] = now_s
    table.i_arrived[slots] = arrived


def _chase(
    table: EntityTable, slots: np.ndarray, dt: float, speed: wander.Speed, away: bool, now_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Velocities towards (or away from) each target; (velocities, target still there)."""
    tslot = table.i_tslot[slots]
    ok = table.alive[tslot] & (table.id[tslot] == table.i_tid[slots])
    if not ok.all():
        lost = slots[~ok]
        table.i_mode[lost] = STAY
        table.i_action[lost] = ACTION_INDEX["idle"]
        table.i_arrived[lost] = True
        table.i_arrived_at[lost] = now_s
        for s in lost.tolist():
            table.activity[s] = "idle"
    diff = wander.rows(table.pos, tslot) - wander.rows(table.pos, slots)  # np.take: ~0.1x numpy's row gather
    d = np.hypot(diff[:, 0], diff[:, 1])
    want = table.i_dist[slots]
    unit = np.divide(diff, d[:, None], out=np.zeros_like(diff), where=d[:, None] > 0)
    if away:
        unit[d == 0] = (1.0, 0.0)  # on top of it: pick a way out
        arrived = d >= want
        vel = -unit * (speed if isinstance(speed, float) else speed[:, None])
    else:
        arrived = d <= want + 1e-6
        vel = unit * np.minimum(speed, np.maximum(d - want, 0.0) / dt)[:, None]
    vel[arrived] = 0.0
    _mark(table, slots[ok], arrived[ok], now_s)
    return vel, ok
