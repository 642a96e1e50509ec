"""Movement: speed limits, walls and edges, sliding, determinism, ids."""

import math

import numpy as np
import pytest

from world.sim import NPC, PLAYER, World, WorldConfig
from world.snapshot import encode_update

from support.worldhelp import clearance, default_map, grid_map

R = 10.0


def open_world(tmp_path, **cfg):
    rows = ["." * 8] * 8  # 256 x 256 units, no walls: only the edges stop you
    return World(grid_map(tmp_path, rows), WorldConfig(**cfg))


def test_player_moves_at_speed_and_direction_is_clamped(tmp_path):
    w = open_world(tmp_path)
    e = w.spawn(PLAYER, "ada", "#fff", 100, 100)
    w.set_direction(e, 1, 0)
    w.step(0.05)
    assert w.position(e) == pytest.approx((108.0, 100.0))
    w.set_direction(e, 3, 4)  # longer than 1: scaled to (0.6, 0.8)
    w.step(0.05)
    assert w.position(e) == pytest.approx((108 + 4.8, 100 + 6.4))
    w.set_direction(e, 0.3, 0)  # shorter than 1: kept (walks slower)
    w.step(0.1)
    assert w.position(e) == pytest.approx((112.8 + 4.8, 106.4))
    for bad in (math.nan, math.inf, -math.inf):
        w.set_direction(e, bad, bad)
        before = w.position(e)
        w.step(0.05)
        assert w.position(e) == before
    assert w.tick == 6


def test_edges_stop_the_circle(tmp_path):
    w = open_world(tmp_path)
    e = w.spawn(PLAYER, "ada", "#fff", 100, 100)
    for d in ((-1, 0), (0, -1), (1, 0), (0, 1)):
        w.set_direction(e, *d)
        for _ in range(40):
            w.step(0.05)
        x, y = w.position(e)
        assert R - 1e-9 <= x <= 256 - R + 1e-9 and R - 1e-9 <= y <= 256 - R + 1e-9
    assert w.position(e) == pytest.approx((256 - R, 256 - R))


def test_wall_stops_and_player_slides_along_it(tmp_path):
    rows = ["........", "........", "........", "########", "........"]
    m = grid_map(tmp_path, rows)
    w = World(m, WorldConfig())
    e = w.spawn(PLAYER, "ada", "#fff", 40, 60)
    w.set_direction(e, 1, 1)  # down-right, into the wall row at y=96
    xs = []
    for _ in range(30):
        w.step(0.05)
        xs.append(w.position(e)[0])
        assert clearance(m, [w.position(e)])[0] >= R - 1e-9
    x, y = w.position(e)
    assert y == pytest.approx(96 - R)  # touching the wall
    step = 160 * 0.05 / math.sqrt(2)
    assert xs[-1] - xs[-2] == pytest.approx(step)  # still sliding east at the x part of the speed


def test_circle_stops_at_a_corner_and_slides_round_it(tmp_path):
    rows = ["......", "......", "..#...", "......"]
    m = grid_map(tmp_path, rows)
    w = World(m, WorldConfig())
    # heading east at y=62, the circle catches the block's top-left corner (64, 64)
    e = w.spawn(PLAYER, "ada", "#fff", 20, 62)
    w.set_direction(e, 1, 0)
    for _ in range(30):
        w.step(0.05)
    assert w.position(e) == pytest.approx((64 - math.sqrt(R * R - 2 * 2), 62))
    # with a little northward push it slides round the corner and on east
    w.set_direction(e, 1, -0.2)
    for _ in range(30):
        w.step(0.05)
        assert clearance(m, [w.position(e)])[0] >= R - 1e-9
    x, y = w.position(e)
    assert x > 96 and y < 64 - R


def test_many_players_never_overlap_walls_on_default_map():
    m = default_map()
    w = World(m, WorldConfig(seed=3))
    rng = np.random.default_rng(3)
    ids = [w.spawn(PLAYER, f"p{i}", "#fff") for i in range(60)]
    ids += [w.spawn(NPC, f"n{i}", "#fff") for i in range(60)]
    last = {e: w.position(e) for e in ids}
    for t in range(200):
        if t % 10 == 0:
            for e in ids[:60]:
                a = rng.uniform(0, 2 * math.pi)
                w.set_direction(e, math.cos(a), math.sin(a))
        dt = float(rng.choice([0.05, 0.05, 0.3, 1.5]))
        w.step(dt)
        pos = np.array([w.position(e) for e in ids])
        assert (clearance(m, pos) >= R - 1e-6).all()
        cols, rows = (pos // 32).astype(int).T
        assert not m.blocked[rows, cols].any()
        moved = np.hypot(*(pos - np.array([last[e] for e in ids])).T)
        limit = np.array([160.0] * 60 + [60.0] * 60) * dt
        assert (moved <= limit + 1e-6).all()
        last = {e: tuple(p) for e, p in zip(ids, pos)}


def run_script(seed):
    w = World(default_map(), WorldConfig(seed=seed))
    rng = np.random.default_rng(99)  # the inputs, same for both worlds
    ids = [w.spawn(NPC, f"n{i}", "#a0a0a0") for i in range(80)]
    players = [w.spawn(PLAYER, f"p{i}", "#fff") for i in range(10)]
    for p in players:
        w.add_observer(p)
    out = []
    for t in range(60):
        for p in players:
            w.set_direction(p, *rng.uniform(-1, 1, 2))
        if t == 20:
            w.despawn(ids.pop(5))
            ids.append(w.spawn(NPC, "late", "#000"))
        w.step(0.05)
        views = w.build_views()
        out.append(b"".join(encode_update(w.tick, t, views[p]) for p in players))
    return np.array([w.position(e) for e in ids + players]), out


def test_same_seed_and_inputs_give_identical_worlds():
    pos_a, out_a = run_script(7)
    pos_b, out_b = run_script(7)
    assert np.array_equal(pos_a, pos_b)
    assert out_a == out_b
    pos_c, _ = run_script(8)
    assert not np.array_equal(pos_a, pos_c)


def test_ids_are_never_reused_and_errors(tmp_path):
    rows = ["....", ".#..", "...."]
    w = World(grid_map(tmp_path, rows), WorldConfig(max_entities=3))
    a = w.spawn(PLAYER, "a", "#fff", 16, 16)
    b = w.spawn(NPC, "b", "#fff", 80, 16)
    assert (a, b) == (1, 2)
    w.despawn(a)
    assert not w.alive(a) and w.alive(b)
    c = w.spawn(PLAYER, "c", "#fff", 16, 16)
    assert c == 3
    w.despawn(c)
    d = w.spawn(PLAYER, "d", "#fff")
    assert d == 4 and w.count(PLAYER) == 1 and w.count(NPC) == 1
    assert w.entity_record(d) == [4, PLAYER, "d", "#fff", False]
    with pytest.raises(KeyError):
        w.despawn(a)
    with pytest.raises(KeyError):
        w.position(a)
    with pytest.raises(ValueError, match="blocked"):
        w.spawn(NPC, "x", "#fff", 48, 48)
    for x, y in ((-1, 10), (10, 96), (128, 10), (math.nan, 10)):
        with pytest.raises(ValueError, match="outside"):
            w.spawn(NPC, "x", "#fff", x, y)
    w.spawn(NPC, "e", "#fff", 110, 80)
    with pytest.raises(ValueError, match="full"):
        w.spawn(NPC, "f", "#fff", 16, 80)
    with pytest.raises(ValueError):
        w.step(-1)


def test_spawn_next_to_a_wall_is_pushed_clear(tmp_path):
    rows = ["....", ".#..", "...."]
    m = grid_map(tmp_path, rows)
    w = World(m, WorldConfig())
    e = w.spawn(PLAYER, "a", "#fff", 30, 40)  # free tile (0, 1), 2 units from the wall
    assert clearance(m, [w.position(e)])[0] >= R - 1e-9
    assert w.position(e)[1] == 40
