"""The nearest place within a radius of many points at once, by a grid of cells over the places.

Each cell lists (ascending) the places whose disk of radius `within` can reach a point of the cell,
padded with a place at infinity; a point looks at its cell's list only. The answer is the one of
the full N x P distance matrix (np.argmin over every place, then `<= within`), bit for bit: the
distance is the same np.hypot of the same differences, the list holds every place within `within`
of any point of the cell (its disk's bounding square, one cell more on each side for rounding; a
point outside the grid is looked up in the cell of its projection onto it, which is no farther
from any place), and the lists are ascending, so argmin's first-of-equals is the same place.

Measured (thread CPU, one process taking turns, 30 x 50 calls each, load ~7): 1,000 points over
the shipped map's 9 places at place_radius (158), cells of within / 2 (one place a cell): 127 us
against 229 us for the full matrix (0.56x); cells of `within` (up to 4 places a cell): 193 against
210 us (np.hypot's cost is per element; 4 columns instead of 9); within / 4: 152 against 321 us.
In the tick (s17f, with World.columns' and locate's rows by np.take; `bench/decisions.py --compare`
against int, 10,000 NPCs, 1,000 observers, 12 rounds of 40 ticks, load 2-7, fingerprints the same
every round): cast.tick() thread CPU p50 policy 0.987x and 0.965x of int in two runs, built-in 0.972x
and 1.01x: within the rounds' scatter (5-15% at this load).
"""

from __future__ import annotations

import math

import numpy as np

MAX_CELLS = 1 << 16  # a grid finer than this (a tiny radius over a large map): the full matrix instead


class PlaceGrid:
    """The cells of one set of places (P, 2) for one radius (world units). Immutable once built."""

    def __init__(self, xy: np.ndarray, within: float) -> None:
        self.xy = xy
        self.within = within
        self.ok = len(xy) > 0 and math.isfinite(within) and within > 0
        if not self.ok:
            return
        cell = within / 2  # the shipped map: one place a cell (K = 1); within: K = 4, 1.6x the cost
        self.lo = xy.min(axis=0) - within
        span = xy.max(axis=0) + within - self.lo
        self.shape = np.maximum(np.ceil(span / cell).astype(np.int64), 1)
        if int(self.shape[0]) * int(self.shape[1]) > MAX_CELLS:
            self.ok = False
            return
        self.cell = cell
        nx, ny = int(self.shape[0]), int(self.shape[1])
        lists: list[list[int]] = [[] for _ in range(nx * ny)]
        for p, (x, y) in enumerate(xy.tolist()):
            x0, x1 = (math.floor((v - self.lo[0]) / cell) for v in (x - within, x + within))
            y0, y1 = (math.floor((v - self.lo[1]) / cell) for v in (y - within, y + within))
            for cx in range(max(x0 - 1, 0), min(x1 + 1, nx - 1) + 1):
                for cy in range(max(y0 - 1, 0), min(y1 + 1, ny - 1) + 1):
                    lists[cx * ny + cy].append(p)
        k = max(1, max(len(c) for c in lists))
        pad = len(xy)  # the place at infinity: never within
        self.cands = np.full((nx * ny, k), pad, np.int64)
        for c, ps in enumerate(lists):
            self.cands[c, : len(ps)] = ps
        self.px = np.append(xy[:, 0], np.inf)
        self.py = np.append(xy[:, 1], np.inf)

    def nearest(self, xy: np.ndarray) -> np.ndarray:
        """(n,) int32 index of the nearest place within `within` of each point (n, 2), -1 where none."""
        if not self.ok:
            return nearest_plain(xy, self.xy, self.within)
        x, y = xy[:, 0], xy[:, 1]
        # the cell, clipped to the grid; fmax/fmin drop a nan (its distances are nan: -1 whatever the cell)
        f = (xy - self.lo) / self.cell
        cx = np.fmin(np.fmax(f[:, 0], 0.0), self.shape[0] - 1).astype(np.int64)
        cy = np.fmin(np.fmax(f[:, 1], 0.0), self.shape[1] - 1).astype(np.int64)
        cand = np.take(self.cands, cx * int(self.shape[1]) + cy, axis=0)  # (n, k)
        d = np.hypot(x[:, None] - np.take(self.px, cand), y[:, None] - np.take(self.py, cand))
        j = np.argmin(d, axis=1)
        best = d.min(axis=1)  # d[j], or nan where argmin found a nan
        i = np.take_along_axis(cand, j[:, None], axis=1)[:, 0]
        return np.where(best <= self.within, i, -1).astype(np.int32)


def nearest_plain(xy: np.ndarray, places: np.ndarray, within: float) -> np.ndarray:
    """The full N x P form (the reference the grid must equal, and its fallback)."""
    if not len(places) or not len(xy):
        return np.full(len(xy), -1, np.int32)
    d = np.hypot(xy[:, None, 0] - places[None, :, 0], xy[:, None, 1] - places[None, :, 1])
    i = np.argmin(d, axis=1)
    return np.where(d[np.arange(len(xy)), i] <= within, i, -1).astype(np.int32)
