"""Move blocks (docs/protocol.md, "update"): every cell's change since the last build, for
all cells in one vectorised pass, then only byte slicing per cell.

A build's entities are sorted by (cell, id): `start[c]:start[c + 1]` are cell c's. For the
entities of the last build, in that order, each is *kept* when the same entity (same slot,
same id) is in the same cell now; its move is its quantised position now less then. A kept
entity whose move does not fit int8 travels as a fix (and moves 0); the others are *gone*.
An entity now that is not a kept one has *come* (moved in, or new). Per cell, a move block
then is slices of the arrays built once here: moves, fixes and gone in the last build's
order, come in the order of now (ascending id, as the client sorts after appending).

Cost: O(entities) numpy for the whole world, plus O(cells) Python slices and one
msgpack pack per cell that is non-empty at both builds.
"""

from __future__ import annotations

import numpy as np

from .protocol import MOVE_FIX, MOVE_MAX, encode_move_block


def _counts(mask: np.ndarray, start: np.ndarray) -> list[int]:
    """Prefix sums at the cell starts: cell c's part of mask holds cs[c + 1] - cs[c] True values.
    Only the (n_cells + 1) sums at the starts become Python ints (all n of them: 0.3 ms at 11,000)."""
    cs = np.zeros(len(mask) + 1, np.int64)
    np.cumsum(mask, out=cs[1:])
    out: list[int] = cs[start].tolist()
    return out


def move_blocks(
    ids_of_slot: np.ndarray,
    cell_of_slot: np.ndarray,
    last_slots: np.ndarray,
    last_ids: np.ndarray,
    last_start: list[int],
    last_q: np.ndarray,
    slots: np.ndarray,
    start: list[int],
    ids: np.ndarray,
    q: np.ndarray,
) -> dict[int, bytes]:
    """cell -> its move block, for every cell with entities at the last build and now.

    ids_of_slot, cell_of_slot: (capacity,) each slot's entity id and cell now (-1: no entity);
    last_*: the last build's slots, ids, cell starts and quantised positions (n, 2), by (cell, id);
    slots, start, ids, q: the same for now."""
    n_cells = len(start) - 1
    at_last, at_now = np.asarray(last_start), np.asarray(start)
    per_cell = np.diff(at_last)
    last_cells = np.repeat(np.arange(n_cells), per_cell)
    kept = (ids_of_slot[last_slots] == last_ids) & (cell_of_slot[last_slots] == last_cells)
    # (n, 2) columns are handled as one 32-bit (positions) or 16-bit (deltas, flags) word per
    # entity: numpy's reductions along an axis of length 2 cost more than the arithmetic
    q_of_slot = np.zeros(len(ids_of_slot), np.uint32)
    q_of_slot[slots] = q.view(np.uint32).ravel()
    now_q = q_of_slot[last_slots].view(np.uint16).reshape(-1, 2)
    d = now_q.astype(np.int32) - last_q
    d[~kept] = 0
    far = (np.abs(d) > MOVE_MAX).view(np.uint16).ravel() != 0  # kept (the others are 0) and too far
    d[far] = 0
    d8 = np.ascontiguousarray(d, dtype=np.int8)
    d_bin = d8.tobytes()
    index = np.arange(len(last_slots)) - np.repeat(at_last[:-1], per_cell)
    fix = np.empty(int(np.count_nonzero(far)), MOVE_FIX)
    fix["i"], fix["x"], fix["y"] = index[far], now_q[far, 0], now_q[far, 1]
    fix_bin = fix.tobytes()
    gone_bin = index[~kept].astype("<u2").tobytes()
    stays = np.zeros(len(ids_of_slot), bool)
    stays[last_slots[kept]] = True
    came = ~stays[slots]
    came_ids = ids[came].astype("<u4").tobytes()
    came_q = q[came].tobytes()
    moved_cs = _counts(d8.view(np.int16).ravel() != 0, at_last)
    far_cs, gone_cs = _counts(far, at_last), _counts(~kept, at_last)
    came_cs = _counts(came, at_now)

    out: dict[int, bytes] = {}
    both = (per_cell > 0) & (np.diff(at_now) > 0)
    for c in np.flatnonzero(both).tolist():
        a, b = last_start[c], last_start[c + 1]
        moves = d_bin[2 * a : 2 * b] if moved_cs[c + 1] > moved_cs[c] else b""
        fixes = fix_bin[6 * far_cs[c] : 6 * far_cs[c + 1]]
        g0, g1, c0, c1 = gone_cs[c], gone_cs[c + 1], came_cs[c], came_cs[c + 1]
        if g1 > g0 or c1 > c0:
            out[c] = encode_move_block(
                c, moves, fixes, gone_bin[2 * g0 : 2 * g1], came_ids[4 * c0 : 4 * c1], came_q[4 * c0 : 4 * c1]
            )
        else:
            out[c] = encode_move_block(c, moves, fixes)
    return out
