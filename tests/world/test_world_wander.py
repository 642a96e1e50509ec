"""NPC wander: they walk between points of interest and never into walls."""

import numpy as np

from world import wander
from world.sim import NPC, World, WorldConfig

from support.worldhelp import clearance, default_map, grid_map

R = 10.0


def test_npcs_reach_pois_and_never_enter_walls():
    m = default_map()
    w = World(m, WorldConfig(seed=5))
    ids = [w.spawn(NPC, f"n{i}", "#888") for i in range(40)]
    pois = np.array([xy for name, xy in m.pois.items() if name != "spawn"])
    near = (w.config.poi_spread + 1) * m.tile_size  # spots lie within this of a POI
    visits = {e: set() for e in ids}
    table = w._table
    dt = 0.05
    for t in range(3000):  # 150 simulated seconds
        before = np.array([w.position(e) for e in ids])
        w.step(dt)
        pos = np.array([w.position(e) for e in ids])
        assert (np.hypot(*(pos - before).T) <= 60.0 * dt + 1e-9).all()
        if t % 5 == 0:
            assert (clearance(m, pos) >= R - 1e-6).all()
            slots = [table.slot_of[e] for e in ids]
            idle = table.w_phase[slots] == wander.IDLE
            d = np.hypot(pos[:, None, 0] - pois[None, :, 0], pos[:, None, 1] - pois[None, :, 1])
            for e, i_idle, row in zip(ids, idle, d):
                if i_idle and row.min() <= near:
                    visits[e].add(int(row.argmin()))
    counts = [len(v) for v in visits.values()]
    assert min(counts) >= 2, counts  # every NPC arrived at 2+ POIs
    assert len(set().union(*visits.values())) == len(pois)  # and every POI was visited


def test_npcs_find_their_way_round_walls(tmp_path):
    # a and b on either side of a wall with one gap at the far end
    rows = ["###########", "#....#....#", "#.a..#..b.#", "#....#....#", "#.........#", "###########"]
    m = grid_map(tmp_path, rows)
    w = World(m, WorldConfig(seed=1, poi_spread=1, idle_s=(0.1, 0.2)))
    e = w.spawn(NPC, "n", "#888", *m.pois["a"])
    seen = set()
    for _ in range(1200):
        w.step(0.05)
        x, y = w.position(e)
        assert clearance(m, [(x, y)])[0] >= R - 1e-6
        for name, (px, py) in m.pois.items():
            if np.hypot(x - px, y - py) < 48:
                seen.add(name)
    assert seen == {"a", "b"}


def test_wander_without_pois_stands_still(tmp_path):
    m = grid_map(tmp_path, ["....", "...."])
    w = World(m, WorldConfig())
    e = w.spawn(NPC, "n", "#888")
    p = w.position(e)
    for _ in range(50):
        w.step(0.05)
    assert w.position(e) == p


def test_go_to_legs_set_together_are_timed_by_each_npcs_own_speed():
    """One set_intents for NPCs of several files (speeds): each go_to leg's time limit is its own NPC's, as
    if each had been set alone (a leg timed by a slower NPC's speed would give the fast one slack it never
    needs, and a stuck fast NPC would wait that long before a new leg)."""
    from world.intents import ACTION_INDEX

    m = default_map()
    w = World(m, WorldConfig(seed=5))
    start = m.pois["spawn"]
    slow, fast = (w.spawn(NPC, name, "#888", *start) for name in ("slow", "fast"))
    w.set_speed(slow, 20.0)
    w.set_speed(fast, 80.0)
    place = next(i for i, name in enumerate(w.places) if name != "spawn")
    eids = np.asarray([slow, fast], np.int64)
    n = len(eids)
    ok = w.set_intents(
        eids,
        np.full(n, ACTION_INDEX["go_to"]),
        np.full(n, place),
        np.full(n, -1),
        np.full(n, np.nan),
        np.full(n, None, object),
    )
    assert ok.all()
    together = w._table.w_timer[w._table.slots(eids)].copy()
    alone = []
    for e in eids.tolist():
        w2 = World(m, WorldConfig(seed=5))
        e2 = w2.spawn(NPC, "x", "#888", *start)
        w2.set_speed(e2, 20.0 if e == slow else 80.0)
        w2.set_intent(e2, "go_to", place=w2.places[place])
        alone.append(float(w2._table.w_timer[w2._table.slot_of[e2]]))
    assert together[0] > together[1]  # the slow NPC has longer
    np.testing.assert_allclose(together, alone)
