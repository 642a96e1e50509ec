"""Who is near whom: pairs (query point, entity) within a radius, by a uniform grid.

One call answers for every query point at once, with array operations only:
the entities are bucketed into square cells of `cell` world units (sorted by
cell, so each cell's entities are one run), each query visits the cells its
radius reaches, and the candidate pairs are laid out with repeat/cumsum
(no Python loop over queries or entities). Cost: O(Q + P log P + pairs
looked at); a query whose radius is larger than `cell` visits more cells
((2k + 1)^2 for k = ceil(radius / cell)).

Tried and dropped (s17a): bands of cell / 2, each sorted by x, a query reading per band only the run
within its x range (a binary search): ~60% of the candidates hits against ~35%, and 3.24 -> 2.95 ms
for the look's 1,000 queries on their own (real NPC positions, random players, radius = cell = 160);
but in the tick, interleaved against this grid (bench/decisions.py --compare, built-in, 10,000 NPCs,
1,000 observers, load 7-9) the think's CPU was 1.076x (the Index's build, 0.15 -> 0.27 ms, and the
tie-break by cell order that the bands no longer give for free).

s19b: a row of a query's 3x3 cells is one run of the cell order (three runs a query, not nine), and the
query's coordinates and squared radius spread over its candidates by np.repeat instead of a gather by
query index: the same pairs bit for bit; 1,000 queries of a 10,000-NPC tick against 1,000 players
(~55,000 candidates, ~14,800 pairs; 20 captured ticks, interleaved, thread CPU, load ~20): 2.36-2.44 ->
1.93-1.99 ms (0.79-0.84x). (py-spy of the policy tick before: within was 10.5% of cast.tick, its sort 2.8%.)

Result: pairs sorted by (query, distance), nearest first (equal distances in
the order the cells were visited); as CSR offsets too (`start[q]:start[q + 1]` are query q's pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Pairs:
    query: np.ndarray  # (M,) int64 index of the query point
    entity: np.ndarray  # (M,) int64 index into the entity arrays given
    dist: np.ndarray  # (M,) float64 world units
    start: np.ndarray  # (Q + 1,) int64 CSR offsets into the pairs, by query

    def __len__(self) -> int:
        return len(self.query)


def empty(q: int) -> Pairs:
    z = np.zeros(0, np.int64)
    return Pairs(z, z, np.zeros(0), np.zeros(q + 1, np.int64))


class Index:
    """The entities bucketed by cell, built once and asked many times (a tick's players)."""

    def __init__(self, entities: np.ndarray, cell: float = 256.0):
        self.entities, self.cell = entities, cell
        if not len(entities):
            return
        ex = np.floor(entities[:, 0] / cell).astype(np.int64)
        ey = np.floor(entities[:, 1] / cell).astype(np.int64)
        # a border of one empty cell all round: a query with radius <= cell visits its 3x3 cells
        # without bounds checks (`within`, radius <= cell)
        self.x0, self.y0 = int(ex.min()) - 1, int(ey.min()) - 1
        self.width = int(ex.max()) - self.x0 + 2
        self.height = int(ey.max()) - self.y0 + 2
        key = (ey - self.y0) * self.width + (ex - self.x0)  # (P,) cell of each entity
        self.order = np.argsort(key, kind="stable")
        counts = np.bincount(key, minlength=self.width * self.height)
        self.first = np.concatenate([[0], np.cumsum(counts)])  # cell c: order[first[c]:first[c+1]]
        # the coordinates in cell order: a query reads each visited cell as one contiguous run
        self.sx = np.ascontiguousarray(entities[self.order, 0], np.float64)
        self.sy = np.ascontiguousarray(entities[self.order, 1], np.float64)

    def within(self, points: np.ndarray, radius: float | npt.NDArray[np.float64]) -> Pairs:
        """Pairs (i, j) with |points[i] - entities[j]| <= radius[i]; points (Q, 2), radius scalar or (Q,)."""
        q, entities, cell = len(points), self.entities, self.cell
        if q == 0 or not len(entities):
            return empty(q)
        radius = np.broadcast_to(np.asarray(radius, np.float64), (q,))
        width, height, first = self.width, self.height, self.first
        k = int(np.ceil(radius.max() / cell))
        qx = np.floor(points[:, 0] / cell).astype(np.int64) - self.x0
        qy = np.floor(points[:, 1] / cell).astype(np.int64) - self.y0
        if k <= 1:
            # The 3x3 cells around each query, its centre moved inside the border: a query outside it
            # reaches no entity beyond the cells it still visits (and gains only entities farther than a
            # cell, which the distance test drops). No bounds masks: 0.31 -> ~0.1 ms for 1,000 queries.
            # A row's three cells are consecutive cells, so their entities are ONE run of the cell order:
            # three runs a query, row by row (the order below gives equal distances), not nine.
            centre = np.clip(qy, 1, height - 2) * width + np.clip(qx, 1, width - 2)
            left = centre[:, None] + (np.arange(-1, 2) * width - 1)[None, :]  # (Q, 3) each row's first cell
            lo = first[left]
            n = first[left + 3] - lo
        else:
            offs = np.arange(-k, k + 1)
            cx = qx[:, None, None] + offs[None, None, :]  # (Q, 1, W)
            cy = qy[:, None, None] + offs[None, :, None]  # (Q, H, 1)
            ok = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
            cells = np.where(ok, cy * width + cx, 0).reshape(q, -1)  # (Q, C) cells visited
            ok = ok.reshape(q, -1)
            lo = first[cells]
            n = np.where(ok, first[cells + 1] - lo, 0)  # entities in each visited cell
        flat_n = n.reshape(-1)
        per_query = n.sum(axis=1)
        total = int(per_query.sum())
        if total == 0:
            return empty(q)
        # candidates, as positions in cell order: each visited run laid out one after another; the query's
        # own values spread over its candidates by np.repeat (~2x cheaper than a gather by query index)
        at = np.repeat(lo.reshape(-1) - (np.cumsum(flat_n) - flat_n), flat_n) + np.arange(total)
        # squared distances to discard the corners of the visited square (~2/3 of the candidates at
        # radius ~ cell) before taking any root: 2.3x cheaper than hypot and three masks over them all
        dx = self.sx[at] - np.repeat(np.ascontiguousarray(points[:, 0], np.float64), per_query)
        dy = self.sy[at] - np.repeat(np.ascontiguousarray(points[:, 1], np.float64), per_query)
        d2 = dx * dx + dy * dy
        hit = np.flatnonzero(d2 <= np.repeat(radius * radius, per_query))
        qi = np.repeat(np.arange(q), per_query)[hit]
        d = np.sqrt(d2[hit])
        ej = self.order[at[hit]]
        # one stable float sort by (query, distance): ~3x cheaper than lexsort on three keys
        srt = np.argsort(qi * (float(radius.max()) + 1.0) + d, kind="stable")
        qi, ej, d = qi[srt], ej[srt], d[srt]
        start = np.searchsorted(qi, np.arange(q + 1))
        return Pairs(
            qi.astype(np.int64, copy=False), ej.astype(np.int64, copy=False), d, start.astype(np.int64, copy=False)
        )


def within(
    points: np.ndarray, radius: float | npt.NDArray[np.float64], entities: np.ndarray, cell: float = 256.0
) -> Pairs:
    """Pairs (i, j) with |points[i] - entities[j]| <= radius[i]; points (Q, 2), radius (Q,), entities (P, 2)."""
    return Index(entities, cell).within(points, radius)
