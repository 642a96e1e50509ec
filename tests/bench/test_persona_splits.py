"""bench/persona.py's splits against the runs in bench/labels: a line whose reply was read is a tune line.

"tune4" is derived from session 17's run on the seventh round's eval lines (persona-s17e-run1-shown.json),
"tune5" from session 19's (persona-s19c-eval-shown.json): each exactly the (set, line) pairs its run played.
And no line still marked "eval" has a reply in any run file there."""

from __future__ import annotations

import importlib.util
import json
import re
import sys

import world.sim  # noqa: F401  (the real package first: bench/world.py must never stand for it)
from support.paths import ROOT

_bench = str(ROOT / "bench")
sys.path.append(_bench)  # persona.py imports bench/machine.py and bench/persona_labels.py by name
try:
    _spec = importlib.util.spec_from_file_location("persona_bench", ROOT / "bench" / "persona.py")
    persona = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(persona)
finally:
    sys.path.remove(_bench)

LABELS = ROOT / "bench" / "labels"


def lines(split: str) -> set[tuple[str, str]]:
    """(set, line) of every line of `split`, lines as written ("{player}" kept)."""
    tables = {
        "ordinary": [(t[0], t[-1]) for t in persona.ORDINARY],
        "hostile": [(t[0], t[-1]) for t in persona.HOSTILE],
        "actions": [(t[0], t[-1]) for t in persona.ACTIONS],
    }
    return {(k, line) for k, rows in tables.items() for line, sp in rows if sp == split}


def played(path) -> set[tuple[str, str]]:
    return {(r["set"], r["line"]) for r in json.loads(path.read_text())["shown"]}


def written(line: str, said: str) -> bool:
    """Is `said` (a played line) this written line, the player's name filled in?"""
    return re.fullmatch(re.escape(line).replace(re.escape("{player}"), r"\w+"), said) is not None


def same_lines(run: set[tuple[str, str]], split: set[tuple[str, str]]) -> None:
    """Every played line is a line of the split, and every line of the split was played."""
    for set_name, said in run:
        assert any(k == set_name and written(line, said) for k, line in split), said
    for set_name, line in split:
        assert any(k == set_name and written(line, said) for k, said in run), line


def test_tune4_is_every_line_session_17s_run_played_and_no_other():
    run = played(LABELS / "persona-s17e-run1-shown.json")
    tune4 = lines("tune4")
    assert len(run) == 6 and len(tune4) == 6
    same_lines(run, tune4)


def test_tune5_is_every_line_session_19s_run_played_and_no_other():
    run = played(LABELS / "persona-s19c-eval-shown.json")
    tune5 = lines("tune5")
    assert len(tune5) == 9 + 9 + 8
    same_lines(run, tune5)


def test_no_eval_line_has_a_reply_in_any_run_file():
    evals = lines("eval")
    assert len(evals) == 25 + 25 + 20
    for path in sorted(LABELS.glob("persona-*-shown.json")):
        for set_name, said in played(path):
            assert not any(k == set_name and written(line, said) for k, line in evals), (path.name, said)
