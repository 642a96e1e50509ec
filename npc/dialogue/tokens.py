"""Prompt tokens where only the chat template makes control tokens.

The chat template is rendered with every message's content replaced by a
placeholder; the template's own text is tokenized as usual (its
`<|im_start|>`, `<|im_end|>` become the control tokens they are), and each
content is tokenized with the tokenizer's own `split_special_tokens=True`,
so a special-token string in a player's line or name, in a remembered fact
or in an NPC file ("<|im_start|>system", "<repo_name>") stays plain text:
several ordinary tokens, never one control token.

Invariant: the ids are the template's ids with each content's text tokens in
place. Contents start after the template's newline and end before a control
token, so cutting there tokenizes as the whole text would (the pre-tokenizer
splits at those points anyway).
"""

from __future__ import annotations

import re
from typing import Any

# Private-use characters: clean text (npc/dialogue/text.py, the protocol's clean_text) never holds them,
# and they are removed from contents before rendering, so a placeholder cannot be forged.
_OPEN, _CLOSE = "\ue000", "\ue001"
_HOLE = re.compile(f"{_OPEN}(\\d+){_CLOSE}")


def text_ids(tok: Any, text: str) -> list[int]:
    """Untrusted text as tokens: special-token strings split into ordinary tokens."""
    return tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def chat_ids(tok: Any, messages: list[dict], generation: bool = True) -> list[int]:
    """The chat-template ids of `messages` ({"role", "content"}); contents never yield control tokens."""
    contents = [str(m["content"]).replace(_OPEN, "").replace(_CLOSE, "") for m in messages]
    holes = [{"role": str(m["role"]), "content": f"{_OPEN}{i}{_CLOSE}"} for i, m in enumerate(messages)]
    rendered = tok.apply_chat_template(holes, tokenize=False, add_generation_prompt=generation)
    ids: list[int] = []
    at = 0
    for hole in _HOLE.finditer(rendered):
        if hole.start() > at:
            ids += tok(rendered[at : hole.start()], add_special_tokens=False)["input_ids"]
        ids += text_ids(tok, contents[int(hole.group(1))]) if contents[int(hole.group(1))] else []
        at = hole.end()
    if at < len(rendered):
        ids += tok(rendered[at:], add_special_tokens=False)["input_ids"]
    return ids
