"""The scalar built-in behaviour, as it was before npc/minds/builtin.py decided for
whole Sights: the oracle the vectorised `decide` is tested against
(tests/npc/minds/test_builtin_vectorised.py). A faithful copy; do not "fix" it here.

`decide(perception, state, definition)` scores every candidate of one NPC and
picks the best; the table of candidates is npc/minds/builtin.py's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from npc.files.schema import Definition
from npc.minds.builtin import Decision, fill
from npc.minds.perception import Perception, Seen, State

NEVER = float("-inf")


@dataclass(frozen=True)
class Candidate:
    decision: Decision
    score: float


@dataclass(frozen=True)
class Choice:
    decision: Decision
    candidates: tuple[Candidate, ...]
    tending: frozenset[str]  # the needs being tended after this decision
    patrol_index: int


def suspicious(seen: Seen, d: Definition) -> bool:
    return seen.near_s >= d.params["follow"]["linger"]


def decide(p: Perception, s: State, d: Definition) -> Choice:
    allowed, w, prm = d.allowed, d.weights, d.params
    cur = p.intent
    limit = d.persona.max_reply
    cands: list[Candidate] = []

    def add(score: float, dec: Decision) -> None:
        if dec.action in allowed:
            cands.append(Candidate(dec, score))

    # Finishing a talk or a gift: stand still for its duration.
    if (
        cur.action in ("talk", "give_item")
        and cur.action in allowed
        and p.now_s - cur.since_s < prm[cur.action]["duration"]
    ):
        keep = Decision(cur.action, target=cur.target, activity=cur.activity, keep=True, reason="finishing")
        return Choice(keep, (Candidate(keep, float("inf")),), s.tending, s.patrol_index)

    # Needs.
    tending = set()
    for need in d.needs:
        v = p.stats.get(need.name, need.start)
        if need.relief and (v < need.low or (need.name in s.tending and v < need.full)):
            tending.add(need.name)
            add(
                w["needs"] * need.weight * (1.0 + (1.0 - v / 100.0)),
                Decision(
                    need.relief, place=need.at, activity=need.activity or need.relief, reason=f"{need.name} is {v:.0f}"
                ),
            )

    # Schedule.
    patrol_index = s.patrol_index
    b = p.block
    if b is not None:
        if b.do == "patrol" and b.route:
            i = patrol_index % len(b.route)
            if (
                cur.action == "patrol"
                and cur.place == b.route[i]
                and cur.arrived_s is not None
                and p.now_s - cur.arrived_s >= prm["patrol"]["pause"]
            ):
                i = (i + 1) % len(b.route)
            patrol_index = i
            add(w["schedule"], Decision("patrol", place=b.route[i], activity=b.activity, reason=f"schedule {b.label}"))
        else:
            add(w["schedule"], Decision(b.do, place=b.at, activity=b.activity, reason=f"schedule {b.label}"))

    # Surroundings.
    players = p.players
    tgt = p.target
    if "flee" in allowed:
        f = prm["flee"]
        if cur.action == "flee" and not cur.arrived and tgt is not None:
            add(w["flee"], Decision("flee", target=tgt.id, distance=f["safe"], reason=f"fleeing {tgt.name}"))
        else:
            near = [q for q in players if q.distance <= f["distance"] and (f["who"] == "players" or suspicious(q, d))]
            if near:
                add(
                    w["flee"],
                    Decision("flee", target=near[0].id, distance=f["safe"], reason=f"{near[0].name} too close"),
                )
    if "follow" in allowed:
        f = prm["follow"]
        if cur.action == "follow" and tgt is not None and tgt.distance <= f["give_up"]:
            add(
                w["follow"],
                Decision(
                    "follow",
                    target=tgt.id,
                    distance=f["distance"],
                    activity=cur.activity,
                    reason=f"following {tgt.name}",
                ),
            )
        else:
            near = [q for q in players if f["who"] == "players" or suspicious(q, d)]
            if near:
                add(
                    w["follow"],
                    Decision(
                        "follow",
                        target=near[0].id,
                        distance=f["distance"],
                        activity="watching" if f["who"] == "suspicious" else "following",
                        reason=f"{near[0].name} is suspicious"
                        if f["who"] == "suspicious"
                        else f"{near[0].name} is near",
                    ),
                )
    if "give_item" in allowed and prm["give_item"]["items"]:
        f = prm["give_item"]
        near = [
            q for q in players if q.distance <= f["distance"] and p.now_s - s.given.get(q.id, NEVER) >= f["cooldown"]
        ]
        if near:
            q = near[0]
            item = f["items"][s.gifts % len(f["items"])]
            add(
                w["give_item"],
                Decision(
                    "give_item",
                    target=q.id,
                    activity="giving",
                    say=fill(f["line"], limit, player=q.name, item=item, name=p.name),
                    reason=f"{q.name} came near",
                    item=item,
                ),
            )
    if "talk" in allowed:
        f = prm["talk"]
        near = [
            q for q in players if q.distance <= f["distance"] and p.now_s - s.greeted.get(q.id, NEVER) >= f["cooldown"]
        ]
        if near:
            q = near[0]
            add(
                w["talk"],
                Decision(
                    "talk",
                    target=q.id,
                    activity="talking",
                    say=fill(d.persona.greeting, limit, player=q.name, name=p.name),
                    reason=f"greeting {q.name}",
                ),
            )
    if "approach" in allowed:
        f = prm["approach"]
        if cur.action == "approach" and not cur.arrived and tgt is not None:
            add(
                w["approach"],
                Decision(
                    "approach",
                    target=tgt.id,
                    distance=f["distance"],
                    activity=cur.activity,
                    reason=f"approaching {tgt.name}",
                ),
            )
        else:
            near = [q for q in players if p.now_s - s.approached.get(q.id, NEVER) >= f["cooldown"]]
            if near:
                add(
                    w["approach"],
                    Decision(
                        "approach",
                        target=near[0].id,
                        distance=f["distance"],
                        activity="curious",
                        reason=f"curious about {near[0].name}",
                    ),
                )

    # Baseline.
    add(w["wander"], Decision("wander", reason="nothing better to do"))
    add(w["idle"], Decision("idle", reason="nothing better to do"))

    best = cands[0]
    for c in cands[1:]:
        if c.score > best.score:
            best = c
    return Choice(best.decision, tuple(cands), frozenset(tending), patrol_index)
