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
worker tokenizes that much and keeps the tokens it shares with the prompt.
"""

from __future__ import annotations

from . import prompt as prompts

# Two players who share nothing: no clean name, line or place holds these (text.py removes
# control characters), so the two prompts first differ where the first word about the player is.
_A, _B = "\x00", "\x01"
_SCENES = (prompts.Scene(0, "00:00", _A, _A, [_A]), prompts.Scene(1, "13:00", _B, _B, [_B]))


def head(key: str, name: str, persona, max_reply: int, setting: prompts.Setting | None = None) -> dict:
    """The head of NPC `key`'s prompts (see the module's docstring)."""
    a, b = (
        prompts.messages(name, persona, scene, who, [], [], who, max_reply, setting)
        for scene, who in zip(_SCENES, (_A, _B))
    )
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
