"""The built-in behaviour: utility scoring of an NPC's allowed actions.

`decide(perception, state, definition)` is a pure function: it scores every
candidate the NPC could do now, from its needs, its schedule and its
surroundings, each scaled by a designer-tunable weight (`[weights]`), and
picks the best. It is what every NPC with a file does when no hook and no
model decides, so it is also the fallback, and the teacher that the decision
policy will be cloned from (the candidates and their scores are returned for
that reason).

Candidates and their scores (w = the NPC's weights, defaults in schema.WEIGHTS):

  finishing   a talk or gift started less than `duration` s ago    kept, no scoring
  need        each need being tended (it fell below `low` and is   w.needs * need.weight * (1 + urgency),
              not back to `full`), with its `relief`               urgency = 1 - value/100
  schedule    the block covering the game time (`do`, `at`)         w.schedule
  flee        a player (or suspicious one) within flee.distance,   w.flee
              or an ongoing flight not yet safe
  follow      the nearest player (or suspicious one) in notice,    w.follow
              or the one already followed while within give_up
  give_item   the nearest player within give.distance, not given   w.give_item
              to for `cooldown` s
  talk        the nearest player within talk.distance, not greeted w.talk
              for `cooldown` s (says the persona's greeting)
  approach    the nearest player in notice not approached for      w.approach
              `cooldown` s, or the ongoing approach
  wander/idle always                                               w.wander / w.idle

Only allowed actions are candidates. The highest score wins; a tie goes to
the earlier line of this table. A player is *suspicious* when they have
stayed within the NPC's `notice` radius for at least follow.linger seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from npc.minds.perception import Perception, Seen, State
from npc.files.schema import Definition

NEVER = float("-inf")


@dataclass(frozen=True)
class Decision:
    """An intent to give the world (see world/intents.py), or `keep` the current one."""
    action: str
    place: str | None = None
    target: int | None = None
    distance: float | None = None
    activity: str | None = None
    say: str | None = None
    reason: str = ""
    keep: bool = False


@dataclass(frozen=True)
class Candidate:
    decision: Decision
    score: float


@dataclass(frozen=True)
class Choice:
    decision: Decision
    candidates: tuple[Candidate, ...]
    tending: frozenset[str]          # the needs being tended after this decision
    patrol_index: int


class _Blank(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def fill(text: str, limit: int, **values) -> str:
    """A designer's line with {placeholders} replaced, cut to `limit` characters."""
    try:
        out = text.format_map(_Blank(values))
    except (ValueError, IndexError, AttributeError, KeyError):
        out = text
    return " ".join(out.split())[:limit]     # one line: no newlines or control characters


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
    if cur.action in ("talk", "give_item") and cur.action in allowed \
            and p.now_s - cur.since_s < prm[cur.action]["duration"]:
        keep = Decision(cur.action, target=cur.target, activity=cur.activity, keep=True, reason="finishing")
        return Choice(keep, (Candidate(keep, float("inf")),), s.tending, s.patrol_index)

    # Needs.
    tending = set()
    for need in d.needs:
        v = p.stats.get(need.name, need.start)
        if need.relief and (v < need.low or (need.name in s.tending and v < need.full)):
            tending.add(need.name)
            add(w["needs"] * need.weight * (1.0 + (1.0 - v / 100.0)),
                Decision(need.relief, place=need.at, activity=need.activity or need.relief,
                         reason=f"{need.name} is {v:.0f}"))

    # Schedule.
    patrol_index = s.patrol_index
    b = p.block
    if b is not None:
        if b.do == "patrol" and b.route:
            i = patrol_index % len(b.route)
            if (cur.action == "patrol" and cur.place == b.route[i] and cur.arrived_s is not None
                    and p.now_s - cur.arrived_s >= prm["patrol"]["pause"]):
                i = (i + 1) % len(b.route)
            patrol_index = i
            add(w["schedule"], Decision("patrol", place=b.route[i], activity=b.activity,
                                        reason=f"schedule {b.label}"))
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
            near = [q for q in players if q.distance <= f["distance"]
                    and (f["who"] == "players" or suspicious(q, d))]
            if near:
                add(w["flee"], Decision("flee", target=near[0].id, distance=f["safe"], reason=f"{near[0].name} too close"))
    if "follow" in allowed:
        f = prm["follow"]
        if cur.action == "follow" and tgt is not None and tgt.distance <= f["give_up"]:
            add(w["follow"], Decision("follow", target=tgt.id, distance=f["distance"], activity=cur.activity,
                                      reason=f"following {tgt.name}"))
        else:
            near = [q for q in players if f["who"] == "players" or suspicious(q, d)]
            if near:
                add(w["follow"], Decision("follow", target=near[0].id, distance=f["distance"],
                                          activity="watching" if f["who"] == "suspicious" else "following",
                                          reason=f"{near[0].name} is suspicious" if f["who"] == "suspicious"
                                          else f"{near[0].name} is near"))
    if "give_item" in allowed and prm["give_item"]["items"]:
        f = prm["give_item"]
        near = [q for q in players if q.distance <= f["distance"]
                and p.now_s - s.given.get(q.id, NEVER) >= f["cooldown"]]
        if near:
            q = near[0]
            item = f["items"][s.gifts % len(f["items"])]
            add(w["give_item"], Decision("give_item", target=q.id, activity="giving",
                                         say=fill(f["line"], limit, player=q.name, item=item, name=p.name),
                                         reason=f"{q.name} came near"))
    if "talk" in allowed:
        f = prm["talk"]
        near = [q for q in players if q.distance <= f["distance"]
                and p.now_s - s.greeted.get(q.id, NEVER) >= f["cooldown"]]
        if near:
            q = near[0]
            add(w["talk"], Decision("talk", target=q.id, activity="talking",
                                    say=fill(d.persona.greeting, limit, player=q.name, name=p.name),
                                    reason=f"greeting {q.name}"))
    if "approach" in allowed:
        f = prm["approach"]
        if cur.action == "approach" and not cur.arrived and tgt is not None:
            add(w["approach"], Decision("approach", target=tgt.id, distance=f["distance"], activity=cur.activity,
                                        reason=f"approaching {tgt.name}"))
        else:
            near = [q for q in players if p.now_s - s.approached.get(q.id, NEVER) >= f["cooldown"]]
            if near:
                add(w["approach"], Decision("approach", target=near[0].id, distance=f["distance"],
                                            activity="curious", reason=f"curious about {near[0].name}"))

    # Baseline.
    add(w["wander"], Decision("wander", reason="nothing better to do"))
    add(w["idle"], Decision("idle", reason="nothing better to do"))

    best = cands[0]
    for c in cands[1:]:
        if c.score > best.score:
            best = c
    return Choice(best.decision, tuple(cands), frozenset(tending), patrol_index)


def reply_line(d: Definition, s: State, speaker: Seen, name: str) -> str:
    """The fallback line for answering a player (in turn; the dialogue model replaces it when there is one)."""
    lines = d.persona.fallback
    return fill(lines[s.replies % len(lines)], d.persona.max_reply, player=speaker.name, name=name)
