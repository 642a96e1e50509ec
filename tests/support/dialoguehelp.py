"""Driving a DialogueRunner step by step (tests/npc/dialogue/): requests that join and leave at
given steps, and what each stream said."""

from __future__ import annotations

from npc.dialogue.runner import DialogueRunner


def ask(line: str, n: int = 12, **kw) -> dict:
    return {
        "kind": "reply",
        "messages": [{"role": "system", "content": "You are Tam."}, {"role": "user", "content": line}],
        "max_new_tokens": n,
        "temperature": 0,
        **kw,
    }


def run_all(r: DialogueRunner, plan: dict[int, list[tuple[int, dict]]], cancel: dict[int, int] = {}) -> dict:
    """Step until idle; plan[step] = requests joining before that step; cancel[step] = sid.
    Returns sid -> [(piece, final, step)]."""
    out: dict[int, list] = {}
    step = 0
    while True:
        for sid, payload in plan.get(step, []):
            r.add(sid, payload)
        if step in cancel:
            r.cancel(cancel[step])
        if not (r.rows or r.joining or any(k > step for k in plan)):
            return out
        for sid, value, final in r.step():
            out.setdefault(sid, []).append((value, final, step))
        step += 1
        assert step < 500


def joined(pieces) -> str:
    return "".join(p for p, _, _ in pieces)
