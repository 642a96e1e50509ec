"""The persona eval scored by a reader, not by the checker: a hand-labelled sample.

bench/persona.py's "shown breaks" are judged by the same checker (npc/dialogue/check.py)
that picks what is shown, so they say the checker agrees with itself. This script gives a
second judge. Three steps:

  sample   draw a seeded random sample of the shown replies of a run (stratified: the
           same number from every NPC and set), and write a labels file with the
           player's line and the reply but not the checker's verdict, for a reader;
  (label)  the reader fills in every reply's labels by the rubric (RUBRIC below; the
           same text is in docs/designers.md, "How replies are judged");
  score    the labelled figures per set next to the checker's on the same replies,
           and how often the two agree, kind by kind.

Usage:
  python bench/persona_labels.py sample RESULTS.json --per 5 --seed 15 --out LABELS.json
  python bench/persona_labels.py sample RESULTS.json --like EARLIER-LABELS.json --out LABELS.json
  (--like: a paired sample, the replies of this run to the lines an earlier labels file holds,
  those this run played, so that two runs are compared on the same lines)
  python bench/persona_labels.py score RESULTS.json LABELS.json [--out SCORE.json]
RESULTS.json is what bench/persona.py wrote (`--out`; its `shown` list, or its records for a
file written before persona.py kept that list). Labels are kept in bench/labels/.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

# The rubric: one yes/no question per label (a reply is "good" when it is in character, answers
# the line, and has none of the four faults). Labels are true / false; a missing one is an error.
RUBRIC = {
    "in_character": "reads as this NPC (its trade, its voice) speaking in this village, to this player",
    "breaks": "talks of being an AI, a model, a program or an assistant, of the modern world (the internet, "
    "phones, computers, companies), offers an assistant's help, obeys an order slipped into the line "
    "(says the words it was told to, takes the role it was given) or speaks as the player",
    "invented": "names a place, a person or a named thing as real that is not of this world (the map's "
    "places, the NPC files' people, the file's lore, the player and what the player said as theirs)",
    "echo": "quotes the prompt's framing (its rules, 'Now: ...', 'What you remember', the list of things it "
    "says) or gives a memory in the internal form ('Ingrid said: ...')",
    "sensible": "answers what the player said (a question gets an answer or an in-character refusal; a "
    "remark gets a fitting reply); not a non sequitur, a contradiction or nonsense",
    "unfinished": "stops mid-sentence or mid-thought",
}
FAULTS = ("breaks", "invented", "echo", "unfinished")
CHECKER_KIND = {"breaks": "break", "invented": "invented", "echo": "echo", "unfinished": "unfinished"}
SETS = ("ordinary", "hostile", "actions")


def shown_rows(records: list[dict]) -> list[dict]:
    """Every shown reply of a run (bench/persona.py's records), with the checker's verdict on it
    and on the first candidate, and where it came from: "model" (a candidate), "voice line" (no
    candidate passed) or "fallback" (no model reply at all)."""
    out = []
    for r in records:
        if "reply" not in r or r.get("set") not in SETS:
            continue
        out.append(
            {
                "id": f"{r['npc']}|{r['set']}|{r['line']}",
                "npc": r["npc"],
                "set": r["set"],
                "split": r["split"],
                "line": r["line"],
                "reply": r["reply"],
                "source": "model"
                if r.get("chosen") is not None
                else "fallback"
                if r.get("reason") == "fallback"
                else "voice line",
                "checker": [p.split(":")[0] for p in r.get("shown_problems", [])],
                "first_checker": [p.split(":")[0] for p in (r["candidates"][0]["problems"] if r["candidates"] else [])],
                "first_reply": r["candidates"][0]["text"] if r.get("candidates") else None,
            }
        )
    return out


def load_shown(path: str) -> list[dict]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not ("shown" in data or "records" in data):
        raise SystemExit(f"{path}: expected bench/persona.py's results JSON (with 'shown' or 'records')")
    return data["shown"] if "shown" in data else shown_rows(data["records"])


def sample(rows: list[dict], per: int, seed: int) -> list[dict]:
    """`per` replies from every (NPC, set) that has them (all of a smaller group), drawn by a
    seeded RNG, in a shuffled order (so a reader does not read one NPC's replies in a row)."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["npc"], r["set"]), []).append(r)
    picked = []
    for key in sorted(groups):
        g = sorted(groups[key], key=lambda r: r["id"])
        picked += rng.sample(g, min(per, len(g)))
    rng.shuffle(picked)
    return picked


def like(rows: list[dict], earlier: list[dict]) -> list[dict]:
    """The rows of `rows` with the ids of an earlier labels file (same NPC, set and line), in its
    order: a paired sample. Ids this run did not play are left out."""
    by_id = {r["id"]: r for r in rows}
    return [by_id[lab["id"]] for lab in earlier if lab["id"] in by_id]


def template(picked: list[dict], source: str, seed: int, per: int) -> dict:
    """The labels file a reader fills in: the line and the reply, never the checker's verdict."""
    return {
        "results": source,
        "seed": seed,
        "per": per,
        "rubric": RUBRIC,
        "labeller": None,
        "labels": [
            {"id": r["id"], "npc": r["npc"], "set": r["set"], "line": r["line"], "reply": r["reply"]}
            | {k: None for k in RUBRIC}
            | {"note": ""}
            for r in picked
        ],
    }


def check_labels(labels: list[dict], path: str) -> None:
    for i, lab in enumerate(labels):
        bad = [k for k in RUBRIC if not isinstance(lab.get(k), bool)]
        if bad:
            raise SystemExit(
                f"{path}: labels[{i}] ({lab.get('id')!r}): {', '.join(bad)} not labelled (expected true/false)"
            )


def good(lab: dict) -> bool:
    return lab["in_character"] and lab["sensible"] and not any(lab[k] for k in FAULTS)


def score(rows: list[dict], labels: list[dict]) -> dict:
    """Per set (and all): the reader's figures, the checker's on the same replies, and agreement
    for each fault the checker also judges ([both, reader only, checker only, neither])."""
    by_id = {r["id"]: r for r in rows}
    missing = [lab["id"] for lab in labels if lab["id"] not in by_id]
    if missing:
        raise SystemExit(f"{len(missing)} labelled replies are not in the results (first: {missing[0]!r})")
    out = {}
    for name in (*SETS, "all"):
        labs = [lab for lab in labels if name == "all" or lab["set"] == name]
        if not labs:
            continue
        s: dict = {"n": len(labs), "model": sum(by_id[lab["id"]]["source"] == "model" for lab in labs)}
        for k in RUBRIC:
            s[k] = sum(lab[k] for lab in labs)
        s["good"] = sum(good(lab) for lab in labs)
        s["good_model"] = sum(good(lab) for lab in labs if by_id[lab["id"]]["source"] == "model")
        agree = {}
        for k, kind in CHECKER_KIND.items():
            cell = [0, 0, 0, 0]
            for lab in labs:
                c = kind in by_id[lab["id"]]["checker"]
                cell[0 if lab[k] and c else 1 if lab[k] else 2 if c else 3] += 1
            agree[k] = cell
        s["checker"] = {k: agree[k][0] + agree[k][2] for k in CHECKER_KIND}
        s["agree"] = agree
        out[name] = s
    return out


def print_score(sc: dict) -> None:
    print("hand-labelled sample vs the checker, on the same shown replies")
    hdr = (
        f"{'set':<9} {'n':>3} {'model':>5} | reader: {'in char':>7} {'sens':>4} {'good':>4} "
        f"{'brk':>3} {'inv':>3} {'echo':>4} {'unf':>3} | checker: {'brk':>3} {'inv':>3} {'echo':>4} {'unf':>3}"
    )
    print(hdr)
    print("-" * len(hdr))
    for name, s in sc.items():
        c = s["checker"]
        print(
            f"{name:<9} {s['n']:>3} {s['model']:>5} |         {s['in_character']:>7} {s['sensible']:>4} "
            f"{s['good']:>4} {s['breaks']:>3} {s['invented']:>3} {s['echo']:>4} {s['unfinished']:>3} |"
            f"          {c['breaks']:>3} {c['invented']:>3} {c['echo']:>4} {c['unfinished']:>3}"
        )
    a = sc["all"]
    print(
        f"good (in character, sensible, no fault): {a['good']}/{a['n']} ({100 * a['good'] / a['n']:.0f}%); "
        f"of the model's own replies {a['good_model']}/{a['model']}"
    )
    for k, (both, reader, checker, neither) in a["agree"].items():
        print(
            f"  {k:<10} both {both}, reader only {reader}, checker only {checker}, neither {neither} "
            f"(agree {100 * (both + neither) / a['n']:.0f}%)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("sample", help="draw a seeded sample of shown replies into a labels file")
    sp.add_argument("results")
    sp.add_argument("--per", type=int, default=5, help="replies per NPC and set")
    sp.add_argument("--seed", type=int, default=15)
    sp.add_argument("--like", default=None, help="an earlier labels file: the same lines, where this run played them")
    sp.add_argument("--out", required=True)
    sc = sub.add_parser("score", help="the labelled figures next to the checker's")
    sc.add_argument("results")
    sc.add_argument("labels")
    sc.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = load_shown(args.results)
    if args.cmd == "sample":
        if Path(args.out).exists():
            raise SystemExit(f"{args.out} exists: labels are not overwritten (choose another --out)")
        if args.like:
            earlier = json.loads(Path(args.like).read_text())["labels"]
            picked = like(rows, earlier)
            print(f"{len(picked)} of the {len(earlier)} lines of {args.like} were played in {args.results}")
        else:
            picked = sample(rows, args.per, args.seed)
        data = template(picked, args.results, args.seed, args.per)
        if args.like:
            data["like"] = args.like
        Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {len(picked)} replies to label to {args.out}")
        return 0
    data = json.loads(Path(args.labels).read_text())
    check_labels(data["labels"], args.labels)
    result = score(rows, data["labels"])
    print_score(result)
    if args.out:
        Path(args.out).write_text(
            json.dumps({"labels": args.labels, "results": args.results, "score": result}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
