"""Bounding and cleaning text on its way in (player lines) and out (model output).

The client renders NPC text as plain text (never as HTML), but what reaches it
is cleaned anyway: no control or format characters (which can reorder or hide
text: bidi overrides, zero-width joiners), no chat-template markers, no runs
of whitespace, and never more than the bound.
"""

from __future__ import annotations

import re
import unicodedata

MARKERS = re.compile(r"<\|[^|<>]{0,40}\|>")  # <|im_start|>, <|im_end|>, <|endoftext|>, ...
SPACES = re.compile(r"\s+")


def _visible(ch: str) -> bool:
    return unicodedata.category(ch)[0] != "C"


def clean_delta(text: str) -> str:
    """One streamed piece: control characters become spaces (newlines included)."""
    return "".join(ch if _visible(ch) else " " for ch in MARKERS.sub("", text))


def clean_reply(text: str, max_chars: int) -> str:
    """A whole reply: markers and control characters gone, whitespace collapsed,
    at most `max_chars` characters (cut at a word boundary when there is one)."""
    text = SPACES.sub(" ", clean_delta(text)).strip()
    if len(text) > max_chars:
        cut = text[:max_chars]
        space = cut.rfind(" ")
        text = (cut[:space] if space > max_chars // 2 else cut).rstrip()
    return text


def whole_sentences(text: str) -> str:
    """A reply cut by its token bound mid-sentence ends at its last full sentence
    (when that keeps at least half of it)."""
    if not text or text[-1] in ".!?…\"')":
        return text
    end = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    return text[:end + 1] if end >= len(text) // 2 else text


def clean_player(text: str, max_chars: int) -> str:
    return clean_reply(text, max_chars)


FIRST_PERSON = re.compile(r"\b(?:my name is|i am|i'm|i live|i like|i love|i hate|i need|i want|i come from|"
                          r"i'm from|call me)\b[^.!?]{1,60}", re.IGNORECASE)


def facts_from(player: str, text: str) -> list[str]:
    """Short facts a player told about themself ("I like apples" -> "Ana said: I like apples").
    A pattern, not a model: cheap, and nothing a player writes becomes an instruction."""
    out = []
    for m in FIRST_PERSON.finditer(text):
        out.append(f"{player} said: {m.group(0).strip()}"[:100])
        if len(out) == 2:
            break
    return out
