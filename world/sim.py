"""The world: entities on a tile map, stepped by plain calls.

Pure and deterministic: no clock, no I/O. The same map, config and sequence
of calls give the same state, bit for bit (all randomness comes from one
numpy Generator seeded with `WorldConfig.seed`).

A tick, as the server drives it:
    w.set_direction(...), w.say(...), w.spawn(...) ...   # commands
    w.set_intent(...), w.set_stat_rates(...) ...         # NPC decisions (npc/)
    w.step(dt)                                          # tick += 1
    views = w.build_views()                             # once per tick
    encode_update(w.tick, ack, views[eid])              # per observer

Time: `time_s` is the sum of every step's dt (simulated seconds); the game
clock (`game_time`, world/clock.py) and NPC stats (world/needs.py) follow
from it, so the only way to advance them is to step.
"""

from __future__ import annotations

import math
from collections import deque
from itertools import repeat
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack
import numpy as np

from . import intents, wander
from .clock import Clock, GameTime
from .entities import NPC, PLAYER, EntityTable
from .intents import ACTIONS, Intent
from .interest import Grid, Interest
from .movement import Walls, move
from .navigation import SPAWN_POI, navigation_for
from .needs import Stats
from .places import PlaceGrid
from .protocol import encode_chat_record
from .snapshot import View
from .tilemap import TileMap

__all__ = ["World", "WorldConfig", "PLAYER", "NPC", "ACTIONS", "Intent", "GameTime", "Line", "Columns"]

MAX_LINES_KEPT = 1024  # lines said kept for take_lines(); older ones are dropped unread


class Line(NamedTuple):
    """A line said in the world, for NPCs to hear (take_lines). A NamedTuple: made for every line said
    (~300 a tick at 10,000 NPCs and 1,000 players), 0.9 us each against 3.4 us as a frozen dataclass."""

    speaker: int  # entity id
    kind: int  # PLAYER or NPC
    name: str
    text: str
    x: float  # where the speaker stood, world units
    y: float
    tick: int


@dataclass(frozen=True, slots=True)
class Columns:
    """Many NPCs at once, as arrays (copies, row i = the i-th id asked for): what NPC minds read
    at each think, in one gather instead of one call per NPC. Units as in world/intents.py."""

    pos: np.ndarray  # (n, 2) float64 world units
    action: np.ndarray  # (n,) int8 index into ACTIONS
    place: np.ndarray  # (n,) int32 index into `places` of a GOTO intent, -1 otherwise
    target: np.ndarray  # (n,) int64 entity id of a FOLLOW/FLEE intent, -1 otherwise
    arrived: np.ndarray  # (n,) bool
    since: np.ndarray  # (n,) float64 world seconds when the intent was set
    arrived_at: np.ndarray  # (n,) float64 world seconds when `arrived` last became true, nan: not arrived
    activity: np.ndarray  # (n,) object: the activity label
    stats: np.ndarray  # (n, k) float64 the stats asked for, nan where the entity has none


@dataclass(frozen=True)
class WorldConfig:
    cell_size: int = 256  # world units per interest cell
    view_radius: int = 1  # cells seen around one's own (1 = 3 x 3 block)
    quant: int = 16  # positions travel as round(coord * quant), uint16
    player_speed: float = 160.0  # world units per second
    npc_speed: float = 60.0  # world units per second
    radius: float = 10.0  # collision radius of every entity, world units
    seed: int = 0  # seeds the world's only random generator
    max_entities: int = 65536  # live entities at most; spawn raises ValueError beyond
    idle_s: tuple[float, float] = (1.0, 4.0)  # NPC pause at a POI, seconds (min, max)
    poi_spread: int = 3  # tiles: NPCs stop at spots up to this far from a POI
    day_length_s: float = 1440.0  # simulated seconds per game day (1440: a game minute per second)
    start_minute: float = 480.0  # game time when the world starts: minutes since midnight of day 0


class World:
    def __init__(self, tilemap: TileMap, config: WorldConfig | None = None):
        cfg = config or WorldConfig()
        w, h = tilemap.world_size
        if cfg.cell_size <= 0 or cfg.view_radius < 0 or cfg.quant <= 0:
            raise ValueError("cell_size and quant must be > 0 and view_radius >= 0")
        if max(w, h) * cfg.quant > 0xFFFF:
            raise ValueError(
                f"world of {w}x{h} units with quant={cfg.quant} does not fit the wire's uint16 positions; lower quant"
            )
        if not 0 < cfg.radius < tilemap.tile_size / 2:
            raise ValueError(
                f"radius must be > 0 and less than half a tile ({tilemap.tile_size / 2} "
                f"world units) so that an entity fits a one-tile corridor, got {cfg.radius}"
            )
        if cfg.max_entities < 1:
            raise ValueError(f"max_entities must be >= 1, got {cfg.max_entities}")
        if not (math.isfinite(cfg.day_length_s) and cfg.day_length_s > 0):
            raise ValueError(f"day_length_s must be > 0 seconds, got {cfg.day_length_s}")
        self.map = tilemap
        self.config = cfg
        self.tick = 0
        self.time_s = 0.0  # simulated seconds: the sum of every step's dt
        self.clock = Clock(cfg.day_length_s, cfg.start_minute)  # game time of time_s; admins pause/set/speed it
        self.despawned = 0  # despawns so far (readers notice that something left)
        self._rng = np.random.default_rng(cfg.seed)
        self._walls = Walls(tilemap, cfg.radius)
        self._nav = navigation_for(tilemap, cfg.radius, cfg.poi_spread)
        self._table = EntityTable(cfg.max_entities)
        wander.add_columns(self._table)
        intents.add_columns(self._table)
        self._groups = intents.Groups()
        self._stats = Stats(self._table)
        self._said: deque[Line] = deque(maxlen=MAX_LINES_KEPT)
        self._place_index = {name: i for i, name in enumerate(self._nav.names)}
        self._place_xy = np.asarray([tilemap.pois[n] for n in self._nav.names], dtype=np.float64).reshape(-1, 2)
        self._place_grid: PlaceGrid | None = None  # places_at's cells, for one radius (built on use)
        self._grid = Grid(w, h, cfg.cell_size, cfg.view_radius)
        self._interest = Interest(self._grid, cfg.quant)
        self._chat: list[tuple[int, int, str, str, int]] = []  # (id, slot, name, text, cell when said)
        self._kinds_cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see _kinds

    # -- entities -------------------------------------------------------------

    def spawn(
        self,
        kind: int,
        name: str,
        color: str,
        x: float | None = None,
        y: float | None = None,
        place: str | None = None,
        talks: bool = False,
    ) -> int:
        """Add an entity; return its id (>= 1, never reused in this World).

        Without x, y an NPC appears near `place` (a point of interest) or a
        random POI, and a player near the 'spawn' POI (else the map's centre).
        `talks`: an NPC a player can talk to (its entity record says so).
        ValueError when (x, y) is outside the map or on a blocked tile, when
        `place` is unknown, or when the world is full. A circle that overlaps
        a wall at (x, y) is pushed clear of it.
        """
        if kind not in (PLAYER, NPC):
            raise ValueError(f"kind must be PLAYER (0) or NPC (1), got {kind!r}")
        if not isinstance(name, str) or not isinstance(color, str):
            raise TypeError(f"name and color must be str, got {type(name).__name__} and {type(color).__name__}")
        if self._table.count >= self.config.max_entities:
            raise ValueError(f"world full: max_entities={self.config.max_entities}")
        nav = self._nav
        poi = -1
        if place is not None and place not in self._place_index and place != SPAWN_POI:
            raise ValueError(f"unknown place {place!r}; expected one of {', '.join(self.places)}")
        if x is None or y is None:
            if place is not None and place in self._place_index:
                poi = self._place_index[place]
                spots = nav.spots[poi, : nav.n_spots[poi]]
            elif kind == NPC and nav.names and place is None:
                poi = int(self._rng.integers(len(nav.names)))
                spots = nav.spots[poi, : nav.n_spots[poi]]
            else:
                spots = nav.spawn_spots
            spot = spots[int(self._rng.integers(len(spots)))]
            x, y = nav.random_points(np.asarray([spot]), self._rng)[0].tolist()
        else:
            x, y = self._check_position(x, y)
        eid, slot = self._table.add(kind, name, color, x, y, talks)
        self._table.i_since[slot] = self.time_s
        self._groups.stale = True
        if kind == NPC:
            # a first pause of up to idle_s[1], so that NPCs set off at different ticks
            wander.start(self._table, slot, poi, float(self._rng.uniform(0.0, self.config.idle_s[1])))
        return eid

    def random_open_point(self) -> tuple[float, float]:
        """A point drawn uniformly over the free tiles reachable from 'spawn'
        (the circle inside its tile), from the world's seeded generator: where
        a load test spreads its players, as a uniform scenario needs."""
        tiles = self._nav.open_tiles
        tile = tiles[int(self._rng.integers(len(tiles)))]
        x, y = self._nav.random_points(np.asarray([tile]), self._rng)[0].tolist()
        return x, y

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
        self.despawned += 1
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

    def entity_record(self, eid: int) -> list[Any]:
        """[id, kind, name, color, talks], as sent in 'enter'."""
        record: list[Any] = msgpack.unpackb(self._table.record[self._table.slot(eid)])
        return record

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

    def set_directions(self, eids: list[int], dx: list[float], dy: list[float]) -> None:
        """set_direction for many live entities at once (each id at most once), as numpy: the tick
        applies its players' inputs with it (one call per tick instead of ~1.5 us per input)."""
        if not eids:
            return
        slots = self._table.slots(eids)
        d = np.array((dx, dy), np.float64).T
        d[~np.isfinite(d)] = 0.0
        n = np.hypot(d[:, 0], d[:, 1])
        long = n > 1.0
        d[long] /= n[long, None]
        self._table.dir[slots] = d

    def say(self, eid: int, text: str) -> None:
        """A chat line, heard in the next build_views by observers who see the speaker's cell."""
        slot = self._table.slot(eid)
        t = self._table
        x, y = t.pos[slot].tolist()
        cell = self._grid.cell_at(x, y)
        self._chat.append((eid, slot, t.name[slot], text, cell))
        self._said.append(Line(eid, int(t.kind[slot]), t.name[slot], text, x, y, self.tick))

    def say_many(self, eids: np.ndarray, texts: list[str]) -> None:
        """say() for many live entities at once (NPCs greeting the players they noticed this tick)."""
        if not len(texts):
            return
        t = self._table
        slots = t.slots(eids)
        pos = np.take(t.pos, slots, axis=0)
        cells = self._grid.cell_of(pos).tolist()
        kinds = t.kind[slots].tolist()
        xs, ys = pos[:, 0].tolist(), pos[:, 1].tolist()
        ids, at = np.asarray(eids).tolist(), slots.tolist()
        names = list(map(t.name.__getitem__, at))
        # zip / map, not a loop body per line: ~350 lines a tick at 10,000 NPCs and 1,000 players
        # (the loop was 5% of the policy tick's py-spy samples)
        self._chat.extend(zip(ids, at, names, texts, cells))
        self._said.extend(map(Line, ids, kinds, names, texts, xs, ys, repeat(self.tick, len(ids))))

    def names_of(self, eids: np.ndarray) -> list[str | None]:
        """Names of many entities; None for an id that is gone (or -1)."""
        t = self._table
        names = t.name
        return [names[s] if s >= 0 else None for s in t.slots(eids, strict=False).tolist()]

    def take_lines(self) -> list[Line]:
        """The lines said since the last call (at most MAX_LINES_KEPT, the newest), oldest first."""
        lines = list(self._said)
        self._said.clear()
        return lines

    # -- NPC intents (npc/ decides, the world executes every step) --------------

    def set_intent(
        self,
        eid: int,
        action: str,
        *,
        place: str | None = None,
        target: int | None = None,
        distance: float | None = None,
        activity: str | None = None,
        say: str | None = None,
    ) -> None:
        """Give an NPC an intent (world/intents.py); ValueError when it does not fit.

        `place` is a POI name (required by go_to and patrol; work, rest and idle
        walk there first when given), `target` an entity id (required by
        follow, approach and flee). `activity` labels it (default: the action's
        name). `say` is said at once (talk, give_item). Setting the intent the
        NPC already has (same action, place and target) keeps its progress.
        """
        t = self._table
        slot = t.slot(eid)
        if t.kind[slot] != NPC:
            raise ValueError(f"entity {eid} is not an NPC")
        if action not in intents.ACTION_INDEX:
            raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        mode = intents.mode_for(action, place is not None)
        poi, tslot, tid = -1, 0, 0
        if mode == intents.GOTO:
            if place not in self._place_index:
                raise ValueError(f"{action} needs a place, one of {', '.join(self.places)}; got {place!r}")
            poi = self._place_index[place]
        if mode in (intents.FOLLOW, intents.FLEE):
            if target is None or target == eid or target not in t.slot_of:
                raise ValueError(f"{action} needs another live entity as target, got {target!r}")
            tslot, tid = t.slot_of[target], target
            if distance is None:
                distance = intents.DEFAULT_FLEE_DISTANCE if mode == intents.FLEE else intents.DEFAULT_FOLLOW_DISTANCE
        same = (
            int(t.i_mode[slot]) == mode
            and int(t.i_poi[slot]) == poi
            and int(t.i_tid[slot]) == tid
            and (mode != intents.STAY or ACTIONS[t.i_action[slot]] == action)
        )
        t.i_action[slot] = intents.ACTION_INDEX[action]
        t.activity[slot] = activity if activity else action
        t.i_dist[slot] = float(distance) if distance is not None else 0.0
        if not same:
            t.i_mode[slot] = mode
            t.i_poi[slot], t.i_tslot[slot], t.i_tid[slot] = poi, tslot, tid
            t.i_since[slot] = self.time_s
            t.i_arrived[slot] = mode == intents.STAY
            t.i_arrived_at[slot] = self.time_s if mode == intents.STAY else -1.0
            self._groups.stale = True
            if mode == intents.GOTO:
                wander.set_leg(
                    t,
                    np.asarray([slot]),
                    np.asarray([poi]),
                    self._nav,
                    self._rng,
                    float(intents.speeds(t, np.asarray([slot]), self.config.npc_speed)[0]),
                )
            elif mode == intents.WANDER:
                wander.start(t, slot, int(t.w_poi[slot]), 0.0)
        if say:
            self.say(eid, say)

    def set_intents(
        self,
        eids: np.ndarray,
        action: np.ndarray,
        place: np.ndarray,
        target: np.ndarray,
        distance: np.ndarray,
        activity: np.ndarray,
    ) -> np.ndarray:
        """set_intent for many NPCs at once (no `say`): action (n,) index into ACTIONS, place (n,) index
        into `places` or -1, target (n,) entity id or -1, distance (n,) world units or nan (the default),
        activity (n,) object, None = the action's name. Returns ok (n,): False where the intent does not
        fit (set_intent would raise: not an NPC, no place for go_to/patrol, no other live target);
        those rows are left as they were."""
        t = self._table
        eids = np.asarray(eids, np.int64)
        slots = t.slots(eids, strict=False)
        action = np.asarray(action, np.int64)
        place = np.asarray(place, np.int64)
        target = np.asarray(target, np.int64)
        ok = slots >= 0
        ok[ok] &= t.kind[slots[ok]] == NPC
        mode = intents.MODES[action, (place >= 0).astype(np.int64)]
        goto = mode == intents.GOTO
        ok &= ~goto | ((place >= 0) & (place < len(self._place_xy)))
        chase = (mode == intents.FOLLOW) | (mode == intents.FLEE)
        tslot = t.slots(np.where(chase, target, -1), strict=False)
        ok &= ~chase | ((tslot >= 0) & (target != eids))
        if not ok.any():
            return ok
        s, mode, goto, chase = slots[ok], mode[ok], goto[ok], chase[ok]
        poi = np.where(goto, place[ok], -1)
        tid = np.where(chase, target[ok], 0)
        tsl = np.where(chase, tslot[ok], 0)
        dist = distance[ok].astype(np.float64)
        dist = np.where(
            np.isnan(dist) & (mode == intents.FLEE),
            intents.DEFAULT_FLEE_DISTANCE,
            np.where(np.isnan(dist) & (mode == intents.FOLLOW), intents.DEFAULT_FOLLOW_DISTANCE, dist),
        )
        act = action[ok]
        same = (
            (t.i_mode[s] == mode)
            & (t.i_poi[s] == poi)
            & (t.i_tid[s] == tid)
            & ((mode != intents.STAY) | (t.i_action[s] == act))
        )
        names = np.asarray(ACTIONS, dtype=object)[act]
        label = activity[ok]
        t.i_action[s] = act
        t.activity[s] = np.where(label.astype(bool), label, names)  # None or "": the action's name, as set_intent
        t.i_dist[s] = np.nan_to_num(dist, nan=0.0)
        new = ~same
        if new.any():
            n, m = s[new], mode[new]
            t.i_mode[n] = m
            t.i_poi[n], t.i_tslot[n], t.i_tid[n] = poi[new], tsl[new], tid[new]
            t.i_since[n] = self.time_s
            stay = m == intents.STAY
            t.i_arrived[n] = stay
            t.i_arrived_at[n] = np.where(stay, self.time_s, -1.0)
            self._groups.stale = True
            g = m == intents.GOTO
            if g.any():
                # each leg's time limit from its own NPC's speed (NPCs of several files at once)
                wander.set_leg(
                    t, n[g], poi[new][g], self._nav, self._rng, intents.speed_of(t, n[g], self.config.npc_speed)
                )
            w = m == intents.WANDER
            if w.any():
                wander.start(t, n[w], t.w_poi[n[w]], 0.0)
        return ok

    def intent(self, eid: int) -> Intent:
        """The NPC's current intent (for admins and for NPC minds)."""
        t = self._table
        s = t.slot(eid)
        mode = int(t.i_mode[s])
        poi = int(t.i_poi[s])
        arrived_at = float(t.i_arrived_at[s])
        return Intent(
            action=ACTIONS[t.i_action[s]],
            activity=t.activity[s],
            place=self._nav.names[poi] if mode == intents.GOTO and poi >= 0 else None,
            target=int(t.i_tid[s]) if mode in (intents.FOLLOW, intents.FLEE) else None,
            distance=float(t.i_dist[s]) if mode in (intents.FOLLOW, intents.FLEE) else None,
            arrived=bool(t.i_arrived[s]),
            since_s=float(t.i_since[s]),
            arrived_s=arrived_at if arrived_at >= 0 else None,
        )

    # -- stats and the game clock -------------------------------------------------

    def set_stats(self, eid: int, values: dict[str, float]) -> None:
        """Set named stats (clamped to 0..100)."""
        self._stats.set_values(self._table.slot(eid), values)

    def set_stat_rates(self, eid: int, rates: dict[str, float]) -> None:
        """How fast named stats change, per game hour (others keep theirs)."""
        self._stats.set_rates(self._table.slot(eid), rates)

    def set_stat_rates_many(self, eids: np.ndarray, names: tuple[str, ...], rates: np.ndarray) -> None:
        """set_stat_rates for many entities: rates (n, len(names)) per game hour."""
        t = self._table
        slots = t.slots(eids)
        self._stats.set_rates_many(slots, names, rates)

    def stats(self, eid: int) -> dict[str, float]:
        """The entity's stats by name (only those it has)."""
        return self._stats.of(self._table.slot(eid))

    def set_speed(self, eid: int, speed: float | None) -> None:
        """An NPC's walking speed, world units per second (None: the world's npc_speed)."""
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be > 0 world units per second, got {speed}")
        self._table.speed[self._table.slot(eid)] = 0.0 if speed is None else float(speed)

    def stat_rates(self, eid: int) -> dict[str, float]:
        """How fast the entity's stats change now, per game hour (only those it has)."""
        return self._stats.rates_of(self._table.slot(eid))

    @property
    def game_time(self) -> GameTime:
        """Day number and minutes since midnight, from time_s and the clock (world/clock.py)."""
        return self.clock.at(self.time_s)

    # -- places and positions ---------------------------------------------------------

    def use_map(self, tilemap: TileMap) -> list[str]:
        """Go on with a map that adds places to this one (world/tilemap.add_places: the same tiles, every
        existing place first, in order, so entities' place indices stay valid); the names added.
        Builds the new places' navigation here (a BFS per place): call navigation_for(tilemap, ...) in
        a thread first to have it cached."""
        old = list(self._nav.names)
        if (tilemap.width, tilemap.height, tilemap.tile_size) != (
            self.map.width,
            self.map.height,
            self.map.tile_size,
        ) or not np.array_equal(tilemap.blocked, self.map.blocked):
            raise ValueError("use_map takes the same map with places added; its tiles differ")
        nav = navigation_for(tilemap, self.config.radius, self.config.poi_spread)
        if list(nav.names[: len(old)]) != old:
            raise ValueError("use_map takes the same map with places added; its places differ")
        self.map, self._nav = tilemap, nav
        self._place_index = {name: i for i, name in enumerate(nav.names)}
        self._place_xy = np.asarray([tilemap.pois[n] for n in nav.names], dtype=np.float64).reshape(-1, 2)
        self._place_grid = None
        return list(nav.names[len(old) :])

    @property
    def places(self) -> list[str]:
        """Points of interest NPCs can go to (every POI but 'spawn', unless it is the only one)."""
        return list(self._nav.names)

    def place_position(self, name: str) -> tuple[float, float]:
        x, y = self._place_xy[self._place_index[name]]
        return float(x), float(y)

    @property
    def place_radius(self) -> float:
        """How near a POI an entity counts as being at it: NPCs stop at spots up to poi_spread
        tiles away (diagonally), plus half a tile of jitter."""
        return (self.config.poi_spread + 0.5) * self.map.tile_size * math.sqrt(2)

    def place_near(self, x: float, y: float, within: float | None = None) -> str | None:
        """The nearest place within `within` (default place_radius) world units of (x, y), or None."""
        within = self.place_radius if within is None else within
        if not len(self._place_xy):
            return None
        d = np.hypot(self._place_xy[:, 0] - x, self._place_xy[:, 1] - y)
        i = int(np.argmin(d))
        return self._nav.names[i] if d[i] <= within else None

    def positions(self, eids: list[int]) -> np.ndarray:
        """Centres (M,2) of the given live entities, world units."""
        t = self._table
        return t.pos[[t.slot(e) for e in eids]].reshape(-1, 2).copy()

    def of_kind(self, kind: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids (M,), centres (M,2)) of every live entity of a kind."""
        slots, players, npcs = self._kinds()
        s = players if kind == PLAYER else npcs
        return self._table.id[s].copy(), np.take(self._table.pos, s, axis=0)

    def columns(self, eids: np.ndarray, stats: tuple[str, ...] = ()) -> Columns:
        """The intents, positions and named stats of many live NPCs at once (KeyError for an unknown id)."""
        t = self._table
        slots = t.slots(eids)
        mode = t.i_mode[slots]
        goto = mode == intents.GOTO
        chase = (mode == intents.FOLLOW) | (mode == intents.FLEE)
        at = t.i_arrived_at[slots]
        vals = np.full((len(slots), len(stats)), np.nan)
        for k, name in enumerate(stats):
            col = self._stats.index.get(name)
            if col is not None:
                vals[:, k] = np.where(t.stat_has[slots, col], t.stats[slots, col], np.nan)
        return Columns(
            np.take(t.pos, slots, axis=0),  # a copy; numpy's fancy index of (n, 2) rows costs ~10x
            t.i_action[slots].copy(),
            np.where(goto, t.i_poi[slots], -1).astype(np.int32),
            np.where(chase, t.i_tid[slots], -1),
            t.i_arrived[slots].copy(),
            t.i_since[slots].copy(),
            np.where(at >= 0, at, np.nan),
            t.activity[slots],
            vals,
        )

    def locate(self, eids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(alive (n,) bool, centres (n, 2), nan where gone) of entity ids that may be gone (or -1)."""
        t = self._table
        slots = t.slots(eids, strict=False)
        alive = slots >= 0
        # every row gathered (slot 0 for the gone: any row, replaced by nan), not a masked gather and scatter
        pos = np.take(t.pos, np.where(alive, slots, 0), axis=0)
        return alive, np.where(alive[:, None], pos, np.nan)

    def places_at(self, xy: np.ndarray, within: float | None = None) -> np.ndarray:
        """(n,) index into `places` of the nearest place within `within` (default place_radius) of each
        point (n, 2), -1 where none: place_near for many points. By a grid of the places (world/places.py),
        the answer of the full N x P distance matrix bit for bit."""
        within = self.place_radius if within is None else within
        grid = self._place_grid
        if grid is None or grid.within != within:
            grid = self._place_grid = PlaceGrid(self._place_xy, within)
        return grid.nearest(np.asarray(xy, np.float64).reshape(-1, 2))

    def place_positions(self) -> np.ndarray:
        """(len(places), 2) centres of the places, in the order of `places`."""
        return self._place_xy.copy()

    def name_of(self, eid: int) -> str:
        return self._table.name[self._table.slot(eid)]

    def kind_of(self, eid: int) -> int:
        return int(self._table.kind[self._table.slot(eid)])

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
            moving, vel = intents.steer(
                t, npcs, self._groups, self._nav, self._rng, dt, cfg.npc_speed, cfg.idle_s, self.time_s + dt
            )
            # only the entities that move go through `move` (bit for bit what moving every one gives:
            # a row's motion depends on its own delta and on the largest, which the others do not set)
            rows = np.concatenate((players, moving))
            delta = np.concatenate((np.take(t.dir, players, axis=0) * (cfg.player_speed * dt), vel * dt))
            go = (delta[:, 0] != 0) | (delta[:, 1] != 0)
            if not go.all():
                go = np.flatnonzero(go)
                rows, delta = rows[go], wander.rows(delta, go)
            if len(rows):
                # positions gathered and written back as one 16-byte word per row: numpy's gather and
                # scatter of (n, 2) rows cost ~2.5x and ~9x as much (340 and 160 us at 10,500 rows)
                words = t.pos.view(np.complex128)[:, 0]  # a view (never a copy): written through
                moved = move(self._walls, words[rows].view(np.float64).reshape(-1, 2), delta)
                words[rows] = np.ascontiguousarray(moved, np.float64).view(np.complex128).ravel()
            self._stats.step(npcs, self.clock.hours(dt))
        self.time_s += dt
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
        chat, self._chat = self._chat, []
        cells = np.asarray([line[4] for line in chat], np.int64)
        if chat:
            # heard where the speaker stands now if it is still here, else where it stood (one gather:
            # a cell per line was ~2 us each, ~370 lines a tick at 10,000 NPCs and 1,000 observers)
            slots = t.slots([line[0] for line in chat], strict=False)
            here = slots >= 0
            cells[here] = self._grid.cell_of(np.take(t.pos, slots[here], axis=0))
        tick = self.tick
        records = [encode_chat_record(eid, name, text, tick) for eid, _, name, text, _ in chat]
        return self._interest.build(t, cells, records)

    def entities_in_view(self, eid: int) -> set[int]:
        """Ids in the cells eid sees, from current positions (ground truth for tests)."""
        t = self._table
        slots = t.active()
        cells = self._grid.cell_of(t.pos[slots])
        mine = int(self._grid.cell_of(t.pos[[t.slot(eid)]])[0])
        seen = np.isin(cells, np.asarray(self._grid.near[mine]))
        return set(t.id[slots[seen]].tolist())
