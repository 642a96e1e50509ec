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

from dataclasses import dataclass

import numpy as np

from npc.files.schema import Block, Definition

NEVER = float("-inf")


@dataclass(frozen=True, slots=True)
class Sight:
    defn: Definition
    now_s: float                 # world seconds
    minute: float                # game minutes since midnight, 0..1440
    day: int                     # game day
    block: Block | None          # the file's schedule block now (the same for every row)
    # -- one row per due NPC (n) --
    eid: np.ndarray              # (n,) int64 entity id
    pos: np.ndarray              # (n, 2) float64
    at: np.ndarray               # (n,) int32 the place it is at (within World.place_radius), -1
    stats: np.ndarray            # (n, len(defn.needs)) float64 need levels 0..100, in the file's order
    tending: np.ndarray          # (n, len(defn.needs)) bool: being tended now (below low, not yet back to full)
    patrol: np.ndarray           # (n,) int32 the patrol stop now (index into block.route), after any advance
    sched_place: np.ndarray      # (n,) int32 the schedule's place now: the patrol stop or the block's `at`, -1
    gifts: np.ndarray            # (n,) int64 items given so far (which item is next)
    # the current intent (World.columns)
    action: np.ndarray           # (n,) int8 index into ACTIONS
    place: np.ndarray            # (n,) int32 its place (GOTO), -1
    target: np.ndarray           # (n,) int64 its entity (follow, approach, flee), -1
    arrived: np.ndarray          # (n,) bool
    since: np.ndarray            # (n,) float64 world s when it was set
    arrived_at: np.ndarray       # (n,) float64 world s when it last arrived, nan
    activity: np.ndarray         # (n,) object
    # the intent's target, when it is alive (at any distance)
    t_alive: np.ndarray          # (n,) bool
    t_dist: np.ndarray           # (n,) float64 distance to it, nan when not alive
    t_near_s: np.ndarray         # (n,) float64 seconds it has been within notice (0 when not)
    # players within `notice`, as pairs sorted by (row, distance): row i's are [start[i], start[i + 1])
    start: np.ndarray            # (n + 1,) int64
    p_row: np.ndarray            # (M,) int64
    p_id: np.ndarray             # (M,) int64 entity id
    p_dist: np.ndarray           # (M,) float64
    p_pos: np.ndarray            # (M, 2) float64
    p_near_s: np.ndarray         # (M,) float64 seconds within notice (suspicious after follow.linger)
    p_greeted: np.ndarray        # (M,) float64 world s this NPC last greeted this player, -inf
    p_given: np.ndarray          # (M,) float64 world s of its last gift to this player, -inf
    p_approached: np.ndarray     # (M,) float64 world s it last approached this player, -inf

    def __len__(self) -> int:
        return len(self.eid)

    @property
    def seen(self) -> np.ndarray:
        """(n,) players within notice per row."""
        return np.diff(self.start)
