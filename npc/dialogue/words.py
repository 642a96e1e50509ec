"""Ordinary English words, for the reply checker (check.py): a capitalised word that opens a
sentence is a name unless it is one of these ("Bread is cheap" vs "Kalvador is far").

The list (words.txt, one lowercase word a line) is the default model's own vocabulary: every
token that is a whole lowercase word after a space ("Ġbread"), 3 to 14 letters. A word the
model writes in lowercase is one it knows as ordinary; names it learned capitalised (Paris,
Mary, London) and names it makes up (Kalvador: several tokens) are not in it. 21,074 words
of 3 to 14 letters in SmolLM2's 49,152 tokens; written by `python -m npc.dialogue.words` (needs
the default model's package; the checker itself only reads the file).
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from pathlib import Path

PATH = Path(__file__).with_name("words.txt")
SUFFIXES = ("'s", "s", "es", "ed", "d", "ing", "er", "ers", "ly", "ness")  # "Blacksmithing": smith + ing


@lru_cache(maxsize=1)
def ordinary() -> frozenset[str]:
    return frozenset(w for w in PATH.read_text().split() if not w.startswith("#"))


def is_ordinary(word: str) -> bool:
    """`word` (any case) is an ordinary word, or one with a common ending."""
    low = word.lower().strip("'")
    words = ordinary()
    return low in words or any(low.endswith(s) and low[: -len(s)] in words for s in SUFFIXES)


def write(path: Path = PATH) -> int:
    """words.txt from the default model's tokenizer; the number of words."""
    from .model import default_gguf
    from transformers import AutoTokenizer

    gguf = Path(default_gguf())
    vocab = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).get_vocab()
    words = sorted({t[1:] for t in vocab if t.startswith("Ġ") and re.fullmatch(r"[a-z]{3,14}", t[1:])})
    path.write_text(
        "# npc/dialogue/words.py: lowercase whole-word tokens of SmolLM2-135M-Instruct\n" + "\n".join(words) + "\n"
    )
    return len(words)


if __name__ == "__main__":
    print(f"{write()} words -> {PATH}", file=sys.stderr)
