"""What the tick process sends a gateway process each tick (`--gateways N`, issue 14): the updates of
the gateway's players, each distinct View once, as one msgpack message over their socketpair.

A View is shared by every observer of a cell (world/interest.py), so a gateway whose players sit in
the same cells gets that View's bytes once, not once per player: `pack_updates` keys the Views by
object, and `unpack_updates` gives back one View object per distinct View, which every record that
named it shares (the gateway's outboxes then build each body once, as in one process). Both forms
travel (the keyframe's cells and the delta's cells and moves): which one a connection gets is the
gateway's choice, made by its Outbox from what that connection last sent (server/outbox.py).

Message: [tick, views, records]
    views    [[build, cells, moves_cells, moves, enter, enter_ids, leave, chat], ...]
             (moves_cells and moves nil where the View has no delta form)
    records  [slot, view index, ack, slot, view index, ack, ...]: one triple per player

Measured against the in-process flush in bench/gateway_ipc.py (README "Capacity").
"""

from __future__ import annotations

import msgpack

from world.snapshot import View


def pack_updates(tick: int, batch: list[tuple[int, int, View]]) -> bytes:
    """One tick's updates for one gateway: (slot, ack, View) per player, each distinct View once."""
    index: dict[int, int] = {}  # id(View) -> its place in `views`; the Views are alive for the call
    views: list[tuple] = []
    records: list[int] = []
    for slot, ack, view in batch:
        i = index.get(id(view))
        if i is None:
            i = index[id(view)] = len(views)
            m = view.moves
            cells, moves = (None, None) if m is None else m
            views.append((view.build, view.cells, cells, moves, view.enter, view.enter_ids, view.leave, view.chat))
        records += (slot, i, ack)
    return msgpack.packb((tick, views, records))


def unpack_updates(data: bytes) -> tuple[int, list[tuple[int, int, View]]]:
    """`pack_updates`' message back: (tick, [(slot, ack, View), ...]), records naming one View
    sharing one View object. A message that is not one raises ValueError."""
    try:
        tick, raw, records = msgpack.unpackb(data)
        views = [
            View(cells, enter, enter_ids, leave, chat, build, None if mc is None else (mc, mv))
            for build, cells, mc, mv, enter, enter_ids, leave, chat in raw
        ]
        it = iter(records)
        return tick, [(slot, ack, views[i]) for slot, i, ack in zip(it, it, it)]
    except (ValueError, TypeError, IndexError, msgpack.UnpackException) as err:
        raise ValueError(f"not an updates message: {err}") from err
