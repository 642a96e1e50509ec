"""The vectorised paths of the tick against simple references written here, one entity at a time:

- every View's bytes (whole cells, move blocks) and, for observers that changed cell, its enter
  and leave in order, rebuilt from scratch from positions and the previous build's positions; its
  bodies' bytes against those of the same View made of lists (ids packed by msgpack);
- `move` (walls, sliding) against a scalar sweep that searches every tile ahead of every circle
  (no shortcut for circles in the open or whose leading edge stays in its tile), bit for bit;
- `floor_index` against Python's floor division;
- per-file walking speeds: each NPC walks at its own speed, in one steering pass.
"""

import math
import random

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from world import intents
from world.movement import Walls, move
from world.protocol import MOVE_FIX, MOVE_MAX
from world.sim import NPC, PLAYER, World, WorldConfig
from world.snapshot import View
from world.tilemap import floor_index

from support.worldhelp import default_map

MAP = default_map()
TS = MAP.tile_size
FREE = [((c + 0.5) * TS, (r + 0.5) * TS) for r in range(MAP.height) for c in range(MAP.width) if not MAP.blocked[r, c]]


# -- views -------------------------------------------------------------------------------------


class Reference:
    """What each observer's View must hold, from positions alone (and the last build's)."""

    def __init__(self, w: World):
        cfg = w.config
        self.w, self.size, self.r, self.q = w, cfg.cell_size, cfg.view_radius, cfg.quant
        self.cx = -(-MAP.world_size[0] // self.size)
        self.cy = -(-MAP.world_size[1] // self.size)
        self.last: dict[int, tuple[int, tuple[int, int]]] | None = None  # id -> (cell, q) at the last build

    def now(self):
        t = self.w._table
        out = {}
        for s in t.active().tolist():
            x, y = t.pos[s].tolist()
            c = min(int(y // self.size), self.cy - 1) * self.cx + min(int(x // self.size), self.cx - 1)
            q = tuple(min(max(int(np.rint(v * self.q)), 0), 0xFFFF) for v in (x, y))
            out[int(t.id[s])] = (c, q)
        return out

    def near(self, c):
        """The cells c sees, ascending."""
        x0, y0 = c % self.cx, c // self.cx
        return [
            y * self.cx + x
            for y in range(max(0, y0 - self.r), min(self.cy, y0 + self.r + 1))
            for x in range(max(0, x0 - self.r), min(self.cx, x0 + self.r + 1))
        ]

    @staticmethod
    def in_cell(state, c):
        """(id, q) of the entities of cell c, by id."""
        return sorted((e, q) for e, (cell, q) in state.items() if cell == c)

    def cells(self, state, c):
        blocks = []
        for x in self.near(c):
            es = self.in_cell(state, x)
            if es:
                blocks.append(
                    [
                        x,
                        np.asarray([e for e, _ in es], "<u4").tobytes(),
                        np.asarray([q for _, q in es], "<u2").tobytes(),
                    ]
                )
        return blocks

    def moves(self, state, last, c, p):
        """The delta form of cell c's view for an observer in cell p at the last build."""
        whole, moves = [], []
        for x in self.near(c):
            es = self.in_cell(state, x)
            if not es:
                continue
            was = self.in_cell(last, x)
            if x not in self.near(p) or not was:
                whole.append(
                    [
                        x,
                        np.asarray([e for e, _ in es], "<u4").tobytes(),
                        np.asarray([q for _, q in es], "<u2").tobytes(),
                    ]
                )
                continue
            here = dict(es)
            d, fix, gone = [], [], []
            for i, (e, q0) in enumerate(was):
                if e in here:
                    dx, dy = here[e][0] - q0[0], here[e][1] - q0[1]
                    if max(abs(dx), abs(dy)) > MOVE_MAX:
                        fix.append((i, *here[e]))
                        dx = dy = 0
                    d += [dx, dy]
                else:
                    gone.append(i)
                    d += [0, 0]
            came = [(e, q) for e, q in es if e not in dict(was)]
            block = [
                x,
                np.asarray(d, np.int8).tobytes() if any(d) else b"",
                np.asarray(fix, MOVE_FIX).tobytes() if fix else b"",
            ]
            if gone or came:
                block += [
                    np.asarray(gone, "<u2").tobytes(),
                    np.asarray([e for e, _ in came], "<u4").tobytes(),
                    np.asarray([q for _, q in came], "<u2").tobytes(),
                ]
            moves.append(block)
        return whole, moves

    def check(self, views, prev_cell):
        """prev_cell: observer -> its cell at the last build (None: added since, a full enter)."""
        state, last = self.now(), self.last
        for o, v in views.items():
            c = state[o][0]
            assert msgpack.unpackb(v.cells) == self.cells(state, c)
            p = prev_cell.get(o)
            # the view set, in view-set order (by cell, then id)
            seen_now = sorted((e for e in state if state[e][0] in self.near(c)), key=lambda e: (state[e][0], e))
            if last is None or p is None:  # first build, or added since: a full enter, no deltas
                assert v.moves is None
                assert (v.enter_ids, v.leave) == (seen_now, [])
                continue
            whole, moves = self.moves(state, last, c, p)
            assert [msgpack.unpackb(v.moves[0]), msgpack.unpackb(v.moves[1])] == [whole, moves]
            seen_was = sorted((e for e in last if last[e][0] in self.near(p)), key=lambda e: (last[e][0], e))
            enter = [e for e in seen_now if e not in set(seen_was)]
            leave = [e for e in seen_was if e not in set(seen_now)]
            if c != p:  # its own View: in view-set order
                assert (v.enter_ids, v.leave) == (enter, leave)
            else:  # the View of its cell, from what crossed cells: the same entities
                assert (sorted(v.enter_ids), sorted(v.leave)) == (sorted(enter), sorted(leave))
            assert v.enter == [self.w._table.record[self.w._table.slot_of[e]] for e in v.enter_ids]
        for v in views.values():
            # the bodies' bytes: the builder packs every move's leave in one numpy pass; msgpack packs the list
            lists = View.make(v.cells, v.enter, list(v.enter_ids), list(v.leave), v.chat, v.build, v.moves)
            assert v.body == lists.body
            assert v.moves is None or v.body_after(v.build - 1) == lists.body_after(v.build - 1)
        self.last = state


op = st.one_of(
    st.tuples(st.just("spawn"), st.sampled_from([PLAYER, NPC]), st.integers(0, 10**6)),
    st.tuples(st.just("despawn"), st.integers(0, 10**6)),
    st.tuples(st.just("dir"), st.integers(0, 10**6), st.floats(-1, 1), st.floats(-1, 1)),
    st.tuples(st.just("observe"), st.integers(0, 10**6)),
    st.tuples(st.just("teleport"), st.integers(0, 10**6), st.integers(0, 10**6)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cell_size=st.sampled_from([128, 256, 512]),
    view_radius=st.integers(0, 2),
    seed=st.integers(0, 2**16),
    ticks=st.lists(
        st.tuples(st.lists(op, max_size=6), st.sampled_from([0.05, 0.05, 0.5, 2.0])), min_size=2, max_size=8
    ),
)
def test_views_match_a_reference_built_from_positions(cell_size, view_radius, seed, ticks):
    w = World(MAP, WorldConfig(cell_size=cell_size, view_radius=view_radius, seed=seed))
    rng = random.Random(seed)
    ids = [w.spawn(NPC, f"n{i}", "#888") for i in range(60)]
    players = []
    for i in range(12):
        e = w.spawn(PLAYER, f"p{i}", "#fff", *rng.choice(FREE))
        w.set_direction(e, rng.uniform(-1, 1), rng.uniform(-1, 1))
        w.add_observer(e)
        players.append(e)
    ref = Reference(w)
    prev: dict[int, int | None] = {e: None for e in players}
    for ops, dt in [([], 0.05)] + ticks:
        for o in ops:
            everyone = ids + players
            e = everyone[o[1] % len(everyone)] if o[0] != "spawn" and everyone else None
            if o[0] == "spawn":
                e = w.spawn(o[1], "s", "#123", *FREE[o[2] % len(FREE)])
                (players if o[1] == PLAYER else ids).append(e)
            elif e is None:
                continue
            elif o[0] == "despawn":
                w.despawn(e)
                (players if e in players else ids).remove(e)
                prev.pop(e, None)
            elif o[0] == "dir":
                w.set_direction(e, o[2], o[3])
            elif o[0] == "observe" and e in players:
                w.add_observer(e)  # (re)added: its next View enters everything
                prev[e] = None
            elif o[0] == "teleport" and e in players:  # a jump: fixes, and cells far apart
                w.despawn(e)
                players.remove(e)
                prev.pop(e, None)
                e = w.spawn(PLAYER, "t", "#0ff", *FREE[o[2] % len(FREE)])
                w.add_observer(e)
                players.append(e)
                prev[e] = None
        w.step(dt)
        views = w.build_views()
        assert set(views) == set(prev)
        ref.check(views, prev)
        prev = {o: ref.last[o][0] for o in views}


# -- movement ----------------------------------------------------------------------------------


def _reference_sweep(walls: Walls, pos: np.ndarray, d: np.ndarray, axis: int) -> None:
    """Movement's sweep, one circle at a time, every tile ahead searched (movement._sweep's docstring)."""
    ts, r, p = walls.tile, walls.radius, walls.pad
    grid = walls.by_col if axis == 0 else walls.by_row
    for i in np.flatnonzero(d).tolist():
        a, b, di = float(pos[i, axis]), float(pos[i, 1 - axis]), float(d[i])
        s = 1.0 if di > 0 else -1.0
        na = a + di
        a0 = math.floor(a / ts)
        ahead = abs(math.floor((na + s * r) / ts) - a0)
        b_lo, b_hi = math.floor((b - r) / ts), math.floor((b + r) / ts)
        best = s * na
        for k in range(1, min(ahead, walls.reach) + 1):
            ai = a0 + int(s) * k
            face = ai * ts + (ts if s < 0 else 0.0)
            for bj in range(b_lo, min(b_hi, b_lo + walls.span - 1) + 1):
                lo = bj * ts
                db = max(lo - b, b - (lo + ts), 0.0)
                if db < r and grid[ai + p, bj + p]:
                    best = min(best, s * face - math.sqrt(max(r * r - db * db, 0.0)))
        pos[i, axis] = s * best


def _reference_move(walls: Walls, pos: np.ndarray, delta: np.ndarray) -> np.ndarray:
    pos = np.array(pos, dtype=np.float64)
    longest = float(np.abs(delta).max()) if len(pos) else 0.0
    if longest == 0.0:
        return pos
    steps = max(1, int(math.ceil(longest / walls.max_step)))
    dd = delta / steps
    for _ in range(steps):
        _reference_sweep(walls, pos, dd[:, 0], 0)
        _reference_sweep(walls, pos, dd[:, 1], 1)
    return pos


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), reach=st.sampled_from([4.0, 16.0, 40.0, 200.0]))
def test_move_matches_the_scalar_sweep_bit_for_bit(seed, reach):
    rng = np.random.default_rng(seed)
    walls = Walls(MAP, 10.0)
    # circles clear of walls (pushed clear as spawn does), some in the open, many beside walls
    start = np.asarray([walls.push_clear(*FREE[i]) for i in rng.integers(0, len(FREE), 300)])
    start += rng.uniform(-6, 6, start.shape)
    start = np.asarray([walls.push_clear(x, y) for x, y in start.tolist()])
    delta = rng.uniform(-reach, reach, start.shape) * (rng.random((len(start), 1)) < 0.9)
    assert np.array_equal(move(walls, start, delta), _reference_move(walls, start, delta))


def test_move_beside_walls_two_tiles_away_matches_the_scalar_sweep():
    """Circles at the corners of free tiles one or two tiles from a wall, moving half a tile along
    both axes (a substep's most): after the x sweep a circle can be in a tile whose neighbours are
    not free, though its own tile's were (move's shortcut for circles in the clear must not take it)."""
    walls = Walls(MAP, 10.0)
    near_wall = [
        (r, c)
        for r in range(2, MAP.height - 2)
        for c in range(2, MAP.width - 2)
        if not MAP.blocked[r, c] and MAP.blocked[r - 2 : r + 3, c - 2 : c + 3].any()
    ]
    off = TS / 2 - 10.0 - 0.5  # the circle inside its tile, next to a corner
    start, delta = [], []
    for r, c in near_wall[::3]:
        for sx in (-1, 1):
            for sy in (-1, 1):
                start.append(((c + 0.5) * TS + sx * off, (r + 0.5) * TS + sy * off))
                delta.append((sx * TS / 2, sy * TS / 2))
    start = np.asarray([walls.push_clear(x, y) for x, y in start])
    delta = np.asarray(delta)
    assert np.array_equal(move(walls, start, delta), _reference_move(walls, start, delta))


@settings(max_examples=200, deadline=None)
@given(
    x=st.one_of(
        st.floats(-5000, 5000),
        st.integers(-20, 80).map(lambda k: k * 32.0),
        st.integers(-20, 80).map(lambda k: math.nextafter(k * 32.0, -math.inf)),
    ),
    size=st.sampled_from([1, 7, 32, 100, 256, 512]),
    n=st.integers(1, 70),
)
def test_floor_index_is_floor_division_clamped(x, size, n):
    got = floor_index(np.asarray([x]), size, n)
    assert got.tolist() == [min(max(int(x // size), 0), n - 1)]


# -- per-file speeds ---------------------------------------------------------------------------


def _open_row(walls: Walls, length: int) -> tuple[int, int]:
    """(row, col) of the first run of `length` tiles along a row that are all in the open."""
    p = walls.pad
    open_ = walls.open[p:-p, p:-p]
    for r in range(open_.shape[0]):
        for c in range(open_.shape[1] - length):
            if open_[r, c : c + length].all():
                return r, c
    raise AssertionError("no open row on the default map")


def test_npcs_walk_at_their_own_speeds_in_one_pass():
    w = World(MAP, WorldConfig(seed=3))
    speeds = [30.0, 45.0, 60.0, 90.0, 120.0]
    npcs = [w.spawn(NPC, f"n{i}", "#888") for i in range(100)]
    for i, e in enumerate(npcs):
        w.set_speed(e, speeds[i % len(speeds)])
    # a follower in the open, 8 tiles behind a player who stands still: it walks at its own speed
    r, c = _open_row(w._walls, 10)
    target = w.spawn(PLAYER, "t", "#fff", (c + 9.5) * TS, (r + 0.5) * TS)
    chaser = w.spawn(NPC, "c", "#f00", (c + 0.5) * TS, (r + 0.5) * TS)
    w.set_speed(chaser, 75.0)
    w.set_intent(chaser, "follow", target=target, distance=1.0)
    fastest = np.zeros(len(npcs) + 1)
    dt = 0.05
    for _ in range(200):
        before = w.positions(npcs + [chaser])
        w.step(dt)
        fastest = np.maximum(fastest, np.hypot(*(w.positions(npcs + [chaser]) - before).T))
    own = np.asarray([speeds[i % len(speeds)] for i in range(len(npcs))] + [75.0]) * dt
    assert (fastest <= own + 1e-9).all()  # nobody faster than its own speed
    assert (fastest >= 0.99 * own).all()  # and every one walked at it, some tick


# -- the step: only movers moved -----------------------------------------------------------------


def _plain_step(w: World, dt: float) -> None:
    """World.step as it was before only the movers went through `move`: every live entity moved."""
    t = w._table
    slots, players, npcs = w._kinds()
    cfg = w.config
    delta = np.zeros((t.capacity, 2))
    delta[players] = t.dir[players] * (cfg.player_speed * dt)
    moving, vel = intents.steer(t, npcs, w._groups, w._nav, w._rng, dt, cfg.npc_speed, cfg.idle_s, w.time_s + dt)
    delta[moving] = vel * dt
    t.pos[slots] = move(w._walls, t.pos[slots], delta[slots])
    t.stats[npcs, : len(w._stats.names)] = np.clip(
        t.stats[npcs, : len(w._stats.names)] + t.stat_rate[npcs, : len(w._stats.names)] * w.clock.hours(dt), 0, 100
    )
    w.time_s += dt
    w.tick += 1


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), dts=st.lists(st.sampled_from([0.05, 0.05, 0.5, 3.0]), min_size=1, max_size=12))
def test_step_matches_moving_every_entity(seed, dts):
    worlds = [World(MAP, WorldConfig(seed=seed)) for _ in range(2)]
    rng = random.Random(seed)
    plan = [(rng.choice(FREE), rng.choice([(0.0, 0.0), (rng.uniform(-1, 1), rng.uniform(-1, 1))])) for _ in range(20)]
    for w in worlds:
        npcs = [w.spawn(NPC, f"n{i}", "#888") for i in range(40)]
        for xy, d in plan:
            w.set_direction(w.spawn(PLAYER, "p", "#fff", *xy), *d)
        for i, e in enumerate(npcs):
            w.set_stats(e, {"energy": 50.0 + i, "hunger": 99.0})
            w.set_stat_rates(e, {"energy": -30.0 * (i % 3), "hunger": 40.0})
            if i % 4 == 0:
                w.set_intent(e, "idle")
            elif i % 4 == 1:
                w.set_intent(e, "follow", target=npcs[i - 1], distance=20.0)
            elif i % 4 == 2:
                w.set_intent(e, "go_to", place=w.places[i % len(w.places)])
        if seed % 2:
            w.despawn(npcs[5])  # a hole in the NPCs' slots: the stats' gather path (else one run, in place)
    fast, plain = worlds
    for dt in dts:
        fast.step(dt)
        _plain_step(plain, dt)
        for col in ("pos", "stats", "w_timer", "w_phase", "i_arrived"):
            assert np.array_equal(getattr(fast._table, col), getattr(plain._table, col)), col


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 40))
def test_say_many_is_say_line_by_line(seed, n):
    """World.say_many (NPCs' greetings, one call a tick) gives the lines and chat records that one say()
    per line gives, in order; a speaker may say several lines."""
    worlds = [World(MAP, WorldConfig(seed=1)) for _ in range(2)]
    for w in worlds:
        for k in range(8):
            w.spawn(NPC if k % 2 else PLAYER, f"e{k}", "#fff", *FREE[(seed + 97 * k) % len(FREE)])
    rng = np.random.default_rng(seed)
    eids = rng.integers(1, 9, n)
    texts = [f"line {k} of {int(e)}" for k, e in enumerate(eids)]
    one, many = worlds
    for e, text in zip(eids.tolist(), texts):
        one.say(e, text)
    many.say_many(eids, texts)
    assert many.take_lines() == one.take_lines()
    assert many._chat == one._chat
