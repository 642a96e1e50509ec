"""Walking directions for bots over the server's map (the /map.json a browser
gets, parsed by world/tilemap.py): which way to hold the keys to reach a point.

One flow field per goal tile (a 4-neighbour BFS over the free tiles, like
world/navigation.py's), shared by every bot of a process that walks to the
same tile and kept for the FIELDS_KEPT most recent goals; a bot then steps to
the neighbour tile (8 neighbours, never cutting a blocked corner) nearest the
goal, and goes straight for the point itself once in its tile or beside it.
Units: world units; tiles are `tile_size` world units square.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

FIELDS_KEPT = 64  # goal tiles whose flow field is kept (a 64 x 64 map: 16 KiB of ints each)
_STEPS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))  # orthogonal first: ties go straight


class Paths:
    def __init__(self, tilemap) -> None:
        self.w, self.h, self.tile = tilemap.width, tilemap.height, float(tilemap.tile_size)
        self.free = (~tilemap.blocked).ravel().tolist()
        self.pois: dict[str, tuple[float, float]] = dict(tilemap.pois)
        self._fields: OrderedDict[int, list[int]] = OrderedDict()

    def tile_of(self, x: float, y: float) -> int:
        c = min(max(int(x // self.tile), 0), self.w - 1)
        r = min(max(int(y // self.tile), 0), self.h - 1)
        return r * self.w + c

    def field(self, goal: int) -> list[int]:
        """BFS distance in tiles from every tile to `goal`; -1 where blocked or cut off."""
        f = self._fields.get(goal)
        if f is not None:
            self._fields.move_to_end(goal)
            return f
        w, h, free = self.w, self.h, self.free
        f = [-1] * (w * h)
        if free[goal]:
            f[goal] = 0
            q = deque([goal])
            while q:
                t = q.popleft()
                d = f[t] + 1
                c = t % w
                for n, ok in ((t - 1, c > 0), (t + 1, c < w - 1), (t - w, t >= w), (t + w, t < w * (h - 1))):
                    if ok and free[n] and f[n] < 0:
                        f[n] = d
                        q.append(n)
        self._fields[goal] = f
        if len(self._fields) > FIELDS_KEPT:
            self._fields.popitem(last=False)
        return f

    def direction(self, x: float, y: float, tx: float, ty: float) -> tuple[float, float]:
        """A unit (dx, dy) to hold from (x, y) toward (tx, ty); (0, 0) once there (within a tenth of a tile)."""
        ddx, ddy = tx - x, ty - y
        dist = math.hypot(ddx, ddy)
        if dist < self.tile * 0.1:
            return 0.0, 0.0
        here, goal = self.tile_of(x, y), self.tile_of(tx, ty)
        w = self.w
        if here != goal and abs(here % w - goal % w) + abs(here // w - goal // w) > 1:
            f = self.field(goal)
            best, step = f[here] if f[here] >= 0 else math.inf, None
            c, r = here % w, here // w
            for sx, sy in _STEPS:
                nc, nr = c + sx, r + sy
                if not (0 <= nc < w and 0 <= nr < self.h):
                    continue
                n = nr * w + nc
                if f[n] < 0 or f[n] >= best:
                    continue
                if sx and sy and not (self.free[r * w + nc] and self.free[nr * w + c]):
                    continue  # a diagonal step must not cut a blocked corner
                best, step = f[n], n
            if step is not None:  # toward the centre of the next tile on the way
                ddx = (step % w + 0.5) * self.tile - x
                ddy = (step // w + 0.5) * self.tile - y
                dist = math.hypot(ddx, ddy)
        return round(ddx / dist, 3), round(ddy / dist, 3)
