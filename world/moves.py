"""Move blocks (docs/protocol.md, "update"): every cell's change since the last build, for
all cells in one vectorised pass, then only byte slicing per cell.

A build's entities are sorted by (cell, id): `start[c]:start[c + 1]` are cell c's. For the
entities of the last build, in that order, each is *kept* when the same entity (same slot,
same id) is in the same cell now; its move is its quantised position now less then. A kept
entity whose move does not fit int8 travels as a fix (and moves 0); the others are *gone*.
An entity now that is not a kept one has *come* (moved in, or new). Per cell, a move block
then is slices of the arrays built once here: moves, fixes and gone in the last build's
order, come in the order of now (ascending id, as the client sorts after appending).

Version 3 (docs/protocol.md, "update, version 3") from the same pass: each entity's *step* (its
move, or 0 beyond STEP_MAX) is kept from build to build (Interest._last_steps), and a kept entity's
block carries the change of its step in a nibble (2 bits a coordinate: 0, +1, -1, or "wide", an
int8 after the cell's nibbles), or a fix beyond +-127; a cell's nibbles are bytes of one array,
padded to whole bytes per cell, so a block is again slices. An entity that came carries its step
(came_step: its move since the last build, wherever it was), as whole cell blocks do
(world/interest.py).

Measured (bench/update_bytes.py, S1 uniform: 600 wander players, 500 NPCs, 60 observers' updates
over 200 ticks, in one process; bytes do not depend on load): 497.3 bytes an update in version 2,
242.7 in version 3. Tried first and not kept: changes in 2-bit two's complement (-2..1) with a fix
for any other (291.6 bytes: 8.6% of the entities change their step by more than 2 on a coordinate
in a tick, turns, walls and NPCs' path corners, and each was a 6-byte fix); entities that came as
three bins (ids, pos, steps) instead of one of records (4 bytes more a block).

Cost: O(entities) numpy for the whole world, plus O(cells) Python slices and two
msgpack packs (versions 2 and 3) per cell that is non-empty at both builds.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .protocol import CAME3, MOVE_FIX, MOVE_MAX, STEP_MAX, WIDE_MAX, encode_move_block, encode_move_block3


def _counts(cells: np.ndarray, n_cells: int) -> list[int]:
    """Prefix sums per cell of the rows whose cells are `cells` (any order): cell c holds
    cs[c + 1] - cs[c] of them. A bincount of the few rows that are there (fixes, gone, come, moved),
    then only the (n_cells + 1) sums become Python ints."""
    cs = np.zeros(n_cells + 1, np.int64)
    np.cumsum(np.bincount(cells, minlength=n_cells), out=cs[1:])
    out: list[int] = cs.tolist()
    return out


def move_blocks(
    last_cells: np.ndarray,
    last_start: list[int],
    last_start_at: np.ndarray,
    last_q: np.ndarray,
    kept: np.ndarray,
    cells: np.ndarray,
    start: list[int],
    ids: np.ndarray,
    q: np.ndarray,
    came: np.ndarray,
    last_steps: np.ndarray,
    came_steps: np.ndarray,
) -> tuple[PerVersion, np.ndarray]:
    """cell -> its move block, for every cell with entities at the last build and now, in version 2
    and in version 3; and every entity's step now (n, 2) int16, by (cell, id).

    last_*: the last build's entities' cells (ascending), cell starts (as a list and as an array) and
    quantised positions (m, 2), by (cell, id); kept (m,): each of them is the same entity in the same
    cell now; cells, start, ids, q: the same for now (n entities); came (n,): each is not a kept one.
    The kept ones are in the same order in both builds (same cells, same ids), so their positions now
    are q[~came] as they stand: no gather through slots. last_steps (m, 2): the last build's steps, in
    its order; came_steps (k, 2): the steps of those that came (came_step), in the order of now.

    Version 3: a kept entity's step is its move (0 where that is beyond STEP_MAX: a jump); its block
    carries the change of that step from its step at the last build, 2 bits a coordinate, or a fix
    where the change does not fit (or the step is beyond)."""
    n_cells = len(start) - 1
    m = len(last_cells)
    # an entity's (x, y) is handled as one 32-bit word (positions) or 16-bit word (deltas): a gather
    # or scatter of (n, 2) rows costs ~4x that of the words (~200 us against ~45 at 11,000 entities)
    q32 = q.view(np.uint32).ravel()
    now_kept = q32[~came]  # the kept ones' positions now, in the last build's order
    was_kept = last_q.view(np.uint32).ravel()[kept]
    d = now_kept.view(np.uint16).reshape(-1, 2).astype(np.int32)
    d -= was_kept.view(np.uint16).reshape(-1, 2)
    far = (np.abs(d) > MOVE_MAX).view(np.uint16).ravel() != 0  # kept, and too far for int8
    kept_at = np.flatnonzero(kept)
    gone_at = np.flatnonzero(~kept)
    gone_bin = (gone_at - last_start_at[last_cells[gone_at]]).astype("<u2").tobytes()
    gone_cs = _counts(last_cells[gone_at], n_cells)
    came_cs = _counts(cells[came], n_cells)
    cells_both: list[int] = np.flatnonzero((np.diff(last_start_at) > 0) & (np.diff(np.asarray(start)) > 0)).tolist()
    # version 3's step of each kept one: its move (0 for a jump over half the map, which is a fix)
    big = (np.abs(d) > STEP_MAX).any(axis=1) if far.any() else far
    step = np.where(big[:, None], 0, d) if big.any() else d
    steps = np.zeros((len(ids), 2), "<i2")
    steps[~came] = step
    steps[came] = came_steps

    def blocks2() -> dict[int, bytes]:
        d2 = d
        if far.any():  # (rare: a jump, or a player at full speed on both axes; the mask costs ~50 us)
            d2 = d.copy()
            d2[far] = 0
        d16 = np.zeros(m, np.int16)  # every last entity's (dx, dy) as int8, int8: 0 for the others
        d16[kept] = d2.astype(np.int8).view(np.int16).ravel()
        d_bin = d16.tobytes()
        far_at = kept_at[far]
        fix = np.empty(len(far_at), MOVE_FIX)  # index in its cell, position now
        fix["i"] = far_at - last_start_at[last_cells[far_at]]
        fix_xy = now_kept[far].view(np.uint16).reshape(-1, 2)
        fix["x"], fix["y"] = fix_xy[:, 0], fix_xy[:, 1]
        fix_bin = fix.tobytes()
        came_ids = ids[came].astype("<u4").tobytes()
        came_q = q32[came].tobytes()
        moved_cs = _counts(last_cells[d16 != 0], n_cells)
        far_cs = _counts(last_cells[far_at], n_cells)
        out: dict[int, bytes] = {}
        for c in cells_both:
            a, b = last_start[c], last_start[c + 1]
            moves = d_bin[2 * a : 2 * b] if moved_cs[c + 1] > moved_cs[c] else b""
            fixes = fix_bin[6 * far_cs[c] : 6 * far_cs[c + 1]]
            g0, g1, c0, c1 = gone_cs[c], gone_cs[c + 1], came_cs[c], came_cs[c + 1]
            if g1 > g0 or c1 > c0:
                gone, came_i, came_p = gone_bin[2 * g0 : 2 * g1], came_ids[4 * c0 : 4 * c1], came_q[4 * c0 : 4 * c1]
                out[c] = encode_move_block(c, moves, fixes, gone, came_i, came_p)
            else:
                out[c] = encode_move_block(c, moves, fixes)
        return out

    def blocks3() -> dict[int, bytes]:
        came3 = np.empty(len(came_steps), CAME3)  # who came, one record each
        came3["id"] = ids[came]
        came_xy = q[came]
        came3["x"], came3["y"] = came_xy[:, 0], came_xy[:, 1]
        came3["sx"], came3["sy"] = came_steps[:, 0], came_steps[:, 1]
        came3_bin = came3.tobytes()
        # each kept entity's change of step, a nibble in its cell's bytes (two entities a byte): 2 bits
        # a coordinate, 0, +1, -1 or "wide" (the change in an int8 after the cell's nibbles)
        ch = step - last_steps[kept]
        fix3 = (np.abs(ch) > WIDE_MAX).any(axis=1)
        if big.any():
            fix3 |= big
        ch[fix3] = 0
        wide = np.abs(ch) > 1
        code = np.where(wide, 2, ch & 3)
        nib = np.zeros(m, np.uint8)
        nib[kept] = (code[:, 0] | (code[:, 1] << 2)).astype(np.uint8)
        wide_bin = ch[wide].astype(np.int8).tobytes()  # by entity, x before y: the last build's order
        wide_cs = _counts(last_cells[kept_at[np.nonzero(wide)[0]]], n_cells)
        at = np.arange(m) - last_start_at[last_cells]  # each one's index in its cell
        cb = np.zeros(n_cells + 1, np.int64)  # cell c's bytes are ch_bin[cb[c]:cb[c + 1]]
        np.cumsum((np.diff(last_start_at) + 1) // 2, out=cb[1:])
        where = cb[last_cells] + (at >> 1)
        packed = np.zeros(int(cb[-1]), np.uint8)
        odd = (at & 1).astype(bool)
        packed[where[~odd]] = nib[~odd]
        packed[where[odd]] |= nib[odd] << 4
        ch_bin = packed.tobytes()
        cb_list: list[int] = cb.tolist()
        changed_cs = _counts(last_cells[nib != 0], n_cells)
        fix3_at = kept_at[fix3]
        f3 = np.empty(len(fix3_at), MOVE_FIX)
        f3["i"] = fix3_at - last_start_at[last_cells[fix3_at]]
        f3_xy = now_kept[fix3].view(np.uint16).reshape(-1, 2)
        f3["x"], f3["y"] = f3_xy[:, 0], f3_xy[:, 1]
        fix3_bin = f3.tobytes()
        fix3_cs = _counts(last_cells[fix3_at], n_cells)
        out: dict[int, bytes] = {}
        for c in cells_both:
            changes = b""
            if changed_cs[c + 1] > changed_cs[c]:
                changes = ch_bin[cb_list[c] : cb_list[c + 1]] + wide_bin[wide_cs[c] : wide_cs[c + 1]]
            fixes = fix3_bin[6 * fix3_cs[c] : 6 * fix3_cs[c + 1]]
            g0, g1, c0, c1 = gone_cs[c], gone_cs[c + 1], came_cs[c], came_cs[c + 1]
            if g1 > g0 or c1 > c0:
                out[c] = encode_move_block3(c, changes, fixes, gone_bin[2 * g0 : 2 * g1], came3_bin[12 * c0 : 12 * c1])
            else:
                out[c] = encode_move_block3(c, changes, fixes)
        return out

    return PerVersion({2: blocks2, 3: blocks3}), steps


class PerVersion:
    """cell -> its encoded block, in each protocol version, each version's made when first asked: a
    build encodes only the versions its connections read (the others' arrays cost a few numpy calls;
    their per-cell packing, a loop over the cells, is what is saved)."""

    __slots__ = ("makers", "made")

    def __init__(self, makers: dict[int, Callable[[], dict[int, bytes]]]) -> None:
        self.makers = makers
        self.made: dict[int, dict[int, bytes]] = {}

    def of(self, version: int) -> dict[int, bytes]:
        d = self.made.get(version)
        if d is None:
            d = self.made[version] = self.makers[version]()
        return d


def came_step(
    last_slots: np.ndarray, last_ids: np.ndarray, last_q: np.ndarray, slots: np.ndarray, ids: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """The steps (k, 2) int16 of entities that came into their cell (slots, ids, quantised positions q
    now): their move since the last build (last_*: its entities, any order), (0, 0) for one that was
    not in the world then or whose move is beyond STEP_MAX on either coordinate."""
    out = np.zeros((len(slots), 2), "<i2")
    if not len(slots) or not len(last_slots):
        return out
    at = np.full(int(max(last_slots.max(), slots.max())) + 1, -1, np.int64)
    at[last_slots] = np.arange(len(last_slots))
    j = at[slots]
    there = j >= 0
    there[there] = last_ids[j[there]] == ids[there]
    s = q[there].astype(np.int32) - last_q[j[there]]
    s[(np.abs(s) > STEP_MAX).any(axis=1)] = 0
    out[there] = s
    return out
