"""Shared helpers for the world tests (plain functions, no fixtures)."""

import math

import numpy as np

from .maphelp import write_ascii_map
from world.tilemap import load_map
from .paths import DEFAULT_MAP

_default = None


def default_map():
    global _default
    if _default is None:
        _default = load_map(DEFAULT_MAP)
    return _default


def grid_map(tmp_path, rows: list[str], name="grid.tmj"):
    """A map from ASCII rows: '#' wall, '.' floor, a letter = floor with a POI of that name."""
    return load_map(write_ascii_map(tmp_path, rows, name))


def clearance(tilemap, pos: np.ndarray) -> np.ndarray:
    """Distance from each centre (M,2) to the nearest blocked tile or the map's outside."""
    ts = tilemap.tile_size
    w, h = tilemap.world_size
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 2)
    out = np.minimum.reduce([pos[:, 0], pos[:, 1], w - pos[:, 0], h - pos[:, 1]])
    for i, (x, y) in enumerate(pos):
        c0, r0 = int(x // ts), int(y // ts)
        for r in range(r0 - 2, r0 + 3):
            for c in range(c0 - 2, c0 + 3):
                if 0 <= r < tilemap.height and 0 <= c < tilemap.width and tilemap.blocked[r, c]:
                    dx = max(c * ts - x, 0.0, x - (c + 1) * ts)
                    dy = max(r * ts - y, 0.0, y - (r + 1) * ts)
                    out[i] = min(out[i], math.hypot(dx, dy))
    return out
