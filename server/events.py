"""What a room (server/game.py) says to its players: typed outbound events, per player, into an outbox.

The room never touches a socket. It hands each event to an `Outbound` with the id of the player it
is for; the gateway's implementation (server/gateway.py `Seats`) encodes it for the connection that
holds that player's seat, and decides what a `Replaced` means on the wire (close 4003). A test or a
bench drives a room with a `Mailbox`, which keeps what it was given.

Invariants:
- a room emits only to players whose connection is open (never to a character in its grace period);
- during `join`, every event is for the joining player, except a `Replaced` for the connection it
  takes the character from, which comes first; the joining player's `Welcome` is always the last;
- updates are not events: one per observer per tick, they go through `Outbound.update` unwrapped
  (the hot path: no object per update).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Union

from world.snapshot import View

from world import protocol


@dataclass(frozen=True, slots=True)
class Welcome:
    """The answer to a hello (docs/protocol.md, "welcome"). Units: world units, ticks, seconds."""

    v: int  # the protocol version of this session (the hello's)
    id: int  # the player's entity id
    name: str
    token: str  # the session token that resumes this character
    resumed: bool
    grace: float  # seconds the character stays after its connection drops
    items: tuple[str, ...]
    tick: int
    tick_rate: int  # ticks per second
    world: tuple[int, int]  # map size, world units
    cell: int  # interest cell size, world units
    view: int  # cells seen around one's own
    quant: float  # world units per quantisation step of an update's positions
    speed: float  # a player's speed, world units per second
    radius: float  # an entity's collision radius, world units


@dataclass(frozen=True, slots=True)
class Items:
    """What the player holds now, after an NPC gave it `got`."""

    items: tuple[str, ...]
    got: str
    giver: int  # the NPC's entity id (the wire's "from")


@dataclass(frozen=True, slots=True)
class Line:
    """A dialogue message as npc/dialogue builds it (say_start, say_delta, say_end, ...): already
    the wire's map, passed on as it is."""

    msg: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Refused:
    """A command the room would not carry out (a refused talk): an error message to the player."""

    error: protocol.ProtocolError


@dataclass(frozen=True, slots=True)
class Replaced:
    """A newer join resumed this character: its current connection is over."""


Event = Union[Welcome, Items, Line, Refused, Replaced]


class Outbound(Protocol):
    """Where a room's events go, per player."""

    def event(self, player: int, event: Event) -> None: ...

    def update(self, player: int, tick: int, ack: int, view: View) -> None: ...


def encode(event: Event) -> bytes:
    """An event as the wire's bytes (a `Replaced` has none: it is a close, which the gateway makes)."""
    if type(event) is Welcome:
        w = event
        return protocol.encode(
            {
                "t": "welcome",
                "v": w.v,
                "id": w.id,
                "name": w.name,
                "token": w.token,
                "resumed": w.resumed,
                "grace": w.grace,
                "items": list(w.items),
                "tick": w.tick,
                "tick_rate": w.tick_rate,
                "map": "/map.json",
                "world": list(w.world),
                "cell": w.cell,
                "view": w.view,
                "quant": w.quant,
                "speed": w.speed,
                "radius": w.radius,
            }
        )
    if type(event) is Line:
        return protocol.encode(event.msg)
    if type(event) is Items:
        return protocol.encode({"t": "items", "items": list(event.items), "got": event.got, "from": event.giver})
    if type(event) is Refused:
        return protocol.encode_error(event.error)
    raise TypeError(f"{type(event).__name__} has no bytes of its own")


class Mailbox:
    """An `Outbound` that keeps what it is given: every event in order, and each player's latest
    update (an older one is replaced, as a slow connection's outbox coalesces them). For tests,
    benches and tools that drive a room without sockets. Memory: the events plus one view per player."""

    def __init__(self) -> None:
        self.events: list[tuple[int, Event]] = []
        self.updates: dict[int, tuple[int, int, View]] = {}  # player -> (tick, ack, view)

    def event(self, player: int, event: Event) -> None:
        self.events.append((player, event))

    def update(self, player: int, tick: int, ack: int, view: View) -> None:
        self.updates[player] = (tick, ack, view)

    def of(self, player: int) -> list[Event]:
        """The events for one player, in order."""
        return [e for p, e in self.events if p == player]
