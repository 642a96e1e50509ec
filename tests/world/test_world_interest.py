"""Interest management: what each observer is told matches what it can see.

A simulated client per observer applies every View (leave, then enter), and
a second one receives views coalesced with merge_views over random skipped
ticks. After each update it must know exactly the entities in its visible
cells, computed here independently from positions.
"""

import random

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from world.sim import NPC, PLAYER, World, WorldConfig
from world.snapshot import merge_views

from support.worldhelp import default_map

MAP = default_map()
TS = MAP.tile_size
# free tile centres in the middle of the map, so that entities share cells
FREE = [((c + 0.5) * TS, (r + 0.5) * TS) for r in range(18, 46) for c in range(18, 46) if not MAP.blocked[r, c]]


class Clients:
    """Ground truth and simulated clients for every observer of a world."""

    def __init__(self, w: World, rng: random.Random):
        self.w = w
        self.rng = rng
        self.cfg = w.config
        self.cells_x = -(-MAP.world_size[0] // self.cfg.cell_size)
        self.known: dict[int, set] = {}  # per-tick client
        self.merged: dict[int, list] = {}  # [known, pending view, views in span]
        self.said: list[tuple[int, str, tuple]] = []  # this tick: (speaker, text, position when said)

    def observe(self, e):
        self.w.add_observer(e)
        self.known[e] = set()  # a (re)connecting client knows nothing
        self.merged[e] = [set(), None, []]

    def forget(self, e):
        self.known.pop(e, None)
        self.merged.pop(e, None)

    def say(self, e, text):
        self.w.say(e, text)
        self.said.append((e, text, self.w.position(e)))

    def cell(self, x, y):
        cs = self.cfg.cell_size
        return int(y // cs) * self.cells_x + int(x // cs)

    def sees(self, obs_cell, cell):
        r = self.cfg.view_radius
        return (
            abs(obs_cell % self.cells_x - cell % self.cells_x) <= r
            and abs(obs_cell // self.cells_x - cell // self.cells_x) <= r
        )

    def check_tick(self):
        w = self.w
        views = w.build_views()
        assert set(views) == set(self.known)
        alive = self._alive()
        cell_of = {e: self.cell(*xy) for e, xy in alive.items()}
        for o, v in views.items():
            oc = cell_of[o]
            expected = {e for e, c in cell_of.items() if self.sees(oc, c)}
            assert expected == w.entities_in_view(o)
            self._check_cells(v, expected, alive, cell_of)
            # enter records are the entities' records
            assert [msgpack.unpackb(r) for r in v.enter] == [w.entity_record(e) for e in v.enter_ids]
            # chat: exactly the lines whose speaker stands in a visible cell
            heard = [tuple(msgpack.unpackb(c)) for c in v.chat]
            want = []
            for e, text, xy in self.said:
                c = cell_of.get(e, self.cell(*xy))
                if self.sees(oc, c):
                    want.append((e, text))
            assert [(h[0], h[2]) for h in heard] == want
            assert all(h[3] == w.tick for h in heard)
            # the client that gets every update
            known = self.known[o]
            assert set(v.leave) <= known, "leave for an entity the client does not know"
            known -= set(v.leave)
            assert not set(v.enter_ids) & known, "enter for an entity the client knows"
            assert len(set(v.enter_ids)) == len(v.enter_ids)
            known |= set(v.enter_ids)
            assert known == expected
            # the client that gets coalesced updates
            m = self.merged[o]
            m[1] = v if m[1] is None else merge_views(m[1], v)
            m[2].append(v)
            if self.rng.random() < 0.5:
                p = m[1]
                entered_in_span = set().union(*(set(x.enter_ids) for x in m[2]))
                assert set(p.leave) <= m[0] | entered_in_span
                m[0] -= set(p.leave)
                assert not set(p.enter_ids) & m[0]
                m[0] |= set(p.enter_ids)
                assert m[0] == expected
                assert p.cells == v.cells
                m[1], m[2] = None, []
        self.said = []
        return views

    def _alive(self):
        t = self.w._table
        return {int(t.id[s]): (float(t.pos[s, 0]), float(t.pos[s, 1])) for s in t.active()}

    def _check_cells(self, v, expected, alive, cell_of):
        q = self.cfg.quant
        blocks = msgpack.unpackb(v.cells)
        got = []
        cells_seen = set()
        for cell, ids, pos in blocks:
            assert cell not in cells_seen
            cells_seen.add(cell)
            ids = np.frombuffer(ids, "<u4").tolist()
            pos = np.frombuffer(pos, "<u2").reshape(-1, 2)
            assert len(ids) == len(pos) > 0
            for e, (qx, qy) in zip(ids, pos.tolist()):
                assert cell_of[e] == cell
                x, y = alive[e]
                assert (qx, qy) == (int(np.rint(x * q)), int(np.rint(y * q)))
            got += ids
        assert len(got) == len(set(got))
        assert set(got) == expected


op = st.one_of(
    st.tuples(st.just("spawn"), st.sampled_from([PLAYER, NPC]), st.integers(0, 10**6), st.booleans()),
    st.tuples(st.just("despawn"), st.integers(0, 10**6)),
    st.tuples(st.just("dir"), st.integers(0, 10**6), st.floats(-1.5, 1.5), st.floats(-1.5, 1.5)),
    st.tuples(st.just("observe"), st.integers(0, 10**6)),
    st.tuples(st.just("unobserve"), st.integers(0, 10**6)),
    st.tuples(st.just("say"), st.integers(0, 10**6)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cell_size=st.sampled_from([128, 256, 512]),
    view_radius=st.integers(0, 2),
    n_start=st.integers(0, 25),
    seed=st.integers(0, 2**16),
    ticks=st.lists(
        st.tuples(st.lists(op, max_size=8), st.sampled_from([0.0, 0.05, 0.5, 2.0])), min_size=1, max_size=10
    ),
)
def test_observers_know_exactly_what_they_see(cell_size, view_radius, n_start, seed, ticks):
    w = World(MAP, WorldConfig(cell_size=cell_size, view_radius=view_radius, seed=seed))
    rng = random.Random(seed)
    c = Clients(w, rng)
    ids = []
    for i in range(n_start):
        ids.append(w.spawn(rng.choice([PLAYER, NPC]), f"e{i}", "#abcdef", *rng.choice(FREE)))
        w.set_direction(ids[-1], rng.uniform(-1, 1), rng.uniform(-1, 1))
        if rng.random() < 0.4:
            c.observe(ids[-1])
    c.check_tick()
    for ops, dt in ticks:
        for o in ops:
            kind, k = o[0], o[1]
            e = ids[k % len(ids)] if ids else None
            if kind == "spawn":
                xy = FREE[o[2] % len(FREE)] if o[3] else ()
                ids.append(w.spawn(k, f"s{len(ids)}", "#123456", *xy))
            elif e is None:
                continue
            elif kind == "despawn":
                w.despawn(e)
                ids.remove(e)
                c.forget(e)
            elif kind == "dir":
                w.set_direction(e, o[2], o[3])
            elif kind == "observe":
                c.observe(e)
            elif kind == "unobserve":
                w.remove_observer(e)
                c.forget(e)
            elif kind == "say":
                c.say(e, f"line {k}")
        w.step(dt)
        c.check_tick()


def test_busy_world_shared_and_own_views():
    """Hundreds of NPCs and moving observers for many ticks: most views are shared."""
    w = World(MAP, WorldConfig(cell_size=256, view_radius=1, seed=11))
    rng = random.Random(11)
    c = Clients(w, rng)
    for i in range(400):
        w.spawn(NPC, f"n{i}", "#888")
    players = [w.spawn(PLAYER, f"p{i}", "#fff", *rng.choice(FREE)) for i in range(40)]
    # a cohort walking together crosses cells together: they share their moving View
    start = rng.choice(FREE)
    cohort = [w.spawn(PLAYER, f"c{i}", "#0f0", *start) for i in range(8)]
    for p in cohort:
        w.set_direction(p, 0.8, -0.6)
    players += cohort
    for p in players:
        c.observe(p)
    shared_seen = 0
    for t in range(150):
        for p in players[:40]:
            if rng.random() < 0.05:
                w.set_direction(p, rng.uniform(-1, 1), rng.uniform(-1, 1))
        if t % 10 == 0:
            c.say(rng.choice(players), f"tick {t}")
        if t == 75:  # a reconnect: re-added observers get everything again
            c.observe(players[0])
        w.step(0.05)
        views = c.check_tick()
        shared_seen += len(views) - len({id(v) for v in views.values()})
    assert shared_seen > 0


def test_observer_api_and_config_errors():
    import pytest

    w = World(MAP, WorldConfig())
    a = w.spawn(PLAYER, "a", "#fff", *FREE[0])
    with pytest.raises(KeyError):
        w.add_observer(999)
    with pytest.raises(KeyError):
        w.say(999, "hi")
    w.remove_observer(a)  # not an observer: no-op
    w.add_observer(a)
    assert set(w.build_views()) == {a}
    w.despawn(a)  # a removed entity stops observing
    assert w.build_views() == {}
    with pytest.raises(ValueError, match="quant"):
        World(MAP, WorldConfig(quant=64))  # 2048 * 64 does not fit uint16
    with pytest.raises(ValueError, match="radius"):
        World(MAP, WorldConfig(radius=16))
    with pytest.raises(ValueError):
        w.spawn(7, "x", "#fff")


def test_observers_that_stay_are_told_who_crossed_and_who_left():
    """Observers standing still (one shared View per cell) are told, at the tick it happens, of an
    entity that walks into or out of view, of one that appears, and of one that is despawned, each
    encoded as msgpack encodes it; and of nothing else."""
    w = World(MAP, WorldConfig(cell_size=256, view_radius=1, seed=3))
    rng = random.Random(3)
    c = Clients(w, rng)
    free = [xy for xy in FREE if 768 <= xy[0] < 1024 and 768 <= xy[1] < 1024]  # tiles of one cell
    watchers = [w.spawn(PLAYER, f"w{i}", "#fff", *free[i]) for i in range(3)]
    for e in watchers:
        c.observe(e)
    here = [w.spawn(NPC, f"n{i}", "#888", *free[10 + i]) for i in range(6)]
    for e in here:
        w.set_intent(e, "idle")
    walker = w.spawn(PLAYER, "walker", "#0f0", *free[20])
    w.set_direction(walker, 0.0, -1.0)  # north, out of the watchers' view in a few seconds
    c.check_tick()
    seen_leave, gone = set(), None
    for t in range(120):
        if t == 10:
            w.despawn(here[0])
            gone = here[0]
        if t == 20:
            w.spawn(NPC, "late", "#888", *free[30])
        w.step(0.05)
        views = c.check_tick()
        v = views[watchers[0]]
        assert views[watchers[1]] is v  # one shared View for the cell
        assert v.leave_bin == msgpack.packb(v.leave)
        assert v.enter == [msgpack.packb(w.entity_record(e)) for e in v.enter_ids]
        if t == 10:
            assert v.leave == [gone]
        seen_leave |= set(v.leave)
    assert w.position(walker)[1] < 512, w.position(walker)  # out of view: north of the cells they see
    assert seen_leave == {gone, walker}
