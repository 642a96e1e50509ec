"""The two WebSocket edges (server/edge_websockets.py, server/edge_picows.py) keep the same promises
to the gateway (server/gateway.py PlayerSocket) and to clients (docs/protocol.md): each test runs on
both, each edge serving a real loopback port, with real clients (websockets', or raw TCP for frames
no library sends). The handler here stands where gateway.handle does; the gateway's own rules are
tested through a real server in tests/e2e/test_server.py, on both edges too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import msgpack
import pytest
import websockets

from server.config import WS_EDGES, NetSection
from server.gateway import MAX_EARLY, SEND_BUFFER, WRITE_LIMIT, SocketClosed
from server.http import Routes
from support.paths import DEFAULT_MAP
from support.wsclient import close_code
from world.protocol import MAX_FRAME

pytestmark = pytest.mark.parametrize("edge", WS_EDGES)

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Served:
    """What gateway.handle does with a socket, reduced to recording: its messages, in order.
    `hold` keeps the messages from being asked for until `release` is set (as before a welcome)."""

    def __init__(self, hold: bool = False) -> None:
        self.opened: asyncio.Queue = asyncio.Queue()
        self.messages: list[bytes | str] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.returned = 0

    async def __call__(self, sock) -> None:
        tcp = sock.transport.get_extra_info("socket")
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)  # as gateway.handle does
        self.opened.put_nowait(sock)
        await self.release.wait()
        sock.hand_messages_to(self.messages.append)
        await sock.wait_closed()
        self.returned += 1


@contextlib.asynccontextmanager
async def serving(edge: str, handler: Served) -> AsyncIterator:
    if edge == "picows":
        from server import edge_picows as mod
    else:
        from server import edge_websockets as mod  # type: ignore[no-redef]
    routes = Routes(DEFAULT_MAP, lambda: {"width": 1, "tilesets": []}, lambda: {"status": "ok"}, lambda: "up 1\n")
    async with mod.serve(handler, routes, NetSection(host="127.0.0.1", port=0)) as listening:
        yield listening


def masked(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | rsv | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload  # zero key


async def raw_close_code(port: int, data: bytes) -> int:
    """Open a WebSocket by hand, write `data`, and read the server's frames until its close frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HANDSHAKE)
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    writer.write(data)
    try:
        for _ in range(1000):  # bounded: frames until the close frame
            b0, b1 = await asyncio.wait_for(reader.readexactly(2), 10)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await reader.readexactly(8), "big")
            payload = await reader.readexactly(n)
            if b0 & 0x0F == 8:
                return int.from_bytes(payload[:2], "big")
        raise AssertionError("no close frame")
    finally:
        writer.close()


async def test_a_message_in_fragments_is_one_message_and_bounded_as_one(edge):
    served = Served()
    async with serving(edge, served) as listening:
        url = f"ws://127.0.0.1:{listening.port}/ws"
        async with websockets.connect(url) as ws:
            await ws.send([b"ab", b"cd", b"ef"])  # an iterable goes as fragments
            await ws.send("text")
            await ws.send(b"whole")
            await ws.ping()  # answered by the edge (its pong comes after the messages are taken)
        assert served.messages == [b"abcdef", "text", b"whole"]
        ws = await websockets.connect(url)
        await ws.send([b"x" * (MAX_FRAME // 2), b"x" * (MAX_FRAME // 2), b"x"])  # each fragment is small
        assert await close_code(ws) == 1009
        ws = await websockets.connect(url, max_size=None)
        await ws.send(b"x" * (MAX_FRAME + 1))  # one frame over the bound
        assert await close_code(ws) == 1009


async def test_malformed_frames_close_1002_and_bad_utf8_1007(edge):
    async with serving(edge, Served()) as listening:
        port = listening.port
        assert await raw_close_code(port, masked(0x0, b"lost")) == 1002  # a continuation of nothing
        assert await raw_close_code(port, masked(0x2, b"a", fin=False) + masked(0x2, b"b")) == 1002  # interleaved
        assert await raw_close_code(port, masked(0x2, b"x", rsv=0x40)) == 1002  # RSV1 with no extension
        assert await raw_close_code(port, bytes([0x82, 0x01]) + b"x") == 1002  # a client frame must be masked
        assert await raw_close_code(port, masked(0x1, b"\xff\xfe")) == 1007  # a text message that is not UTF-8


async def test_messages_before_they_are_asked_for_are_kept_then_bounded(edge):
    served = Served(hold=True)
    async with serving(edge, served) as listening:
        url = f"ws://127.0.0.1:{listening.port}/ws"
        ws = await websockets.connect(url)
        for i in range(MAX_EARLY):
            await ws.send(msgpack.packb(i))
        await served.opened.get()
        served.release.set()
        await ws.send(msgpack.packb("after"))
        await ws.close()
        for _ in range(100):  # bounded: the server sees the close
            if served.returned:
                break
            await asyncio.sleep(0.05)
        assert [msgpack.unpackb(m) for m in served.messages] == [*range(MAX_EARLY), "after"]
        held = Served(hold=True)
        async with serving(edge, held) as listening:
            ws = await websockets.connect(f"ws://127.0.0.1:{listening.port}/ws")
            for i in range(MAX_EARLY + 1):
                await ws.send(msgpack.packb(i))
            assert await close_code(ws) == 1008
            held.release.set()  # the handler returns (the edge waits for it on the way out)


async def test_closes_carry_their_codes_both_ways_and_pings_are_answered(edge):
    served = Served()
    async with serving(edge, served) as listening:
        url = f"ws://127.0.0.1:{listening.port}/ws"
        ws = await websockets.connect(url)
        sock = await served.opened.get()
        assert sock.is_open() and sock.direct_ok
        pong = sock.send_ping(b"\0\0\0\1")
        await asyncio.wait_for(pong, 10)  # the client's library answers while it reads
        closing = asyncio.ensure_future(sock.close(4002, "too slow: read nothing for 5 s"))
        assert await close_code(ws) == 4002
        await asyncio.wait_for(closing, 10)
        assert not sock.is_open()
        with pytest.raises(SocketClosed):
            await sock.send_message(b"late")
        ws = await websockets.connect(url)
        sock = await served.opened.get()
        await ws.close(1000)
        await asyncio.wait_for(sock.wait_closed(), 10)
        assert sock.close_code == 1000
        going = await websockets.connect(url)
        await served.opened.get()
    # the edge's context is left: every socket was closed with 1001 and its handler returned
    assert await close_code(going) == 1001
    assert served.returned == 3


async def test_a_send_waits_while_the_client_reads_nothing(edge):
    """Flow control (websockets' write_limit; picows' pause_writing / resume_writing): a send waits
    while more than WRITE_LIMIT is buffered, so a client that stops reading holds at most that much of
    the server's memory (and `sending_since` sees it: 4002); once it reads, every message arrives."""
    served = Served()
    message = b"u" * 1000
    # 400 KB: about twice what the socket buffers (SEND_BUFFER, doubled; a 4 KiB receive buffer) and
    # WRITE_LIMIT hold together
    count = 400
    async with serving(edge, served) as listening:
        client = socket.create_connection(("127.0.0.1", listening.port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ws = await websockets.connect(f"ws://127.0.0.1:{listening.port}/ws", sock=client, max_queue=None)
        ws.transport.pause_reading()  # read nothing
        sock = await served.opened.get()
        sent = 0

        async def send_all() -> None:
            nonlocal sent
            for _ in range(count):
                await sock.send_message(message)
                sent += 1

        sender = asyncio.ensure_future(send_all())
        most = 0
        for _ in range(400):  # bounded: until the sender has been held back a while
            await asyncio.sleep(0.01)
            most = max(most, sock.transport.get_write_buffer_size())
            if most >= WRITE_LIMIT and not sender.done():
                break
        assert not sender.done() and sent < count
        for _ in range(50):  # the sender stays held back: the buffer never grows past the limit
            await asyncio.sleep(0.01)
            most = max(most, sock.transport.get_write_buffer_size())
        assert most <= WRITE_LIMIT + len(message) + 16, most
        assert not sender.done()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)  # a wider window: a quick drain
        ws.transport.resume_reading()
        got = 0
        for _ in range(count):
            assert await asyncio.wait_for(ws.recv(), 10) == message
            got += 1
        await asyncio.wait_for(sender, 10)
        assert got == sent == count
        await ws.close()


async def test_a_close_ends_even_when_the_client_reads_nothing(edge):
    """A client that stopped reading (the 4002 case) cannot answer a close: after CLOSE_TIMEOUT_S the
    connection is dropped anyway, with what was buffered for it, so its handler returns (and the room
    lets its player go) instead of waiting for a flush that never comes."""
    served = Served()
    async with serving(edge, served) as listening:
        reader, writer = await asyncio.open_connection("127.0.0.1", listening.port, limit=4096)
        tcp = writer.get_extra_info("socket")
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(HANDSHAKE)
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        writer.transport.pause_reading()  # and never reads again
        sock = await served.opened.get()
        for _ in range(400):  # bounded: until the server holds more than it may send on
            if sock.transport.get_write_buffer_size() > WRITE_LIMIT:
                break
            sock.send_nowait(b"u" * 1000)
            await asyncio.sleep(0)
        assert sock.transport.get_write_buffer_size() > WRITE_LIMIT
        await asyncio.wait_for(sock.close(4002, "too slow: read nothing for 5 s"), 10)
        assert not sock.is_open()
        writer.close()
    assert served.returned == 1


async def test_http_pages_come_from_the_routes_on_the_same_port(edge):
    async with serving(edge, Served()) as listening:
        base = f"http://127.0.0.1:{listening.port}/"

        def get(path: str) -> tuple[int, str, bytes]:
            with urllib.request.urlopen(base + path, timeout=10) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read()

        status, ctype, body = await asyncio.to_thread(get, "healthz")
        assert status == 200 and ctype == "application/json" and json.loads(body) == {"status": "ok"}
        status, ctype, body = await asyncio.to_thread(get, "map.json?x=1")
        assert status == 200 and json.loads(body) == {"width": 1, "tilesets": []}
        status, ctype, body = await asyncio.to_thread(get, "metrics")
        assert body == b"up 1\n" and ctype.startswith("text/plain")
        with pytest.raises(urllib.error.HTTPError) as info:
            await asyncio.to_thread(get, "no-such-file.txt")
        assert info.value.code == 404
