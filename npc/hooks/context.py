"""What a hook sees: `npc` (a Context) and the events of on_event. The designer's API:
docs/designers.md, "Hooks", describes exactly this."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from world.clock import GameTime

from npc.files.schema import MAX_LINE, Block, Definition
from npc.hooks.guard import NotAllowed
from npc.minds.builtin import Decision, fill
from npc.minds.perception import Perception, Seen

log = logging.getLogger("npcworld.npc")

# -- what a hook sees --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to the NPC (on_event)."""

    kind: str  # "arrived", "noticed", "lost", "schedule", "need_low"
    place: str | None = None  # arrived: where; schedule: the block's place
    who: Seen | None = None  # noticed / lost: the player
    need: str | None = None  # need_low: which need
    value: float | None = None  # need_low: its level
    activity: str | None = None  # schedule: the block's activity


T = TypeVar("T")


class _Perceived(Generic[T]):
    """A field of what the NPC perceives: the perception is made when a hook first reads one (then each
    is a plain attribute). A hook that reads none, like the bard's on_hear ignoring another NPC's line,
    costs no perception: 376 us for one NPC among 10,000 NPCs and 1,000 players, against 9 us a call."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, ctx: Context | None, owner: type | None = None) -> T:
        if ctx is None:
            return self  # type: ignore[return-value]  # the class's own attribute (help(), inspect)
        ctx._perceived()
        return ctx.__dict__[self.name]


class Context:
    """The `npc` argument of every hook. Read what it perceives; call one action method to decide."""

    time: _Perceived[GameTime] = _Perceived()
    position: _Perceived[tuple[float, float]] = _Perceived()
    place: _Perceived[str | None] = _Perceived()
    stats: _Perceived[dict[str, float]] = _Perceived()  # a copy
    players: _Perceived[tuple[Seen, ...]] = _Perceived()
    action: _Perceived[str] = _Perceived()
    activity: _Perceived[str] = _Perceived()
    arrived: _Perceived[bool] = _Perceived()
    block: _Perceived[Block | None] = _Perceived()

    def __init__(
        self,
        defn: Definition,
        eid: int,
        name: str,
        now_s: float,
        perceive: Callable[[], Perception],
        memory: dict,
        rng: random.Random,
        number: int,
        places: list[str],
        builtin: Callable[[], Decision],
        others: Callable[[tuple[float, float]], tuple[Seen, ...]],
    ):
        """perceive: () -> what it perceives now, called at most once (when a hook first reads it);
        others: its position -> the other NPCs within its notice radius, nearest first."""
        self._defn = defn
        self._perceive: Callable[[], Perception] | None = perceive
        self._builtin = builtin
        self._others = others
        self._seen_others: tuple[Seen, ...] | None = None
        self.intent: Decision | None = None  # what the hook asked for (the last call wins)
        self.id: int = eid
        self.file_id: str = defn.id
        self.number: int = number
        self.name: str = name
        self.now_s: float = now_s
        self.memory: dict = memory
        self.random: random.Random = rng
        self.persona = defn.persona
        self.allowed: frozenset[str] = defn.allowed
        self.places: tuple[str, ...] = tuple(places)
        # on_hear: True when the player spoke *to* this NPC (a talk: the hook may answer instead of the
        # dialogue model), False for a line it overheard (chat, or another NPC's line)
        self.spoken_to: bool = False

    def _perceived(self) -> None:
        """Set the perceived fields (once; a field a hook assigned first keeps its value)."""
        if self._perceive is None:
            return
        p, self._perceive = self._perceive(), None
        got = {
            "time": p.time,
            "position": (p.x, p.y),
            "place": p.place,
            "stats": dict(p.stats),
            "players": p.players,
            "action": p.intent.action,
            "activity": p.intent.activity,
            "arrived": p.intent.arrived,
            "block": p.block,
        }
        for k, v in got.items():
            self.__dict__.setdefault(k, v)

    # -- reading ----------------------------------------------------------------

    @property
    def nearest_player(self) -> Seen | None:
        return self.players[0] if self.players else None

    @property
    def npcs(self) -> tuple[Seen, ...]:
        """Other NPCs within the notice radius, nearest first (computed on first use)."""
        if self._seen_others is None:
            self._seen_others = self._others(self.position)
        return self._seen_others

    def suggestion(self) -> Decision:
        """What the built-in behaviour would do now (it does not do it; see `builtin()`)."""
        return self._builtin()

    def log(self, message: str) -> None:
        log.info("npc %s (%d): %s", self.file_id, self.id, message)

    # -- deciding: each emits one intent, checked against the allowed list ------------------

    def _emit(self, action: str, **kw) -> None:
        if action not in self.allowed:
            raise NotAllowed(
                f"action {action!r} is not allowed for {self.file_id} (allowed: {', '.join(sorted(self.allowed))})"
            )
        place = kw.get("place")
        if place is not None and place not in self.places:
            raise ValueError(f"unknown place {place!r}; places are {', '.join(self.places)}")
        self.intent = Decision(action, reason="hook", **kw)

    def _target(self, who) -> int:
        if isinstance(who, Seen):
            return who.id
        if isinstance(who, int) and not isinstance(who, bool):
            return who
        raise TypeError(f"expected a player or NPC (as seen in npc.players) or an entity id, got {who!r}")

    def _line(self, text) -> str:
        if not isinstance(text, str) or not text.strip():
            raise TypeError(f"expected a non-empty line of text, got {text!r}")
        return " ".join(text.split())[: min(self.persona.max_reply, MAX_LINE)]

    def idle(self, activity: str | None = None, at: str | None = None) -> None:
        self._emit("idle", place=at, activity=activity)

    def wander(self) -> None:
        self._emit("wander")

    def go_to(self, place: str, activity: str | None = None) -> None:
        self._emit("go_to", place=place, activity=activity)

    def patrol(self, place: str) -> None:
        """Walk to the next stop of a patrol (labelled patrolling)."""
        self._emit("patrol", place=place, activity="patrolling")

    def work(self, at: str | None = None, activity: str | None = None) -> None:
        self._emit("work", place=at, activity=activity)

    def rest(self, at: str | None = None, activity: str | None = None) -> None:
        self._emit("rest", place=at, activity=activity)

    def follow(self, who, distance: float | None = None) -> None:
        self._emit(
            "follow",
            target=self._target(who),
            distance=float(distance if distance is not None else self._defn.params["follow"]["distance"]),
        )

    def approach(self, who, distance: float | None = None) -> None:
        self._emit(
            "approach",
            target=self._target(who),
            distance=float(distance if distance is not None else self._defn.params["approach"]["distance"]),
        )

    def flee(self, who, distance: float | None = None) -> None:
        self._emit(
            "flee",
            target=self._target(who),
            distance=float(distance if distance is not None else self._defn.params["flee"]["safe"]),
        )

    def talk(self, text: str, to=None) -> None:
        """Stop and say a line (to someone, or to whoever hears it)."""
        self._emit(
            "talk", target=self._target(to) if to is not None else None, say=self._line(text), activity="talking"
        )

    def give_item(self, to, item: str) -> None:
        """Give `item` (any text, up to 64 characters; it need not be in [actions.give_item] items) to `to`,
        a player or NPC as seen in npc.players / npc.npcs or the speaker of on_hear (or an entity id):
        announced with the file's give_item line; a player holds the item (an NPC receiver drops it)."""
        who = to.name if isinstance(to, Seen) else str(to)
        line = fill(self._defn.params["give_item"]["line"], MAX_LINE, player=who, item=str(item), name=self.name)
        self._emit("give_item", target=self._target(to), say=self._line(line), activity="giving", item=str(item)[:64])

    def builtin(self) -> None:
        """Do what the built-in behaviour would do now."""
        d = self._builtin()
        if d.action not in self.allowed:
            raise NotAllowed(f"action {d.action!r} is not allowed")
        self.intent = d
