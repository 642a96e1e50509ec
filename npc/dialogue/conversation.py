"""A conversation's state and the service's configuration (service.py drives them).

One Conversation per player line being answered: it lives from the talk until
its `say_end` (`ended`), in the service's `active` table. Times are clock
seconds (the service's clock) unless named `_s` of the world (world seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class DialogueConfig:
    first_token_s: float = 1.5  # default first-token budget (an NPC file may set its own)
    wait_timeout_s: float = 90.0  # no first token by then (e.g. the model still loading): a fallback line
    reply_timeout_s: float = 30.0  # from the first token: a reply not finished by then is cut
    max_new_tokens: int = 48  # per reply (the runner also bounds it)
    temperature: float = 0.7
    max_conversations: int = 64  # at once, over all NPCs
    talk_rate: float = 0.5  # talks a player may start per second...
    talk_burst: float = 3.0  # ...with this burst
    leave_distance: float = 320.0  # world units: beyond this the conversation is cancelled
    audience_distance: float = 320.0  # world units: players this close to the NPC see its line
    act: bool = True  # run the constrained action step after a reply
    # Replies decoded per line, as rows of one batch (the best that passes check.py is shown). 3:
    # bench/persona.py measured breaks on hostile lines falling with more candidates, each row
    # costing less than a stream of its own (one prefill, shared decode steps).
    candidates: int = 3
    calibrate: bool = True  # the action step scores options against their prior (runner: "prior")
    scorer: str = "checker"  # which candidate that passes is shown: check.SCORERS (bench/persona.py compares)


@dataclass
class Conversation:
    cid: int
    npc: int  # entity ids
    player: int
    player_name: str
    npc_key: str  # memory keys
    player_key: str
    line: str  # what the player said
    started: float  # clock seconds
    budget_s: float
    audience: list[int]  # player ids that see the NPC's line
    recall: Any = None  # concurrent Future[Recall]
    stream: Any = None  # the reply's Stream
    sent: int = 0  # characters of the line sent to clients
    opened: bool = False  # say_start sent
    thinking: bool = False  # the thinking line was shown
    first_at: float | None = None  # clock seconds when the first piece was seen
    ended: bool = False
    texts: dict[int, str] = field(default_factory=dict)  # candidate -> what the model said (cleaned per piece)
    logprobs: dict[int, float] = field(default_factory=dict)  # candidate -> its mean log-prob per token (nats)
    chosen: int | None = None  # the candidate shown; None: none passed (a voice or fallback line was said)
    problems: list = field(default_factory=list)  # check.Problem lists, one per candidate
    reply: str = ""  # the line said (say_end's text)
    reason: str = ""  # say_end's reason
    final: list[str] = field(default_factory=list)  # the candidates as checked (cleaned, whole sentences)
    trimmed: list[int] = field(default_factory=list)  # candidates cut back to their last whole sentence
    started_s: float = 0.0  # world seconds at the talk (the hold's bound counts from it)
    returning: bool = False  # the NPC had met this player before
    check: Any = None  # check.World of the prompt
    by: str = "model"  # who answers: "model", or "hook" (on_hear answered)
    then: Any = None  # on_hear's action (a Decision) to take after the reply, in place of the model's choice
    sink: Callable[[dict | None], None] | None = None  # an admin talk's listener: every event, then None
    virtual: bool = False  # an admin's talk as a named player with no character (POST /npcs/<id>/talk)


class TalkRefused(Exception):
    """A talk the service will not start: code and message for the player's error."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
