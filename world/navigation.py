"""Where NPCs can go: flow fields toward each point of interest, and spots near it.

Tiles are indexed flat: `tile = row * width + col`.

For each POI p (computed once per map and cached):
- `dist[p, tile]`: 4-neighbour BFS distance in tiles to p's tile; -1 when
  blocked or unreachable;
- `next_tile[p, tile]`: the neighbour (8-neighbour, no cutting a blocked
  corner) to walk to next; the tile itself at p's tile or when unreachable;
- `spots[p, :n_spots[p]]`: free tiles near p (within `spread` tiles) that can
  be walked to in a straight line from anywhere in p's tile with a clearance
  of `radius` (so the last stretch needs no path). p's own tile is always one.

And for players: `spawn_spots` (free tiles near 'spawn') and `open_tiles`
(every free tile reachable from 'spawn').
"""

from __future__ import annotations

import math
import weakref
from collections import deque

import numpy as np

from .tilemap import TileMap, floor_index

SPAWN_POI = "spawn"
_UNREACHABLE = np.iinfo(np.int32).max
# map -> (radius, spread) -> its Navigation
_cache: weakref.WeakKeyDictionary[TileMap, dict[tuple[float, int], Navigation]] = weakref.WeakKeyDictionary()


class Navigation:
    def __init__(self, tilemap: TileMap, radius: float, spread: int):
        self.width, self.height = tilemap.width, tilemap.height
        self._centres: np.ndarray | None = None  # (tiles, 2): see centre()
        self.tile = float(tilemap.tile_size)
        self.free = ~tilemap.blocked
        if not self.free.any():
            raise ValueError(f"{tilemap.path}: every tile is blocked")
        self.radius = float(radius)
        # A point drawn near a tile centre with at most this offset keeps the
        # whole circle inside that tile.
        self.jitter = max(0.0, self.tile / 2 - self.radius)

        named = dict(tilemap.pois)
        spawn_xy = named.pop(SPAWN_POI, None)
        if not named and spawn_xy is not None:
            named[SPAWN_POI] = spawn_xy  # the only POI: walk to it anyway
        self.names: list[str] = list(named)  # the POIs NPCs walk between
        tiles = [self._free_tile_near(x, y) for x, y in named.values()]
        self.poi_tile = np.asarray(tiles, dtype=np.int64)
        n_tiles = self.width * self.height
        self.dist = np.full((len(tiles), n_tiles), -1, dtype=np.int32)
        self.next_tile = np.zeros((len(tiles), n_tiles), dtype=np.int32)
        spots = []
        for p, t in enumerate(tiles):
            self.dist[p] = self._bfs(t)
            self.next_tile[p] = self._downhill(self.dist[p])
            spots.append(self._spots_near(t, self.dist[p], spread))
        width = max((len(s) for s in spots), default=1)
        self.spots = np.zeros((len(spots), width), dtype=np.int64)
        self.n_spots = np.asarray([len(s) for s in spots], dtype=np.int64)
        for p, s in enumerate(spots):
            self.spots[p, : len(s)] = s

        # Where players appear: near 'spawn', else near the map's centre.
        if spawn_xy is None:
            w, h = tilemap.world_size
            spawn_xy = (w / 2, h / 2)
        st = self._free_tile_near(*spawn_xy)
        from_spawn = self._bfs(st)
        self.spawn_spots = np.asarray(self._spots_near(st, from_spawn, spread), dtype=np.int64)
        # Every free tile a player at the spawn could walk to: where `--spawn random`
        # places players (never inside a walled-off pocket).
        self.open_tiles = np.flatnonzero(from_spawn >= 0).astype(np.int64)

    # -- queries --------------------------------------------------------------

    def tile_of(self, pos: np.ndarray) -> np.ndarray:
        """Flat tile index of each position (M,2); positions must be inside the map."""
        row = floor_index(pos[:, 1], self.tile, self.height)
        row *= self.width
        row += floor_index(pos[:, 0], self.tile, self.width)
        return row

    def next_tiles(self, poi: np.ndarray, tiles: np.ndarray) -> np.ndarray:
        """next_tile[poi, tiles] (M,) as int64, one flat gather: numpy's 2-D index by two arrays costs
        ~3x as much."""
        flat = poi.astype(np.int64)
        flat *= self.next_tile.shape[1]
        flat += tiles
        return np.take(self.next_tile.ravel(), flat).astype(np.int64)

    def centre(self, tiles: np.ndarray) -> np.ndarray:
        """World position (M,2) of the centre of each flat tile index (a gather from a table made
        once: integer % and // per NPC cost 5% of World.step at 10,000 NPCs)."""
        centres = self._centres
        if centres is None:
            t = np.arange(self.width * self.height)
            centres = self._centres = np.stack(
                ((t % self.width + 0.5) * self.tile, (t // self.width + 0.5) * self.tile), axis=1
            )
        out: np.ndarray = np.take(centres, tiles, axis=0)  # (~0.1x of centres[tiles]: see wander.rows)
        return out

    def random_points(self, spots: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random point (M,2) in each of the given tiles, the circle fully inside it."""
        return self.centre(spots) + rng.uniform(-self.jitter, self.jitter, (len(spots), 2))

    # -- construction ---------------------------------------------------------

    def _free_tile_near(self, x: float, y: float) -> int:
        """The free tile containing (x, y), or the free tile whose centre is nearest."""
        col = min(max(int(x // self.tile), 0), self.width - 1)
        row = min(max(int(y // self.tile), 0), self.height - 1)
        if self.free[row, col]:
            return row * self.width + col
        rows, cols = np.nonzero(self.free)
        d2 = ((cols + 0.5) * self.tile - x) ** 2 + ((rows + 0.5) * self.tile - y) ** 2
        i = int(np.argmin(d2))
        return int(rows[i]) * self.width + int(cols[i])

    def _bfs(self, goal: int) -> np.ndarray:
        w, h = self.width, self.height
        free = self.free.ravel().tolist()
        dist = [-1] * (w * h)
        dist[goal] = 0
        q = deque([goal])
        while q:
            t = q.popleft()
            d = dist[t] + 1
            c = t % w
            for n, ok in ((t - 1, c > 0), (t + 1, c < w - 1), (t - w, t >= w), (t + w, t < w * (h - 1))):
                if ok and free[n] and dist[n] < 0:
                    dist[n] = d
                    q.append(n)
        return np.asarray(dist, dtype=np.int32)

    def _downhill(self, dist: np.ndarray) -> np.ndarray:
        """For each tile, the neighbour with the smallest distance (itself if none is smaller)."""
        w, h = self.width, self.height
        d = np.where(dist >= 0, dist, _UNREACHABLE).reshape(h, w).astype(np.int64)
        dp = np.pad(d, 1, constant_values=_UNREACHABLE)
        fp = np.pad(self.free, 1, constant_values=False)
        idx = np.arange(w * h).reshape(h, w)
        best = d.copy()
        nxt = idx.copy()
        # orthogonal first, so that ties go straight
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
            nd = dp[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            ok = nd < best
            if dx and dy:  # a diagonal step must not cut a blocked corner
                ok &= fp[1 : 1 + h, 1 + dx : 1 + dx + w] & fp[1 + dy : 1 + dy + h, 1 : 1 + w]
            best = np.where(ok, nd, best)
            nxt = np.where(ok, idx + dy * w + dx, nxt)
        return nxt.ravel().astype(np.int32)

    def _spots_near(self, goal: int, dist: np.ndarray, spread: int) -> list[int]:
        """Reachable tiles within `spread` of goal with a clear straight walk from goal's tile."""
        w, h, ts = self.width, self.height, self.tile
        gc, gr = goal % w, goal // w
        cand = [
            r * w + c
            for r in range(max(0, gr - spread), min(h, gr + spread + 1))
            for c in range(max(0, gc - spread), min(w, gc + spread + 1))
            if dist[r * w + c] >= 0 and r * w + c != goal
        ]
        if not cand:
            return [goal]
        # The walk starts anywhere in goal's tile and ends anywhere near the
        # spot's centre, so it stays within half a tile diagonal of the
        # centre-to-centre segment: require that much more clearance.
        margin = self.radius + ts * math.sqrt(0.5)
        start = self.centre(np.asarray([goal]))[0]
        ends = self.centre(np.asarray(cand))
        n_samples = int(math.ceil(spread * ts * math.sqrt(2) / 4)) + 2
        t = np.linspace(0.0, 1.0, n_samples)
        pts = start + (ends[:, None, :] - start) * t[None, :, None]  # (C, S, 2)
        clear = np.full(pts.shape[:2], True)
        reach = int(math.ceil(margin / ts))
        pad = reach + 1
        blocked = np.pad(~self.free, pad, constant_values=True)
        base_c = (pts[..., 0] // ts).astype(np.intp)
        base_r = (pts[..., 1] // ts).astype(np.intp)
        for oy in range(-reach, reach + 1):
            for ox in range(-reach, reach + 1):
                c, r = base_c + ox, base_r + oy
                dx = np.maximum(np.maximum(c * ts - pts[..., 0], pts[..., 0] - (c + 1) * ts), 0.0)
                dy = np.maximum(np.maximum(r * ts - pts[..., 1], pts[..., 1] - (r + 1) * ts), 0.0)
                near = dx * dx + dy * dy < margin * margin
                clear &= ~(near & blocked[r + pad, c + pad])
        return [goal] + [cand[i] for i in np.flatnonzero(clear.all(axis=1)).tolist()]


def place_names(tilemap: TileMap) -> list[str]:
    """The POIs NPCs walk between, in map order: all but 'spawn', unless it is the only one.

    The same rule as Navigation.names, without building the flow fields.
    """
    named = [n for n in tilemap.pois if n != SPAWN_POI]
    return named or ([SPAWN_POI] if SPAWN_POI in tilemap.pois else [])


def navigation_for(tilemap: TileMap, radius: float, spread: int) -> Navigation:
    """The Navigation of a map (computed once per map, radius and spread)."""
    per_map = _cache.setdefault(tilemap, {})
    key = (float(radius), int(spread))
    if key not in per_map:
        per_map[key] = Navigation(tilemap, radius, spread)
    return per_map[key]
