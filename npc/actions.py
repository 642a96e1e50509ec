"""The shared action vocabulary: every action an NPC may take, with its parameters.

This is the single list (the world executes the same names, world/intents.py):
an NPC file allows a subset (`[actions] allowed = [...]`), may tune the
parameters below per action (`[actions.<name>]`), and nothing outside its
allowed list can ever be done by it: not by the built-in behaviour, not by a
hook, not (in later issues) by a model.

Distances are world units (a tile is 32), times are real seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from world.intents import ACTIONS

WHO = ("players", "suspicious")


@dataclass(frozen=True)
class Param:
    kind: str  # "number", "int", "bool", "text", "texts", "places", "choice"
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()


@dataclass(frozen=True)
class Action:
    name: str
    target: str  # "none", "place", "entity"
    doc: str
    params: dict[str, Param] = field(default_factory=dict)


def _n(default, doc, low=0.0, high=None) -> Param:
    return Param("number", default, doc, low, high)


VOCABULARY: dict[str, Action] = {
    a.name: a
    for a in (
        Action("idle", "none", "stand still (at `at` when a schedule block or need gives a place)."),
        Action("wander", "none", "walk from one point of interest to another, pausing at each."),
        Action("go_to", "place", "walk to a point of interest and stay there."),
        Action(
            "work",
            "place",
            'stay at a place (walking there first), busy with an activity (`activity`, e.g. "forging").',
            {},
        ),
        Action("rest", "place", "like work, for resting; needs may recover faster while resting (`during`)."),
        Action(
            "patrol",
            "place",
            "walk a route of places in turn, pausing at each.",
            {
                "route": Param(
                    "places", [], "the places to visit in order (a schedule block's `at` list overrides it)"
                ),
                "pause": _n(3.0, "seconds to stay at each stop", 0.0, 3600.0),
            },
        ),
        Action(
            "follow",
            "entity",
            "keep close to a player.",
            {
                "who": Param(
                    "choice",
                    "suspicious",
                    'whom to follow: "players" (anyone near) or '
                    '"suspicious" (a player who lingered near this NPC for `linger` seconds)',
                    choices=WHO,
                ),
                "distance": _n(48.0, "stop this close (world units)", 16.0, 2048.0),
                "linger": _n(3.0, "seconds a player must stay within `notice` to be suspicious", 0.0, 3600.0),
                "give_up": _n(320.0, "stop following beyond this distance (world units)", 32.0, 4096.0),
            },
        ),
        Action(
            "approach",
            "entity",
            "walk up to a player once, stop close to them.",
            {
                "distance": _n(40.0, "stop this close (world units)", 16.0, 2048.0),
                "cooldown": _n(60.0, "seconds before approaching the same player again", 0.0, 86400.0),
            },
        ),
        Action(
            "flee",
            "entity",
            "run away from a player who comes too close.",
            {
                "who": Param("choice", "players", 'whom to flee: "players" or "suspicious"', choices=WHO),
                "distance": _n(96.0, "flee when one comes this close (world units)", 16.0, 2048.0),
                "safe": _n(256.0, "stop fleeing this far away (world units)", 32.0, 4096.0),
            },
        ),
        Action(
            "talk",
            "entity",
            "stop and say a line to a player: the persona's greeting when one comes near, "
            "a fallback line when one speaks nearby.",
            {
                "distance": _n(80.0, "greet players who come this close (world units)", 16.0, 2048.0),
                "cooldown": _n(60.0, "seconds before greeting the same player again", 0.0, 86400.0),
                "duration": _n(3.0, "seconds to stand still after speaking", 0.0, 60.0),
                # 90 s by default: as long as the server waits for a model's first word (a model still loading
                # then ends the conversation with a fallback line, not with the NPC walking off).
                "hold": _n(
                    90.0,
                    "seconds a conversation with a player may keep the NPC standing, facing them, past its "
                    "schedule; then it says its persona.leave line and goes",
                    1.0,
                    600.0,
                ),
                "reply": Param("bool", True, "answer a player who speaks within `distance` with a fallback line"),
            },
        ),
        Action(
            "give_item",
            "entity",
            "give an item to a player who comes near (announced in chat).",
            {
                "items": Param("texts", [], "the items to give, in turn (required when give_item is allowed)"),
                "line": Param(
                    "text",
                    "Here, {player}: a {item}, for you.",
                    "what the NPC says when giving; {player} and {item} are replaced",
                ),
                "distance": _n(64.0, "give to players this close (world units)", 16.0, 2048.0),
                "cooldown": _n(120.0, "seconds before giving to the same player again", 0.0, 86400.0),
                "duration": _n(3.0, "seconds to stand still after giving", 0.0, 60.0),
            },
        ),
    )
}

assert set(VOCABULARY) == set(ACTIONS), "the world and npc/ must share one vocabulary"

# Actions a schedule block (`do`) or a need's relief may name: they need no entity target.
PLACE_ACTIONS = ("idle", "wander", "go_to", "work", "rest", "patrol")
# Activity labels the built-in behaviour and the hook API use besides the action names
# (talk -> "talking", give_item -> "giving", follow -> "watching"/"following", approach -> "curious").
BUILTIN_ACTIVITIES = ("talking", "giving", "watching", "following", "curious", "patrolling")
# What to do when nothing else applies; every NPC must allow one of them.
BASELINE = ("idle", "wander")


def defaults(name: str) -> dict[str, Any]:
    return {
        k: (list(p.default) if isinstance(p.default, list) else p.default) for k, p in VOCABULARY[name].params.items()
    }
