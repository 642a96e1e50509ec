"""Randomised NPC files, for training the policy on files it will never see.

`random_definition(rng, places, index)` writes an NPC file as the dict a
TOML file parses to (random allowed actions, weights, needs, schedule,
senses and action parameters) and passes it through `schema.validate`, so
every definition it returns is one a designer could have written; a
problem found there is a bug here (ValueError naming it).
`random_sight(rng, defn, n, places)` makes a Sight of n NPCs of a
definition with random surroundings, without a world: for training on many
files cheaply (train.synthetic) and for tests of the observation rows.

Ranges are those of the shipped files and somewhat beyond (weights 0..2,
distances of one to ten tiles), not the whole of what the schema accepts.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from world.intents import ACTIONS

from npc.actions import BASELINE, PLACE_ACTIONS, WHO
from npc.files.schema import WEIGHTS, Definition, validate
from npc.minds.sight import NEVER, Sight

NEED_NAMES = ("hunger", "energy", "social", "thirst", "faith")
ACTIVITIES = ("forging", "selling", "sleeping", "eating", "praying", "reading", "chatting", "sweeping")
ITEMS = ("apple", "bread", "coin", "map", "flower", "nail")
P_ACTION = 0.5  # each action beyond the baseline is allowed with this probability
P_ZERO_WEIGHT = 0.12  # a weight is 0 with this probability (the action can never win)
P_DEFAULT = 0.25  # a weight, sense or parameter keeps the schema default with this probability
NICE = (0.1, 0.2, 0.3, 0.5, 0.6, 0.8, 1.0, 1.2, 1.3, 1.5, 1.6, 2.0)  # weights designers write (ties happen)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


class _Draw:
    """The random choices a file is made of, from one generator."""

    def __init__(self, rng: np.random.Generator, places: Sequence[str]):
        self.rng, self.places = rng, list(places)

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def num(self, lo: float, hi: float, nd: int = 1) -> float:
        return round(float(self.rng.uniform(lo, hi)), nd)

    def maybe(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def weight(self, lo: float = 0.05) -> float:
        return 0.0 if self.maybe(P_ZERO_WEIGHT) else self.pick(NICE) if self.maybe(0.5) else self.num(lo, 2.0, 2)

    def place_for(self, do: str) -> str | list[str] | None:
        """A schedule block's or a need's `at` for this action (a route for patrol; go_to needs one)."""
        if do == "patrol":
            return [self.pick(self.places) for _ in range(int(self.rng.integers(1, 5)))]
        if do == "go_to" or (do in ("idle", "work", "rest") and self.maybe(0.7)):
            return self.pick(self.places)
        return None


def random_file(rng: np.random.Generator, places: Sequence[str], index: int, count: int = 1) -> dict:
    """The parsed-TOML dict of a random NPC file (valid for a map with these places)."""
    r = _Draw(rng, places)
    allowed = [a for a in ACTIONS if a not in BASELINE and r.maybe(P_ACTION)]
    base = [a for a in BASELINE if r.maybe(0.6)] or [r.pick(BASELINE)]
    allowed = sorted(set(allowed) | set(base), key=ACTIONS.index)
    doable = [a for a in PLACE_ACTIONS if a in allowed]
    data: dict = {
        "id": f"random-{index}",
        "name": f"Random {index}" + (" {n}" if count > 1 else ""),
        "count": count,
        "spawn": r.pick(r.places),
        "persona": {"greeting": "Hello, {player}."},
        "actions": _actions(r, allowed),
    }
    needs = _needs(r, doable)
    if needs:
        data["needs"] = needs
    blocks = _schedule(r, doable)
    if blocks:
        data["schedule"] = blocks
    weights = {k: r.weight() for k in WEIGHTS if not r.maybe(P_DEFAULT)}
    if weights:
        data["weights"] = weights
    senses = {k: r.num(48, 360, 0) for k in ("notice", "hear") if not r.maybe(P_DEFAULT)}
    if senses:
        data["senses"] = senses
    return data


def _actions(r: _Draw, allowed: list[str]) -> dict:
    """[actions]: the allowed list, and random parameters for the allowed actions (some defaults)."""
    acts: dict = {"allowed": allowed}
    if "follow" in allowed:
        acts["follow"] = {
            "who": r.pick(WHO),
            "distance": r.num(16, 96),
            "linger": r.num(0, 8),
            "give_up": r.num(160, 640),
        }
    if "flee" in allowed:
        d = r.num(32, 200)
        acts["flee"] = {"who": r.pick(WHO), "distance": d, "safe": round(d + r.num(32, 300), 1)}
    if "talk" in allowed:
        acts["talk"] = {"distance": r.num(24, 160), "cooldown": r.num(5, 240), "duration": r.num(0, 6)}
    if "give_item" in allowed:
        acts["give_item"] = {
            "items": [r.pick(ITEMS) for _ in range(int(r.rng.integers(1, 4)))],
            "distance": r.num(24, 160),
            "cooldown": r.num(5, 240),
            "duration": r.num(0, 6),
        }
    if "approach" in allowed:
        acts["approach"] = {"distance": r.num(16, 96), "cooldown": r.num(5, 240)}
    if "patrol" in allowed:
        acts["patrol"] = {"pause": r.num(0, 8), "route": [r.pick(r.places) for _ in range(int(r.rng.integers(1, 4)))]}
    for a in list(acts):
        if a != "allowed" and r.maybe(P_DEFAULT):  # the schema's defaults (what must be there stays)
            keep = {"items"} if a == "give_item" else {"route"} if a == "patrol" else set()
            acts[a] = {k: v for k, v in acts[a].items() if k in keep}
    return acts


def _needs(r: _Draw, doable: list[str]) -> dict:
    """[needs]: 0..3, each tended by one of the allowed place actions (or by none)."""
    needs: dict = {}
    for name in r.rng.permutation(NEED_NAMES)[: int(r.rng.integers(0, 4))].tolist():
        low = r.num(0, 70, 0)
        need: dict[str, Any] = {
            "start": r.num(0, 100, 0),
            "rate": r.num(-30, 5),
            "low": low,
            "full": min(100.0, low + r.num(0, 60, 0)),
            "weight": r.weight(0.1),
        }
        if doable and r.maybe(0.85):
            need["relief"] = r.pick(doable)
            at = r.place_for(need["relief"])
            if at is not None:
                need["at"] = at[0] if isinstance(at, list) else at
        if r.maybe(0.6):
            need["activity"] = r.pick(ACTIVITIES)
        label = need.get("activity") or need.get("relief")
        if label and r.maybe(0.7):
            need["during"] = {label: r.num(5, 60)}
        needs[name] = need
    return needs


def _schedule(r: _Draw, doable: list[str]) -> list[dict]:
    """[[schedule]]: 0..5 blocks between random cut points of the day (some gaps), maybe one past midnight."""
    k = int(r.rng.integers(0, 6)) if doable else 0
    if not k:
        return []
    cuts = np.sort(r.rng.choice(np.arange(0, 1440, 30), size=k + 1, replace=False)).tolist()
    spans = [(cuts[i], cuts[i + 1]) for i in range(k)]
    if r.maybe(0.5):
        spans[-1] = (cuts[-1], cuts[0])  # wraps past midnight instead
    blocks = []
    for start, end in spans:
        if len(spans) > 1 and r.maybe(0.15):
            continue  # a gap: no block then
        do = r.pick(doable)
        b = {"from": _hhmm(start), "to": _hhmm(end) if end else "24:00", "do": do}
        at = r.place_for(do)
        if at is not None:
            b["at"] = at
        if r.maybe(0.6):
            b["activity"] = r.pick(ACTIVITIES)
        blocks.append(b)
    return blocks


def random_definition(rng: np.random.Generator, places: Sequence[str], index: int, count: int = 1) -> Definition:
    """A random NPC file, validated (module doc). `index` makes its id: "random-<index>"."""
    data = random_file(rng, places, index, count)
    defn, problems = validate(data, {}, f"<random {index}>", list(places))
    if problems:
        raise ValueError(f"randomise made an invalid NPC file: {'; '.join(map(str, problems))}\n{data}")
    assert defn is not None  # no problems: a definition
    return defn


def random_sight(
    rng: np.random.Generator,
    defn: Definition,
    n: int,
    places: Sequence[str],
    *,
    now_s: float | None = None,
    players: int = 8,
    first_eid: int = 1,
) -> Sight:
    """n NPCs of `defn` at random spots with random intents, among `players` random players
    (ids 10_000..), as a Sight; the numbers are consistent (distances match positions,
    pairs sorted nearest first, within notice) but not the outcome of a simulation."""
    now = float(rng.uniform(0, 600)) if now_s is None else float(now_s)
    minute = float(rng.uniform(0, 1440))
    block = defn.block_at(minute)
    index = {p: i for i, p in enumerate(places)}
    eid = np.arange(first_eid, first_eid + n, dtype=np.int64)
    pos = rng.uniform(0, 600, (n, 2))
    pid = np.arange(10_000, 10_000 + players, dtype=np.int64)
    ppos = rng.uniform(0, 600, (players, 2))
    notice = defn.senses["notice"]
    dist = np.hypot(pos[:, None, 0] - ppos[None, :, 0], pos[:, None, 1] - ppos[None, :, 1])  # (n, P)
    r, c = np.nonzero(dist <= notice)
    order = np.lexsort((dist[r, c], r))
    r, c = r[order], c[order]
    m = len(r)
    times = lambda: np.where(rng.random(m) < 0.5, NEVER, now - rng.uniform(0, 300, m))  # noqa: E731
    k = len(defn.needs)
    allowed = np.asarray([ACTIONS.index(a) for a in sorted(defn.allowed)])
    action = np.where(rng.random(n) < 0.9, rng.choice(allowed, n), rng.integers(0, len(ACTIONS), n)).astype(np.int8)
    target = np.where(rng.random(n) < 0.5, rng.choice(pid, n) if players else -1, -1).astype(np.int64)
    t_alive = target >= 0
    t_dist = np.where(t_alive, rng.uniform(0, 700, n), np.nan)
    # needs: tended as the built-in perceives it (below low, or tended before and not yet back to full)
    stats = rng.uniform(0, 100, (n, k))
    was = rng.random((n, k)) < 0.5
    low = np.asarray([nd.low for nd in defn.needs], np.float64).reshape(1, k)
    full = np.asarray([nd.full for nd in defn.needs], np.float64).reshape(1, k)
    relief = np.asarray([bool(nd.relief) for nd in defn.needs], bool).reshape(1, k)
    tending = relief & ((stats < low) | (was & (stats < full)))
    route = block.route if block is not None else ()
    patrol = rng.integers(0, max(1, len(route)), n).astype(np.int32)
    sched = (
        np.asarray([index[route[i]] for i in patrol.tolist()], np.int32)
        if block is not None and route
        else np.full(n, index.get(block.at, -1) if block is not None and block.at else -1, np.int32)
    )
    return Sight(
        defn=defn,
        now_s=now,
        minute=minute,
        day=0,
        block=block,
        eid=eid,
        pos=pos,
        at=np.where(rng.random(n) < 0.4, rng.integers(0, max(1, len(places)), n), -1).astype(np.int32),
        stats=stats,
        tending=tending,
        patrol=patrol,
        sched_place=sched,
        gifts=rng.integers(0, 5, n).astype(np.int64),
        action=action,
        place=np.where(rng.random(n) < 0.5, rng.integers(0, max(1, len(places)), n), -1).astype(np.int32),
        target=target,
        arrived=rng.random(n) < 0.5,
        since=now - rng.uniform(0, 60, n),
        arrived_at=np.full(n, np.nan),
        activity=np.asarray([ACTIONS[a] for a in action.tolist()], object),
        t_alive=t_alive,
        t_dist=t_dist,
        t_near_s=np.where(t_alive, rng.uniform(0, 10, n), 0.0),
        start=np.searchsorted(r, np.arange(n + 1)).astype(np.int64),
        p_row=r.astype(np.int64),
        p_id=pid[c],
        p_dist=dist[r, c],
        p_pos=ppos[c],
        p_near_s=rng.uniform(0, 10, m),
        p_greeted=times(),
        p_given=times(),
        p_approached=times(),
    )
