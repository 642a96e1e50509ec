"""Scripted NPC behaviour: walk from one point of interest to another, pause, repeat.

This is what generic wanderers (`--npcs`) do, and any NPC whose intent is `wander`.
`steer(table, slots, nav, rng, dt, speed, idle_s)` is a pure function of the
NPCs' state and dt (plus the seeded rng): it advances their wander state and
returns the velocity each wants this tick (world units per second, length at
most `speed`). Movement and collision are applied by the caller. `speed` is
one number for all of them, or one per slot (NPC files with their own speeds:
one vectorised pass for every speed, not one per speed).
`travel` walks NPCs to one chosen POI and keeps them there (the go_to intent,
world/intents.py) with the same legs, without picking the next POI.

Cost (10,000 wanderers, bench/world.py --compare main --interleave --same, CPU time, load 10-11):
World.step 5.84 -> 3.48 ms (0.60x), bit for bit, from (n, 2) rows gathered with np.take and
scattered as 16-byte words (`rows`, `put_rows`), the flow field read by one flat gather, every
row steered as a traveller when most travel (no gather of the travellers, no scatter back),
wanderers that hold one run of slots read and written as slices (`run_of`), and movement's sweep
on contiguous columns (world/movement.py). Left: `move` ~1.3 ms, the travellers' arithmetic and
tile_of (~0.25 ms) ~0.8 ms.
np.hypot in `_towards` (~0.2 ms here) is kept: sqrt(x*x + y*y) is not always the same float.

Per NPC (columns of the entity table):
  w_phase   IDLE (pausing), TRAVEL (following the POI's flow field),
            APPROACH (straight to the target, once inside the POI's tile)
  w_poi     index into nav.names of the POI being walked to (-1: none yet)
  w_target  the point near that POI to stop at (world units)
  w_timer   seconds left: of the pause when IDLE, else of the leg; a leg that
            runs out of time (stuck, unreachable) ends in a pause and a new pick
"""

from __future__ import annotations

import numpy as np

from .entities import EntityTable
from .navigation import Navigation

IDLE, TRAVEL, APPROACH = 0, 1, 2
LEG_SLACK_S = 5.0  # seconds allowed on top of twice the walking time of a leg

Speed = float | np.ndarray  # world units/s: one for all the slots given, or (M,) one per slot


def _at(speed: Speed, idx: np.ndarray) -> Speed:
    """The speeds of the rows idx of the slots given."""
    return speed if isinstance(speed, float) else speed[idx]


def rows(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """a[idx] for an (n, 2) float64 array: np.take along axis 0 costs ~0.1x of numpy's fancy index
    of (n, 2) rows (18 against 213 us at 10,000 rows), the same values."""
    return np.take(a, idx, axis=0)


def put_rows(a: np.ndarray, idx: np.ndarray, v: np.ndarray) -> None:
    """a[idx] = v for an (n, 2) C-contiguous float64 `a`, each row written as one 16-byte word:
    numpy's scatter of (n, 2) rows costs ~6x as much (260 against ~40 us at 10,000 rows)."""
    a.view(np.complex128)[:, 0][idx] = np.ascontiguousarray(v, np.float64).view(np.complex128)[:, 0]


def add_columns(table: EntityTable) -> None:
    table.column("w_phase", np.int8, fill=IDLE)
    table.column("w_poi", np.int32, fill=-1)
    table.column("w_timer", np.float64, fill=0.0)
    table.column("w_target", np.float64, 2)


def start(table: EntityTable, slot: int, poi: int, pause_s: float) -> None:
    """A new NPC pauses for pause_s seconds at (or as if at) poi, then sets off."""
    table.w_phase[slot] = IDLE
    table.w_poi[slot] = poi
    table.w_timer[slot] = pause_s


def steer(
    table: EntityTable,
    slots: np.ndarray,
    nav: Navigation,
    rng: np.random.Generator,
    dt: float,
    speed: Speed,
    idle_s: tuple[float, float],
) -> np.ndarray:
    """Advance the wander state of the NPCs in `slots`; return their velocities (M,2)."""
    m = len(slots)
    vel = np.zeros((m, 2))
    n_poi = len(nav.names)
    if m == 0 or dt <= 0 or n_poi == 0:
        return vel
    # NPCs spawned together hold one run of slots (the usual case): their columns are then sliced
    # and written back whole, not gathered and scattered through the slots (the same values)
    run = run_of(slots)
    at = slots if run is None else run
    pos = rows(table.pos, slots) if run is None else table.pos[run].copy()
    phase = table.w_phase[at].copy()
    poi = table.w_poi[at].copy()
    timer = table.w_timer[at] - dt
    tile = nav.tile_of(pos)

    # Pause over: pick another POI and a spot near it.
    go = np.flatnonzero((phase == IDLE) & (timer <= 0))
    if go.size:
        cur = poi[go]
        if n_poi > 1:
            step = rng.integers(1, n_poi, go.size)
            first = rng.integers(0, n_poi, go.size)
            new = np.where(cur >= 0, (cur + step) % n_poi, first)
        else:
            new = np.zeros(go.size, dtype=np.int64)
        k = (rng.random(go.size) * nav.n_spots[new]).astype(np.int64)
        table.w_target[slots[go]] = nav.random_points(nav.spots[new, k], rng)
        d_tiles = nav.dist[new, tile[go]].astype(np.float64)
        walk_s = np.where(d_tiles >= 0, (d_tiles + 2) * nav.tile / _at(speed, go), 0.0)
        poi[go] = new
        phase[go] = TRAVEL
        timer[go] = 2 * walk_s + LEG_SLACK_S

    arrived, late = _legs(table, slots, nav, pos, tile, phase, poi, timer, vel, speed, dt)
    timer[arrived] = rng.uniform(idle_s[0], idle_s[1], arrived.size)

    # Legs out of time (blocked, unreachable): stop, pause, pick again.
    if late.size:
        phase[late] = IDLE
        vel[late] = 0.0
        timer[late] = rng.uniform(idle_s[0], idle_s[1], late.size)

    table.w_phase[at] = phase
    table.w_poi[at] = poi
    table.w_timer[at] = timer
    return vel


def run_of(slots: np.ndarray) -> slice | None:
    """slots (ascending) as a slice when they are one run of consecutive slots, else None."""
    lo, hi = int(slots[0]), int(slots[-1]) + 1
    return slice(lo, hi) if hi - lo == len(slots) else None


def set_leg(
    table: EntityTable, slots: np.ndarray, poi: np.ndarray, nav: Navigation, rng: np.random.Generator, speed: Speed
) -> None:
    """Send the NPCs in `slots` to a random spot near each one's POI (go_to)."""
    if len(slots) == 0:
        return
    k = (rng.random(len(slots)) * nav.n_spots[poi]).astype(np.int64)
    table.w_target[slots] = nav.random_points(nav.spots[poi, k], rng)
    d_tiles = nav.dist[poi, nav.tile_of(table.pos[slots])].astype(np.float64)
    table.w_timer[slots] = 2 * np.where(d_tiles >= 0, (d_tiles + 2) * nav.tile / speed, 0.0) + LEG_SLACK_S
    table.w_poi[slots] = poi
    table.w_phase[slots] = TRAVEL


def travel(
    table: EntityTable, slots: np.ndarray, nav: Navigation, rng: np.random.Generator, dt: float, speed: Speed
) -> tuple[np.ndarray, np.ndarray]:
    """Walk the NPCs in `slots` to their w_poi/w_target and stay there (go_to).

    Returns (velocities (M,2), whether each is at its spot (M,)). An NPC at
    its spot stays IDLE there; a leg out of time (pushed off course, stuck)
    is retried towards a new spot near the same POI.
    """
    m = len(slots)
    vel = np.zeros((m, 2))
    if m == 0 or dt <= 0 or len(nav.names) == 0:
        return vel, table.w_phase[slots] == IDLE
    pos = rows(table.pos, slots)
    phase = table.w_phase[slots]
    poi = table.w_poi[slots]
    timer = table.w_timer[slots] - dt
    _, late = _legs(table, slots, nav, pos, nav.tile_of(pos), phase, poi, timer, vel, speed, dt)
    table.w_phase[slots] = phase
    table.w_timer[slots] = timer
    if late.size:
        vel[late] = 0.0
        set_leg(table, slots[late], poi[late], nav, rng, _at(speed, late))
    return vel, table.w_phase[slots] == IDLE


def _legs(
    table: EntityTable,
    slots: np.ndarray,
    nav: Navigation,
    pos: np.ndarray,
    tile: np.ndarray,
    phase: np.ndarray,
    poi: np.ndarray,
    timer: np.ndarray,
    vel: np.ndarray,
    speed: Speed,
    dt: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advance TRAVEL/APPROACH legs in place (phase, vel); return (arrived, late) indices."""
    # Travellers that reached their POI's tile walk straight to the target.
    phase[(phase == TRAVEL) & (tile == nav.poi_tile[np.maximum(poi, 0)])] = APPROACH

    # TRAVEL: head for the centre of the next tile on the flow field, not past it. Usually every
    # one of them travels (10,000 wanderers: all but a few): then no gather and no scatter at all.
    # When most travel, every row is steered so (each row's arithmetic is its own) and the others'
    # velocities are set after: cheaper than gathering the travellers and scattering theirs back.
    travel = phase == TRAVEL
    n_tr = int(np.count_nonzero(travel))
    if 2 * n_tr >= len(phase):
        vel[:] = _towards(nav.centre(nav.next_tiles(poi, tile)) - pos, speed, dt)
        if n_tr < len(phase):
            put_rows(vel, np.flatnonzero(~travel), np.zeros((len(phase) - n_tr, 2)))
    elif n_tr:
        tr = np.flatnonzero(travel)
        aim = nav.centre(nav.next_tiles(poi[tr], tile[tr]))
        put_rows(vel, tr, _towards(aim - rows(pos, tr), _at(speed, tr), dt))

    # APPROACH: straight to the target; arriving this tick ends the leg.
    arrived = np.zeros(0, dtype=np.int64)
    ap = np.flatnonzero(phase == APPROACH)
    if ap.size:
        diff = rows(table.w_target, slots[ap]) - rows(pos, ap)
        spd = _at(speed, ap)
        put_rows(vel, ap, _towards(diff, spd, dt))
        arrived = ap[np.hypot(diff[:, 0], diff[:, 1]) <= spd * dt]
        phase[arrived] = IDLE
    late = np.flatnonzero((phase != IDLE) & (timer <= 0))
    return arrived, late


def _towards(diff: np.ndarray, speed: Speed, dt: float) -> np.ndarray:
    """Velocity along diff at `speed`, slowed so as not to pass diff's end within dt."""
    dist = np.hypot(diff[:, 0], diff[:, 1])
    v = np.minimum(speed, dist / dt)
    scale = np.divide(v, dist, out=np.zeros_like(dist), where=dist > 0)
    vel: np.ndarray = diff * scale[:, None]
    return vel
