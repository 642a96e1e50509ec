"""The world: entities on a tile map, stepped by plain calls.

Pure and deterministic: no clock, no I/O. The same map, config and sequence
of calls give the same state, bit for bit (all randomness comes from one
numpy Generator seeded with `WorldConfig.seed`).

A tick, as the server drives it:
    w.set_direction(...), w.say(...), w.spawn(...) ...   # commands
    w.step(dt)                                          # tick += 1
    views = w.build_views()                             # once per tick
    encode_update(w.tick, ack, views[eid])              # per observer
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgpack
import numpy as np

from . import wander
from .entities import NPC, PLAYER, EntityTable
from .interest import Grid, Interest
from .movement import Walls, move
from .navigation import navigation_for
from .snapshot import View
from .tilemap import TileMap

__all__ = ["World", "WorldConfig", "PLAYER", "NPC"]


@dataclass(frozen=True)
class WorldConfig:
    cell_size: int = 256          # world units per interest cell
    view_radius: int = 1          # cells seen around one's own (1 = 3 x 3 block)
    quant: int = 16               # positions travel as round(coord * quant), uint16
    player_speed: float = 160.0   # world units per second
    npc_speed: float = 60.0       # world units per second
    radius: float = 10.0          # collision radius of every entity, world units
    seed: int = 0                 # seeds the world's only random generator
    max_entities: int = 65536     # live entities at most; spawn raises ValueError beyond
    idle_s: tuple[float, float] = (1.0, 4.0)   # NPC pause at a POI, seconds (min, max)
    poi_spread: int = 3           # tiles: NPCs stop at spots up to this far from a POI


class World:
    def __init__(self, tilemap: TileMap, config: WorldConfig | None = None):
        cfg = config or WorldConfig()
        w, h = tilemap.world_size
        if cfg.cell_size <= 0 or cfg.view_radius < 0 or cfg.quant <= 0:
            raise ValueError("cell_size and quant must be > 0 and view_radius >= 0")
        if max(w, h) * cfg.quant > 0xFFFF:
            raise ValueError(f"world of {w}x{h} units with quant={cfg.quant} does not fit the "
                             "wire's uint16 positions; lower quant")
        if not 0 < cfg.radius < tilemap.tile_size / 2:
            raise ValueError(f"radius must be > 0 and less than half a tile ({tilemap.tile_size / 2} "
                             f"world units) so that an entity fits a one-tile corridor, got {cfg.radius}")
        if cfg.max_entities < 1:
            raise ValueError(f"max_entities must be >= 1, got {cfg.max_entities}")
        self.map = tilemap
        self.config = cfg
        self.tick = 0
        self._rng = np.random.default_rng(cfg.seed)
        self._walls = Walls(tilemap, cfg.radius)
        self._nav = navigation_for(tilemap, cfg.radius, cfg.poi_spread)
        self._table = EntityTable(cfg.max_entities)
        wander.add_columns(self._table)
        self._grid = Grid(w, h, cfg.cell_size, cfg.view_radius)
        self._interest = Interest(self._grid, cfg.quant)
        self._chat: list[tuple[int, int, str, str, int]] = []  # (id, slot, name, text, cell when said)
        self._kinds_cache: tuple | None = None

    # -- entities -------------------------------------------------------------

    def spawn(self, kind: int, name: str, color: str,
              x: float | None = None, y: float | None = None) -> int:
        """Add an entity; return its id (>= 1, never reused in this World).

        Without x, y an NPC appears near a random POI and a player near the
        'spawn' POI (else the map's centre). ValueError when (x, y) is outside
        the map or on a blocked tile, or when the world is full. A circle that
        overlaps a wall at (x, y) is pushed clear of it.
        """
        if kind not in (PLAYER, NPC):
            raise ValueError(f"kind must be PLAYER (0) or NPC (1), got {kind!r}")
        if not isinstance(name, str) or not isinstance(color, str):
            raise TypeError(f"name and color must be str, got {type(name).__name__} and {type(color).__name__}")
        if self._table.count >= self.config.max_entities:
            raise ValueError(f"world full: max_entities={self.config.max_entities}")
        nav = self._nav
        poi = -1
        if x is None or y is None:
            if kind == NPC and nav.names:
                poi = int(self._rng.integers(len(nav.names)))
                spots = nav.spots[poi, : nav.n_spots[poi]]
            else:
                spots = nav.spawn_spots
            spot = spots[int(self._rng.integers(len(spots)))]
            x, y = nav.random_points(np.asarray([spot]), self._rng)[0].tolist()
        else:
            x, y = self._check_position(x, y)
        eid, slot = self._table.add(kind, name, color, x, y)
        if kind == NPC:
            # a first pause of up to idle_s[1], so that NPCs set off at different ticks
            wander.start(self._table, slot, poi, float(self._rng.uniform(0.0, self.config.idle_s[1])))
        return eid

    def _check_position(self, x: float, y: float) -> tuple[float, float]:
        x, y = float(x), float(y)
        w, h = self.map.world_size
        if not (math.isfinite(x) and math.isfinite(y) and 0 <= x < w and 0 <= y < h):
            raise ValueError(f"position ({x}, {y}) is outside the map (0..{w}, 0..{h})")
        ts = self.map.tile_size
        if self.map.blocked[int(y // ts), int(x // ts)]:
            raise ValueError(f"position ({x}, {y}) is on a blocked tile ({int(x // ts)}, {int(y // ts)})")
        return self._walls.push_clear(x, y)

    def despawn(self, eid: int) -> None:
        """Remove an entity (and its observer, if any). KeyError if unknown."""
        slot = self._table.slot(eid)
        prev_cell = int(self._table.prev_cell[slot])
        self._table.remove(eid)
        self._interest.entity_removed(eid, prev_cell)

    def alive(self, eid: int) -> bool:
        return eid in self._table.slot_of

    def count(self, kind: int) -> int:
        slots = self._table.active()
        return int(np.count_nonzero(self._table.kind[slots] == kind))

    def position(self, eid: int) -> tuple[float, float]:
        """Centre of the entity, world units."""
        x, y = self._table.pos[self._table.slot(eid)]
        return float(x), float(y)

    def entity_record(self, eid: int) -> list:
        """[id, kind, name, color], as sent in 'enter'."""
        s = self._table.slot(eid)
        return [eid, int(self._table.kind[s]), self._table.name[s], self._table.color[s]]

    # -- commands -------------------------------------------------------------

    def set_direction(self, eid: int, dx: float, dy: float) -> None:
        """Hold a direction (players move along it at player_speed until changed).

        Longer than 1 is scaled to length 1; NaN or infinite counts as 0.
        NPCs keep the direction but are steered by wander.
        """
        slot = self._table.slot(eid)
        dx = float(dx) if math.isfinite(dx) else 0.0
        dy = float(dy) if math.isfinite(dy) else 0.0
        n = math.hypot(dx, dy)
        if n > 1.0:
            dx, dy = dx / n, dy / n
        self._table.dir[slot] = (dx, dy)

    def say(self, eid: int, text: str) -> None:
        """A chat line, heard in the next build_views by observers who see the speaker's cell."""
        slot = self._table.slot(eid)
        cell = int(self._grid.cell_of(self._table.pos[slot: slot + 1])[0])
        self._chat.append((eid, slot, self._table.name[slot], text, cell))

    # -- the tick -------------------------------------------------------------

    def step(self, dt: float) -> None:
        """Advance by dt seconds: NPC steering, movement, collision; tick += 1."""
        dt = float(dt)
        if not math.isfinite(dt) or dt < 0:
            raise ValueError(f"dt must be a finite number of seconds >= 0, got {dt}")
        t = self._table
        slots, players, npcs = self._kinds()
        if dt > 0 and len(slots):
            cfg = self.config
            delta = np.zeros((t.capacity, 2))
            delta[players] = t.dir[players] * (cfg.player_speed * dt)
            delta[npcs] = wander.steer(t, npcs, self._nav, self._rng, dt, cfg.npc_speed, cfg.idle_s) * dt
            t.pos[slots] = move(self._walls, t.pos[slots], delta[slots])
        self.tick += 1

    def _kinds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(live slots, player slots, NPC slots), cached until the table changes."""
        slots = self._table.active()
        if self._kinds_cache is None or self._kinds_cache[0] is not slots:
            kind = self._table.kind[slots]
            self._kinds_cache = (slots, slots[kind == PLAYER], slots[kind == NPC])
        return self._kinds_cache

    # -- observers and views --------------------------------------------------

    def add_observer(self, eid: int) -> None:
        """Build a View for eid every tick; the next one enters everything in view."""
        self._interest.add(eid, self._table.slot(eid))

    def remove_observer(self, eid: int) -> None:
        """Stop building views for eid (no-op if it is not an observer)."""
        self._interest.remove(eid)

    def build_views(self) -> dict[int, View]:
        """One View per observer for the current tick; call once per tick, after step()."""
        t = self._table
        lines = []
        if self._chat:
            for eid, slot, name, text, cell in self._chat:
                if t.slot_of.get(eid) == slot:       # still here: heard where it stands now
                    cell = int(self._grid.cell_of(t.pos[slot: slot + 1])[0])
                lines.append((cell, msgpack.packb([eid, name, text, self.tick])))
            self._chat = []
        return self._interest.build(t, lines)

    def entities_in_view(self, eid: int) -> set[int]:
        """Ids in the cells eid sees, from current positions (ground truth for tests)."""
        t = self._table
        slots = t.active()
        cells = self._grid.cell_of(t.pos[slots])
        mine = int(self._grid.cell_of(t.pos[[t.slot(eid)]])[0])
        seen = np.isin(cells, np.asarray(self._grid.near[mine]))
        return set(t.id[slots[seen]].tolist())
