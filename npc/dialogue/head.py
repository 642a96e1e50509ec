"""The start that every prompt of one NPC shares (its head), so that a dialogue
worker keeps its keys and values once per NPC (kvcache.HeadCache) and prefills
only the rest of a prompt: a player's first line to an NPC someone has talked
to before costs the tail, not the whole prompt.

Found, not declared: the NPC's prompt is built for two players who share
nothing (names, lines, moments; no memory, no earlier turns), and the head is
where the two first differ. So it follows whatever prompt.py puts first, and a
change of the NPC file or of the world's places changes it (the worker then
drops the old head: kvcache.HeadCache).

A reply request carries it as {"key": the NPC's key, "messages": k, "chars": c}:
the first k messages whole, then the first c characters of message k. The
worker tokenizes that much, cut back to a word (`at_word`), and keeps the
tokens it shares with the prompt: the same tokens for every prompt of the NPC.

Warm heads (`Warmer`): when an NPC file loads (at start, and on hot reload) the
service sends each talking NPC's head as a prefill-only request ("kind":
"head"), so the worker holds it before the first player talks: that player's
first token then costs only the tail of the prompt.
"""

from __future__ import annotations

from typing import Any, Callable

from . import prompt as prompts

# Two players who share nothing: no clean name, line or place holds these (text.py removes
# control characters), so the two prompts first differ where the first word about the player is.
_A, _B = "\x00", "\x01"
_SCENES = (prompts.Scene(0, "00:00", _A, _A, [_A]), prompts.Scene(1, "13:00", _B, _B, [_B]))


def head(key: str, name: str, persona, max_reply: int, setting: prompts.Setting | None = None) -> dict:
    """The head of NPC `key`'s prompts (see the module's docstring)."""
    return _found(key, *_prompts(name, persona, max_reply, setting))


def warm_request(key: str, name: str, persona, max_reply: int, setting: prompts.Setting | None = None) -> dict:
    """The prefill-only request that makes the worker hold NPC `key`'s head (runner: kind "head"): a prompt
    of the NPC for a player who says nothing (only its head is computed) and the head's spec."""
    a, b = _prompts(name, persona, max_reply, setting)
    return {"kind": "head", "messages": a, "head": _found(key, a, b)}


def _prompts(name: str, persona, max_reply: int, setting: prompts.Setting | None) -> list[list[dict]]:
    return [
        prompts.messages(name, persona, scene, who, [], [], who, max_reply, setting)
        for scene, who in zip(_SCENES, (_A, _B))
    ]


def _found(key: str, a: list[dict], b: list[dict]) -> dict:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    chars = 0
    if k < min(len(a), len(b)) and a[k]["role"] == b[k]["role"]:
        x, y = a[k]["content"], b[k]["content"]
        while chars < min(len(x), len(y)) and x[chars] == y[chars]:
            chars += 1
    return {"key": key, "messages": k, "chars": chars}


def head_messages(messages: list[dict], spec: dict) -> list[dict]:
    """The part of `messages` that `spec` (a request's "head") names; a bad spec is a ValueError."""
    try:
        k, chars = int(spec["messages"]), int(spec["chars"])
        str(spec["key"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f'reply: "head" must be {{"key": str, "messages": int, "chars": int}}, got {spec!r}') from None
    if not 0 <= k <= len(messages) or chars < 0 or (chars and k == len(messages)):
        raise ValueError(f'reply: "head" {spec!r} is past the {len(messages)} messages of the prompt')
    out = [dict(m) for m in messages[:k]]
    if chars:
        out.append({"role": messages[k]["role"], "content": str(messages[k]["content"])[:chars]})
    return out


def held(ids: Callable[[list[dict]], list[int]], messages: list[dict], spec: dict, prompt: list[int]) -> int:
    """How many first tokens of `prompt` (the ids of `messages`) are the head `spec` names, cut back to a
    word (at_word). ids(messages): the chat-template ids without the generation prompt. In workers only
    (kvcache imports torch)."""
    from .kvcache import common

    return common(ids(at_word(head_messages(messages, spec))), prompt)


def at_word(messages: list[dict]) -> list[dict]:
    """`messages` (a head) with its last content cut back to before its last space (and the spaces before
    that): the tokens of such a text are the first tokens of every longer text that starts with it (the
    tokenizers' pre-tokenizers split before a space that follows a non-space: GPT-2's and Llama 3's byte
    levels, SentencePiece's), while the tokens of a text cut mid-word, or of '"For you, ', may merge
    differently with what follows. So a head gives the same tokens whatever the player's name."""
    if not messages:
        return messages
    text = str(messages[-1]["content"])
    i = text.rfind(" ")
    while i > 0 and text[i - 1] == " ":
        i -= 1
    return [*messages[:-1], {**messages[-1], "content": text[: max(i, 0)]}]


# Talking NPCs whose heads are warmed: the worker's HeadCache holds 32 (runner head_cache); more would
# push each other out. Beyond it, an NPC's head is kept when a player first talks to it.
WARM_HEADS = 32


class Warmer:
    """Sends the heads of the cast's talking NPCs to the dialogue pool, one at a time, at low priority
    (the pool serves it after any conversation; the runner prefills it only when it has nothing else
    to do: no reply waiting, none decoding), whenever one is new or changed: a file loaded, reloaded,
    an NPC spawned, the places changed. From the tick: each call compares a few ints (the cast's file
    versions, its places, its NPCs) and opens at most one stream; the heads are built only after a
    change, and only then.

    Bounds: `limit` NPCs (WARM_HEADS); one stream open at a time, none opened while a conversation runs
    or before a worker is ready;
    `sent` holds one request per NPC key.
    A stream that fails or is dropped is not retried until the next change."""

    PRIORITY = -1  # below conversations (0): a waiting player's reply is dispatched first

    def __init__(self, cast: Any, pool: Any, setting: Callable[[], prompts.Setting], limit: int = WARM_HEADS):
        self.cast, self.pool, self.setting, self.limit = cast, pool, setting, limit
        self.seen: Any = None  # the cast's state at the last look (versions, places, NPCs)
        self.todo: list[int] = []  # NPC entity ids to look at, in order
        self.sent: dict[str, dict] = {}  # NPC key -> the request last sent for it
        self.stream: Any = None  # the request in flight
        self.warmed = self.failed = 0

    def tick(self, talking: bool = False) -> None:
        """talking: a conversation is running; no new request then (a head request the worker takes
        just before a reply's would delay that reply by one head's prefill)."""
        cast = self.cast
        seen = (cast.places, len(cast.minds), *cast.versions.values())  # == on a short list
        if seen != self.seen:
            self.seen = seen
            talkers = [eid for eid, m in cast.minds.items() if "talk" in m.defn.allowed]
            self.todo = talkers[: self.limit]
            keys = {npc_key(cast.minds[eid]) for eid in self.todo}
            self.sent = {k: v for k, v in self.sent.items() if k in keys}
        if self.stream is not None:
            if not self.stream.done():
                return
            if self.stream.end == "ok":
                self.warmed += 1
            else:
                self.failed += 1
            self.stream = None
        if talking or not self.pool.stats.workers_ready:
            return  # a player who talks while the model loads goes first: the head would queue before them
        while self.todo:
            m = cast.minds.get(self.todo.pop(0))
            if m is None:
                continue
            key, persona = npc_key(m), m.defn.persona
            req = warm_request(key, cast.world.name_of(m.eid), persona, persona.max_reply, self.setting())
            if self.sent.get(key) == req:
                continue  # held already (as far as this server knows)
            self.sent[key] = req
            self.stream = self.pool.open_stream(req, priority=self.PRIORITY)
            return


def npc_key(m: Any) -> str:
    """The NPC's key, as the service names it in memory and in its requests' heads."""
    return f"{m.defn.id}#{m.n}"
