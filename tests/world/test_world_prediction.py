"""docs/protocol.md's movement rules, as a client predicts with them: a predictor written from
the page alone (held direction, a direction shorter than 1 kept, substeps, x then y, stop
touching a blocked tile) agrees with the world exactly, over random walks into walls and
corners; and a quantised position may decode onto the next cell's edge (take the cell from
the block)."""

import math

import msgpack
import numpy as np

from world.sim import PLAYER, World, WorldConfig
from world.snapshot import encode_update

from support.worldhelp import grid_map

ROWS = ["..........", "..#....#..", "..#.......", "......##..", "..........", "###.......", ".....#....", ".........."]


class Predictor:
    """The documented rule, for one circle (docs/protocol.md, "input" and "Walls, exactly")."""

    def __init__(self, blocked: np.ndarray, tile: float, radius: float, speed: float, tick_rate: float):
        self.blocked, self.tile, self.r = blocked, tile, radius
        self.step = speed / tick_rate
        rows, cols = blocked.shape
        self.tiles = [
            (c, r)
            for r in range(-1, rows + 1)
            for c in range(-1, cols + 1)
            if not (0 <= r < rows and 0 <= c < cols) or blocked[r, c]
        ]  # the outside is blocked

    def axis(self, a: float, b: float, d: float, along_x: bool) -> float:
        """Move coordinate `a` by `d` (the other is `b`); stop touching the nearest blocked tile ahead."""
        ts, r, s = self.tile, self.r, math.copysign(1.0, d)
        best = s * (a + d)
        for c, row in self.tiles:
            ta, tb = (c, row) if along_x else (row, c)  # tile index along / across the motion
            if s * (ta - math.floor(a / ts)) <= 0:  # not ahead of the centre's tile
                continue
            db = max(tb * ts - b, 0.0, b - (tb + 1) * ts)  # distance across the motion
            if db >= r:
                continue
            face = ta * ts + (ts if s < 0 else 0.0)  # the tile's near face
            best = min(best, s * face - math.sqrt(r * r - db * db))
        return s * best

    def tick(self, x: float, y: float, dx: float, dy: float) -> tuple[float, float]:
        n = math.hypot(dx, dy)
        if n > 1:
            dx, dy = dx / n, dy / n  # longer than 1: scaled to 1
        mx, my = dx * self.step, dy * self.step  # shorter: kept (slower)
        steps = max(1, math.ceil(max(abs(mx), abs(my)) / (self.tile / 2)))
        for _ in range(steps):
            if mx:
                x = self.axis(x, y, mx / steps, True)  # x first,
            if my:
                y = self.axis(y, x, my / steps, False)  # then y
        return x, y


def test_a_predictor_written_from_the_document_agrees_with_the_world(tmp_path):
    m = grid_map(tmp_path, ROWS)
    for tick_rate in (20, 4):  # 4 Hz: 40 units a tick, 3 substeps
        w = World(m, WorldConfig())
        e = w.spawn(PLAYER, "ada", "#fff", 48, 48)
        pred = Predictor(m.blocked, m.tile_size, w.config.radius, w.config.player_speed, tick_rate)
        x, y = w.position(e)
        rng = np.random.default_rng(tick_rate)
        stopped = 0  # ticks a wall cut short
        for i in range(600):
            if i % 7 == 0:  # held between inputs
                dx, dy = rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0, 2.0], size=2)
                w.set_direction(e, dx, dy)
            before = (x, y)
            x, y = pred.tick(x, y, dx, dy)
            w.step(1.0 / tick_rate)
            assert np.allclose(w.position(e), (x, y), rtol=0, atol=1e-9), (tick_rate, i, w.position(e), (x, y))
            stopped += math.dist(before, (x, y)) < pred.step * min(1.0, math.hypot(dx, dy)) - 1e-9
        assert stopped > 50  # the walk did meet walls and corners


def test_a_quantised_position_can_decode_onto_the_next_cells_edge(tmp_path):
    m = grid_map(tmp_path, ["." * 8] * 8)  # 256 x 256, cells of 128
    w = World(m, WorldConfig(cell_size=128, quant=16))
    me = w.spawn(PLAYER, "me", "#fff", 60, 60)
    other = w.spawn(PLAYER, "edge", "#fff", 128 - 0.01, 60)  # just inside cell cx = 0
    w.add_observer(me)
    w.step(0.05)
    msg = msgpack.unpackb(encode_update(w.tick, -1, w.build_views()[me]))
    where = {}
    for cell, ids, pos in msg["cells"]:
        for eid, xy in zip(np.frombuffer(ids, "<u4").tolist(), np.frombuffer(pos, "<u2").reshape(-1, 2) / 16):
            where[eid] = (cell, tuple(xy))
    cell, (x, y) = where[other]
    cells_x = math.ceil(256 / 128)
    assert cell == math.floor(60 / 128) * cells_x + 0  # cy * cells_x + cx of the exact position
    assert x == 128.0 and math.floor(x / 128) == 1  # the decoded x is on the next cell's edge
