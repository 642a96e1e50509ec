"""server/gateway.py's Connection on each real edge (a loopback port, a raw client reading frames):
the read check's ping goes out in the connection's next writev, behind what was queued, not in a
write of its own; it still goes out when nothing comes to carry it; its pong ends the stall."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

from server import gateway
from server.config import WS_EDGES, NetSection
from server.http import Routes
from server.metrics import Metrics
from support.paths import DEFAULT_MAP

pytestmark = pytest.mark.parametrize("edge", WS_EDGES)

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
OP_BINARY, OP_PING, OP_PONG = 0x2, 0x9, 0xA


class Client:
    """A raw WebSocket client: it reads the server's frames one by one and answers a ping when told."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def frame(self, timeout: float = 10) -> tuple[int, bytes]:
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def nothing_for(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.reader.readexactly(1), seconds)
        except TimeoutError:
            return True
        return False

    def pong(self, payload: bytes) -> None:
        self.writer.write(bytes((0x80 | OP_PONG, 0x80 | len(payload))) + b"\0\0\0\0" + payload)  # zero key


@contextlib.asynccontextmanager
async def connected(edge: str) -> AsyncIterator[tuple[gateway.Connection, Client]]:
    """One Connection (direct writes) on `edge`'s socket, and the raw client at its other end."""
    if edge == "picows":
        from server import edge_picows as mod
    else:
        from server import edge_websockets as mod  # type: ignore[no-redef]
    conns: asyncio.Queue = asyncio.Queue()
    room = SimpleNamespace(world=SimpleNamespace(tick=0), command=None)  # asked for nothing: the client sends nothing

    async def handler(ws) -> None:
        conn, closed = gateway.accept(ws, room, Metrics(), gateway.Flusher(), True)
        conns.put_nowait(conn)
        await closed

    routes = Routes(DEFAULT_MAP, dict, lambda: {"status": "ok"}, lambda: "")
    async with mod.serve(handler, routes, NetSection(host="127.0.0.1", port=0)) as listening:
        reader, writer = await asyncio.open_connection("127.0.0.1", listening.port)
        writer.write(HANDSHAKE)
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        conn = await asyncio.wait_for(conns.get(), 10)
        assert conn.direct
        try:
            yield conn, Client(reader, writer)
        finally:
            writer.close()


async def test_the_read_check_ping_goes_out_in_the_next_writev_behind_what_was_queued(edge):
    async with connected(edge) as (conn, client):
        now = conn.ping_since + gateway.READ_CHECK_S
        conn.ping_if_due(now)
        assert conn.ping is not None and conn.pong is not None and not conn.pong.done()
        assert await client.nothing_for(0.3)  # not written on its own: it waits for the next flush
        conn.outbox.push(b"an update")  # what a tick queues; the Flusher writes it after this callback
        assert await client.frame() == (OP_BINARY, b"an update")
        op, payload = await client.frame()
        assert (op, payload) == (OP_PING, (1).to_bytes(4, "big"))
        assert conn.ping is None
        assert conn.stalled_for(now + 1.0) == pytest.approx(1.0)  # unanswered: counted from when it was due
        client.pong(payload)
        await asyncio.wait_for(conn.pong, 10)
        assert conn.stalled_for(now + 1.0) == 0.0
        conn.ping_if_due(now + 1.0)  # answered, but READ_CHECK_S have not passed: none due
        assert conn.ping is None


async def test_a_ping_that_nothing_carries_goes_out_alone_at_the_next_sweep(edge):
    async with connected(edge) as (conn, client):
        now = conn.ping_since + gateway.READ_CHECK_S
        conn.ping_if_due(now)
        assert await client.nothing_for(0.2)
        conn.ping_if_due(now + gateway.SWEEP_S)  # the next sweep: no flush came (a room not ticking)
        assert await client.frame() == (OP_PING, (1).to_bytes(4, "big"))
        assert conn.stalled_for(now + gateway.SWEEP_S) == pytest.approx(gateway.SWEEP_S)


async def test_each_tick_the_flush_writes_what_websockets_would_in_order_keyframe_then_deltas(edge):
    """The Flusher's writes on a real edge, as the client reads them: an update alone (every tick's case,
    framed in the flush itself), then a pong queued with an update, then a version-1 session's: byte
    for byte a twin Outbox's messages (Outbox.take, what websockets' send path writes), deltas after
    the first update, each message its own frame, in order."""
    import msgpack
    from server.outbox import Outbox

    def view(build: int, tag: str):
        v = gateway.View.make(msgpack.packb([[tag]]), [], [], [], [])
        v.build, v.moves = build, (msgpack.packb([]), msgpack.packb([[tag, b"d", b""]]))
        return v

    async with connected(edge) as (conn, client):
        twin, sent, size = Outbox(Metrics()), [], 0
        for tick, build, control in (
            (1, 0, None),
            (2, 1, None),
            (3, 2, gateway.protocol.encode_pong(9, 3)),
            (4, 3, None),
        ):
            v = view(build, f"t{tick}")
            for box in (conn.outbox, twin):
                if control is not None:
                    box.push(control)
                box.push_update(tick, tick % 3, v)
            for data in twin.take():
                assert await client.frame() == (OP_BINARY, data)
                sent.append(msgpack.unpackb(data))
                size += len(data)
        assert [u.get("moves") != [] for u in sent if u["t"] == "update"] == [False, True, True, True]
        conn.outbox.version = twin.version = 1  # a version-1 session: keyframes only
        v = view(4, "v1")
        for box in (conn.outbox, twin):
            box.push_update(5, 0, v)
        (data,) = twin.take()
        assert msgpack.unpackb(data)["moves"] == [] and await client.frame() == (OP_BINARY, data)
        assert (conn.metrics.messages_out, conn.metrics.bytes_out) == (len(sent) + 1, size + len(data))


async def test_seats_update_writes_what_a_twin_outboxs_push_update_would(edge):
    """Seats.update queues a player's update as Outbox.push_update does (its common case inline): alone,
    behind a pong queued first, and two ticks before one flush coalesced into one (merged, a keyframe):
    the client reads, byte for byte, the messages a twin Outbox gives, in order; every message counted."""
    import msgpack
    from server.outbox import Outbox

    def view(build: int, tag: str):
        v = gateway.View.make(msgpack.packb([[tag]]), [], [tag], [], [])
        v.build, v.moves = build, (msgpack.packb([]), msgpack.packb([[tag, b"d", b""]]))
        return v

    async with connected(edge) as (conn, client):
        seats = gateway.Seats(NetSection())
        seats.of[7] = conn
        twin, count = Outbox(Metrics()), 0
        for ticks, control in (((1,), None), ((2,), gateway.protocol.encode_pong(9, 2)), ((3, 4), None)):
            if control is not None:
                conn.outbox.push(control)
                twin.push(control)
            for tick in ticks:  # in one callback: one flush after it
                v = view(tick - 1, f"t{tick}")
                seats.update(7, tick, tick % 3, v)
                twin.push_update(tick, tick % 3, v)
            for data in twin.take():
                assert await client.frame() == (OP_BINARY, data)
                count += 1
        assert conn.metrics.messages_out == count == 4 and conn.metrics.updates_coalesced == 1
        seats.update(8, 5, 0, view(4, "t5"))  # nobody holds that seat: nothing queued
        assert conn.outbox.update is None
