"""What one observer receives in one tick, as pre-encoded msgpack pieces.

Wire shapes (docs/protocol.md, "update"):
  cell block    [cell, ids: bin of uint32 LE, pos: bin of uint16 LE x0,y0,x1,y1...]
  entity record [id, kind, name, color]
  chat record   [from, name, text, tick]

Every piece is encoded once and shared: a cell block by every observer cell
that sees it, a View by every observer in the same cell, a record by every
view it enters. `encode_update` only concatenates bytes; it never re-encodes;
and a writer that can send pieces (writev) sends `update_head` and the
shared `view.body` without even that copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

_packb = msgpack.packb


def array_header(n: int) -> bytes:
    """msgpack array header for n elements."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


_K_CELLS = _packb("cells")
_K_ENTER = _packb("enter")
_K_LEAVE = _packb("leave")
_K_CHAT = _packb("chat")
# fixmap of 7 pairs: t, tick, ack + the 4 pairs of a View's body
_UPDATE_HEAD = b"\x87" + _packb("t") + _packb("update") + _packb("tick")
_K_ACK = _packb("ack")


@dataclass(slots=True)
class View:
    """One observer's update for one tick, less tick and ack. Treat as immutable:
    the same View object is handed to every observer of a cell."""
    cells: bytes            # msgpack array of cell blocks
    enter: list[bytes]      # msgpack entity records, in the order of enter_ids
    enter_ids: list[int]
    leave: list[int]
    chat: list[bytes]       # msgpack chat records
    body: bytes             # msgpack of the pairs cells, enter, leave, chat (no map header)

    @classmethod
    def make(cls, cells: bytes, enter: list[bytes], enter_ids: list[int],
             leave: list[int], chat: list[bytes]) -> View:
        body = b"".join((_K_CELLS, cells,
                         _K_ENTER, array_header(len(enter)), *enter,
                         _K_LEAVE, _packb(leave),
                         _K_CHAT, array_header(len(chat)), *chat))
        return cls(cells, enter, enter_ids, leave, chat, body)


def encode_cell_block(cell: int, ids_le_u32: bytes, pos_le_u16: bytes) -> bytes:
    return _packb([cell, ids_le_u32, pos_le_u16])


_tick_head: tuple[int | None, bytes] = (None, b"")   # the head up to "ack", for the last tick seen


def update_head(tick: int, ack: int) -> bytes:
    """The observer's own start of an 'update' (up to and with its ack); `view.body` follows it."""
    global _tick_head
    last, head = _tick_head
    if last != tick or type(tick) is not int:
        head = _UPDATE_HEAD + _packb(tick) + _K_ACK
        _tick_head = (tick, head)
    return head + _packb(ack)


def encode_update(tick: int, ack: int, view: View) -> bytes:
    """The complete 'update' message: {t, tick, ack, cells, enter, leave, chat}:
    update_head(tick, ack) + view.body."""
    return update_head(tick, ack) + view.body


def merge_views(older: View, newer: View) -> View:
    """Coalesce two consecutive updates into one (docs/protocol.md, "Coalescing").

    The client applies leave, then enter. Net effect of older then newer:
      leave = older.leave + newer.leave
      enter = (older.enter - newer.leave) + newer.enter
    so an entity that entered and then left appears only in `leave`, one that
    left and came back appears in both (leave, then enter again). Chat lines
    of both are kept in order; cells are the newer's (latest state wins).
    """
    gone = set(newer.leave)
    enter: list[bytes] = []
    enter_ids: list[int] = []
    seen: set[int] = set()
    for eid, rec in zip(older.enter_ids, older.enter):
        if eid not in gone and eid not in seen:
            seen.add(eid)
            enter_ids.append(eid)
            enter.append(rec)
    for eid, rec in zip(newer.enter_ids, newer.enter):
        if eid not in seen:
            seen.add(eid)
            enter_ids.append(eid)
            enter.append(rec)
    leave = list(dict.fromkeys(older.leave + newer.leave))
    return View.make(newer.cells, enter, enter_ids, leave, older.chat + newer.chat)
