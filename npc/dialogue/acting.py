"""The action step after a reply: the NPC's allowed options scored by the model, one applied.

After a complete reply (service.py), `ask` opens one "choose" stream that scores the
options of choice.py (what the NPC's file allows) after the exchange, and, with
`calibrate`, after an empty one (the prior: "Go to the market." is likely after any
line, so only what this exchange adds counts; bench/persona.py measured both).
`apply`, every tick, takes the answers that have ended: "no action" unless another
option is clearly better (choice.pick), and the chosen Decision becomes the NPC's
intent. A malformed or failed answer is never applied: the NPC carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import prompt as prompts
from .choice import Option, options, pick
from .conversation import Conversation


@dataclass
class Choice:
    npc: int
    player: int
    stream: Any
    options: list[Option]
    cid: int = 0  # the conversation it follows
    sink: Callable[[dict | None], None] | None = None  # an admin talk's listener (Conversation.sink)


def ask(pool, cast, world, m, c: Conversation, reply: str, calibrate: bool) -> Choice | None:
    """The choose stream for the exchange (c.line, reply); None when there is nothing to choose."""
    intent = world.intent(c.npc)
    following = intent.action == "follow" and intent.target == c.player
    opts = options(m.defn, c.player, c.player_name, list(cast.places), following)
    if len(opts) < 2:
        return None
    name = world.name_of(c.npc)
    msgs = prompts.choice_messages(name, m.defn.persona, c.player_name, c.line, reply)
    prior = prompts.choice_messages(name, m.defn.persona, c.player_name, "", "")
    stream = pool.open_stream(
        {"kind": "choose", "messages": msgs, "options": [o.label for o in opts], "prior": prior if calibrate else None}
    )
    return Choice(c.npc, c.player, stream, opts, c.cid, c.sink)


def apply(
    choices: list[Choice],
    cast,
    world,
    observer: Callable[[str, dict], None] | None,
    tell: Callable[[Choice, dict | None], None],
) -> tuple[list[Choice], int]:
    """Apply the choices whose stream ended: (those still running, how many acted). `tell` hears,
    per ended choice, the action event (if any) and then None (the end of that talk's events)."""
    keep, acted = [], 0
    for ch in choices:
        if ch.stream.end is None:
            keep.append(ch)
            continue
        pieces = ch.stream.take()
        m = cast.minds.get(ch.npc)
        if ch.stream.end != "ok" or not pieces or m is None or not isinstance(pieces[-1], dict):
            tell(ch, None)
            continue
        scores = pieces[-1].get("scores")
        if not isinstance(scores, list) or len(scores) != len(ch.options):
            tell(ch, None)
            continue  # a malformed answer is never applied
        chosen = pick(scores, [o.margin for o in ch.options])
        if observer is not None:
            observer(
                "choice",
                {
                    "cid": ch.cid,
                    "npc": ch.npc,
                    "options": [o.label for o in ch.options],
                    "scores": scores,
                    "chosen": chosen,
                },
            )
        decision = ch.options[chosen].decision
        event: dict[str, Any] = {
            "event": "action",
            "by": "model",
            "chosen": ch.options[chosen].label,
            "options": [o.label for o in ch.options],
            "scores": scores,
            "action": decision.action if decision is not None else None,
            "applied": False,
        }
        if decision is not None and ch.sink is not None and decision.target == ch.player:
            event["why"] = "a talk from the admin API has no character to follow or give to"
        elif decision is not None and (ch.sink is not None or world.alive(ch.player)):
            event["applied"] = cast.act(m, decision)
            cast.hold(ch.npc, None)  # the action it chose is what it does now
            acted += 1
        tell(ch, event)
        tell(ch, None)
    return keep, acted
