"""The NPC file's own lines, said in place of the model's: its voice lines (a reply that
failed the checker), its fallback lines (no model, no answer), its leave line.

`{player}` and `{name}` in a line become the player's and the NPC's names; every line is
cleaned and bounded (text.clean_reply) like a model's. A replaced reply takes the voice
lines in turn and never repeats the line the NPC said last.
"""

from __future__ import annotations

from . import check
from .text import clean_reply


def fill(text: str, player: str, name: str, max_reply: int) -> str:
    return clean_reply(text.replace("{player}", player).replace("{name}", name), max_reply)


def voice_line(m, player: str, name: str) -> str:
    """A line of the file for a reply that failed the checker: its voice lines in turn
    (never the one it said last), else its fallback lines. Advances m.state.replies."""
    persona = m.defn.persona
    lines = persona.voice or persona.fallback
    k = m.state.replies
    m.state.replies += 1
    text = fill(lines[k % len(lines)], player, name, persona.max_reply)
    if text == m.last_said and len(lines) > 1:
        text = fill(lines[(k + 1) % len(lines)], player, name, persona.max_reply)
    return text


def fallback_line(m, player: str, name: str) -> str:
    """One of the file's fallback lines in turn ("..." without an NPC). Advances m.state.replies."""
    if m is None:
        return "..."
    lines = m.defn.persona.fallback
    n = m.state.replies
    m.state.replies += 1
    return fill(lines[n % len(lines)], player, name, m.defn.persona.max_reply)


class VoiceWords:
    """Per persona, the words of its voice, lore, knowledge, who and style of more than 3
    letters (check.score rewards a reply that uses them); the newest 64 personas."""

    def __init__(self) -> None:
        self._cache: dict[int, set[str]] = {}

    def __call__(self, defn) -> set[str]:
        key = id(defn.persona)
        words = self._cache.get(key)
        if words is None:
            p = defn.persona
            words = {w for w in check.known_words(*p.voice, *p.lore, *p.knows, p.who, p.style) if len(w) > 3}
            self._cache = {key: words, **dict(list(self._cache.items())[:63])}
        return words
