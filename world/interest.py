"""Interest management: which entities each observer sees, and what changed.

The world is cut into square cells of `cell_size` world units, numbered
`cy * cells_x + cx`. An observer sees every cell within `view_radius` cells
(Chebyshev) of the cell its own entity is in: its *view set* is the entities
in those cells.

Each build (once per tick):
1. every entity's cell is computed and entities are grouped by cell (argsort);
2. each non-empty cell's block is encoded ONCE and shared;
3. observers that stayed in their cell since the last build share one View
   per cell: its enter/leave come only from the entities that changed cell,
   appeared or disappeared since the last build (few per tick), relative to
   that cell's view set at the last build;
4. only observers that changed cell, or were just added, need another View:
   a set difference of old and new view sets (or a full enter), shared by
   the observers that made the same move (or were added in the same cell),
   every move's in one vectorised pass (`_moved_views`) over candidates only.

Cost per build: O(entities) numpy (the cell order, move blocks), O(cells)
byte slicing, O(observers) array work to split them, and Python per cell
that observers see and per move (cell before, cell now), not per observer
nor per entity. Measured side by side in one run (bench/world.py --compare,
10,000 NPCs and 1,000 observers, CPU time, 2-core machine at load 2-3): the
build went from 3.9 to 2.3 ms (at 300 observers 2.5 to 1.5 ms). Later, the same world built under
main's world/ and this one alternately in one process, tick by tick (CPU time, load 5-6): 5.35 ->
4.25 ms (0.79x), from numpy ids kept lazy and every leave packed at once, keyframe cells joined
only when asked, move blocks from 32/16-bit words, and (x, y) rows gathered as 16-byte words.
Session 17 (the same way, --same, load 10-11): build 6.75 -> 6.17 ms (0.91x) at 1,000 observers
(4.90 -> 4.71 at 300), from the shared Views' enter/leave by each crossing's cached entered/left
cells (`Grid.crossing`), mixed-size leave ids packed in place (protocol.pack_uints), and in
_moved_views only the candidates that came (or were not kept) tested against the other cell's
view. What is left, at 1,000 observers:
_moved_views ~2 ms (19 moves a tick enter ~7,500 records and leave ~7,300 ids: the record gather
alone is ~0.5 ms, memory-bound on scattered bytes objects), move blocks ~0.8, the cell order
~0.45, the shared Views' delta bodies ~0.55. Tried, not kept: the shared Views' enter/leave as one
numpy pass over (entity, cell) pairs (0.6 ms against the loop's ~0.15: ~40 numpy calls for ~85
crossings); a lookup table of every id's msgpack bytes for pack_uints (no faster than in place).

Invariant (what makes 3 correct): after a client applies the View it got at
the last build, it knows exactly the view set of its cell at that build; the
`prev_cell` column and `_last` (a _Groups) hold that build's cells and groups.

Deltas: `_last` and `_last_q` keep the last build's entities (by cell, then
id) and quantised positions, which is what a client that received that
build's View holds for each cell it saw. A cell non-empty then and now gets a
move block (world/moves.py; encoded once, shared like the blocks); a cell the
observer did not see then, or that was empty, travels whole. Each View
carries both forms; the connection picks (world/snapshot.py).

Version 3: a cell's whole block carries its entities' steps too, and its move block each step's
change (world/moves.py). One build serves sessions of every version: every form (whole blocks, move
blocks, a View's keyframe cells and delta form) is made per version when a connection first asks for
it (moves.PerVersion, functions in the View), so a build whose connections all speak 3 makes none of
version 2's. Measured (bench/world.py --compare main --interleave --npcs 500 --observers 600
--protocol 3, load 12-15): the tick 1.18-1.20x main's CPU, views and encodes 3.24 -> 4.07 ms; before
the forms were made on demand (both versions every build) 1.24-1.28x.
"""

from __future__ import annotations

import math
from functools import partial
from typing import cast

import numpy as np
import numpy.typing as npt

from .entities import EntityTable
from .moves import PerVersion, came_step, move_blocks
from .protocol import array_header, encode_cell_block, encode_cell_block3, pack_uints
from .snapshot import View
from .tilemap import floor_index

_EMPTY: frozenset[int] = frozenset()


class Grid:
    """Cell geometry: numbering and the neighbourhood each cell sees."""

    def __init__(self, world_w: float, world_h: float, cell_size: int, view_radius: int):
        self.size = cell_size
        self.cells_x = math.ceil(world_w / cell_size)
        self.cells_y = math.ceil(world_h / cell_size)
        r = view_radius
        self.near: list[tuple[int, ...]] = []  # cell -> cells it sees, ascending
        for cy in range(self.cells_y):
            for cx in range(self.cells_x):
                self.near.append(
                    tuple(
                        y * self.cells_x + x
                        for y in range(max(0, cy - r), min(self.cells_y, cy + r + 1))
                        for x in range(max(0, cx - r), min(self.cells_x, cx + r + 1))
                    )
                )
        self.near_set: list[frozenset[int]] = [frozenset(n) for n in self.near]
        self._crossings: dict[tuple[int, int], tuple[tuple[int, ...], tuple[int, ...]]] = {}  # see crossing()
        # the same as one array: near_pad[c, :len(near[c])] = near[c], then -1s
        self.near_pad = np.full((len(self.near), (2 * r + 1) ** 2), -1, np.int64)
        for c, cs in enumerate(self.near):
            self.near_pad[c, : len(cs)] = cs
        self.n_cells = self.cells_x * self.cells_y
        self.radius = r
        # [cell + 1]: the cell's column and row; [0] stands for "no cell", seen from nowhere
        far = -(2 * (self.cells_x + self.cells_y + r) + 2)
        self.cx_of = np.concatenate(([far], np.arange(self.n_cells) % self.cells_x)).astype(np.int64)
        self.cy_of = np.concatenate(([far], np.arange(self.n_cells) // self.cells_x)).astype(np.int64)
        # the same neighbourhood as runs of consecutive cell numbers, one per row
        self.runs: list[list[tuple[int, int]]] = []
        for cy in range(self.cells_y):
            for cx in range(self.cells_x):
                lo, hi = max(0, cx - r), min(self.cells_x - 1, cx + r)
                self.runs.append(
                    [
                        (y * self.cells_x + lo, y * self.cells_x + hi)
                        for y in range(max(0, cy - r), min(self.cells_y, cy + r + 1))
                    ]
                )

    def crossing(self, old: int, new: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(the cells `new` sees and `old` does not, those `old` sees and `new` does not), ascending, for
        an entity that went from cell old (-1: none, it is new) to cell new; cached per (old, new).
        Measured (10,000 NPCs, 1,000 observers, ~85 crossings a tick): the shared Views' enter and leave
        in ~0.15 ms instead of ~0.5 ms for set tests over both whole neighbourhoods per crossing,
        and ~0.6 ms for one numpy pass over (entity, cell) pairs (tried, not kept: a pass's ~40 numpy
        calls cost more than the loop at this size)."""
        key = (old, new)
        found = self._crossings.get(key)
        if found is None:
            if len(self._crossings) >= 65536:  # jumps (far moves) could fill it: start over
                self._crossings.clear()
            was = self.near_set[old] if old >= 0 else _EMPTY
            is_ = self.near_set[new]
            gone_from = self.near[old] if old >= 0 else ()
            found = self._crossings[key] = (
                tuple(c for c in self.near[new] if c not in was),
                tuple(c for c in gone_from if c not in is_),
            )
        return found

    def cell_of(self, pos: np.ndarray) -> np.ndarray:
        """Cell index (M,) of each position (M,2) in world units."""
        cy = floor_index(pos[:, 1], self.size, self.cells_y)
        cy *= self.cells_x
        cy += floor_index(pos[:, 0], self.size, self.cells_x)
        return cy

    def cell_at(self, x: float, y: float) -> int:
        """cell_of for one point, without arrays (a chat line: ~1 us instead of ~20 us)."""
        cx = min(max(int(x // self.size), 0), self.cells_x - 1)
        cy = min(max(int(y // self.size), 0), self.cells_y - 1)
        return cy * self.cells_x + cx


class Interest:
    """Observer bookkeeping and the per-tick build of every observer's View."""

    def __init__(self, grid: Grid, quant: int):
        self.grid = grid
        self.quant = quant
        # observers: parallel lists, swap-removed; index by eid in _index
        self._eids: list[int] = []
        self._slots: list[int] = []
        self._prev: list[int] = []  # cell at the last build; -1 = new, full enter due
        self._index: dict[int, int] = {}
        self._gone: list[tuple[int, int]] = []  # (id, cell at last build) removed since
        self._last: _Groups | None = None  # the groups of the last build
        self._build = -1  # builds so far, less one: the number of the last
        self._last_q = np.zeros((0, 2), np.uint16)  # quantised positions at the last build, as _last's order
        self._last_steps = np.zeros((0, 2), "<i2")  # each one's step then (version 3), the same order

    # -- observers ----------------------------------------------------------

    def add(self, eid: int, slot: int) -> None:
        """(Re)add an observer; its next View enters everything in view."""
        if eid in self._index:
            i = self._index[eid]
            self._slots[i] = slot
            self._prev[i] = -1
            return
        self._index[eid] = len(self._eids)
        self._eids.append(eid)
        self._slots.append(slot)
        self._prev.append(-1)

    def remove(self, eid: int) -> None:
        """Stop building views for eid (no-op if it is not an observer)."""
        i = self._index.pop(eid, None)
        if i is None:
            return
        last = len(self._eids) - 1
        if i != last:
            self._eids[i], self._slots[i], self._prev[i] = self._eids[last], self._slots[last], self._prev[last]
            self._index[self._eids[i]] = i
        self._eids.pop()
        self._slots.pop()
        self._prev.pop()

    def is_observer(self, eid: int) -> bool:
        return eid in self._index

    def entity_removed(self, eid: int, prev_cell: int) -> None:
        """An entity left the world; views that saw it at the last build get a leave."""
        self.remove(eid)
        if prev_cell >= 0:
            self._gone.append((eid, prev_cell))

    # -- the build ----------------------------------------------------------

    def build(self, table: EntityTable, chat_cells: np.ndarray, chat: list[bytes]) -> dict[int, View]:
        """Every observer's View; `chat` holds the chat records of the lines since the last build, in
        the order said, and `chat_cells` (same length) the cell each is heard from (its speaker's)."""
        grid = self.grid
        near, near_set = grid.near, grid.near_set
        slots = table.active()
        # (x, y) rows gathered as one 16-byte word each: numpy's gather of (n, 2) rows costs ~3x as much
        # (340 against 120 us at 11,000 entities), and it was done twice (cells, then positions by cell)
        pos = table.pos.view(np.complex128)[:, 0][slots].view(np.float64).reshape(-1, 2)
        cells = grid.cell_of(pos)
        prev_cells = table.prev_cell[slots]

        # 1-2. group by cell; encode each non-empty cell's block once
        self._build += 1
        build = self._build
        now = _Groups(grid, table, slots, cells, prev_cells)
        ids_bin = now.ids.astype("<u4").tobytes()
        q = np.rint(pos * self.quant)
        np.minimum(q, 0xFFFF, out=q)  # (np.clip costs twice these two)
        np.maximum(q, 0, out=q)
        q = q.astype("<u2").view(np.uint32).ravel()[now.order].view("<u2").reshape(-1, 2)  # by cell, as words
        pos_bin = q.tobytes()
        start = now.start

        cell_of_slot = np.full(table.capacity, -1, dtype=np.int64)
        cell_of_slot[slots] = cells
        # cell -> its move block from the last build's (cells with entities then and now). An entity of
        # the last build is kept when the same one (slot and id) is in the same cell now; one of now has
        # come when it is not a kept one: it was elsewhere at the last build (prev_cell), or is new (-1)
        last = self._last
        kept = None if last is None else (table.id[last.slots] == last.ids) & (cell_of_slot[last.slots] == last.cells)
        move_of = PerVersion({2: dict, 3: dict})  # cell -> its move block, in each version (none: a first build)
        if last is None or kept is None:
            steps = np.zeros((len(now.ids), 2), "<i2")
        else:
            came_at = np.flatnonzero(now.came)
            came_steps = came_step(last.slots, last.ids, self._last_q, now.slots[came_at], now.ids[came_at], q[came_at])
            move_of, steps = move_blocks(
                last.cells,
                last.start,
                last.start_at,
                self._last_q,
                kept,
                now.cells,
                start,
                now.ids,
                q,
                now.came,
                self._last_steps,
                came_steps,
            )
        self._last_q = q
        self._last_steps = steps
        steps_bin = steps.tobytes()
        filled = now.filled

        def cell_blocks2() -> dict[int, bytes]:
            return {
                c: encode_cell_block(
                    c, ids_bin[4 * start[c] : 4 * start[c + 1]], pos_bin[4 * start[c] : 4 * start[c + 1]]
                )
                for c in filled
            }

        def cell_blocks3() -> dict[int, bytes]:
            out = {}
            for c in filled:
                s, e = 4 * start[c], 4 * start[c + 1]
                out[c] = encode_cell_block3(c, ids_bin[s:e], pos_bin[s:e], steps_bin[s:e])
            return out

        # each non-empty cell's whole block, in each version, encoded when first asked (a keyframe, a cell
        # that came into view, a View for the gateway link): once per build and version, shared
        blocks_of = PerVersion({2: cell_blocks2, 3: cell_blocks3})

        # observers: who stayed in their cell (shared View) and who did not (own View), as arrays
        obs_at = cell_of_slot[np.asarray(self._slots, np.intp)]
        prev_at = np.asarray(self._prev, np.int64)
        stayed = obs_at == prev_at
        obs_cells: list[int] = obs_at.tolist()
        # enter records, enter ids, leave ids, chat records
        shared: dict[int, tuple[list[bytes], list[int], list[int], list[bytes]]] = {
            c: ([], [], [], []) for c in np.unique(obs_at[stayed]).tolist()
        }
        own: list[int] = np.flatnonzero(~stayed).tolist()
        heard = _heard(grid, chat_cells, chat, obs_at)
        for c, v in shared.items():
            v[3].extend(heard.get(c, ()))

        # 3. enter/leave of shared views from what crossed cells since the last build: per crossing
        # entity, the cells its move made it enter and leave (Grid.crossing: a few, cached per move)
        if shared:
            moved = np.flatnonzero(prev_cells != cells)
            records = table.record
            crossing = grid.crossing
            for slot, eid, old, new in zip(
                slots[moved].tolist(),
                table.id[slots[moved]].tolist(),
                prev_cells[moved].tolist(),
                cells[moved].tolist(),
            ):
                into, out_of = crossing(old, new)
                for c in into:
                    sv = shared.get(c)
                    if sv is not None:
                        sv[0].append(records[slot])
                        sv[1].append(eid)
                for c in out_of:
                    sv = shared.get(c)
                    if sv is not None:
                        sv[2].append(eid)
            for eid, old in self._gone:
                for c in near[old]:
                    sv = shared.get(c)
                    if sv is not None:
                        sv[2].append(eid)

        cells_bytes: dict[int, bytes] = {}

        def cells_for(c: int) -> bytes:
            """The keyframe form of cell c's view: asked by a View only when a connection needs it."""
            b = cells_bytes.get(c)
            if b is None:
                blocks = blocks_of.of(2)
                parts = [blocks[x] for x in near[c] if x in blocks]
                b = cells_bytes[c] = array_header(len(parts)) + b"".join(parts)
            return b

        cells3_bytes: dict[int, bytes] = {}

        def cells3_for(c: int) -> bytes:
            """cells_for in version 3 (cell blocks with their steps)."""
            b = cells3_bytes.get(c)
            if b is None:
                blocks3 = blocks_of.of(3)
                parts = [blocks3[x] for x in near[c] if x in blocks3]
                b = cells3_bytes[c] = array_header(len(parts)) + b"".join(parts)
            return b

        moves_bytes: dict[tuple[int, int, int], tuple[bytes, bytes]] = {}

        def moves_for(version: int, c: int, p: int) -> tuple[bytes, bytes]:
            """The delta form of cell c's view for an observer that was in cell p at the last build, in
            protocol `version` (2 or 3): the whole cells and the move blocks. Asked by a View only when
            a connection of that version needs it (one build serves every version)."""
            b = moves_bytes.get((version, c, p))
            if b is None:
                whole_of, move_of_ = blocks_of.of(version), move_of.of(version)
                whole, moves, had = [], [], near_set[p]
                for x in near[c]:
                    if x in whole_of:
                        m = move_of_.get(x) if x in had else None
                        if m is None:
                            whole.append(whole_of[x])
                        else:
                            moves.append(m)
                b = moves_bytes[version, c, p] = (
                    array_header(len(whole)) + b"".join(whole),
                    array_header(len(moves)) + b"".join(moves),
                )
            return b

        first = self._last is None
        views_by_cell = {
            c: View.make(
                partial(cells_for, c),
                *parts,
                build,
                None if first else partial(moves_for, 2, c, c),
                cells3=partial(cells3_for, c),
                moves3=None if first else partial(moves_for, 3, c, c),
            )
            for c, parts in shared.items()
        }

        # 4. observers that changed cell or are new: own View
        view_of_cell = np.empty(grid.n_cells, object)
        for c, shared_view in views_by_cell.items():
            view_of_cell[c] = shared_view
        per_observer = view_of_cell[obs_at]
        if own:
            # one View per move (cell at the last build, cell now), shared by the observers that made
            # it; every move's enter and leave come from one vectorised pass (_moved_views)
            first = self._last is None
            prev = self._prev
            made: dict[tuple[int, int], list[int]] = {}
            for i in own:
                made.setdefault((-1 if first else prev[i], obs_cells[i]), []).append(i)
            pairs = list(made)
            for (p, c), (enter, enter_ids, leave, leave_bin) in zip(
                pairs, _moved_views(grid, table, now, self._last, kept, pairs, cell_of_slot)
            ):
                moved_view = View.make(
                    partial(cells_for, c),
                    enter,
                    enter_ids,
                    leave,
                    heard.get(c, []),
                    build,
                    None if p < 0 else partial(moves_for, 2, c, p),
                    leave_bin,
                    partial(cells3_for, c),
                    None if p < 0 else partial(moves_for, 3, c, p),
                )
                for i in made[p, c]:
                    per_observer[i] = moved_view
        # every observer has its View now: a shared one if it stayed in its cell, else its own
        views = cast("dict[int, View]", dict(zip(self._eids, per_observer.tolist())))

        # remember this build for the next one
        table.prev_cell[slots] = cells
        self._prev = obs_cells
        self._gone = []
        self._last = now
        return views


def _heard(grid: Grid, chat_cells: np.ndarray, chat: list[bytes], obs_at: np.ndarray) -> dict[int, list[bytes]]:
    """cell -> the chat records heard in it (said in a cell it sees), in the order said, for the cells
    in obs_at that hear any. One pass over (line, hearing cell) pairs in numpy, instead of a test per
    line per View (~370 lines a tick and ~80 Views at 10,000 NPCs and 1,000 observers)."""
    if not chat or not len(obs_at):
        return {}
    wanted = np.zeros(grid.n_cells + 1, bool)  # [-1]: the padding of near_pad, never wanted
    wanted[obs_at] = True
    hearers = grid.near_pad[chat_cells]  # (lines, cells seen from the speaker's = cells that see it)
    line = np.broadcast_to(np.arange(len(chat))[:, None], hearers.shape)
    keep = wanted[hearers]
    hearers, line = hearers[keep], line[keep]
    if not len(hearers):
        return {}
    order = np.argsort(hearers, kind="stable")  # by hearing cell, then in the order said
    hearers, line = hearers[order], line[order]
    records = np.empty(len(chat), object)
    records[:] = chat
    heard = records[line].tolist()
    cuts = np.flatnonzero(np.diff(hearers)) + 1
    starts = [0, *cuts.tolist()]
    ends = [*cuts.tolist(), len(hearers)]
    return {c: heard[a:b] for c, a, b in zip(hearers[starts].tolist(), starts, ends)}


def _sees(grid: Grid, cells: np.ndarray, centre: np.ndarray) -> npt.NDArray[np.bool_]:
    """Whether each cell (-1: none) is seen from the cell `centre` (>= 0) of the same row: Chebyshev
    distance in cells, from the cells' coordinates by table (integer % and // cost 1 ms a tick here)."""
    cx, cy, r = grid.cx_of, grid.cy_of, grid.radius
    seen: npt.NDArray[np.bool_] = (np.abs(cx[cells + 1] - cx[centre + 1]) <= r) & (
        np.abs(cy[cells + 1] - cy[centre + 1]) <= r
    )
    return seen


def _moved_views(
    grid: Grid,
    table: EntityTable,
    now: _Groups,
    was: _Groups | None,
    kept: np.ndarray | None,
    pairs: list[tuple[int, int]],
    cell_of_slot: np.ndarray,
) -> list[tuple[list[bytes], np.ndarray, np.ndarray, bytes]]:
    """(enter records, enter ids, leave ids, leave ids as a msgpack array) for each move (p, c) of an observer from cell p at the
    last build (-1: none, a full enter) to cell c now, all moves in one vectorised pass (`kept`: each
    entity of the last build is the same one in the same cell now; None when there was no last build):
      entered: in c's view set now, and not in p's view set at the last build (by its cell then);
      left: in p's view set at the last build, and not (the same entity) in c's view set now.
    Each in view-set order (by cell, then id). The ids stay arrays (a View makes lists of them only when
    asked) and every move's leave is packed in one pass (protocol.pack_uints), then sliced. Only candidates are looked at: in a cell both p and c
    see, only the entities that changed cell can have entered (or left); the others are in whole.
    (Over whole view sets this was 40,000 entities a tick at 10,000 NPCs and 1,000 observers.)"""
    k = len(pairs)
    near, near_set = grid.near, grid.near_set
    # entered: candidates, as ranges over `src` (positions now, then positions of those that came)
    came = np.flatnonzero(now.came)
    came_start = np.searchsorted(came, now.start_at).tolist()
    src = np.concatenate((np.arange(len(now.ids)), came))
    st, n_now = now.start, len(now.ids)
    lo, hi, who = [], [], []
    for i, (p, c) in enumerate(pairs):
        had = near_set[p] if p >= 0 else _EMPTY
        for x in near[c]:
            if x in had:
                lo.append(n_now + came_start[x])
                hi.append(n_now + came_start[x + 1])
            else:
                lo.append(st[x])
                hi.append(st[x + 1])
            who.append(i)
    at, owner = _ranges(src, lo, hi, who)
    p_of = np.asarray([p for p, _ in pairs], np.int64)
    # Fresh: not in p's view set at the last build. A candidate that did not come is where it was, in
    # a cell p does not see (the cells p saw give only those that came): fresh; only those that came
    # are tested (a few hundred of ~7,500 candidates a tick at 10,000 NPCs and 1,000 observers)
    came_at = np.flatnonzero(now.came[at])
    if len(came_at):
        o = p_of[owner[came_at]]
        stale = (o >= 0) & _sees(grid, now.prev[at[came_at]], o)
        if stale.any():
            fresh = np.ones(len(at), bool)
            fresh[came_at[stale]] = False
            at, owner = at[fresh], owner[fresh]
    enter_ids = now.ids[at]
    enter: list[bytes] = table.record[now.slots[at]].tolist()
    e_cut = _cuts(owner, k)
    # left: candidates over the last build's positions, then those not kept in their cell
    leave = now.ids[:0]
    l_cut = [0] * (k + 1)
    if was is not None and kept is not None and (p_of >= 0).any():
        gone = np.flatnonzero(~kept)
        gone_start = np.searchsorted(gone, was.start_at).tolist()
        src = np.concatenate((np.arange(len(was.ids)), gone))
        st, n_was = was.start, len(was.ids)
        lo, hi, who = [], [], []
        for i, (p, c) in enumerate(pairs):
            if p < 0:
                continue
            is_ = near_set[c]
            for x in near[p]:
                if x in is_:
                    lo.append(n_was + gone_start[x])
                    hi.append(n_was + gone_start[x + 1])
                else:
                    lo.append(st[x])
                    hi.append(st[x + 1])
                who.append(i)
        at, owner = _ranges(src, lo, hi, who)
        c_of = np.asarray([c for _, c in pairs], np.int64)
        # Left: not (the same entity) in c's view set now. A candidate kept in its cell is in a cell c
        # does not see (the cells c sees give only those not kept): it left; only the others are tested
        left = kept[at]
        moved = np.flatnonzero(~left)
        if len(moved):
            s_m = was.slots[at[moved]]
            here = (table.id[s_m] == was.ids[at[moved]]) & _sees(grid, cell_of_slot[s_m], c_of[owner[moved]])
            left[moved] = ~here
        leave = was.ids[at[left]]
        l_cut = _cuts(owner[left], k)
    packed, ends = pack_uints(leave)
    b_cut = np.concatenate(([0], ends))[l_cut].tolist()  # move i's leave is packed[b_cut[i]:b_cut[i + 1]]
    out = []
    for i in range(k):
        e0, e1, l0, l1 = e_cut[i], e_cut[i + 1], l_cut[i], l_cut[i + 1]
        leave_bin = array_header(l1 - l0) + packed[b_cut[i] : b_cut[i + 1]]
        out.append((enter[e0:e1], enter_ids[e0:e1], leave[l0:l1], leave_bin))
    return out


def _ranges(src: np.ndarray, lo: list[int], hi: list[int], who: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(src[lo[0]:hi[0]] + src[lo[1]:hi[1]] + ..., and who[j] repeated for the length of range j)."""
    start = np.asarray(lo, np.int64)
    n = np.asarray(hi, np.int64) - start
    ends = np.cumsum(n)
    idx = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(start - (ends - n), n)
    return src[idx], np.repeat(np.asarray(who, np.int64), n)


def _cuts(owner: np.ndarray, k: int) -> list[int]:
    """Bounds of each owner's rows in rows sorted by owner: owner i's are cuts[i]:cuts[i + 1]."""
    cuts = np.zeros(k + 1, np.int64)
    np.cumsum(np.bincount(owner, minlength=k), out=cuts[1:])
    out: list[int] = cuts.tolist()
    return out


class _Groups:
    """Live entities sorted by cell at one build; a view set is (2r+1) contiguous runs."""

    def __init__(self, grid: Grid, table: EntityTable, slots: np.ndarray, cells: np.ndarray, prev_cells: np.ndarray):
        # by cell, then by id (a cell's entities travel in ascending id order: world/protocol.py).
        # Two stable sorts instead of np.lexsort (2.0 ms at 11,000 entities): by id, nearly sorted
        # already (ids grow with slots, but for reused slots), then by cell, as int16 where cells
        # fit (a radix sort): 0.1 ms.
        ids = table.id[slots]
        by_id = np.argsort(ids, kind="stable")
        key = cells[by_id]
        order = by_id[np.argsort(key.astype(np.int16) if grid.n_cells <= 0x7FFF else key, kind="stable")]
        self.grid = grid
        self.order = order  # slots[order] are the slots by cell, then id
        self.slots = slots[order]
        self.ids = ids[order]
        self.prev = prev_cells[order]  # each one's cell at the build before
        self.cells = cells[order]  # each one's cell at this build (ascending)
        self.came = self.prev != self.cells  # elsewhere at the build before, or new since (prev -1)
        # start[c] .. start[c + 1]: the entities in cell c
        per_cell = np.bincount(cells, minlength=grid.n_cells)
        start = np.zeros(grid.n_cells + 1, np.int64)
        np.cumsum(per_cell, out=start[1:])
        self.start_at = start
        self.start: list[int] = start.tolist()
        self.filled: list[int] = np.flatnonzero(per_cell).tolist()  # the non-empty cells, ascending
