"""bots/paths.py on a small maze: the direction it gives leads round walls to the goal."""

from __future__ import annotations

import math

from bots.paths import Paths
from support.maphelp import write_ascii_map
from world.tilemap import load_map


def test_paths_lead_round_walls_to_the_goal(tmp_path):
    tilemap = load_map(
        write_ascii_map(tmp_path, ["##########", "#a...#...#", "#.##.#.#.#", "#..#...#b#", "##########"], "maze.tmj")
    )
    paths = Paths(tilemap)
    (x, y), goal = tilemap.pois["a"], tilemap.pois["b"]
    for _ in range(400):  # 4 world units a step
        dx, dy = paths.direction(x, y, *goal)
        if (dx, dy) == (0.0, 0.0):
            break
        assert math.isclose(math.hypot(dx, dy), 1.0, abs_tol=0.01)
        x, y = x + 4 * dx, y + 4 * dy
        assert not tilemap.blocked[int(y // 32), int(x // 32)], (x, y)  # never into a wall
    assert math.dist((x, y), goal) < 32 * 0.1 + 4
