"""A policy request that fails hands its NPCs to the built-in behaviour in bounded
slices over the next ticks (npc/minds/think.py FALLBACK_SHARE), never all in one
tick on top of that tick's own thinks; each missed NPC is decided once, soon.

The decider here is a real implementation of the decider protocol
(npc/policy/protocol.py) whose one request fails, as a killed worker's does:
it follows the file for one tick, then hands every NPC it was asked back as
missed, and from then on follows nothing (no worker serving)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from npc.minds import builtin, think
from npc.minds.cast import Cast
from npc.minds.think import Answers
from support.npchelp import small_map, write
from world.sim import World, WorldConfig
from world.tilemap import load_map

CROWD = """
    name = "Townsfolk"
    spawn = "a"
    count = 400

    [actions]
    allowed = ["idle", "wander"]
"""


class FailsOnce:
    """Follows every file at tick `at` only; the request made then fails (all its NPCs missed)."""

    def __init__(self, world, at: int):
        self.world, self.at = world, at
        self.asked: list[np.ndarray] = []
        self.failed: np.ndarray | None = None

    def begin_tick(self, now_s: float) -> Answers:
        out = Answers()
        if self.asked:
            out.missed = self.failed = np.concatenate(self.asked)
            self.asked = []
        return out

    def follows(self, defn) -> bool:
        return self.world.tick == self.at

    def ask(self, sight) -> None:
        self.asked.append(sight.eid.copy())

    def note(self, sight, verdict) -> None:
        pass

    def end_tick(self) -> None:
        pass


@pytest.fixture
def decided(monkeypatch):
    """The entity ids the built-in decides, per call of builtin.decide (one file per call here)."""
    calls: list[np.ndarray] = []
    decide = builtin.decide

    def recording(sight, places):
        calls.append(sight.eid.copy())
        return decide(sight, places)

    monkeypatch.setattr(builtin, "decide", recording)
    return calls


def test_a_failed_request_falls_back_in_slices_over_the_next_ticks(tmp_path, decided):
    folder = tmp_path / "npcs"
    folder.mkdir()
    write(folder / "crowd.toml", CROWD)
    world = World(load_map(small_map(tmp_path)), WorldConfig(seed=1))
    cast = Cast(world, str(folder), tick_rate=20)
    cast.load_all()
    assert len(cast.minds) == 400
    for _ in range(30):  # every NPC has thought (the spawn's urgent thinks are done)
        cast.tick()
        world.step(0.05)
    decider = FailsOnce(world, at=world.tick)
    cast.decider = decider
    decided.clear()
    per_tick = []
    for _ in range(10):
        n = len(decided)
        cast.tick()
        world.step(0.05)
        per_tick.append(np.concatenate(decided[n:]) if len(decided) > n else np.zeros(0, np.int64))
    failed = decider.failed
    regular = 400 // cast.think_every  # 40 NPCs think at their turn each tick
    assert per_tick[0].size == 0 and len(failed) == regular  # asked of the policy, not the built-in
    slice_ = max(think.FALLBACK_MIN, int(think.FALLBACK_SHARE * regular))
    assert all(len(ids) <= regular + slice_ for ids in per_tick), [len(ids) for ids in per_tick]
    # each missed NPC decided once by the built-in, within the ticks the slices take (before its own turn)
    later = np.concatenate(per_tick[1:])
    assert np.isin(failed, later).all()
    within = 1 + math.ceil(len(failed) / slice_)
    assert np.isin(failed, np.concatenate(per_tick[1:within])).all()
    assert len(np.unique(np.concatenate(per_tick[1:within]))) == len(np.concatenate(per_tick[1:within]))
    assert len(cast.fallback) == 0
    assert not [r for r in cast.reports if r.kind == "internal"]


def test_the_bound_holds_at_a_tick_with_few_thinks(monkeypatch, tmp_path, decided):
    """FALLBACK_MIN rows a tick at least, so a small world drains a failed request at once."""
    monkeypatch.setattr(think, "FALLBACK_MIN", 5)
    folder = tmp_path / "npcs"
    folder.mkdir()
    write(folder / "crowd.toml", CROWD)
    world = World(load_map(small_map(tmp_path)), WorldConfig(seed=1))
    cast = Cast(world, str(folder), tick_rate=20)
    cast.load_all()
    for _ in range(30):
        cast.tick()
        world.step(0.05)
    decider = FailsOnce(world, at=world.tick)
    cast.decider = decider
    sizes = []
    for _ in range(6):
        n = len(decided)
        cast.tick()
        world.step(0.05)
        sizes.append(sum(len(e) for e in decided[n:]))
    # 40 regular thinks a tick; the failed 40 come back 10 a tick (a quarter of 40) for 4 ticks
    assert sizes == [0, 50, 50, 50, 50, 40], sizes
