"""The game port through picows (`--ws picows`): its server, the HTTP routes answered from its listener
factory (picows sends a non-101 response to an upgrade request, then closes), and `PicowsSocket`, the
gateway's `PlayerSocket` on a picows listener. Everything above the socket is server/gateway.py's,
shared with the websockets edge, and the wire is the same (docs/protocol.md).

picows parses frames in C (Cython) and calls `on_ws_frame` with each: bench/ws_edge.py measured 0.61x
websockets' CPU per inbound message (README "Capacity"). What websockets did by itself and picows
leaves to its user is done here, as websockets does it: fragments are joined (bounded at MAX_FRAME:
1009), a text message must be UTF-8 (1007), reserved bits without an extension and a continuation
out of place are malformed (1002), a client's close frame is answered with its code before the server
drops the connection, and a close the server starts waits CLOSE_TIMEOUT_S for the client's. picows
itself refuses a frame over MAX_FRAME (1009), an unmasked or otherwise malformed frame (1002), and
answers pings. No permessage-deflate: `--compression` needs the websockets edge (config.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from multidict import CIMultiDict
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from world import protocol
from world.protocol import HELLO_TIMEOUT_S

from .config import NetSection
from .gateway import CLOSE_TIMEOUT_S, MAX_EARLY, WRITE_LIMIT, SocketClosed
from .http import Page, Routes

# picows logs every connection and disconnection at info: one line each per player is noise at
# thousands of players. Its warnings and errors (a listener that raised, a malformed frame) stay.
logging.getLogger("picows").setLevel(logging.WARNING)

CLOSE_PROTOCOL = 1002  # RFC 6455: a malformed frame
CLOSE_INVALID_DATA = 1007  # a text message that is not UTF-8
CLOSE_NO_STATUS = 1005  # a close frame without a code (never sent: an empty close frame is echoed empty)
CLOSE_ABNORMAL = 1006  # no close frame: the connection dropped
# picows' message types, looked up once: an Enum member's lookup on its class (WSMsgType.BINARY) costs
# about as much as the rest of a small frame's checks together (~0.75 us against 0.1 us for a global)
BINARY, TEXT, CLOSE, CONTINUATION, PONG = (
    WSMsgType.BINARY,
    WSMsgType.TEXT,
    WSMsgType.CLOSE,
    WSMsgType.CONTINUATION,
    WSMsgType.PONG,
)


class PicowsSocket(WSListener):
    """One player's WebSocket on picows, as the gateway's `PlayerSocket` (server/gateway.py)."""

    def __init__(self, listening: "Listening") -> None:
        loop = asyncio.get_running_loop()
        self.listening = listening
        self.ws: WSTransport | None = None  # set once the handshake is done (on_ws_connected)
        self.transport: Any = None  # the TCP transport under it
        self.remote_address: Any = None
        self.close_code: int | None = None  # the client's close frame's code; 1006 if it sent none
        self.on_message: Callable[[bytes | str], None] | None = None
        self._early: list[bytes | str] = []  # messages kept until on_message is set (MAX_EARLY)
        self._fragments: list[bytes] | None = None  # a fragmented message being received
        self._size = 0  # ... its bytes so far
        self._text = False  # ... and whether it is a text message
        self._pings: dict[bytes, asyncio.Future[Any]] = {}  # payload -> done when its pong comes, in send order
        self._drained: asyncio.Future[None] | None = None  # while writing is paused (over WRITE_LIMIT)
        self._closing = False  # a close frame was sent or received: no more messages either way
        self._close_timer: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] = loop.create_future()

    # -- the gateway's PlayerSocket -----------------------------------------

    direct_ok = True  # no extension is ever negotiated: frames may be written straight into the transport

    def is_open(self) -> bool:
        # (no look at ws.is_disconnected: picows sets it only in connection_lost, which calls
        # on_ws_disconnected at once, and that sets _closing; asked once per connection and flush)
        return not self._closing and self.ws is not None

    def hand_messages_to(self, on_message: Callable[[bytes | str], None]) -> None:
        """From now on every message goes to `on_message`; first those that came before."""
        early, self._early = self._early, []
        self.on_message = on_message
        for data in early:
            on_message(data)

    def expect_pong(self, data: bytes) -> asyncio.Future[Any]:
        pong: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pings[data] = pong
        return pong

    def send_ping(self, data: bytes) -> asyncio.Future[Any]:
        pong = self.expect_pong(data)
        assert self.ws is not None
        self.ws.send_ping(data)  # behind whatever is buffered
        return pong

    def send_nowait(self, data: bytes) -> None:
        assert self.ws is not None
        self.ws.send(BINARY, data)

    async def send_message(self, data: bytes) -> None:
        """One binary message; then, as websockets' send, wait while the transport holds more than
        WRITE_LIMIT (its high-water mark: pause_writing until resume_writing)."""
        if not self.is_open():
            raise SocketClosed
        self.send_nowait(data)
        while self._drained is not None:
            await self._drained
        if self._closed.done():
            raise SocketClosed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._start_close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    # -- picows' side -------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.ws = transport
        self.transport = transport.underlying_transport
        self.transport.set_write_buffer_limits(high=WRITE_LIMIT)
        self.remote_address = self.transport.get_extra_info("peername")
        self.listening.start(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._closing = True
        if self.close_code is None:
            self.close_code = CLOSE_ABNORMAL
        if self._close_timer is not None:
            self._close_timer.cancel()
        for pong in self._pings.values():
            if not pong.done():
                pong.set_result(None)  # done: nothing is unanswered on a closed socket
        self._pings.clear()
        self.resume_writing()
        if not self._closed.done():
            self._closed.set_result(None)
        self.listening.sockets.discard(self)

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        op = frame.msg_type
        if op is BINARY and frame.fin and self._fragments is None and not self._closing:
            if not (frame.rsv1 or frame.rsv2 or frame.rsv3):  # what a client sends: one whole binary message
                return (self.on_message or self._keep)(frame.get_payload_as_bytes())
        if op is CLOSE:
            return self._close_received(frame)
        if self._closing:
            return  # after a close frame: only the client's close frame matters
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            return self._start_close(CLOSE_PROTOCOL, "reserved bits set without an extension")
        if op is BINARY or op is TEXT:
            if self._fragments is not None:
                return self._start_close(CLOSE_PROTOCOL, "a new message before the last one's final fragment")
            if not frame.fin:
                self._fragments, self._size, self._text = (
                    [frame.get_payload_as_bytes()],
                    frame.payload_size,
                    (op is TEXT),
                )
                return
            data, text = frame.get_payload_as_bytes(), op is TEXT
        elif op is CONTINUATION:
            if self._fragments is None:
                return self._start_close(CLOSE_PROTOCOL, "a continuation frame with no message before it")
            self._size += frame.payload_size
            if self._size > protocol.MAX_FRAME:
                return self._start_close(protocol.CLOSE_TOO_BIG, f"message over {protocol.MAX_FRAME} bytes")
            self._fragments.append(frame.get_payload_as_bytes())
            if not frame.fin:
                return
            data, text, self._fragments = b"".join(self._fragments), self._text, None
        elif op is PONG:
            return self._pong(frame.get_payload_as_bytes())
        else:
            return  # a ping: picows answers it (enable_auto_pong)
        on_message = self.on_message or self._keep
        if text:
            try:
                message: bytes | str = data.decode()
            except UnicodeDecodeError:
                return self._start_close(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message")
            on_message(message)
        else:
            on_message(data)

    def _keep(self, data: bytes | str) -> None:
        if len(self._early) < MAX_EARLY:
            self._early.append(data)
        else:
            self._start_close(protocol.CLOSE_POLICY, "policy violation: too many messages before the hello")

    def _pong(self, payload: bytes) -> None:
        """A pong answers its ping and every ping sent before it (RFC 6455 lets a client skip some)."""
        if payload not in self._pings:
            return  # unsolicited: ignored
        while self._pings:
            data, pong = next(iter(self._pings.items()))
            del self._pings[data]
            if not pong.done():
                pong.set_result(None)
            if data == payload:
                return

    def _start_close(self, code: int, reason: str) -> None:
        """Send a close frame, then wait CLOSE_TIMEOUT_S at most for the client's before dropping the
        connection: closing at once could reset it (unread data) and lose the close frame on its way."""
        ws = self.ws
        if self._closing or ws is None or ws.is_disconnected:
            if ws is None and not self._closed.done():
                self._closed.set_result(None)
            return
        self._closing = True
        ws.send_close(WSCloseCode(code), reason.encode()[:123])  # a control frame's payload: 125 bytes
        self._drop_later()

    def _drop_later(self) -> None:
        """Drop the connection CLOSE_TIMEOUT_S from now unless it is gone by then, with whatever is still
        buffered for it: a client that reads nothing (the 4002 case) would keep a graceful close, which
        flushes first, waiting forever, and its handler with it."""
        if self._close_timer is None and self.ws is not None:
            self._close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self.ws.disconnect, False)

    def _close_received(self, frame: WSFrame) -> None:
        """The client's close frame: answer it with its code (as websockets does), unless this side
        closed first, then drop the connection (the server closes TCP first, RFC 6455 7.1.1)."""
        ws = self.ws
        assert ws is not None
        try:
            code = int(frame.get_close_code().value)
        except (ValueError, AttributeError):
            code = CLOSE_PROTOCOL
        self.close_code = code if code else CLOSE_NO_STATUS
        if not self._closing:
            self._closing = True
            if code:
                ws.send_close(WSCloseCode(code), frame.get_close_message() or b"")
            else:
                ws.send_close()  # an empty close frame answered with an empty one
        ws.disconnect()  # graceful: what is buffered goes first (a client that closes reads, mostly)
        self._drop_later()


def response(page: Page) -> WSUpgradeResponse:
    """A Page as picows writes it (it adds Content-Length for a body, and Connection: close)."""
    r = WSUpgradeResponse()
    r.version = b"HTTP/1.1"
    r.status = HTTPStatus(page.status)
    r.headers = CIMultiDict(page.headers)
    r.body = page.body
    return r


class Listening:
    """The game port being served: its number, its sockets, and the shutdown that closes each with 1001."""

    def __init__(self, handler: Callable[[PicowsSocket], Coroutine[Any, Any, None]]) -> None:
        self.handler = handler
        self.port = 0
        self.server: asyncio.Server | None = None
        self.sockets: set[PicowsSocket] = set()
        self.handlers: set[asyncio.Task[None]] = set()
        self.stopping = False

    def start(self, sock: PicowsSocket) -> None:
        """A WebSocket is open: the gateway's handler serves it (one task, as websockets runs one)."""
        if self.stopping:
            sock._start_close(protocol.CLOSE_GOING_AWAY, "")
            return
        self.sockets.add(sock)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self.handler(sock))
        self.handlers.add(task)
        task.add_done_callback(self.handlers.discard)

    async def close(self) -> None:
        self.stopping = True
        if self.server is not None:
            self.server.close()  # no new connections
        await asyncio.gather(*(s.close(protocol.CLOSE_GOING_AWAY, "") for s in list(self.sockets)))
        await asyncio.gather(*list(self.handlers), return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()


@asynccontextmanager
async def serve(
    handler: Callable[[PicowsSocket], Coroutine[Any, Any, None]],
    routes: Routes,
    net: NetSection,
    sock: socket.socket | None = None,
) -> AsyncIterator[Listening]:
    """Serve the game port at net.host:net.port, or on `sock`, a listening socket made elsewhere (a
    gateway process's, sharing the port: server/gateway_proc.py)."""
    listening = Listening(handler)

    def route(request: WSUpgradeRequest) -> PicowsSocket | WSUpgradeResponseWithListener:
        page = routes.page(request.path.decode("latin-1"))
        if page is None:
            return PicowsSocket(listening)  # /ws: the upgrade goes on
        return WSUpgradeResponseWithListener(response(page), None)

    where: dict[str, Any] = {"sock": sock} if sock is not None else {"host": net.host, "port": net.port}
    listening.server = await ws_create_server(
        route,
        **where,
        max_frame_size=protocol.MAX_FRAME,  # larger frames: close 1009
        websocket_handshake_timeout=HELLO_TIMEOUT_S,  # as websockets' open_timeout (10 s)
        enable_auto_ping=False,  # no keepalive: the gateway's read check pings every 2 s (gateway.READ_CHECK_S)
        enable_auto_pong=True,
        backlog=2048,  # pending TCP connects, as the websockets edge
    )
    listening.port = listening.server.sockets[0].getsockname()[1]
    try:
        yield listening
    finally:
        if not listening.stopping:
            await listening.close()
