"""places_at's grid, columns' and locate's row gathers against the plain forms they replaced, bit for bit:
the full N x P distance matrix (np.argmin, then `<= within`), and numpy's fancy index of (n, 2) rows."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from world.places import PlaceGrid, nearest_plain
from world.sim import NPC, World, WorldConfig

from support.worldhelp import default_map

MAP = default_map()

coord = st.one_of(
    st.floats(-500, 3000, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, 1e300]),
)


@settings(max_examples=200, deadline=None)
@given(
    places=st.lists(st.tuples(st.floats(0, 2000), st.floats(0, 2000)), min_size=0, max_size=12),
    points=st.lists(st.tuples(coord, coord), min_size=0, max_size=40),
    within=st.one_of(st.floats(1e-3, 800), st.sampled_from([0.0, -1.0, float("inf"), 1e-9])),
    dup=st.booleans(),
)
def test_grid_is_the_full_matrix(places, points, within, dup):
    xy = np.asarray(places, np.float64).reshape(-1, 2)
    if dup and len(xy):
        xy = np.concatenate((xy, xy[::-1]))  # equal distances: argmin's first place must win in both
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(xy):  # points exactly at places and at the edge of their disks
        edge = xy + np.array([within, 0.0]) if np.isfinite(within) else xy
        pts = np.concatenate((pts, xy, edge))
    with np.errstate(invalid="ignore", over="ignore"):
        got = PlaceGrid(xy, within).nearest(pts)
        want = nearest_plain(pts, xy, within)
    assert got.dtype == want.dtype == np.int32
    assert np.array_equal(got, want)


def test_the_grid_on_the_shipped_map_is_used_and_agrees():
    w = World(MAP, WorldConfig(seed=3))
    rng = np.random.default_rng(0)
    lo, hi = w.place_positions().min(0) - 400, w.place_positions().max(0) + 400
    pts = np.concatenate((rng.uniform(lo, hi, (5000, 2)), w.place_positions()))
    grid = PlaceGrid(w.place_positions(), w.place_radius)
    assert grid.ok
    got = w.places_at(pts)
    assert np.array_equal(got, nearest_plain(pts, w.place_positions(), w.place_radius))
    assert (got >= 0).any() and (got < 0).any()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 60), gone=st.integers(0, 20), seed=st.integers(0, 2**16))
def test_columns_and_locate_are_the_plain_gathers(n, gone, seed):
    w = World(MAP, WorldConfig(seed=seed))
    places = w.places
    eids = np.asarray([w.spawn(NPC, f"n{i}", "#888888", place=places[i % len(places)]) for i in range(n)], np.int64)
    for _ in range(3):
        w.step(0.05)
    rng = np.random.default_rng(seed)
    dead = rng.choice(eids, min(gone, n), replace=False)
    for e in dead.tolist():
        w.despawn(e)
    live = np.setdiff1d(eids, dead)
    t = w._table
    if len(live):
        cols = w.columns(live)
        assert np.array_equal(cols.pos, t.pos[t.slots(live)])
        assert cols.pos.flags.owndata or cols.pos.base is not t.pos
    ask = np.concatenate((rng.permutation(eids), [-1, 0, 10**9]))
    alive, pos = w.locate(ask)
    slots = t.slots(ask, strict=False)
    ref = np.full((len(ask), 2), np.nan)
    ref[slots >= 0] = t.pos[slots[slots >= 0]]
    assert np.array_equal(alive, slots >= 0)
    assert np.array_equal(pos, ref, equal_nan=True)
