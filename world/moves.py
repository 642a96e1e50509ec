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
) -> dict[int, bytes]:
    """cell -> its move block, for every cell with entities at the last build and now.

    last_*: the last build's entities' cells (ascending), cell starts (as a list and as an array) and
    quantised positions (m, 2), by (cell, id); kept (m,): each of them is the same entity in the same
    cell now; cells, start, ids, q: the same for now (n entities); came (n,): each is not a kept one.
    The kept ones are in the same order in both builds (same cells, same ids), so their positions now
    are q[~came] as they stand: no gather through slots."""
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
    if far.any():  # (rare: a jump, or a player at full speed on both axes; the mask costs ~50 us)
        d[far] = 0
    d16 = np.zeros(m, np.int16)  # every last entity's (dx, dy) as int8, int8: 0 for the others
    d16[kept] = d.astype(np.int8).view(np.int16).ravel()
    d_bin = d16.tobytes()
    kept_at = np.flatnonzero(kept)
    gone_at = np.flatnonzero(~kept)
    far_at = kept_at[far]
    fix = np.empty(len(far_at), MOVE_FIX)  # index in its cell, position now
    fix["i"] = far_at - last_start_at[last_cells[far_at]]
    fix_xy = now_kept[far].view(np.uint16).reshape(-1, 2)
    fix["x"], fix["y"] = fix_xy[:, 0], fix_xy[:, 1]
    fix_bin = fix.tobytes()
    gone_bin = (gone_at - last_start_at[last_cells[gone_at]]).astype("<u2").tobytes()
    came_ids = ids[came].astype("<u4").tobytes()
    came_q = q32[came].tobytes()
    moved_cs = _counts(last_cells[d16 != 0], n_cells)
    far_cs, gone_cs = _counts(last_cells[far_at], n_cells), _counts(last_cells[gone_at], n_cells)
    came_cs = _counts(cells[came], n_cells)

    out: dict[int, bytes] = {}
    both = (np.diff(last_start_at) > 0) & (np.diff(np.asarray(start)) > 0)
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
