"""The socketpair between the tick process and one gateway process (`--gateways N`, issue 14): its
messages, framed, and the updates message, which carries each distinct View once.

Every message is a head (payload length, u32 big-endian; kind, one byte) and a msgpack payload (UPDATES:
a msgpack head and raw bytes). Each kind has a bound on its length, checked from the head before its
payload is held (TO_GATEWAY, FROM_GATEWAY below).
Gateway -> tick: JOIN [conn, hello frame], COMMANDS [[eid, code, fields...], ...],
LEAVE [conn], STATS {counter: value}. Tick -> gateway: CONTROL [[what, conn, ...], ...] in order
(SEND bytes, SEAT the player, CLOSE with a code), UPDATES (below), PAGES [health, metrics text,
map or nil]. Joins, the seat of each player and 4003 are decided in the tick process
(server/gateways.py); a gateway (server/gateway_proc.py) keeps every per-connection guarantee.

A View is shared by every observer of a cell (world/interest.py), so a gateway whose players sit in
the same cells gets that View's bytes once, not once per player: `Updates` (which Gateways.update
fills as the room hands the updates over) keys the Views by object, and `unpack_views` gives back one
View object per distinct View, which every record that names it shares (the gateway's outboxes then build each body once, as in one process). Both forms
travel (the keyframe's cells and the delta's cells and moves): which one a connection gets is the
gateway's choice, made by its Outbox from what that connection last sent (server/outbox.py).

Message: the length of its head (u32 big-endian), the head [tick, views, records] (msgpack), then each
View's cells and moves bytes, raw, in the order of views
    views    [[build, len(cells), moves_cells, len(moves), enter, enter_ids, leave, chat,
              len(cells3), moves_cells3, len(moves3)], ...]
             (moves_cells and len(moves) nil where the View has no delta form: no moves bytes follow;
             the last three nil where it has no version-3 form; the blobs: cells, cells3, moves, moves3)
    records  [slot, view index, ack, slot, view index, ack, ...]: one triple per player

Measured against the in-process flush in bench/gateway_ipc.py (README "Capacity").
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, Callable

import msgpack

from world import protocol
from world.protocol import MAX_CHAT, MAX_FRAME, MAX_SEQ, MAX_TALK, Chat, Hello, Input, Talk
from world.snapshot import View

log = logging.getLogger("npcworld.gateways")

HEAD = struct.Struct("!IB")  # payload length, kind
UPDATES_HEAD = struct.Struct("!I")  # an UPDATES payload's first bytes: the length of its msgpack head
JOIN, COMMANDS, LEAVE, STATS = b"j", b"c", b"l", b"s"  # gateway -> tick
CONTROL, UPDATES, PAGES = b"o", b"u", b"h"  # tick -> gateway
SEND, SEAT, CLOSE = 0, 1, 2  # a CONTROL item's first field
INPUT, CHAT, TALK = 0, 1, 2  # a command's code
# the counters a gateway reports (STATS) and the tick process's /metrics sums over its gateways
COUNTERS = (
    "connections",
    "connections_total",
    "bytes_in",
    "bytes_out",
    "messages_in",
    "messages_out",
    "updates_coalesced",
    "control_dropped",
)

# -- how long a message may be, by kind: a head past its kind's bound (or of a kind that direction does
# not carry) breaks the link before a byte of its payload is held.
# Tick -> gateway: the tick process is trusted; the bound only catches a broken head (a tick at 2,400
# players ships ~0.5 MB of updates).
MAX_MESSAGE = 256 * 1024 * 1024  # bytes
TO_GATEWAY = {kind[0]: MAX_MESSAGE for kind in (CONTROL, UPDATES, PAGES)}
# Gateway -> tick: derived from the protocol's limits, so that a gateway cannot make the tick process
# hold more than ~1 MiB for it. The largest command is a talk whose text is MAX_TALK characters of 4
# UTF-8 bytes each (819 bytes packed, with a 64-bit player id and a 32-bit NPC id); a gateway packs
# at most COMMANDS_PER_MESSAGE commands in one message (a loop iteration that read more, at most
# RATE_BURST per connection, sends several), so COMMANDS is at most ~0.8 MiB. A join is a hello
# frame (MAX_FRAME) and a connection id; a leave a connection id; stats the COUNTERS and one entry
# per error and close code this server sends (~0.5 KB; 64 KiB leaves room for new ones).
COMMANDS_PER_MESSAGE = 1024
U64 = 2**64 - 1
MAX_COMMAND = max(
    len(msgpack.packb(c))
    for c in ([U64, TALK, 2**32 - 1, "\U0010ffff" * MAX_TALK], [U64, CHAT, "\U0010ffff" * MAX_CHAT])
)
FROM_GATEWAY = {
    COMMANDS[0]: len(msgpack.packb([0] * COMMANDS_PER_MESSAGE)) + COMMANDS_PER_MESSAGE * (MAX_COMMAND - 1),
    JOIN[0]: len(msgpack.packb([U64, bytes(MAX_FRAME)])),
    LEAVE[0]: len(msgpack.packb([U64])),
    STATS[0]: 64 * 1024,
}


class Link(asyncio.Protocol):
    """One end of the socketpair on the event loop: `send` never waits (the transport buffers), and
    each whole message goes to `on_message(kind, payload)`; `on_lost()` once the other end is gone.

    `bounds` (kind -> most payload bytes) is what this end takes; `behind` the most bytes its transport
    may hold unsent (None: no bound). Past either, `on_broken(why)` is called once and the link takes
    and sends nothing more (by default it closes itself; the tick process drops the gateway instead)."""

    def __init__(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[], None],
        bounds: dict[int, int] = TO_GATEWAY,
        behind: int | None = None,
        on_broken: Callable[[str], None] | None = None,
    ) -> None:
        self.on_message, self.on_lost = on_message, on_lost
        self.bounds, self.behind, self.on_broken = bounds, behind, on_broken
        self.transport: asyncio.Transport | None = None
        self.pending = bytearray()
        self.broken = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send(self, kind: bytes, payload: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing() and not self.broken:
            if self.behind is not None and t.get_write_buffer_size() > self.behind:
                self.break_off(f"read nothing of its last {t.get_write_buffer_size()} bytes (at most {self.behind})")
                return
            t.writelines((HEAD.pack(len(payload), kind[0]), payload))

    def break_off(self, why: str) -> None:
        """The other end broke the link's rules (`why`): nothing more is taken or sent."""
        if self.broken:
            return
        self.broken = True
        self.pending = bytearray()
        if self.on_broken is not None:
            self.on_broken(why)
        else:
            log.error("gateway link: %s: closing it", why)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.broken:
            return
        pending = self.pending
        pending += data
        start = 0
        while len(pending) - start >= HEAD.size:
            n, kind = HEAD.unpack_from(pending, start)
            bound = self.bounds.get(kind)
            if bound is None or n > bound:
                what = "of an unknown kind" if bound is None else f"of {n} bytes (at most {bound})"
                self.break_off(f"sent a message {what}, kind {bytes((kind,))!r}")
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
            if self.broken:  # on_message dropped it
                return
        del pending[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_lost()


async def open_link(
    sock: Any,
    on_message: Callable[[bytes, bytes], None],
    on_lost: Callable[[], None],
    bounds: dict[int, int] = TO_GATEWAY,
) -> Link:
    """A Link over a connected AF_UNIX stream socket (one end of a socketpair), taking `bounds`."""
    return await attach(Link(on_message, on_lost, bounds), sock)


async def attach(link: Link, sock: Any) -> Link:
    """`link` over a connected AF_UNIX stream socket: made before, so that its callbacks can know it."""
    await asyncio.get_running_loop().connect_accepted_socket(lambda: link, sock)
    return link


# -- gateway -> tick, checked ----------------------------------------------------------------
# The tick process trusts nothing a gateway sends: a broken gateway (a bug, garbage, a message cut by its
# death) must not reach the room, where a bad field would fail a tick or poison the world's arrays. Each
# unpack gives what the room takes or raises ValueError (the tick process then drops that gateway).


def _bad(what: str, value: Any) -> ValueError:
    return ValueError(f"not a {what} message: {value!r:.120}")


def _unpack(data: bytes, what: str) -> Any:
    try:
        return msgpack.unpackb(data, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as err:
        raise ValueError(f"not a {what} message: {type(err).__name__} {err}") from err


def unpack_commands(data: bytes) -> list[tuple[int, Input | Chat | Talk]]:
    """COMMANDS back: (player id, command) each, in order, with the checks protocol.decode gave them
    in the gateway (types, ranges, lengths) made again: a few type tests per command."""
    raw = _unpack(data, "commands")
    if type(raw) is not list:
        raise _bad("commands", raw)
    out: list[tuple[int, Input | Chat | Talk]] = []
    for c in raw:
        n = len(c) if type(c) is list else 0
        if n >= 3 and type(c[0]) is int:
            code = c[1]
            if code == INPUT and n == 5:
                seq, dx, dy = c[2], c[3], c[4]
                if type(seq) is int and type(dx) is float and type(dy) is float and 0 <= seq <= MAX_SEQ:
                    if -1.0 <= dx <= 1.0 and -1.0 <= dy <= 1.0:  # False for NaN
                        out.append((c[0], Input(seq, dx, dy)))
                        continue
            elif code == CHAT and n == 3 and type(c[2]) is str and 1 <= len(c[2]) <= MAX_CHAT:
                out.append((c[0], Chat(c[2])))
                continue
            elif code == TALK and n == 4 and type(c[2]) is int and 0 <= c[2] < 2**32:
                if type(c[3]) is str and 1 <= len(c[3]) <= MAX_TALK:
                    out.append((c[0], Talk(c[2], c[3])))
                    continue
        raise _bad("commands", c)
    return out


def unpack_join(data: bytes) -> tuple[int, Hello]:
    """JOIN back: (connection id, its hello), decoded again as the gateway checked it."""
    raw = _unpack(data, "join")
    if type(raw) is not list or len(raw) != 2 or type(raw[0]) is not int or type(raw[1]) is not bytes:
        raise _bad("join", raw)
    try:
        hello = protocol.decode(raw[1])
    except protocol.ProtocolError as err:
        raise ValueError(f"not a join message: its hello: {err.message}") from err
    if type(hello) is not Hello:
        raise _bad("join", hello)
    return raw[0], hello


def unpack_leave(data: bytes) -> int:
    """LEAVE back: the connection id."""
    raw = _unpack(data, "leave")
    if type(raw) is not list or len(raw) != 1 or type(raw[0]) is not int:
        raise _bad("leave", raw)
    return raw[0]


def _counts(raw: Any, key: type) -> bool:
    return type(raw) is dict and all(type(k) is key and type(v) is int and v >= 0 for k, v in raw.items())


def unpack_stats(data: bytes) -> dict[str, Any]:
    """STATS back: each of COUNTERS a non-negative int; errors_sent {code: n}, closes {close code: n}."""
    raw = _unpack(data, "stats")
    if not (
        type(raw) is dict
        and all(type(raw.get(name)) is int and raw[name] >= 0 for name in COUNTERS)
        and _counts(raw.get("errors_sent"), str)
        and _counts(raw.get("closes"), int)
    ):
        raise _bad("stats", raw)
    return raw


class Updates:
    """One tick's updates for one gateway, gathered as the room hands them over (Gateways.update): each
    distinct View once (keyed by object: the Views are alive until `pack`), and a (slot, view index,
    ack) record per player, so that packing walks the distinct Views only, not the players again."""

    __slots__ = ("index", "views", "records")

    def __init__(self) -> None:
        self.index: dict[int, int] = {}  # id(View) -> its place in `views`
        self.views: list[View] = []
        self.records: list[int] = []

    def __len__(self) -> int:
        return len(self.records) // 3

    def add(self, slot: int, ack: int, view: View) -> None:
        i = self.index.get(id(view))
        if i is None:
            i = self.index[id(view)] = len(self.views)
            self.views.append(view)
        self.records += (slot, i, ack)

    def pack(self, tick: int) -> bytes:
        """The UPDATES message: the msgpack head (its length first), then each View's cells and moves
        bytes joined raw (msgpack copying those few-KB blobs into the buffer it grows took 2-3x a join
        on its own; in the tick's whole path it is a few %: bench/gateway_ipc.py --path)."""
        rows: list[list[Any]] = []
        blobs: list[bytes] = [b""]
        for v in self.views:
            m = v.moves
            cells = v.cells
            blobs.append(cells)
            row: list[Any] = [v.build, len(cells), None, None, v.enter, v.enter_ids, v.leave, v.chat, None, None, None]
            cells3 = v.cells3 if v.has_v3 else None
            if cells3 is not None:
                blobs.append(cells3)
                row[8] = len(cells3)
            if m is not None:
                blobs.append(m[1])
                row[2], row[3] = m[0], len(m[1])
            m3 = v.moves3
            if m3 is not None:
                blobs.append(m3[1])
                row[9], row[10] = m3[0], len(m3[1])
            rows.append(row)
        head = msgpack.packb((tick, rows, self.records))
        blobs[0] = UPDATES_HEAD.pack(len(head)) + head
        return b"".join(blobs)


def pack_updates(tick: int, batch: list[tuple[int, int, View]]) -> bytes:
    """One tick's updates for one gateway from (slot, ack, View) per player: Updates' message."""
    out = Updates()
    for slot, ack, view in batch:
        out.add(slot, ack, view)
    return out.pack(tick)


def unpack_views(data: bytes) -> tuple[int, list[View], list[int]]:
    """`pack_updates`' message back as it travels: (tick, its distinct Views, the flat records
    [slot, view index, ack, ...]), every view index checked. The gateway walks the records straight
    into its outboxes (gateway_proc.Gateway.on_message), with no (slot, ack, View) tuple per player.
    A message that is not one raises ValueError."""
    try:
        (n,) = UPDATES_HEAD.unpack_from(data)
        at = UPDATES_HEAD.size + n
        if at > len(data):
            raise ValueError(f"a head of {n} bytes in {len(data)}")
        # unpackb reads the head in place (an Unpacker's feed copies the whole message first: 0.5 us
        # per player of the gateway's at 2,400 players)
        tick, raw, records = msgpack.unpackb(memoryview(data)[UPDATES_HEAD.size : at])
        views = []
        for build, n_cells, mc, n_moves, enter, enter_ids, leave, chat, n_cells3, mc3, n_moves3 in raw:
            cells, at = data[at : at + n_cells], at + n_cells
            cells3 = None
            if n_cells3 is not None:
                cells3, at = data[at : at + n_cells3], at + n_cells3
            moves = moves3 = None
            if n_moves is not None:
                moves, at = (mc, data[at : at + n_moves]), at + n_moves
            if n_moves3 is not None:
                moves3, at = (mc3, data[at : at + n_moves3]), at + n_moves3
            views.append(View(cells, enter, enter_ids, leave, chat, build, moves, None, cells3, moves3))
        if at != len(data):
            raise ValueError(f"{len(data) - at} bytes left over of {len(data)}")
        if type(tick) is not int or type(records) is not list or len(records) % 3:
            raise ValueError("not (tick, views, records in threes)")
        if records and not 0 <= min(records[1::3]) <= max(records[1::3]) < len(views):
            raise ValueError(f"a view index out of 0..{len(views) - 1}")
        return tick, views, records
    except (ValueError, TypeError, struct.error, msgpack.UnpackException) as err:
        raise ValueError(f"not an updates message: {err}") from err


def unpack_updates(data: bytes) -> tuple[int, list[tuple[int, int, View]]]:
    """`pack_updates`' message back: (tick, [(slot, ack, View), ...]), records naming one View
    sharing one View object. A message that is not one raises ValueError."""
    tick, views, records = unpack_views(data)
    it = iter(records)
    return tick, [(slot, ack, views[i]) for slot, i, ack in zip(it, it, it)]
