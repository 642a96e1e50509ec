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


# What a finished reply ends with (check.py: a reply that does not is "unfinished").
ENDINGS = (".", "!", "?", "…", '"', "'", ")", "*")
# A sentence's end inside a reply: its marks, any closing quote or bracket, then a space or the end.
SENTENCE_END = re.compile(r"[.!?…]+[\"')*]*(?=\s|$)")
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "mt"}  # "Mr. Holt": a dot that ends no sentence
MIN_SENTENCE = 4  # characters: a trimmed reply keeps at least this much ("Aye." is kept, "Oh." is not)


def finished(text: str) -> bool:
    return text.rstrip().endswith(ENDINGS)


def whole_sentences(text: str, least: int = MIN_SENTENCE) -> str:
    """A reply that does not end at a sentence (its token or character bound cut it mid-way)
    ends at its last complete sentence, when it has one of at least `least` characters;
    otherwise it is returned as it is, and the checker calls it unfinished (check.py)."""
    if not text or finished(text):
        return text
    end = None
    for m in SENTENCE_END.finditer(text):
        word = text[: m.start()].rsplit(" ", 1)[-1].lower()
        if not (m.group(0) == "." and word in ABBREVIATIONS):
            end = m.end()
    return text[:end] if end is not None and end >= least else text


SPEAKER = re.compile(r"^\s*(?:[A-Z][\w' ]{0,30}?\s+(?:says|said|replies|answers)\s*:|[A-Z][\w' ]{0,30}?:)\s*")


def unquoted(text: str, name: str) -> str:
    """A reply given as the prompt gives the player's line ('Old Tam says: "Fresh apples!"'):
    the NPC's words alone ("Fresh apples!"). Only the NPC's own name is taken for a speaker."""
    m = SPEAKER.match(text)
    if m and m.group(0).split(":")[0].split(" says")[0].split(" said")[0].strip().lower() in (
        name.lower(),
        *name.lower().split(),
    ):
        text = text[m.end() :]
    text = text.strip()
    if len(text) > 1 and text[0] == '"' and text.count('"') == 2 and text.endswith('"'):
        text = text[1:-1].strip()  # the whole reply in quotes
    elif text.startswith('"') and text.count('"') == 1:
        text = text[1:].strip()  # an opening quote, cut before its close
    return text


def clean_player(text: str, max_chars: int) -> str:
    return clean_reply(text, max_chars)


FIRST_PERSON = re.compile(
    r"\b(my name is|call me|i am|i'm|i live|i like|i love|i hate|i need|i want|i come from|"
    r"i have|i've got)\b([^.!?,;]{1,60}?)(?=\s+(?:and|but)\s+i\b|[.!?,;]|$)",
    re.IGNORECASE,
)
# The player's words turned to the NPC's: what the player says of themself, told by the NPC.
OPENERS = {
    "call me": "asked me to call them",
    "i am": "told me they are",
    "i'm": "told me they are",
    "i live": "told me they live",
    "i like": "told me they like",
    "i love": "told me they love",
    "i hate": "told me they hate",
    "i need": "told me they need",
    "i want": "told me they want",
    "i come from": "told me they come from",
    "i have": "told me they have",
    "i've got": "told me they have",
}
PRONOUNS = {
    "i": "they",
    "me": "them",
    "my": "their",
    "mine": "theirs",
    "myself": "themselves",
    "i'm": "they are",
    "am": "are",
    "you": "me",
    "your": "my",
    "yours": "mine",
    "yourself": "myself",
}
WORD = re.compile(r"[A-Za-z']+")


def _swap(text: str) -> str:
    return WORD.sub(lambda m: PRONOUNS.get(m.group(0).lower(), m.group(0)), text)


def facts_from(player: str, text: str) -> list[str]:
    """Short facts a player told about themself, in the NPC's own words:
    "I'm from the coast" -> "Ingrid told me they are from the coast."
    A pattern, not a model: cheap, and nothing a player writes becomes an
    instruction (the fact is the NPC's report of it, and the prompt tokenizes
    it as text). "My name is ..." gives no fact: the name is already one."""
    out = []
    for m in FIRST_PERSON.finditer(text):
        opener, rest = m.group(1).lower(), _swap(m.group(2)).strip(" ,;:")
        if opener == "my name is" or not rest:
            continue
        out.append(f"{player} {OPENERS[opener]} {rest}."[:100])
        if len(out) == 2:
            break
    return out


def met_fact(player: str, day: int) -> str:
    """The first fact of every player an NPC meets: it holds their name (a returning player's is recalled)."""
    return f"I met {player} on day {day}; their name is {player}."


def in_own_terms(player: str, fact: str) -> str:
    """A fact stored before facts were kept in the NPC's words ("Ana said: I like apples",
    "You met Ana on day 0.") as the NPC would say it; newer facts are unchanged."""
    said = f"{player} said: "
    if fact.startswith(said):
        told = facts_from(player, fact[len(said) :])
        return told[0] if told else f"{player} told me: {fact[len(said) :]}"
    if fact.startswith("You met "):
        return "I met " + fact[len("You met ") :]
    return fact
