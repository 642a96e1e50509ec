"""The decision policy: it only ever returns allowed actions (property test over
random observations and masks, for the shipped weights, random weights and a
module that ignores the masks); the observation layout is one table; rows
from Sights (random ones, and a real world's) are finite and masked
structurally, and the built-in never chooses outside the mask; decoding
re-checks both masks; whatever a policy answers for random files, masks and
decode never let a disallowed or weight-0 action through; the `decider`
key of NPC files. (Training and the guard: tests/npc/policy/test_policy_train.py.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from world.sim import World
from world.tilemap import load_map

from npc.files.schema import validate
from npc.minds import builtin
from npc.policy import observe
from npc.policy.observe import (
    A,
    ACTION_INDEX,
    ACTIONS,
    FITS,
    KIND,
    LAYOUT,
    NONE,
    OBS_DIM,
    OFFSET,
    T,
    decode,
    label,
    rows,
    structural_mask,
)
from npc.policy.model import DEFAULT_WEIGHTS, PolicyRunner
from npc.policy.randomise import random_definition, random_sight
from support.policy_modules import IgnoresMasks

ROOT = DEFAULT_WEIGHTS.parent.parent.parent
MAP = ROOT / "assets" / "maps" / "default.tmj"


@pytest.fixture(scope="module")
def world():
    return World(load_map(str(MAP)))


def _rows(world, sights):
    return rows(sights, tuple(world.map.world_size), world.place_positions(), None, world.places)


# -- the runner ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runners():
    from npc.policy.weights import weights_input

    out = [PolicyRunner(weights=None), PolicyRunner(module="support.policy_modules:ignores_masks")]
    if DEFAULT_WEIGHTS.is_file() and weights_input(str(DEFAULT_WEIGHTS)) == OBS_DIM:
        out.append(PolicyRunner(weights=str(DEFAULT_WEIGHTS)))
    return out


floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


@st.composite
def requests(draw):
    n = draw(st.integers(1, 16))
    obs = draw(hnp.arrays(np.float32, (n, OBS_DIM), elements=floats))
    mask = draw(hnp.arrays(bool, (n, A)))
    tmask = draw(hnp.arrays(bool, (n, T)))
    return {"obs": obs, "mask": mask, "tmask": tmask}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(requests(), min_size=1, max_size=3))
def test_the_policy_only_returns_allowed_actions_and_real_targets(runners, batch):
    for runner in runners:
        out = runner.run(batch)
        assert len(out) == len(batch)
        for req, ans in zip(batch, out):
            act, tgt = np.asarray(ans["action"]), np.asarray(ans["target"])
            assert act.shape == tgt.shape == (len(req["obs"]),)
            for i in range(len(act)):
                if req["mask"][i].any():
                    assert 0 <= act[i] < A and req["mask"][i, act[i]], (runner, i, act[i], req["mask"][i])
                else:
                    assert act[i] == -1  # nothing allowed: the NPC keeps its built-in decision
                if req["tmask"][i].any():
                    assert 0 <= tgt[i] < T and req["tmask"][i, tgt[i]]
                else:
                    assert tgt[i] == -1


def test_the_model_masks_its_own_output():
    import torch

    from npc.policy.model import build_policy

    model = build_policy()
    obs = torch.randn(64, OBS_DIM) * 100
    mask = torch.rand(64, A) < 0.3
    mask[:, 0] = True
    a, t = model(obs, mask, torch.ones(64, T, dtype=torch.bool))
    assert torch.isinf(a[~mask]).all() and (a[~mask] < 0).all()
    assert mask.gather(1, a.argmax(-1, keepdim=True)).all()
    assert IgnoresMasks()(obs, mask, torch.ones(64, T, dtype=torch.bool))[0].shape == (64, A)


# -- the layout ------------------------------------------------------------------------------------


def test_the_observation_layout_is_one_table_and_rows_follow_it(world):
    names = [f.name for f in LAYOUT]
    assert len(names) == len(set(names))
    assert OBS_DIM == sum(f.width for f in LAYOUT)
    at = 0
    for f in LAYOUT:  # contiguous, in table order
        assert OFFSET[f.name] == slice(at, at + f.width), f.name
        at += f.width
    rng = np.random.default_rng(1)
    defs = [random_definition(rng, world.places, i) for i in range(12)]
    sights = [random_sight(rng, d, int(rng.integers(0, 5)), world.places) for d in defs]
    r = _rows(world, sights)
    n = sum(len(s) for s in sights)
    assert r.obs.shape == (n, OBS_DIM) and r.obs.dtype == np.float32 and np.isfinite(r.obs).all()
    assert r.mask.shape == (n, A) and r.tmask.shape == (n, T) and r.slots.shape == (n, T)
    assert r.tmask[:, NONE].all() and (r.slots[:, NONE] == -1).all()
    assert (r.tmask[:, 1:] == ((r.slots[:, 1:] >= 0) & ~r.finishing[:, None])).all()
    lo = 0
    for s in sights:  # the named fields hold what they say
        hi = lo + len(s)
        allowed = np.asarray([a in s.defn.allowed for a in ACTIONS])
        assert (r.obs[lo:hi, OFFSET["allowed"]] == allowed).all()
        assert (r.obs[lo:hi, OFFSET["current"]].argmax(axis=1) == s.action).all()
        assert (r.eid[lo:hi] == s.eid).all()
        assert (r.slots[lo:hi, observe.PLAYER0 : observe.SCHEDULE] == observe.nearest_players(s)).all()
        assert (r.slots[lo:hi, observe.SCHEDULE] == s.sched_place).all()
        live = ~r.finishing[lo:hi]
        assert (r.mask[lo:hi][live] == structural_mask(s.defn)).all()
        lo = hi
    assert len(_rows(world, [])) == 0 and _rows(world, []).obs.shape == (0, OBS_DIM)


def test_the_built_in_choice_is_always_a_candidate_of_the_observation(world):
    """The observation's `candidate` flags are the built-in's candidates (computed apart: this keeps
    them one): its choice is always one of them, and within the masks."""
    rng = np.random.default_rng(7)
    for i in range(300):
        d = random_definition(rng, world.places, i)
        s = random_sight(rng, d, 6, world.places)
        v = builtin.decide(s, world.places)
        r = _rows(world, [s])
        assert (r.finishing == v.keep).all()
        cand = r.obs[:, OFFSET["candidate"]] > 0.5
        a, slot = label(s, v, r.slots)
        live = ~r.finishing
        assert cand[np.arange(len(a)), a][live].all(), (d, s, v)
        assert r.mask[np.arange(len(a)), a].all() and r.tmask[np.arange(len(a)), slot].all()


# -- the mask ---------------------------------------------------------------------------------------


def _defn(world, **extra):
    data = {
        "name": "x",
        "actions": {"allowed": ["idle", "wander", "talk", "go_to"]},
        "schedule": [{"from": "00:00", "to": "12:00", "do": "go_to", "at": world.places[0]}],
        **extra,
    }
    d, problems = validate(data, {}, "x.toml", world.places)
    assert not problems, problems
    return d


def test_the_mask_is_structural(world):
    mask = lambda d: {ACTIONS[i] for i in np.flatnonzero(structural_mask(d))}  # noqa: E731
    assert mask(_defn(world)) == {"idle", "wander", "talk", "go_to"}
    assert mask(_defn(world, weights={"talk": 0})) == {"idle", "wander", "go_to"}
    assert mask(_defn(world, weights={"schedule": 0, "wander": 0})) == {"idle", "talk"}
    # no baseline above 0: ties at 0 go to the earliest candidate, so every allowed action stays
    assert mask(_defn(world, weights={"talk": 0, "wander": 0, "idle": 0})) == {"idle", "wander", "talk", "go_to"}


def test_a_row_finishing_a_talk_may_only_keep_it(world):
    d = _defn(world)
    s = random_sight(np.random.default_rng(3), d, 8, world.places)
    s = type(s)(
        **{
            **{f: getattr(s, f) for f in s.__dataclass_fields__},
            "action": np.full(8, ACTION_INDEX["talk"], np.int8),
            "since": np.full(8, s.now_s - 1.0),
        }
    )
    r = _rows(world, [s])
    assert r.finishing.all()
    assert (r.mask.sum(axis=1) == 1).all() and r.mask[:, ACTION_INDEX["talk"]].all()
    assert (r.tmask.sum(axis=1) == 1).all() and r.tmask[:, NONE].all()
    d_ = decode(r.slots, np.full(8, ACTION_INDEX["talk"]), np.zeros(8), r.mask, r.tmask, r.finishing)
    assert d_.ok.all() and (d_.target == -1).all()
    assert not decode(r.slots, np.full(8, ACTION_INDEX["talk"]), np.zeros(8), r.mask, r.tmask).ok.any()


# -- decode ----------------------------------------------------------------------------------------


def _check_decoded(r, action, target, out):
    for i in range(len(r)):
        if not out.ok[i]:
            assert out.action[i] == -1 and out.target[i] == -1 and out.place[i] == -1
            continue
        a, t = int(out.action[i]), int(target[i])
        assert a == action[i] and r.mask[i, a] and r.tmask[i, t], (i, a, t)
        if r.finishing[i]:
            assert out.target[i] == -1 and out.place[i] == -1
        elif KIND[a] == "entity":
            assert out.target[i] == r.slots[i, t] >= 0 and out.place[i] == -1
        else:
            assert out.target[i] == -1 and FITS[a, t]
            assert out.place[i] == (r.slots[i, t] if t != NONE else -1)


def test_decode_rechecks_the_masks_and_the_target_kinds(world):
    rng = np.random.default_rng(0)
    defs = [random_definition(rng, world.places, i) for i in range(30)]
    r = _rows(world, [random_sight(rng, d, 6, world.places) for d in defs])
    n = len(r)
    for _ in range(20):  # any answer, even out of range, decodes safely
        action = rng.integers(-2, A + 2, n)
        target = rng.integers(-2, T + 2, n)
        _check_decoded(r, action, target, decode(r.slots, action, target, r.mask, r.tmask, r.finishing))
    with pytest.raises(ValueError):
        decode(r.slots, np.zeros(n - 1), np.zeros(n - 1), r.mask, r.tmask)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1.0, 100.0, 1e6]))
def test_no_logits_get_a_masked_action_through(world, seed, scale):
    """Random files (randomise.py), random sights, a random-weight policy or random logits: the masks
    and decode never let through an action the file does not allow or whose every route weighs 0."""
    import torch

    from npc.policy.model import Policy

    rng = np.random.default_rng(seed)
    defs = [random_definition(rng, world.places, i) for i in range(8)]
    r = _rows(world, [random_sight(rng, d, 4, world.places) for d in defs])
    torch.manual_seed(seed % 2**31)
    with torch.no_grad():
        a, t = Policy(hidden=16)(torch.from_numpy(r.obs) * scale, torch.from_numpy(r.mask), torch.from_numpy(r.tmask))
    answers = [
        (a.argmax(-1).numpy(), t.argmax(-1).numpy()),
        ((rng.normal(size=(len(r), A)) * scale).argmax(1), rng.integers(0, T, len(r))),
    ]
    can = np.concatenate([np.repeat(structural_mask(d)[None], 4, 0) for d in defs])
    allowed = np.concatenate([np.repeat(np.asarray([x in d.allowed for x in ACTIONS])[None], 4, 0) for d in defs])
    for action, target in answers:
        out = decode(r.slots, action, target, r.mask, r.tmask, r.finishing)
        _check_decoded(r, action, target, out)
        k = np.flatnonzero(out.ok)
        assert allowed[k, out.action[k]].all()
        keep = r.finishing[k]
        assert can[k[~keep], out.action[k[~keep]]].all()
        assert (out.action[k[keep]] == r.current[k[keep]]).all()


def test_the_routes_read_the_built_in_decision_from_the_observation(world):
    """The policy's shape (npc/policy/model.py): with nothing learned but a large scale and the
    built-in's tie order as the routes' biases, its action is the built-in's on random files and
    sights it never saw: the observation carries the decision and `route_terms` reads it right."""
    import math

    import torch

    from npc.minds.builtin import CANDIDATES
    from npc.policy.model import ROUTES, Policy

    rng = np.random.default_rng(7)
    seen = []
    for i in range(300):
        d = random_definition(rng, world.places, i)
        s = random_sight(rng, d, 6, world.places)
        seen.append((s, builtin.decide(s, world.places)))
    r = _rows(world, [s for s, _ in seen])
    want = np.concatenate([label(s, v)[0] for s, v in seen])
    model = Policy(hidden=8)
    with torch.no_grad():
        model.log_scale.fill_(math.log(1e4))
        for k, route in enumerate(ROUTES):
            for j, a in enumerate(ACTIONS):
                name = a if route == "own" else route  # the built-in's column of this route
                column = CANDIDATES.index(name) if name in CANDIDATES else len(CANDIDATES)
                model.route_bias[k, j] = -0.01 * column  # the earlier candidate wins a tie
        got, _ = model(*(torch.from_numpy(x) for x in (r.obs, r.mask, r.tmask)))
    got = got.argmax(-1).numpy()
    assert len(want) == 1800 and (~r.finishing).sum() > 1500
    assert (got == want).mean() >= 0.999, [(ACTIONS[w], ACTIONS[g]) for w, g in zip(want, got) if w != g][:10]
    model.log_scale.data.fill_(math.log(1e-3))  # no scale: the routes say nothing, it is a guess
    with torch.no_grad():
        blind = model(*(torch.from_numpy(x) for x in (r.obs, r.mask, r.tmask)))[0].argmax(-1).numpy()
    assert (blind == want).mean() < 0.9


def test_weights_of_the_plain_mlp_still_load(tmp_path):
    """Weights trained before the routes (no log_scale) load as the plain MLP they were."""
    import torch

    from npc.policy.model import Policy, build_policy, save

    save(Policy(hidden=8, routes=False), tmp_path / "plain.safetensors")
    save(Policy(hidden=8), tmp_path / "routes.safetensors")
    plain, routes = (
        build_policy(str(tmp_path / "plain.safetensors")),
        build_policy(str(tmp_path / "routes.safetensors")),
    )
    assert not plain.routes and routes.routes
    obs, mask = torch.zeros(3, OBS_DIM), torch.ones(3, A, dtype=torch.bool)
    for m in (plain, routes):
        a, t = m(obs, mask, torch.ones(3, T, dtype=torch.bool))
        assert a.shape == (3, A) and t.shape == (3, T) and torch.isfinite(a).all()


# -- a real world -----------------------------------------------------------------------------------


def test_rows_of_a_real_cast_and_the_built_in_stays_inside_the_mask(world):
    """The shipped files in a real world, the built-in deciding: every think's row is finite, its
    mask within what the file allows, and the built-in's own choice inside both masks."""
    from npc.minds.cast import Cast
    from world.sim import PLAYER, WorldConfig

    w = World(load_map(str(MAP)), WorldConfig(seed=3, day_length_s=30.0))
    cast = Cast(w, str(ROOT / "assets" / "npcs"))
    cast.load_all()
    for k in range(6):
        w.spawn(PLAYER, f"p{k}", "#fff", place=w.places[k % len(w.places)])
    seen = []

    class Note:  # the built-in decides; we keep what every think saw
        def begin_tick(self, now_s):
            return None

        def follows(self, defn):
            return False

        def ask(self, sight):
            raise AssertionError("follows() is False: nothing is asked")

        def note(self, sight, verdict):
            seen.append((sight, verdict))

        def end_tick(self):
            pass

    cast.decider = Note()
    for _ in range(200):  # every NPC thinks once in 10 ticks
        cast.tick()
        w.step(0.05)
    r = observe.rows([s for s, _ in seen], tuple(w.map.world_size), w.place_positions(), w.of_kind(1)[1], w.places)
    n = len(r)
    assert n >= 20 * len(cast.minds)
    assert r.obs.shape == (n, OBS_DIM) and np.isfinite(r.obs).all()
    lo = 0
    for s, v in seen:
        hi = lo + len(s)
        allowed = np.asarray([a in s.defn.allowed for a in ACTIONS])
        assert not (r.mask[lo:hi] & ~allowed).any()
        a, t = label(s, v, r.slots[lo:hi])
        assert r.mask[lo:hi][np.arange(len(s)), a].all()  # the built-in never chose outside the mask
        assert r.tmask[lo:hi][np.arange(len(s)), t].all()
        lo = hi


# -- the decider key --------------------------------------------------------------------------------


def test_the_decider_key_of_npc_files(world):
    base = {"name": "x", "actions": {"allowed": ["idle"]}}
    assert validate(base, {}, "x.toml", world.places)[0].decider == "auto"
    d, problems = validate({**base, "decider": "builtin"}, {}, "x.toml", world.places)
    assert not problems and d.decider == "builtin"
    d, problems = validate({**base, "decider": "bultin"}, {("decider",): 4}, "x.toml", world.places)
    assert d is None and len(problems) == 1
    p = problems[0]
    assert (p.file, p.line) == ("x.toml", 4) and "'bultin'" in p.message and "did you mean 'builtin'" in p.message
    assert '"auto" or "builtin"' in p.expected
    d, problems = validate({**base, "decider": 1}, {("decider",): 2}, "x.toml", world.places)
    assert d is None and problems[0].line == 2 and "decider" in str(problems[0])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**31), st.integers(0, 12))
def test_the_player_fields_are_those_of_each_rows_nearest_k_pairs(world, seed, players):
    """The p_* fields and "any", one pair at a time from the layout's words (the rows build them for
    the nearest K pairs only, and "any" over all of a row's pairs)."""
    rng = np.random.default_rng(seed)
    defs = [random_definition(rng, world.places, i) for i in range(3)]
    sights = [random_sight(rng, d, int(rng.integers(1, 6)), world.places, players=players) for d in defs]
    r = _rows(world, sights)
    lo = 0
    for s in sights:
        d, f = s.defn, s.defn.params
        notice = max(1.0, d.senses["notice"])
        for i in range(len(s)):
            got = lambda name: r.obs[lo + i, OFFSET[name]]  # noqa: E731
            fits = np.zeros(5, bool)
            for k, j in enumerate(range(s.start[i], s.start[i + 1])):
                susp = s.p_near_s[j] >= f["follow"]["linger"]
                flee = s.p_dist[j] <= f["flee"]["distance"] and (f["flee"]["who"] != "suspicious" or susp)
                follow = f["follow"]["who"] != "suspicious" or susp
                give = (
                    s.p_dist[j] <= f["give_item"]["distance"]
                    and s.now_s - s.p_given[j] >= f["give_item"]["cooldown"]
                    and bool(f["give_item"]["items"])
                )
                talk = s.p_dist[j] <= f["talk"]["distance"] and s.now_s - s.p_greeted[j] >= f["talk"]["cooldown"]
                approach = s.now_s - s.p_approached[j] >= f["approach"]["cooldown"]
                fits |= [flee, follow, give, talk, approach]
                if k >= observe.K:
                    continue
                want = {
                    "p_present": 1.0,
                    "p_distance": s.p_dist[j] / notice,
                    "p_dx": np.clip((s.p_pos[j, 0] - s.pos[i, 0]) / notice, -1, 1),
                    "p_dy": np.clip((s.p_pos[j, 1] - s.pos[i, 1]) / notice, -1, 1),
                    "p_suspicious": susp,
                    "p_flee": flee,
                    "p_follow": follow,
                    "p_give": give,
                    "p_talk": talk,
                    "p_approach": approach,
                    "p_current": bool(s.t_alive[i]) and s.p_id[j] == s.target[i],
                }
                for name, v in want.items():
                    assert got(name)[k] == np.float32(v), (name, i, k)
            for name in ("p_present", "p_distance", "p_suspicious", "p_talk"):  # no pair: zeros
                assert (got(name)[s.start[i + 1] - s.start[i] :] == 0).all()
            assert (got("any") == fits).all(), i
        lo += len(s)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 60), st.integers(1, 30))
def test_npcs_near_counts_each_square_as_a_plain_count_does(seed, every_n, rows_n):
    """observe._npcs_near (a bincount over the squares, or np.unique past DENSE_SQUARES) against a count of
    the NPCs in each row's CELL square; 1 for a row whose square holds none of them."""
    rng = np.random.default_rng(seed)
    every = rng.uniform(-600, 3000, (every_n, 2))
    xy = np.concatenate([every[: rows_n // 2], rng.uniform(-600, 3000, (rows_n - min(rows_n // 2, every_n), 2))])
    sq = lambda p: np.floor(p / observe.CELL)  # noqa: E731
    want = np.asarray([max(1, int((sq(every) == sq(p)).all(axis=1).sum())) for p in xy], np.float64)
    want_self = np.asarray([max(1, int((sq(xy) == sq(p)).all(axis=1).sum())) for p in xy], np.float64)
    assert np.array_equal(observe._npcs_near(xy, every if every_n else None), want if every_n else want_self)
    dense = observe.DENSE_SQUARES
    try:
        observe.DENSE_SQUARES = 0  # the sorting way
        assert np.array_equal(observe._npcs_near(xy, every if every_n else None), want if every_n else want_self)
    finally:
        observe.DENSE_SQUARES = dense


# -- rows built in the worker -------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**31), st.integers(1, 6))
def test_a_request_sent_to_a_worker_builds_the_ticks_rows_and_its_decoded_answer(world, runners, seed, files):
    """observe.request through the pool's wire (msgpack, arrays arriving read-only) and observe.build make
    the rows the tick makes (observe.rows) bit for bit, and each runner's answer to {"rows": request} is
    observe.decode of its answer to those rows' {"obs", "mask", "tmask"}."""
    from npc.inference import wire

    rng = np.random.default_rng(seed)
    defs = [random_definition(rng, world.places, i) for i in range(files)]
    sights = [random_sight(rng, d, int(rng.integers(0, 6)), world.places) for d in defs]
    # half the rows' intents set just now: those talking or giving are finishing it (only keeping it is ok)
    sights = [dataclasses.replace(s, since=np.where(rng.random(len(s)) < 0.5, s.now_s, s.since)) for s in sights]
    npc_xy = rng.uniform(0, 2000, (int(rng.integers(0, 40)), 2))
    args = (sights, tuple(world.map.world_size), world.place_positions(), npc_xy, world.places)
    want = rows(*args)
    req = wire.unpack(wire.pack({"rows": observe.request(*args)}))
    got = observe.build(req["rows"])
    # and against the rows of the Sights' own values row by row (each file's features and scalars stacked
    # per NPC, not repeated by build), as rows() made them before the request existed
    live = [s for s in sights if len(s)]
    if live:
        g = observe._gather(live, lambda d: observe.features(d, world.places))
        for name in observe.PER_SIGHT:
            g[name] = np.concatenate([np.stack([np.asarray(v)] * len(s)) for v, s in zip(g[name], live)])
        g["pos"], g["p_pos"] = g["pos"].reshape(-1, 2), g["p_pos"].reshape(-1, 2)
        size = tuple(max(1.0, float(x)) for x in world.map.world_size)
        plain = observe._build(g, np.asarray(world.place_positions(), np.float64).reshape(-1, 2), size, npc_xy)
    else:
        plain = observe.empty_rows()
    for f in observe.Rows._fields:
        for ref in (want, plain):
            assert np.array_equal(getattr(got, f), getattr(ref, f)), f
            assert getattr(got, f).dtype == getattr(ref, f).dtype, f
    for runner in runners:
        [plain] = runner.run([{"obs": want.obs, "mask": want.mask, "tmask": want.tmask}])
        [ans] = wire.unpack(wire.pack(runner.run([req])))
        d = decode(want.slots, plain["action"], plain["target"], want.mask, want.tmask, want.finishing)
        for f in ("action", "target", "place", "ok"):
            assert np.array_equal(ans[f], getattr(d, f)) and ans[f].dtype == getattr(d, f).dtype, (runner, f)
        assert np.array_equal(ans["finishing"], want.finishing)


def test_the_decider_refuses_a_decoded_answer_of_the_wrong_shape_or_range(world):
    """A worker's decoded answer is checked before the tick applies it: a wrong shape or dtype, an action
    outside the vocabulary, a place outside the map is an error (the rows go to the built-in)."""
    from npc.policy.decider import PolicyDecider

    d = PolicyDecider(None, world, 0.05, guard=False)  # (no pool: only the answer's check is used)
    n = 3
    good = {
        "action": np.asarray([0, 2, -1], np.int8),
        "target": np.asarray([-1, 7, -1], np.int64),
        "place": np.asarray([1, -1, -1], np.int32),
        "ok": np.asarray([True, True, False]),
        "finishing": np.zeros(n, bool),
    }
    dec, fin = d._decoded(n, good)
    assert np.array_equal(dec.action, good["action"]) and np.array_equal(dec.ok, good["ok"]) and not fin.any()
    bad = [
        {**good, "action": good["action"].astype(np.int64)},
        {**good, "ok": good["ok"][:2]},
        {**good, "action": np.asarray([A, 2, -1], np.int8)},
        {**good, "action": np.asarray([-1, 2, -1], np.int8)},
        {**good, "place": np.asarray([len(world.places), -1, -1], np.int32)},
    ]
    for value in bad:
        with pytest.raises(ValueError):
            d._decoded(n, value)
