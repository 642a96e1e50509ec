"""Moving circles through a tile grid: speed limits, walls, map edges, sliding.

Units: world units and seconds. Every entity is a circle of `radius`.

Invariant kept by `move`: a circle that does not overlap a blocked tile
before a move does not overlap one after it (touching is allowed). The map's
outside counts as blocked, so circles also stay inside the map. Moves are
axis-separated (x, then y), so a circle pushed into a wall keeps the part of
its motion along the wall and slides.

Cost: `move` of the 11,000 entities of bench/world.py (10,000 NPCs, 1,000 players) is mostly each
sweep's passes over all rows; most rows take the shortcut of circles whose leading edge stays in
its tile or that are in the open (`Walls.open`). The sweeps work on contiguous x and y columns,
and a sweep in which every circle moves uses them as they stand (no gather, no scatter back).
"""

from __future__ import annotations

import math

import numpy as np

from .tilemap import TileMap


class Walls:
    """The blocked-tile grid padded with blocked tiles all round, in both axis orders."""

    def __init__(self, tilemap: TileMap, radius: float):
        ts = float(tilemap.tile_size)
        self.tile = ts
        self.radius = float(radius)
        # A substep moves at most half a tile, so after it the tile of a
        # circle's leading edge is at most `reach` tiles ahead of the tile its
        # centre started in; across the motion a circle spans at most `span`
        # tiles. The padding keeps every lookup inside the array.
        self.max_step = ts / 2
        self.reach = int((ts + self.max_step + self.radius) // ts)
        self.span = int((2 * self.radius) // ts) + 2
        self.pad = self.reach + self.span + int(math.ceil(self.radius / ts)) + 1
        grid = np.pad(tilemap.blocked, self.pad, constant_values=True)
        self.by_row = np.ascontiguousarray(grid)  # [row, col]: for moves along y
        self.by_col = np.ascontiguousarray(grid.T)  # [col, row]: for moves along x
        # open[row, col]: the 3 x 3 tiles around (row, col) are all free. A circle whose centre is in
        # such a tile and that moves at most half a tile along one axis cannot touch a blocked tile
        # (it reaches at most radius + half a tile < a tile beyond its centre's tile), so `_sweep`
        # moves it without looking at the walls: most entities, most of the time. (Tried, not kept:
        # the same test once per substep for both sweeps, the circles in the open moved by plain adds
        # and only the others swept: 93% of bench/world.py's 11,000 were in the open, yet `move` cost
        # the same, 0.9 ms either way; each sweep's own shortcut is as cheap as that test.)
        self.open = np.zeros_like(grid)
        if 2 * self.radius < ts:  # (radius + max_step < ts, which `reach` assumes)
            free = ~grid
            self.open[1:-1, 1:-1] = np.logical_and.reduce(
                [
                    free[1 + dr : free.shape[0] - 1 + dr, 1 + dc : free.shape[1] - 1 + dc]
                    for dr in (-1, 0, 1)
                    for dc in (-1, 0, 1)
                ]
            )

    def overlaps(self, x: float, y: float) -> bool:
        """Whether a circle at (x, y) overlaps a blocked tile (or the outside)."""
        ts, r, p = self.tile, self.radius, self.pad
        for row in range(int(math.floor((y - r) / ts)), int(math.floor((y + r) / ts)) + 1):
            for col in range(int(math.floor((x - r) / ts)), int(math.floor((x + r) / ts)) + 1):
                if not (-p <= row < self.by_row.shape[0] - p and -p <= col < self.by_row.shape[1] - p):
                    return True
                if self.by_row[row + p, col + p]:
                    dx = max(col * ts - x, 0.0, x - (col + 1) * ts)
                    dy = max(row * ts - y, 0.0, y - (row + 1) * ts)
                    if dx * dx + dy * dy < r * r:
                        return True
        return False

    def push_clear(self, x: float, y: float) -> tuple[float, float]:
        """A position near (x, y), whose tile must be free, where the circle overlaps nothing.

        Pushes the circle straight out of each tile it overlaps, a few rounds;
        falls back to the centre of (x, y)'s tile, which is clear whenever the
        circle fits in a tile.
        """
        ts, r = self.tile, self.radius
        home = ((math.floor(x / ts) + 0.5) * ts, (math.floor(y / ts) + 0.5) * ts)
        for _ in range(8):
            if not self.overlaps(x, y):
                return x, y
            for row in range(int(math.floor((y - r) / ts)), int(math.floor((y + r) / ts)) + 1):
                for col in range(int(math.floor((x - r) / ts)), int(math.floor((x + r) / ts)) + 1):
                    if not self.by_row[row + self.pad, col + self.pad]:
                        continue
                    qx = min(max(x, col * ts), (col + 1) * ts)
                    qy = min(max(y, row * ts), (row + 1) * ts)
                    dx, dy = x - qx, y - qy
                    d = math.hypot(dx, dy)
                    if 0 < d < r:
                        x, y = qx + dx / d * r, qy + dy / d * r
        return (x, y) if not self.overlaps(x, y) else home


def move(walls: Walls, pos: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """New positions of circles at `pos` (M,2) wanting to move by `delta` (M,2).

    Long moves are split into substeps of at most half a tile, so nothing
    tunnels through a wall.
    """
    pos = np.array(pos, dtype=np.float64)
    if len(pos) == 0:
        return pos
    longest = float(np.abs(delta).max())
    if longest == 0.0:
        return pos
    steps = max(1, int(math.ceil(longest / walls.max_step)))
    d = delta / steps
    # each axis as its own contiguous column: the sweeps' gathers and scatters of a strided column
    # of (M, 2) rows cost ~1.5-2x those of a contiguous one
    x, y = np.ascontiguousarray(pos[:, 0]), np.ascontiguousarray(pos[:, 1])
    dx, dy = np.ascontiguousarray(d[:, 0]), np.ascontiguousarray(d[:, 1])
    for _ in range(steps):
        _sweep(walls, x, y, dx, axis=0)
        _sweep(walls, y, x, dy, axis=1)
    pos[:, 0], pos[:, 1] = x, y
    return pos


def _sweep(walls: Walls, along: np.ndarray, across: np.ndarray, d: np.ndarray, axis: int) -> None:
    """Move `along` (the circles' coordinates on `axis`, 0: x) by d (|d| <= half a tile) in place,
    stopping at blocked tiles; `across` is the other coordinate (not changed).

    For a circle moving along `a` with its other coordinate `b` fixed, only
    tiles in the columns ahead of its centre can come closer. A blocked tile at
    distance `db` across the motion (db < r) stops the centre at
    `face - sqrt(r^2 - db^2)` from the tile's near face, which is exactly
    touching; with any sideways motion the circle then slides round the corner.
    """
    moving = np.count_nonzero(d)
    if moving == 0:
        return
    ts, r, p = walls.tile, walls.radius, walls.pad
    # Usually every circle given moves along both axes: then the columns are used as they stand,
    # without the gather of the movers and the scatter back (3 of the sweep's ~12 passes).
    whole = moving == len(d)
    idx = np.arange(len(d)) if whole else np.flatnonzero(d)
    a = along if whole else along[idx]
    dd = d if whole else d[idx]
    s = np.sign(dd)
    na = a + dd
    a0 = np.floor(a / ts).astype(np.intp)  # tile of the centre before
    lead = np.floor((na + s * r) / ts).astype(np.intp)  # tile of the leading edge after
    # Only a leading edge that enters another tile can meet a blocked one (the centre's tile is
    # free), and only outside the open (Walls.open); the others move by the motion itself, which
    # is exactly what the search below gives them (s * (s * na)). Most rows, most ticks.
    check = lead != a0
    if check.any():
        rest = np.flatnonzero(check)
        b_tile = np.floor(across[idx[rest]] / ts).astype(np.intp)
        col, row = (a0[rest], b_tile) if axis == 0 else (b_tile, a0[rest])
        # one flat gather (a 2-D index by two arrays costs ~3x as much)
        row += p
        row *= walls.open.shape[1]
        row += col
        row += p
        check[rest] = ~np.take(walls.open.ravel(), row)
    if not check.all():
        if not check.any():
            if whole:
                along[:] = na
            else:
                along[idx] = na
            return
        if whole:
            np.copyto(along, na, where=~check)
        else:
            free = ~check
            along[idx[free]] = na[free]
        keep = np.flatnonzero(check)
        idx, s, na, a0, lead = idx[keep], s[keep], na[keep], a0[keep], lead[keep]
    grid = walls.by_col if axis == 0 else walls.by_row  # grid[a_tile, b_tile]
    b = across[idx]
    ahead = np.abs(lead - a0)  # tiles ahead to check
    b_lo = np.floor((b - r) / ts).astype(np.intp)
    b_hi = np.floor((b + r) / ts).astype(np.intp)
    best = s * na  # want s*na <= bound
    near_face = (s < 0) * ts  # left/top tiles: their far side faces us
    for k in range(1, walls.reach + 1):
        ai = a0 + (s * k).astype(np.intp)
        face = ai * ts + near_face
        live_k = ahead >= k
        for j in range(walls.span):
            bj = b_lo + j
            lo = bj * ts
            db = np.maximum(np.maximum(lo - b, b - (lo + ts)), 0.0)
            hit = live_k & (bj <= b_hi) & (db < r) & grid[ai + p, bj + p]
            if hit.any():
                bound = s * face - np.sqrt(np.maximum(r * r - db * db, 0.0))
                best = np.where(hit, np.minimum(best, bound), best)
    along[idx] = s * best
