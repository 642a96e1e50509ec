"""What an NPC knows when it decides: its perception of the world, and its own
built-in state. Both are plain data, so the built-in behaviour is a pure
function of them (npc/minds/builtin.py) and a later policy can learn from them.

Distances are world units, times are world seconds (`now_s` is the world's
elapsed simulated time, never the wall clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from world.clock import GameTime
from world.intents import Intent

from npc.files.schema import Block


@dataclass(frozen=True, slots=True)
class Seen:
    """Another entity the NPC perceives."""

    id: int
    name: str
    kind: str  # "player" or "npc"
    distance: float  # world units from the NPC
    x: float
    y: float
    near_s: float = 0.0  # seconds it has stayed within the NPC's `notice` radius (players)


@dataclass(frozen=True)
class Perception:
    id: int  # the NPC's entity id
    name: str  # its display name
    now_s: float  # world seconds
    time: GameTime
    x: float
    y: float
    place: str | None  # the point of interest it is at (within 3 tiles), if any
    stats: dict[str, float]
    intent: Intent  # what it is doing now
    block: Block | None  # its schedule block now
    players: tuple[Seen, ...]  # players within `notice`, nearest first
    target: Seen | None = None  # the entity its intent is about (follow, flee...), at any distance


@dataclass
class State:
    """The built-in behaviour's memory of one NPC (kept across reloads of its file)."""

    noticed: dict[int, float] = field(default_factory=dict)  # player id -> world s since within notice
    greeted: dict[int, float] = field(default_factory=dict)  # player id -> world s of the last greeting
    given: dict[int, float] = field(default_factory=dict)  # player id -> world s of the last gift
    approached: dict[int, float] = field(default_factory=dict)  # player id -> world s of the last approach
    gifts: int = 0  # items given so far (which item is next)
    replies: int = 0  # fallback lines said so far (which line is next)
    patrol_index: int = 0  # the current stop of a patrol route
    tending: frozenset[str] = frozenset()  # needs it is tending (below low, not yet back to full)
    block_key: tuple | None = None  # the schedule block at the last think (for the "schedule" event)
    arrived: bool = False  # the intent's arrived flag at the last think (for "arrived")
    low: frozenset[str] = frozenset()  # needs below `low` at the last think (for "need_low")
