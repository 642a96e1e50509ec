"""The decision policy: it only ever returns allowed actions (property test over
random observations and masks, for the shipped weights, random weights and a
module that ignores the masks); observations from a real world; decoding
re-checks what is allowed; `npcworld train-policy` end to end on a tiny setting."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from npc.policy import observe
from npc.policy.observe import A, ACTIONS, OBS_DIM, T
from npc.policy.model import DEFAULT_WEIGHTS, PolicyRunner
from policy_modules import IgnoresMasks

ROOT = DEFAULT_WEIGHTS.parent.parent.parent


@pytest.fixture(scope="module")
def runners():
    out = [PolicyRunner(weights=None), PolicyRunner(module="policy_modules:ignores_masks")]
    from server.config import weights_input

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
                    assert act[i] == -1          # nothing allowed: the NPC keeps its built-in decision
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


def _cast_with_players(npcs: int = 12, players: int = 6):
    """A real world with the shipped NPC files and a few players near them."""
    from npc.minds.cast import Cast
    from world.sim import PLAYER, World, WorldConfig
    from world.tilemap import load_map

    world = World(load_map(str(ROOT / "assets" / "maps" / "default.tmj")), WorldConfig(seed=3))
    cast = Cast(world, str(ROOT / "assets" / "npcs"))
    cast.load_all()
    for k in range(players):
        world.spawn(PLAYER, f"p{k}", "#fff", place=world.places[k % len(world.places)])
    return world, cast


def test_observations_for_all_due_npcs_and_decode_rechecks_what_is_allowed():
    world, cast = _cast_with_players()
    seen = []

    class Note:                          # the built-in decides; we keep what every think saw
        def begin_tick(self, now_s): return None
        def follows(self, defn): return False
        def ask(self, sight): raise AssertionError("follows() is False: nothing is asked")
        def note(self, sight, verdict): seen.append(sight)
        def end_tick(self): pass

    cast.decider = Note()
    for _ in range(10):                  # every NPC thinks once in 10 ticks
        cast.tick()
        world.step(0.05)
    rows = observe.rows(seen, tuple(world.map.world_size), world.place_positions(), world.of_kind(1)[1],
                        world.places)
    n = len(rows)
    assert n >= len(cast.minds)
    assert rows.obs.shape == (n, OBS_DIM) and rows.obs.dtype == np.float32 and np.isfinite(rows.obs).all()
    assert rows.mask.shape == (n, A) and rows.tmask.shape == (n, T) and rows.tmask[:, 0].all()
    rng = np.random.default_rng(0)
    for i in range(n):
        allowed = cast.minds[int(rows.eid[i])].defn.allowed
        assert {ACTIONS[k] for k in np.flatnonzero(rows.mask[i])} <= set(allowed)
    for _ in range(20):                  # any answer, even a disallowed one, decodes to an allowed action or not ok
        d = observe.decode(rows.slots, rng.integers(-2, A + 2, n), rng.integers(-2, T + 2, n), rows.mask,
                           rows.tmask, rows.finishing)
        for i in np.flatnonzero(d.ok):
            assert ACTIONS[int(d.action[i])] in cast.minds[int(rows.eid[i])].defn.allowed


def test_train_policy_runs_end_to_end_on_a_tiny_setting(tmp_path):
    out = tmp_path / "policy"
    proc = subprocess.run(
        [sys.executable, "-m", "server.cli", "train-policy", "--out", str(out), "--npcs", "20", "--players", "4",
         "--seconds", "6", "--epochs", "2", "--hidden", "16", "--seed", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["decisions"] > 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "behaviour cloning report" in (out / "report.md").read_text()
    from npc.policy.model import build_policy

    model = build_policy(str(out / "policy.safetensors"), hidden=16)
    assert sum(p.numel() for p in model.parameters()) > 0
