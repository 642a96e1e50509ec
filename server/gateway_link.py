"""The socketpair between the tick process and one gateway process (`--gateways N`, issue 14): its
messages, framed, and the updates message, which carries each distinct View once.

Every message is a head (payload length, u32 big-endian; kind, one byte) and a msgpack payload.
Gateway -> tick: JOIN [conn, hello frame], COMMANDS [[eid, code, fields...], ...],
LEAVE [conn], STATS {counter: value}. Tick -> gateway: CONTROL [[what, conn, ...], ...] in order
(SEND bytes, SEAT the player, CLOSE with a code), UPDATES (below), PAGES [health, metrics text,
map or nil]. Joins, the seat of each player and 4003 are decided in the tick process
(server/gateways.py); a gateway (server/gateway_proc.py) keeps every per-connection guarantee.

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

import asyncio
import logging
import struct
from typing import Any, Callable

import msgpack

from world.snapshot import View

log = logging.getLogger("npcworld.gateways")

HEAD = struct.Struct("!IB")  # payload length, kind
MAX_MESSAGE = 256 * 1024 * 1024  # bytes; a longer head is a broken link (a tick at 2,400 players ships ~0.5 MB)
JOIN, COMMANDS, LEAVE, STATS = b"j", b"c", b"l", b"s"  # gateway -> tick
CONTROL, UPDATES, PAGES = b"o", b"u", b"h"  # tick -> gateway
SEND, SEAT, CLOSE = 0, 1, 2  # a CONTROL item's first field
INPUT, CHAT, TALK = 0, 1, 2  # a command's code


class Link(asyncio.Protocol):
    """One end of the socketpair on the event loop: `send` never waits (the transport buffers), and
    each whole message goes to `on_message(kind, payload)`; `on_lost()` once the other end is gone."""

    def __init__(self, on_message: Callable[[bytes, bytes], None], on_lost: Callable[[], None]) -> None:
        self.on_message, self.on_lost = on_message, on_lost
        self.transport: asyncio.Transport | None = None
        self.pending = bytearray()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send(self, kind: bytes, payload: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.writelines((HEAD.pack(len(payload), kind[0]), payload))

    def data_received(self, data: bytes) -> None:
        pending = self.pending
        pending += data
        start = 0
        while len(pending) - start >= HEAD.size:
            n, kind = HEAD.unpack_from(pending, start)
            if n > MAX_MESSAGE:
                log.error("gateway link: a message of %d bytes (at most %d): dropping the link", n, MAX_MESSAGE)
                self.pending = bytearray()
                if self.transport is not None:
                    self.transport.close()
                return
            end = start + HEAD.size + n
            if len(pending) < end:
                break
            payload = bytes(pending[start + HEAD.size : end])
            start = end
            try:
                self.on_message(bytes((kind,)), payload)
            except Exception:  # one bad message never ends the link or the process
                log.exception("gateway link: message %r failed", bytes((kind,)))
        del pending[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_lost()


async def open_link(sock: Any, on_message: Callable[[bytes, bytes], None], on_lost: Callable[[], None]) -> Link:
    """A Link over a connected AF_UNIX stream socket (one end of a socketpair)."""
    _, link = await asyncio.get_running_loop().connect_accepted_socket(lambda: Link(on_message, on_lost), sock)
    return link


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
