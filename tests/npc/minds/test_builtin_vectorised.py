"""The built-in behaviour decides for whole Sights exactly as the scalar version
(tests/support/reference_builtin.py) decides for each NPC alone."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from world.clock import GameTime
from world.intents import ACTION_INDEX, ACTIONS, Intent

from npc.actions import PLACE_ACTIONS
from npc.files.schema import WEIGHTS, validate
from npc.minds import builtin
from npc.minds.builtin import (
    CANDIDATES,
    SAY_GIFT,
    SAY_GREETING,
    SAY_NONE,
    WHY_APPROACHING,
    WHY_CAME_NEAR,
    WHY_FLEEING,
    WHY_FOLLOWING,
    WHY_GREETING,
    WHY_NEED,
    WHY_POLICY,
    WHY_SCHEDULE,
    WHY_TOO_CLOSE,
    Decision,
    complete,
    decide,
    decision,
)
from npc.minds.perception import Perception, Seen, State
from support.reference_builtin import decide as scalar_decide
from support.sighthelp import build_sight

PLACES = ["forge", "tavern", "market", "well", "gate"]
NOTICE = 160.0
NOW = 1000.0
NPC_TARGET, GONE = 200, 300  # an NPC that may be an intent's target; an entity that is gone
BLOCKS = (("06:00", "12:00"), ("20:00", "02:00"))  # the second wraps past midnight
MINUTES = (8 * 60.0, 22 * 60.0, 60.0, 15 * 60.0, 6 * 60.0)  # in the first, the second (twice), none, a start
ENTITY_ACTIONS = ("follow", "approach", "flee", "talk", "give_item")


def name_of(eid: int) -> str:
    return f"P{eid}" if eid >= 100 else f"Tess {eid}"


def make(data: dict):
    d, problems = validate(data, {}, "t.toml", PLACES)
    assert problems == [], [str(p) for p in problems]
    return d


# -- random NPC files --------------------------------------------------------------------------

num = st.sampled_from
dists = num([16.0, 40.0, 64.0, 80.0, 96.0, 150.0]) | st.floats(16.0, 200.0)
cooldowns = num([0.0, 30.0, 60.0, 120.0]) | st.floats(0.0, 300.0)


@st.composite
def definitions(draw):
    allowed = {draw(num(["idle", "wander"]))} | (set(ACTIONS) if draw(st.booleans()) else draw(st.sets(num(ACTIONS))))
    acts: dict = {"allowed": sorted(allowed)}
    acts["follow"] = {
        "who": draw(num(["players", "suspicious"])),
        "distance": draw(dists),
        "linger": draw(num([0.0, 3.0, 5.0])),
        "give_up": draw(num([32.0, 100.0, 320.0])),
    }
    acts["flee"] = {
        "who": draw(num(["players", "suspicious"])),
        "distance": draw(dists),
        "safe": draw(num([32.0, 256.0])),
    }
    acts["talk"] = {"distance": draw(dists), "cooldown": draw(cooldowns), "duration": draw(num([0.0, 3.0, 10.0]))}
    acts["approach"] = {"distance": draw(dists), "cooldown": draw(cooldowns)}
    acts["patrol"] = {"pause": draw(num([0.0, 3.0, 10.0])), "route": draw(st.lists(num(PLACES), max_size=3))}
    if "give_item" in allowed:
        acts["give_item"] = {
            "items": draw(st.lists(num(["bread", "apple", "coin"]), min_size=1, max_size=3)),
            "distance": draw(dists),
            "cooldown": draw(cooldowns),
            "duration": draw(num([0.0, 3.0, 10.0])),
            "line": "{item} for {player} from {name}.",
        }
    place_actions = sorted(allowed & set(PLACE_ACTIONS))
    needs = {}
    for name in draw(st.lists(num(["energy", "hunger", "fun"]), unique=True, max_size=3)):
        low = draw(num([0.0, 30.0, 50.0]))
        need = {
            "rate": -5,
            "low": low,
            "full": low + draw(num([0.0, 20.0, 50.0])),
            "weight": draw(num([0.0, 1.0, 2.0]) | st.floats(0.0, 3.0)),
            "start": draw(num([20.0, 100.0])),
        }
        relief = draw(st.none() | num(place_actions))
        if relief:
            need["relief"] = relief
        if relief in ("go_to", "patrol") or draw(st.booleans()):
            need["at"] = draw(num(PLACES))
        if draw(st.booleans()):
            need["activity"] = draw(num(["resting", "eating", "forging"]))
        needs[name] = need
    schedule = []
    for start, end in BLOCKS:
        if not draw(st.booleans()):
            continue
        b = {"from": start, "to": end, "do": draw(num(place_actions))}
        if b["do"] == "patrol" and (draw(st.booleans()) or not acts["patrol"]["route"]):
            b["at"] = draw(st.lists(num(PLACES), min_size=1, max_size=3) | num(PLACES))
        elif b["do"] == "go_to" or draw(st.booleans()):
            b["at"] = draw(num(PLACES))
        if draw(st.booleans()):
            b["activity"] = draw(num(["forging", "guarding", "resting"]))
        schedule.append(b)
    weights = {k: draw(num([0.0, 0.5, 1.0, 1.5, 2.0]) | st.floats(0.0, 3.0)) for k in draw(st.sets(num(list(WEIGHTS))))}
    return make(
        {
            "id": "t",
            "name": "Tess",
            "actions": acts,
            "needs": needs,
            "schedule": schedule,
            "weights": weights,
            "senses": {"notice": NOTICE},
            "persona": {"greeting": "Hi {player}, I am {name}.", "max_reply": draw(num([200, 12]))},
        }
    )


# -- random perceptions ------------------------------------------------------------------------


@st.composite
def rows(draw, d, minute: float, eid: int):
    linger = d.params["follow"]["linger"]
    ids = draw(st.lists(st.integers(100, 109), unique=True, max_size=6))
    edges = [d.params[a]["distance"] for a in ("talk", "give_item", "flee")] + [d.params["follow"]["give_up"]]
    near = num([r for r in edges if r <= NOTICE] + [NOTICE]) | st.floats(0.0, NOTICE)
    far = sorted(draw(st.lists(near, min_size=len(ids), max_size=len(ids))))
    players = tuple(
        Seen(
            pid,
            name_of(pid),
            "player",
            min(r, NOTICE),
            r,
            0.0,
            draw(num([0.0, linger, 1.0, 10.0]) | st.floats(0.0, 20.0)),
        )
        for pid, r in zip(ids, far)
    )
    past = num([None, NOW, NOW - 30.0, NOW - 60.0, NOW - 120.0]) | st.floats(NOW - 300.0, NOW)
    s = State(
        gifts=draw(st.integers(0, 5)),
        patrol_index=draw(st.integers(0, 5)),
        tending=frozenset(draw(st.sets(num([n.name for n in d.needs])) if d.needs else st.just(()))),
    )
    for memo in (s.greeted, s.given, s.approached):
        for pid in ids:
            t = draw(past)
            if t is not None:
                memo[pid] = t
    stats = {}
    for n in d.needs:
        if draw(st.integers(0, 4)):
            stats[n.name] = draw(num([0.0, n.low, n.full, 100.0]) | st.floats(0.0, 100.0))
    action = draw(num(ENTITY_ACTIONS) | num(ACTIONS))
    target = tgt = None
    if action in ENTITY_ACTIONS:
        target = draw(num(ids) | num([NPC_TARGET, GONE, None]) if ids else num([NPC_TARGET, GONE, None]))
        if target in ids:
            tgt = next(q for q in players if q.id == target)
        elif target == NPC_TARGET:
            tgt = Seen(target, name_of(target), "npc", draw(num(edges) | st.floats(0.0, 500.0)), 0.0, 0.0)
    block = d.block_at(minute)
    route = list(block.route) if block is not None else []
    place = draw(st.none() | num(PLACES + route)) if action in PLACE_ACTIONS else None
    arrived_s = draw(st.none() | num([NOW, NOW - 3.0, NOW - 10.0]))
    intent = Intent(
        action,
        draw(num([action, "talking", "forging", "watching"])),
        place,
        target,
        None,
        draw(st.booleans()),
        NOW - draw(num([0.0, 1.0, 3.0, 5.0, 100.0])),
        arrived_s,
    )
    p = Perception(
        eid,
        name_of(eid),
        NOW,
        GameTime(2, minute),
        0.0,
        0.0,
        draw(st.none() | num(PLACES)),
        stats,
        intent,
        block,
        players,
        tgt,
    )
    return p, s


@st.composite
def sights(draw):
    d = draw(definitions())
    minute = draw(num(MINUTES))
    return d, [draw(rows(d, minute, eid)) for eid in range(1, draw(st.integers(1, 6)) + 1)]


def column_of(dec: Decision) -> int:
    """The score column of a scalar candidate."""
    if dec.keep:
        return CANDIDATES.index("finishing")
    if dec.reason.startswith("schedule "):
        return CANDIDATES.index("schedule")
    if dec.action in ENTITY_ACTIONS or dec.reason == "nothing better to do":
        return CANDIDATES.index(dec.action)
    return CANDIDATES.index("need")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sights())
def test_the_vectorised_builtin_decides_as_the_scalar_one(case):
    d, pairs = case
    sight = build_sight(d, pairs, PLACES)
    v = decide(sight, PLACES)
    n = len(pairs)
    assert v.scores.shape == (n, len(CANDIDATES)) and all(
        len(a) == n for a in (v.action, v.target, v.place, v.distance, v.activity, v.say, v.item, v.keep, v.why, v.need)
    )
    for i, (p, s) in enumerate(pairs):
        choice = scalar_decide(p, s, d)
        assert decision(v, i, sight, PLACES, name_of) == choice.decision, i
        assert ACTIONS[v.action[i]] in d.allowed
        want = np.full(len(CANDIDATES), -np.inf)
        for c in choice.candidates:
            col = column_of(c.decision)
            want[col] = max(want[col], c.score)
        np.testing.assert_array_equal(v.scores[i], want)
        if not choice.decision.keep:  # finishing leaves the scalar's tending and patrol stop as they were
            assert {n.name for k, n in enumerate(d.needs) if sight.tending[i, k]} == choice.tending
            assert sight.patrol[i] == choice.patrol_index
        if v.why[i] == WHY_NEED:
            assert d.needs[v.need[i]].name in choice.tending
        else:
            assert v.need[i] == -1
    # What the policy would get for the same choice: the same details, where they cannot be ambiguous.
    c = complete(sight, PLACES, v.action, v.target, v.place, WHY_POLICY)
    assert not c.keep.any() and (c.why == WHY_POLICY).all() and np.isneginf(c.scores).all()
    for i in range(n):
        if v.why[i] in (
            WHY_GREETING,
            WHY_CAME_NEAR,
            WHY_FLEEING,
            WHY_TOO_CLOSE,
            WHY_SCHEDULE,
            WHY_FOLLOWING,
            WHY_APPROACHING,
        ):
            assert (c.activity[i], c.say[i], c.item[i]) == (v.activity[i], v.say[i], v.item[i]), i
            assert c.distance[i] == v.distance[i] or (math.isnan(c.distance[i]) and math.isnan(v.distance[i]))
            assert decision(c, i, sight, PLACES, name_of).reason == "policy"


# -- by hand ---------------------------------------------------------------------------------------

SMITH = {
    "id": "smith",
    "name": "Brenna",
    "persona": {"greeting": "Hello, {player}."},
    "actions": {
        "allowed": ["idle", "wander", "work", "rest", "talk", "give_item", "follow", "approach"],
        "give_item": {"items": ["bread", "apple"]},
        "follow": {"who": "suspicious"},
    },
    "needs": {
        "energy": {"rate": -2, "relief": "rest", "at": "tavern", "activity": "napping"},
        "hunger": {"rate": -2, "relief": "work", "at": "forge"},
    },
    "schedule": [{"from": "06:00", "to": "12:00", "do": "work", "at": "forge", "activity": "forging"}],
}


def one(
    d,
    *,
    players=(),
    action="wander",
    target=None,
    activity="wander",
    stats=None,
    minute=8 * 60.0,
    since=NOW - 100.0,
    state=None,
    tgt=None,
):
    p = Perception(
        1,
        "Brenna",
        NOW,
        GameTime(0, minute),
        0.0,
        0.0,
        None,
        stats or {},
        Intent(action, activity, None, target, None, False, since, None),
        d.block_at(minute),
        tuple(players),
        tgt,
    )
    return p, state or State()


def test_an_empty_sight_and_rows_without_players():
    d = make(SMITH)
    v = decide(build_sight(d, [], PLACES), PLACES)
    assert v.scores.shape == (0, len(CANDIDATES)) and len(v) == 0
    bob = Seen(101, "P101", "player", 50.0, 50.0, 0.0, 10.0)
    pairs = [one(d), one(d, players=[bob]), one(d), one(d, players=[bob])]
    sight = build_sight(d, pairs, PLACES)
    v = decide(sight, PLACES)
    assert [decision(v, i, sight, PLACES, name_of).reason for i in range(4)] == [
        "schedule 06:00-12:00",
        "P101 came near",
        "schedule 06:00-12:00",
        "P101 came near",
    ]
    assert list(v.say) == [SAY_NONE, SAY_GIFT, SAY_NONE, SAY_GIFT] and list(v.item) == [None, "bread", None, "bread"]
    assert decision(v, 1, sight, PLACES, name_of).say == "Here, P101: a bread, for you."


def test_not_allowed_is_never_a_candidate_and_weight_zero_still_is():
    d = make(
        {
            **SMITH,
            "actions": {"allowed": ["idle", "talk"]},
            "needs": {},
            "schedule": [],
            "weights": {"idle": 0.0, "talk": 0.0},
        }
    )
    bob = Seen(101, "P101", "player", 50.0, 50.0, 0.0, 10.0)
    pairs = [one(d, players=[bob]), one(d)]
    sight = build_sight(d, pairs, PLACES)
    v = decide(sight, PLACES)
    allowed = [CANDIDATES.index(c) for c in ("talk", "idle")]
    others = [i for i in range(len(CANDIDATES)) if i not in allowed]
    assert np.isneginf(v.scores[:, others]).all()
    assert v.scores[0, allowed].tolist() == [0.0, 0.0] and v.scores[1].max() == 0.0
    # All score 0: the tie goes to the earlier column, talk, as in the scalar version.
    assert [ACTIONS[a] for a in v.action] == ["talk", "idle"]
    assert [decision(v, i, sight, PLACES, name_of) for i in range(2)] == [
        scalar_decide(p, s, d).decision for p, s in pairs
    ]


def test_needs_the_best_one_wins_and_ties_go_to_the_earlier():
    d = make(SMITH)
    pairs = [
        one(d, stats={"energy": 20.0, "hunger": 20.0}),  # equal: energy, the earlier need
        one(d, stats={"energy": 25.0, "hunger": 10.0}),  # hunger is more urgent
        one(d, stats={"energy": 90.0, "hunger": 90.0}),
    ]  # neither: the schedule
    sight = build_sight(d, pairs, PLACES)
    v = decide(sight, PLACES)
    got = [decision(v, i, sight, PLACES, name_of) for i in range(3)]
    assert [(g.action, g.place, g.activity, g.reason) for g in got] == [
        ("rest", "tavern", "napping", "energy is 20"),
        ("work", "forge", "work", "hunger is 10"),
        ("work", "forge", "forging", "schedule 06:00-12:00"),
    ]
    assert v.need.tolist() == [0, 1, -1]
    assert got == [scalar_decide(p, s, d).decision for p, s in pairs]


def test_complete_fills_a_policy_choice_as_the_builtin_would():
    d = make(SMITH)
    bob = Seen(101, "P101", "player", 50.0, 50.0, 0.0, 10.0)
    pairs = [
        one(d, players=[bob], state=State(gifts=3)),
        one(d, players=[bob]),
        one(d, players=[bob], action="follow", target=101, activity="glaring", tgt=bob),
        one(d),
        one(d),
        one(d),
        one(d, players=[bob]),
    ]
    sight = build_sight(d, pairs, PLACES)
    tav, forge = PLACES.index("tavern"), PLACES.index("forge")
    act = [ACTION_INDEX[a] for a in ("give_item", "talk", "follow", "rest", "work", "idle", "approach")]
    c = complete(
        sight,
        PLACES,
        np.array(act, np.int8),
        np.array([101, 101, 101, -1, -1, -1, 101]),
        np.array([-1, -1, -1, tav, forge, forge, -1], np.int32),
        WHY_POLICY,
    )
    got = [decision(c, i, sight, PLACES, name_of) for i in range(len(pairs))]
    assert got[0] == Decision(
        "give_item", target=101, activity="giving", say="Here, P101: a apple, for you.", reason="policy", item="apple"
    )
    assert got[1] == Decision("talk", target=101, activity="talking", say="Hello, P101.", reason="policy")
    assert got[2] == Decision("follow", target=101, distance=48.0, activity="glaring", reason="policy")
    assert got[3].activity == "napping"  # energy's relief at its place
    assert got[4].activity == "forging"  # the block's own do at its place (before hunger's work at forge)
    assert got[5].activity == "forging"  # another place action at the schedule's place
    assert got[6] == Decision("approach", target=101, distance=40.0, activity="curious", reason="policy")
    assert c.say.tolist() == [SAY_GIFT, SAY_GREETING, SAY_NONE, SAY_NONE, SAY_NONE, SAY_NONE, SAY_NONE]


def test_finishing_keeps_the_intent():
    d = make(SMITH)
    bob = Seen(101, "P101", "player", 50.0, 50.0, 0.0, 10.0)
    pairs = [
        one(d, players=[bob], action="talk", target=101, activity="talking", since=NOW - 1.0, tgt=bob),
        one(d, players=[bob], action="talk", target=101, activity="talking", since=NOW - 5.0, tgt=bob),
    ]
    sight = build_sight(d, pairs, PLACES)
    v = decide(sight, PLACES)
    assert v.keep.tolist() == [True, False]
    assert v.scores[0].tolist() == [np.inf] + [-np.inf] * (len(CANDIDATES) - 1)
    assert [decision(v, i, sight, PLACES, name_of) for i in range(2)] == [
        scalar_decide(p, s, d).decision for p, s in pairs
    ]
    assert builtin.reason(v, 0, sight, name_of) == "finishing"


def test_boundaries_are_inclusive_as_in_the_scalar_version():
    d = make(SMITH)
    give_up, linger = d.params["follow"]["give_up"], d.params["follow"]["linger"]
    npc = Seen(NPC_TARGET, name_of(NPC_TARGET), "npc", give_up, 0.0, 0.0)
    beyond = Seen(NPC_TARGET, name_of(NPC_TARGET), "npc", give_up + 1e-9, 0.0, 0.0)
    bob = Seen(101, "P101", "player", 150.0, 150.0, 0.0, linger)  # suspicious exactly at linger
    pairs = [
        one(d, action="follow", target=NPC_TARGET, activity="glaring", tgt=npc),
        one(d, action="follow", target=NPC_TARGET, activity="glaring", tgt=beyond, players=[bob]),
    ]
    sight = build_sight(d, pairs, PLACES)
    v = decide(sight, PLACES)
    got = [decision(v, i, sight, PLACES, name_of) for i in range(2)]
    assert [g.reason for g in got] == [f"following {name_of(NPC_TARGET)}", "P101 is suspicious"]
    assert got == [scalar_decide(p, s, d).decision for p, s in pairs]


def test_a_schedule_or_relief_no_longer_allowed_is_no_candidate():
    d = make(SMITH)
    d = replace(d, allowed=d.allowed - {"work", "rest"})  # as a file edited under a live NPC might be
    pairs = [one(d, stats={"energy": 10.0}), one(d)]
    sight = build_sight(d, pairs, PLACES)
    v = decide(sight, PLACES)
    assert np.isneginf(v.scores[:, [CANDIDATES.index("need"), CANDIDATES.index("schedule")]]).all()
    assert [decision(v, i, sight, PLACES, name_of) for i in range(2)] == [
        scalar_decide(p, s, d).decision for p, s in pairs
    ]
