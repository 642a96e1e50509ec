"""What the cast asks of a decider (`Cast.decider`): the learned policy on the
inference pool (npc/policy/decider.py), or a recorder of the built-in
behaviour when training (npc/policy/train.py, the guard).

Each tick, in this order (npc/minds/think.py):

    begin_tick(now_s)   -> the answers back since the last tick (think.Answers), or None
    follows(defn)       True: the decider decides this file's due NPCs now (the cast calls ask,
                        and does not compute the built-in for them); False for a file it does
                        not follow, and for every file while it cannot answer (no worker ready)
    ask(sight)          these rows are the decider's to decide (answered at a later begin_tick)
    note(sight, verdict)  the built-in decided these rows (every file it does not follow)
    end_tick()          the tick's asks are complete (submit them in one request)

A decider never blocks the tick, and an exception in it costs its decisions,
never the tick (the cast catches and reports it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from npc.files.schema import Definition
    from npc.minds.builtin import Verdict
    from npc.minds.sight import Sight
    from npc.minds.think import Answers


class Decider(Protocol):
    def begin_tick(self, now_s: float) -> "Answers | None": ...

    def follows(self, defn: "Definition") -> bool: ...

    def ask(self, sight: "Sight") -> None: ...

    def note(self, sight: "Sight", verdict: "Verdict") -> None: ...

    def end_tick(self) -> None: ...
