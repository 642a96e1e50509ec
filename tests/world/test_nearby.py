"""world/nearby.py against brute force: every pair within the radius, none outside, nearest first."""

import numpy as np
from hypothesis import given, settings, strategies as st

from world import nearby


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(0, 60), st.floats(1.0, 400.0), st.floats(16.0, 300.0), st.integers(0, 2**31))
def test_within_is_brute_force(q, p, radius, cell, seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-500, 1500, (q, 2))
    entities = rng.uniform(-500, 1500, (p, 2))
    radii = rng.uniform(0, radius, q)
    got = nearby.within(points, radii, entities, cell)
    d = np.hypot(points[:, None, 0] - entities[None, :, 0], points[:, None, 1] - entities[None, :, 1])
    want = {(i, j) for i, j in zip(*np.nonzero(d <= radii[:, None]))}
    near_edge = np.abs(d - radii[:, None]) < 1e-9  # a root's rounding may fall either side
    have = set(zip(got.query.tolist(), got.entity.tolist()))
    assert {x for x in have ^ want if not near_edge[x]} == set()
    assert np.allclose(got.dist, d[got.query, got.entity])
    assert np.all(np.diff(got.query) >= 0)
    for i in range(q):  # CSR offsets, and nearest first within a query
        lo, hi = got.start[i], got.start[i + 1]
        assert np.all(got.query[lo:hi] == i)
        assert np.all(np.diff(got.dist[lo:hi]) >= 0)


def test_empty_inputs():
    assert len(nearby.within(np.zeros((0, 2)), 10.0, np.ones((3, 2)))) == 0
    got = nearby.within(np.ones((2, 2)), 10.0, np.zeros((0, 2)))
    assert len(got) == 0 and list(got.start) == [0, 0, 0]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 80), st.sampled_from([16.0, 32.0, 48.0]), st.integers(0, 2**31))
def test_equal_distances_come_in_cell_order_then_entity_order(q, p, cell, seed):
    """On a lattice (exact ties): pairs sorted by (query, distance, the entity's cell row by row, its
    index), with a radius up to the cell (3x3 cells, the fast path) and beyond it; queries outside the
    entities' cells too."""
    rng = np.random.default_rng(seed)
    entities = rng.integers(0, 8, (p, 2)).astype(np.float64) * 8.0
    points = rng.integers(-4, 12, (q, 2)).astype(np.float64) * 8.0
    for radius in (cell, cell * 0.75, cell * 2.5):
        got = nearby.within(points, np.full(q, radius), entities, cell)
        d = np.hypot(points[:, None, 0] - entities[None, :, 0], points[:, None, 1] - entities[None, :, 1])
        qi, ej = np.nonzero(d <= radius)
        cy, cx = np.floor(entities[ej, 1] / cell), np.floor(entities[ej, 0] / cell)
        order = np.lexsort((ej, cx, cy, d[qi, ej], qi))
        assert got.query.tolist() == qi[order].tolist()
        assert got.entity.tolist() == ej[order].tolist()
        assert got.start.tolist() == np.searchsorted(qi[order], np.arange(q + 1)).tolist()
