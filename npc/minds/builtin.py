"""The built-in behaviour: utility scoring of an NPC's allowed actions, for all
the due NPCs of one NPC file at once.

`decide(sight, places)` is a pure function of a `Sight` (npc/minds/sight.py):
for every row it scores each candidate the NPC could do now, from its needs,
its schedule and its surroundings, each scaled by a designer-tunable weight
(`[weights]`), and picks the best, with array operations over the rows (the
only loops are over the candidates below and the file's needs). It is what
every NPC with a file does when no hook and no model decides, so it is also
the fallback, and the teacher that the decision policy is cloned from (the
scores of every candidate are returned for that reason).

Candidates (the columns of `Verdict.scores`, in this order; w = the NPC's
weights, defaults in schema.WEIGHTS):

  finishing   a talk or gift started less than `duration` s ago    +inf: kept, nothing else scored
  need        the best need being tended (Sight.tending: it fell   w.needs * need.weight * (1 + urgency),
              below `low` and is not back to `full`), its `relief` urgency = 1 - value/100; equal: earlier need
  schedule    the block covering the game time (`do`, at           w.schedule
              Sight.sched_place: the patrol stop or `at`)
  flee        the nearest player (or suspicious one) within        w.flee
              flee.distance, or an ongoing flight not yet safe
  follow      the nearest player (or suspicious one) in notice,    w.follow
              or the one already followed while within give_up
  give_item   the nearest player within give.distance, not given   w.give_item
              to for `cooldown` s
  talk        the nearest player within talk.distance, not greeted w.talk
              for `cooldown` s (says the persona's greeting)
  approach    the nearest player in notice not approached for      w.approach
              `cooldown` s, or the ongoing approach
  wander/idle always                                               w.wander / w.idle

Only allowed actions are candidates (-inf otherwise). The highest score wins;
a tie goes to the earlier column. A weight of 0 still makes a candidate (it
wins when nothing else scores above 0). A player is *suspicious* when they
have stayed within the NPC's `notice` radius for at least follow.linger
seconds (flee's "suspicious" uses the same linger).

A `Verdict` holds indices and codes, no text: `reason()` and `decision()`
format one row when asked (an admin listing, a hook's `ctx.builtin()`,
applying it), never per tick. `complete()` gives a decision that something
else chose (the learned policy) the details the built-in would give it.

Units: world units and world seconds, as in the Sight. Places are indices
into the world's place list (`places`, the Sight's indexing), -1 = none.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable, Sequence

import numpy as np

from world.intents import ACTION_INDEX, ACTIONS

from npc.actions import PLACE_ACTIONS
from npc.files.schema import Definition
from npc.minds.perception import Seen, State
from npc.minds.sight import Sight

CANDIDATES = ("finishing", "need", "schedule", "flee", "follow", "give_item", "talk", "approach", "wander", "idle")
COLUMN = {c: i for i, c in enumerate(CANDIDATES)}

# What a row says when its verdict is applied; the text needs names, so it is filled then (`decision`).
SAY_NONE, SAY_GREETING, SAY_GIFT = 0, 1, 2

# Why a row decided what it did: one code per wording of the reason, REASONS[code] the text
# ({who}: the target's name; {need}, {value}: the need tended; {label}: the schedule block's times).
(
    WHY_FINISHING,
    WHY_NEED,
    WHY_SCHEDULE,
    WHY_FLEEING,
    WHY_TOO_CLOSE,
    WHY_FOLLOWING,
    WHY_SUSPICIOUS,
    WHY_NEAR,
    WHY_CAME_NEAR,
    WHY_GREETING,
    WHY_APPROACHING,
    WHY_CURIOUS,
    WHY_NOTHING,
    WHY_POLICY,
    WHY_HOOK,
) = range(15)
REASONS = (
    "finishing",
    "{need} is {value:.0f}",
    "schedule {label}",
    "fleeing {who}",
    "{who} too close",
    "following {who}",
    "{who} is suspicious",
    "{who} is near",
    "{who} came near",
    "greeting {who}",
    "approaching {who}",
    "curious about {who}",
    "nothing better to do",
    "policy",
    "hook",
)
assert len(REASONS) == WHY_HOOK + 1

_TALK, _GIVE, _FOLLOW, _APPROACH, _FLEE = (ACTION_INDEX[a] for a in ("talk", "give_item", "follow", "approach", "flee"))
_PLACE_ACTIONS = np.array([ACTION_INDEX[a] for a in PLACE_ACTIONS], np.int8)
# action code -> is a place action, one slot more (False) for -1: a table lookup, not np.isin (which sorts:
# ~half of `complete`'s time, measured with py-spy at 10,000 NPCs)
_IS_PLACE_ACTION = np.zeros(len(ACTION_INDEX) + 1, bool)
_IS_PLACE_ACTION[_PLACE_ACTIONS] = True


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
    item: str | None = None  # give_item: what the target receives (held by a player: Cast.gifts)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The built-in decision for every row of a Sight (n rows)."""

    action: np.ndarray  # (n,) int8 index into world.intents.ACTIONS
    target: np.ndarray  # (n,) int64 entity id, -1 none
    place: np.ndarray  # (n,) int32 index into the world's places (as Sight.place / sched_place), -1 none
    distance: np.ndarray  # (n,) float64 world units, nan = none
    activity: np.ndarray  # (n,) object: str or None
    say: np.ndarray  # (n,) int8 SAY_*: the line is filled when applied (it needs the player's name)
    item: np.ndarray  # (n,) object: the item of a gift, else None
    keep: np.ndarray  # (n,) bool: finishing a talk or gift: keep the current intent
    why: np.ndarray  # (n,) int8 WHY_* code of the winning candidate (WHY_POLICY, WHY_HOOK: other deciders)
    need: np.ndarray  # (n,) int16 index into defn.needs for WHY_NEED, -1
    scores: np.ndarray  # (n, len(CANDIDATES)) float64, -inf where not a candidate

    def __len__(self) -> int:
        return len(self.action)


class _Blank(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def fill(text: str, limit: int, **values) -> str:
    """A designer's line with {placeholders} replaced, cut to `limit` characters. A line the values do
    not fit (a bad placeholder, a format spec a value refuses: "{item:>5}" with no item) is said as
    written."""
    try:
        out = text.format_map(_Blank(values))
    except (ValueError, IndexError, AttributeError, KeyError, TypeError):
        out = text
    return " ".join(out.split())[:limit]  # one line: no newlines or control characters


class Words:
    """The lines a tick's greetings and gifts say, made through one memo: a line is fill()'s of
    (the file's words, the limit, the names, the item), made once and looked up after (the same NPCs
    greet the same players over and over: ~360 lines a tick at 10,000 NPCs and 1,000 players, ~90%
    of them made before). Bounded: at MAX_WORDS lines it starts again (a dict lookup costs the same)."""

    MAX_WORDS = 50_000

    def __init__(self) -> None:
        self._made: dict[tuple, str] = {}

    def __len__(self) -> int:
        return len(self._made)

    def line(self, text: str, limit: int, player: str, name: str, item=None, gift: bool = False) -> str:
        key = (text, limit, player, name, item, gift)
        out = self._made.get(key)
        if out is None:
            if len(self._made) >= self.MAX_WORDS:
                self._made.clear()
            values = {"player": player, "item": item, "name": name} if gift else {"player": player, "name": name}
            out = self._made[key] = fill(text, limit, **values)
        return out


# -- deciding ---------------------------------------------------------------------------------


@dataclass
class _Option:
    """What one candidate column does in the rows where it exists; values are scalars or (n,) arrays."""

    rows: np.ndarray  # (n,) bool: a candidate in this row
    score: float | np.ndarray
    action: int | np.ndarray
    why: int | np.ndarray
    target: int | np.ndarray = -1
    place: int | np.ndarray = -1
    distance: float = float("nan")
    activity: object = None  # str, None or (n,) object
    say: int = SAY_NONE
    item: object = None  # str, None or (n,) object
    need: int | np.ndarray = -1


def _first(sight: Sight, ok: np.ndarray) -> np.ndarray:
    """(n,) each row's first pair where `ok` (pairs are nearest first: its nearest such player), -1 where none."""
    j = np.flatnonzero(ok)
    r = sight.p_row[j]
    head = np.ones(len(j), bool)
    head[1:] = r[1:] != r[:-1]
    out = np.full(len(sight), -1, np.int64)
    out[r[head]] = j[head]
    return out


def _ids(sight: Sight, q: np.ndarray) -> np.ndarray:
    """(n,) the player id of pair q, -1 where q is -1 (the appended sentinel)."""
    return np.append(sight.p_id, -1)[q]


def _place(places: Sequence[str], name: str | None) -> int:
    return places.index(name) if name is not None and name in places else -1


def _items(sight: Sight) -> np.ndarray:
    """(n,) object: each row's next gift."""
    items = np.array(sight.defn.params["give_item"]["items"] or [None], object)
    return items[sight.gifts % len(items)]


def _finishing(sight: Sight) -> np.ndarray:
    """(n,) bool: a talk or gift started less than its `duration` ago (and still allowed)."""
    d, fin = sight.defn, np.zeros(len(sight), bool)
    for a, idx in (("talk", _TALK), ("give_item", _GIVE)):
        if a in d.allowed:
            fin |= (sight.action == idx) & (sight.now_s - sight.since < d.params[a]["duration"])
    return fin


def _need(sight: Sight, live: np.ndarray, places: Sequence[str]) -> _Option | None:
    d = sight.defn
    best, k_best = np.full(len(sight), -np.inf), np.full(len(sight), -1, np.int16)
    relief = np.full(len(d.needs), -1, np.int8)
    at = np.full(len(d.needs), -1, np.int32)
    activity = np.empty(len(d.needs), object)
    for k, need in enumerate(d.needs):
        if not need.relief or need.relief not in d.allowed:
            continue
        relief[k], at[k], activity[k] = ACTION_INDEX[need.relief], _place(places, need.at), need.activity or need.relief
        v = sight.stats[:, k]
        s = d.weights["needs"] * need.weight * (1.0 + (1.0 - v / 100.0))  # the scalar's order of operations
        better = live & sight.tending[:, k] & (s > best)  # strict: an earlier need wins ties
        best[better], k_best[better] = s[better], k
    rows = k_best >= 0
    if not rows.any():
        return None
    return _Option(rows, best, relief[k_best], WHY_NEED, place=at[k_best], activity=activity[k_best], need=k_best)


def _schedule(sight: Sight, live: np.ndarray, places: Sequence[str]) -> _Option | None:
    b, d = sight.block, sight.defn
    if b is None or b.do not in d.allowed:
        return None
    return _Option(
        live, d.weights["schedule"], ACTION_INDEX[b.do], WHY_SCHEDULE, place=sight.sched_place, activity=b.activity
    )


def _suspicious(sight: Sight) -> np.ndarray:
    """(M,) bool per pair: stayed within notice for follow.linger seconds."""
    return sight.p_near_s >= sight.defn.params["follow"]["linger"]


def _flee(sight: Sight, live: np.ndarray, places: Sequence[str]) -> _Option | None:
    d = sight.defn
    if "flee" not in d.allowed:
        return None
    f = d.params["flee"]
    going = live & (sight.action == _FLEE) & ~sight.arrived & sight.t_alive
    ok = sight.p_dist <= f["distance"]
    if f["who"] != "players":
        ok &= _suspicious(sight)
    q = _first(sight, ok)
    return _Option(
        going | (live & (q >= 0)),
        d.weights["flee"],
        _FLEE,
        np.where(going, WHY_FLEEING, WHY_TOO_CLOSE),
        target=np.where(going, sight.target, _ids(sight, q)),
        distance=f["safe"],
    )


def _follow(sight: Sight, live: np.ndarray, places: Sequence[str]) -> _Option | None:
    d = sight.defn
    if "follow" not in d.allowed:
        return None
    f = d.params["follow"]
    watch = f["who"] == "suspicious"
    going = live & (sight.action == _FOLLOW) & sight.t_alive & (sight.t_dist <= f["give_up"])
    q = _first(sight, _suspicious(sight) if watch else np.ones(len(sight.p_id), bool))
    return _Option(
        going | (live & (q >= 0)),
        d.weights["follow"],
        _FOLLOW,
        np.where(going, WHY_FOLLOWING, WHY_SUSPICIOUS if watch else WHY_NEAR),
        target=np.where(going, sight.target, _ids(sight, q)),
        distance=f["distance"],
        activity=np.where(going, sight.activity, "watching" if watch else "following"),
    )


def _give_item(sight: Sight, live: np.ndarray, places: Sequence[str]) -> _Option | None:
    d = sight.defn
    f = d.params["give_item"]
    if "give_item" not in d.allowed or not f["items"]:
        return None
    q = _first(sight, (sight.p_dist <= f["distance"]) & (sight.now_s - sight.p_given >= f["cooldown"]))
    return _Option(
        live & (q >= 0),
        d.weights["give_item"],
        _GIVE,
        WHY_CAME_NEAR,
        target=_ids(sight, q),
        activity="giving",
        say=SAY_GIFT,
        item=_items(sight),
    )


def _talk(sight: Sight, live: np.ndarray, places: Sequence[str]) -> _Option | None:
    d = sight.defn
    if "talk" not in d.allowed:
        return None
    f = d.params["talk"]
    q = _first(sight, (sight.p_dist <= f["distance"]) & (sight.now_s - sight.p_greeted >= f["cooldown"]))
    return _Option(
        live & (q >= 0),
        d.weights["talk"],
        _TALK,
        WHY_GREETING,
        target=_ids(sight, q),
        activity="talking",
        say=SAY_GREETING,
    )


def _approach(sight: Sight, live: np.ndarray, places: Sequence[str]) -> _Option | None:
    d = sight.defn
    if "approach" not in d.allowed:
        return None
    f = d.params["approach"]
    going = live & (sight.action == _APPROACH) & ~sight.arrived & sight.t_alive
    q = _first(sight, sight.now_s - sight.p_approached >= f["cooldown"])
    return _Option(
        going | (live & (q >= 0)),
        d.weights["approach"],
        _APPROACH,
        np.where(going, WHY_APPROACHING, WHY_CURIOUS),
        target=np.where(going, sight.target, _ids(sight, q)),
        distance=f["distance"],
        activity=np.where(going, sight.activity, "curious"),
    )


def _baseline(action: str):
    def option(sight: Sight, live: np.ndarray, places: Sequence[str]) -> _Option | None:
        d = sight.defn
        return _Option(live, d.weights[action], ACTION_INDEX[action], WHY_NOTHING) if action in d.allowed else None

    return option


_SCORED = {
    "need": _need,
    "schedule": _schedule,
    "flee": _flee,
    "follow": _follow,
    "give_item": _give_item,
    "talk": _talk,
    "approach": _approach,
    "wander": _baseline("wander"),
    "idle": _baseline("idle"),
}
assert tuple(_SCORED) == CANDIDATES[1:]


def _put(out: np.ndarray, rows: np.ndarray, value) -> None:
    out[rows] = value[rows] if isinstance(value, np.ndarray) else value


def decide(sight: Sight, places: Sequence[str]) -> Verdict:
    """The built-in decision for every row of `sight`; `places` is the world's place list (Sight's indexing)."""
    n = len(sight)
    fin = _finishing(sight)
    live = ~fin
    options = {0: _Option(fin, np.inf, sight.action, WHY_FINISHING, target=sight.target, activity=sight.activity)}
    scores = np.full((n, len(CANDIDATES)), -np.inf)
    scores[fin, 0] = np.inf
    for col, build in enumerate(_SCORED.values(), start=1):
        opt = build(sight, live, places)
        if opt is not None:
            options[col] = opt
            _put(scores[:, col], opt.rows, opt.score)
    # The first maximum wins: ties go to the earlier column. A row with no candidate at all (impossible:
    # every file allows idle or wander) gets column 0 and keeps its intent.
    win = np.argmax(scores, axis=1)
    v = _blank(n, WHY_NOTHING, scores)
    won = np.bincount(win, minlength=len(CANDIDATES))
    for col, opt in options.items():
        if won[col]:
            rows = win == col
            for name in _FIELDS:
                value = getattr(opt, name)
                if isinstance(value, np.ndarray) or not _unset(name, value):  # (unset: _blank's already)
                    _put(getattr(v, name), rows, value)
    v.keep[:] = win == 0
    return v


# The fields an _Option gives its winning rows, and the values _blank starts them at (an option's scalar
# equal to one is not written: ~40% of decide's writes, which were a quarter of its samples).
_FIELDS = ("action", "target", "place", "distance", "activity", "say", "item", "why", "need")
_UNSET = {"target": -1, "place": -1, "activity": None, "say": SAY_NONE, "item": None, "need": -1}


def _unset(name: str, value) -> bool:
    if name == "distance":
        return value != value  # nan
    return name in _UNSET and value == _UNSET[name]


def _blank(n: int, why, scores: np.ndarray | None = None) -> Verdict:
    """A verdict of n rows that does nothing yet: idle, no target, place, line; scores all -inf unless
    given (decide's own). `why`: a code, or (n,) codes. (np.broadcast_to here was 28 of decide's 273
    samples in a py-spy of bench/decisions.py at 10,000 NPCs; np.full copies a scalar or an array.)"""
    return Verdict(
        np.full(n, ACTION_INDEX["idle"], np.int8),
        np.full(n, -1, np.int64),
        np.full(n, -1, np.int32),
        np.full(n, np.nan),
        np.full(n, None, object),
        np.zeros(n, np.int8),
        np.full(n, None, object),
        np.zeros(n, bool),
        np.full(n, why, np.int8),
        np.full(n, -1, np.int16),
        np.full((n, len(CANDIDATES)), -np.inf) if scores is None else scores,
    )


# complete()'s scores: a read-only view of -inf, not an (n, 10) array made and filled per call
_NO_SCORES = np.broadcast_to(np.float64(-np.inf), (1 << 16, len(CANDIDATES)))


def complete(
    sight: Sight, places: Sequence[str], action: np.ndarray, target: np.ndarray, place: np.ndarray, why
) -> Verdict:
    """A verdict for decisions something else chose (action, target, place per row; `why` a WHY_* code or
    (n,) codes), with the details the built-in would give them: the activity, the line to say, the item,
    the distance. A place action at the schedule's place is the block's activity (when it is the block's
    own `do`, before any need), at a need's `at` with its relief the need's; follow and approach keep the
    current activity when they go on with the current target. Not kept, no scores."""
    d, n = sight.defn, len(sight)
    action, target = np.asarray(action, np.int8), np.asarray(target, np.int64)
    place = np.asarray(place, np.int32)
    v = _blank(n, why, _NO_SCORES[:n] if n <= len(_NO_SCORES) else None)  # (no scores: never written)
    v.action[:], v.target[:], v.place[:] = action, target, place
    act, dist = v.activity, v.distance
    rows = action == _TALK
    act[rows], v.say[rows] = "talking", SAY_GREETING
    rows = action == _GIVE
    act[rows], v.say[rows] = "giving", SAY_GIFT
    _put(v.item, rows, _items(sight))
    same = (sight.action == action) & (sight.target == target)
    f = d.params["follow"]
    rows = action == _FOLLOW
    dist[rows] = f["distance"]
    _put(act, rows, np.where(same, sight.activity, "watching" if f["who"] == "suspicious" else "following"))
    rows = action == _APPROACH
    dist[rows] = d.params["approach"]["distance"]
    _put(act, rows, np.where(same, sight.activity, "curious"))
    dist[action == _FLEE] = d.params["flee"]["safe"]
    # Place actions, the weakest match first (later ones overwrite): any place action at the schedule's
    # place, then a need's relief at its place (the earlier need last, so it wins), then the block itself.
    b = sight.block
    if b is not None:
        act[_IS_PLACE_ACTION[action] & (place >= 0) & (place == sight.sched_place)] = b.activity
    for need in reversed(d.needs):
        if need.relief:
            act[(action == ACTION_INDEX[need.relief]) & (place == _place(places, need.at))] = (
                need.activity or need.relief
            )
    if b is not None:
        act[(action == ACTION_INDEX[b.do]) & (place == sight.sched_place)] = b.activity
    return v


# -- one row, as text ----------------------------------------------------------------------------


def reason(verdict: Verdict, i: int, sight: Sight, name_of: Callable[[int], str]) -> str:
    """Row i's reason, as the admin listing shows it ("energy is 20", "greeting Bob", ...)."""
    code = int(verdict.why[i])
    text = REASONS[code]
    if code == WHY_NEED:
        k = int(verdict.need[i])
        return text.format(need=sight.defn.needs[k].name, value=float(sight.stats[i, k]))
    if code == WHY_SCHEDULE:
        return text.format(label=sight.block.label if sight.block is not None else "")
    if "{who}" in text:
        return text.format(who=name_of(int(verdict.target[i])))
    return text


def decision(verdict: Verdict, i: int, sight: Sight, places: Sequence[str], name_of: Callable[[int], str]) -> Decision:
    """Row i as a `Decision` (place names from `places`, names from `name_of(entity id)`), its line filled."""
    t, p, dist = int(verdict.target[i]), int(verdict.place[i]), float(verdict.distance[i])
    line = say_line(verdict, i, sight, name_of)
    return Decision(
        ACTIONS[int(verdict.action[i])],
        place=places[p] if p >= 0 else None,
        target=t if t >= 0 else None,
        distance=None if np.isnan(dist) else dist,
        activity=verdict.activity[i],
        say=line,
        reason=reason(verdict, i, sight, name_of),
        keep=bool(verdict.keep[i]),
        item=verdict.item[i] if int(verdict.say[i]) == SAY_GIFT else None,
    )


def say_line(verdict: Verdict, i: int, sight: Sight, name_of: Callable[[int], str]) -> str | None:
    """Row i's line (a greeting, a gift's words) filled with the names, or None."""
    if int(verdict.say[i]) == SAY_NONE:
        return None
    return say_lines(verdict, np.asarray([i]), sight, lambda ids: [name_of(int(e)) for e in ids])[0]


def say_lines(
    verdict: Verdict,
    idx: np.ndarray,
    sight: Sight,
    names_of: Callable[[np.ndarray], list],
    words: Words | None = None,
) -> list[str]:
    """say_line for the rows idx (every one saying something), the names looked up in one call each;
    the lines made through `words` (a memo kept across ticks; none: a fresh one)."""
    d = sight.defn
    idx = np.asarray(idx, np.int64)
    words = words if words is not None else Words()
    players, npcs = names_of(verdict.target[idx]), names_of(sight.eid[idx])
    greeting, gift, limit = d.persona.greeting, d.params["give_item"]["line"], d.persona.max_reply
    line = words.line
    return [
        line(greeting, limit, p or "", n or "")
        if s == SAY_GREETING
        else line(gift, limit, p or "", n or "", item, True)
        for p, n, s, item in zip(players, npcs, verdict.say[idx].tolist(), verdict.item[idx].tolist())
    ]


def reply_line(d: Definition, s: State, speaker: Seen, name: str) -> str:
    """The fallback line for answering a player (in turn; the dialogue model replaces it when there is one)."""
    lines = d.persona.fallback
    return fill(lines[s.replies % len(lines)], d.persona.max_reply, player=speaker.name, name=name)
