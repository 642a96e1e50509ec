"""bench/persona_labels.py: the seeded sample a reader labels, and its figures next to the checker's."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from support.paths import ROOT

# Loaded from its file, not through sys.path: bench/ on sys.path would make bench/world.py the `world`
# package for every pool worker spawned later in the same pytest process.
_spec = importlib.util.spec_from_file_location("persona_labels", ROOT / "bench" / "persona_labels.py")
pl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pl)


def record(npc, set_, line, reply, chosen=0, reason="done", shown=(), first=()):
    return {
        "npc": npc,
        "set": set_,
        "split": "eval",
        "line": line,
        "reply": reply,
        "chosen": chosen,
        "reason": reason,
        "shown_problems": [f"{k}: x" for k in shown],
        "candidates": [
            {"text": reply, "problems": [f"{k}: x" for k in first], "fit": not first, "logprob": -1.0, "soft": 0.0}
        ],
    }


RECORDS = [record(n, s, f"line {i}", f"reply {n} {s} {i}.") for n in ("tam", "holt") for s in pl.SETS for i in range(6)]


def test_shown_rows_say_where_a_reply_came_from_and_leave_out_intro_and_refusals():
    records = [
        record("tam", "ordinary", "a", "Welcome!"),
        record("tam", "hostile", "b", "Move along.", chosen=None),
        record("tam", "hostile", "c", "Bawk.", chosen=None, reason="fallback"),
        record("tam", "intro", "d", "Hello."),
        {"npc": "chicken", "set": "ordinary", "split": "eval", "line": "e", "refused": "does not talk"},
    ]
    rows = pl.shown_rows(records)
    assert [r["source"] for r in rows] == ["model", "voice line", "fallback"]


def test_the_sample_is_seeded_stratified_and_hides_the_checker():
    rows = pl.shown_rows(RECORDS)
    a, b, c = pl.sample(rows, 2, seed=1), pl.sample(rows, 2, seed=1), pl.sample(rows, 2, seed=2)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert [r["id"] for r in a] != [r["id"] for r in c]
    groups = {(r["npc"], r["set"]) for r in a}
    assert len(a) == 12 and len(groups) == 6  # two from each NPC and set
    labels = pl.template(a, "x.json", 1, 2)["labels"]
    assert all("checker" not in lab and "first_checker" not in lab for lab in labels)
    assert all(lab[k] is None for lab in labels for k in pl.RUBRIC)


def test_score_counts_agreement_fault_by_fault():
    records = [
        record("tam", "hostile", "a", "I am a robot.", shown=["break"]),  # both see the break
        record("tam", "hostile", "b", "I live in the cloud.", shown=[]),  # the reader only
        record("tam", "hostile", "c", "Kalva is near.", shown=["invented"]),  # the checker only (for breaks: neither)
        record("tam", "ordinary", "d", "Welcome, friend!", shown=[]),
    ]
    rows = pl.shown_rows(records)
    ok = dict.fromkeys(pl.RUBRIC, False) | {"in_character": True, "sensible": True}
    labels = [
        {"id": rows[0]["id"], "set": "hostile", **ok, "breaks": True, "in_character": False},
        {"id": rows[1]["id"], "set": "hostile", **ok, "breaks": True},
        {"id": rows[2]["id"], "set": "hostile", **ok},
        {"id": rows[3]["id"], "set": "ordinary", **ok},
    ]
    sc = pl.score(rows, labels)
    assert sc["hostile"]["agree"]["breaks"] == [1, 1, 0, 1]
    assert sc["hostile"]["agree"]["invented"] == [0, 0, 1, 2]
    assert sc["all"]["good"] == 2 and sc["hostile"]["good"] == 1
    assert sc["hostile"]["checker"]["breaks"] == 1


def test_a_missing_label_is_a_clear_error(tmp_path):
    results = tmp_path / "r.json"
    results.write_text(json.dumps({"records": RECORDS}))
    out = tmp_path / "labels.json"
    run = [sys.executable, str(ROOT / "bench" / "persona_labels.py")]
    subprocess.run([*run, "sample", str(results), "--per", "1", "--out", str(out)], check=True, capture_output=True)
    data = json.loads(out.read_text())
    assert len(data["labels"]) == 6
    done = subprocess.run([*run, "score", str(results), str(out)], capture_output=True, text=True)
    assert done.returncode != 0 and "not labelled (expected true/false)" in done.stderr
    again = subprocess.run([*run, "sample", str(results), "--out", str(out)], capture_output=True, text=True)
    assert again.returncode != 0 and "labels are not overwritten" in again.stderr
    with pytest.raises(SystemExit, match="not in the results"):
        pl.score(pl.shown_rows(RECORDS), [{"id": "nobody|ordinary|x", "set": "ordinary"}])


def test_persona_reports_recorded_lines_without_a_model(tmp_path):
    """bench/persona.py --report: a run cut short leaves its .partial; its tables and the shown
    replies for a reader come from it alone (the action taken read from the recorded choice)."""
    act = record("tam", "actions", "Can I have an apple?", "Here you are.")
    act |= {"expected": "give_item", "item": "apple", "allowed": ["give_item", "talk"], "seconds": 1.0}
    act["choice"] = {"options": ["Just keep talking.", "Give Pella an apple."], "chosen": 1}
    rows = [{**r, "seconds": 1.0} for r in RECORDS[:3]] + [act]
    partial = tmp_path / "persona.json.partial"
    partial.write_text(json.dumps(rows))
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "persona.py"), "--report", str(partial), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())["summary"]
    assert summary["actions/eval"]["actions_agree"] == 1 and summary["ordinary/eval"]["lines"] == 3
    shown = json.loads((tmp_path / "report-shown.json").read_text())["shown"]
    assert len(shown) == 4 and "restart: not run" in done.stdout
    bad = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "persona.py"), "--report", str(out.with_name("none.json"))],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "none.json" in bad.stderr


def test_a_paired_sample_takes_an_earlier_labels_files_lines_that_this_run_played(tmp_path):
    """sample --like: run 2's replies to the lines run 1's labels hold (where run 2 played them), in
    that order, so that two runs are labelled on the same lines."""
    first = tmp_path / "r1.json"
    first.write_text(json.dumps({"records": RECORDS}))
    labels1 = tmp_path / "labels1.json"
    run = [sys.executable, str(ROOT / "bench" / "persona_labels.py")]
    subprocess.run([*run, "sample", str(first), "--per", "2", "--seed", "3", "--out", str(labels1)], check=True)
    earlier = json.loads(labels1.read_text())["labels"]
    # Run 2 played the lines 0..3 of every NPC and set (not 4 and 5), with other replies.
    second = [{**r, "reply": "again: " + r["reply"]} for r in RECORDS if int(r["line"].split()[1]) < 4]
    (tmp_path / "r2.json").write_text(json.dumps({"records": second}))
    labels2 = tmp_path / "labels2.json"
    done = subprocess.run(
        [*run, "sample", str(tmp_path / "r2.json"), "--like", str(labels1), "--out", str(labels2)],
        capture_output=True,
        text=True,
        check=True,
    )
    paired = json.loads(labels2.read_text())
    played = [lab["id"] for lab in earlier if int(lab["line"].split()[1]) < 4]
    assert 0 < len(played) < len(earlier) and f"{len(played)} of the {len(earlier)} lines" in done.stdout
    assert [lab["id"] for lab in paired["labels"]] == played and paired["like"] == str(labels1)
    assert all(lab["reply"].startswith("again: ") and lab["in_character"] is None for lab in paired["labels"])
