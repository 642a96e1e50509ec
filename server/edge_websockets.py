"""The game port through `websockets` (`--ws websockets`, the default): its server, the HTTP routes as
its `process_request` hook, and `WebsocketsSocket`, the gateway's `PlayerSocket` on websockets' server
connection. Everything above the socket is server/gateway.py's, shared with the picows edge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, State

from world import protocol

from .config import NetSection
from .gateway import CLOSE_TIMEOUT_S, MAX_EARLY, WRITE_LIMIT, SocketClosed
from .http import Page, Routes


class WebsocketsSocket(ServerConnection):
    """websockets' server connection handing each message to `on_message` as soon as it is parsed.

    websockets queues a message for a reader task (`recv`, `async for`) and wakes it, once per
    message: at 600 clients (6,600 inbound messages/s) that queue and the task switches were ~8%
    of the server's py-spy samples, for messages that are decoded and handed to the room without
    ever awaiting; bench/ws_edge.py: 0.91x the CPU per message (median of 8 rounds on a loaded
    box, 0.58-1.17x; README "Capacity"). Fragments are joined here (websockets' protocol already
    bounds a message at max_size: 1009); a text message is decoded from UTF-8 (invalid: 1007,
    as websockets does). Frames before `on_message` is set, and control frames, take websockets'
    own path. Messages that come before the handler asks for them (`hand_messages_to`) are kept
    for it, MAX_EARLY at most (more: 1008)."""

    on_message: Callable[[bytes | str], None] | None = None
    _early: list[bytes | str] | None = None  # messages kept until on_message is set
    _fragments: list[bytes] | None = None  # a fragmented message being received
    _text = False  # ... and whether it is a text message

    # -- the gateway's PlayerSocket (server/gateway.py) ----------------------

    @property
    def direct_ok(self) -> bool:
        return not self.protocol.extensions  # permessage-deflate frames must go through websockets' compressor

    def is_open(self) -> bool:
        return self.protocol.state is State.OPEN

    def expect_pong(self, data: bytes) -> asyncio.Future[Any]:
        """A ping the gateway writes itself: its pong resolves the future kept in `pending_pings`, as
        websockets' own pings' do."""
        pong = self.loop.create_future()
        self.pending_pings[data] = (pong, self.loop.time())
        return pong

    def send_ping(self, data: bytes) -> asyncio.Future[Any]:
        """What websockets' `ping()` does, without its send context (which would wait for a full socket
        to drain) and so without a task: the pong resolves the future kept in `pending_pings`."""
        pong = self.expect_pong(data)
        self.protocol.send_ping(data)
        self.send_data()
        return pong

    def send_nowait(self, data: bytes) -> None:
        broadcast((self,), data)  # a non-blocking write of one frame

    async def send_message(self, data: bytes) -> None:
        try:
            await self.send(data)  # waits while more than write_limit (WRITE_LIMIT) is buffered
        except ConnectionClosed:
            raise SocketClosed from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """websockets' closing handshake, bounded: its close frame waits behind what is buffered, for
        a drain that a client that reads nothing (the 4002 case) never allows, with no timeout; past
        2 x CLOSE_TIMEOUT_S the connection is dropped, so its handler returns and its player leaves.
        The server's shutdown (1001) closes each connection through here too."""
        try:
            async with asyncio.timeout(2 * CLOSE_TIMEOUT_S):
                await super().close(code, reason)
        except TimeoutError:
            self.transport.abort()
            await self.wait_closed()

    def hand_messages_to(self, on_message: Callable[[bytes | str], None]) -> None:
        """From now on every message goes to `on_message`; first those that came before."""
        early, self._early = self._early or [], None
        self.on_message = on_message
        for data in early:
            on_message(data)

    # -- websockets' side -------------------------------------------------------

    def _keep(self, data: bytes | str) -> None:
        if self._early is None:
            self._early = []
        if len(self._early) < MAX_EARLY:
            self._early.append(data)
        else:
            self.protocol.fail(CloseCode.POLICY_VIOLATION, "policy violation: too many messages before the hello")
            self.send_data()

    def process_event(self, event: Event) -> None:
        if self.request is None or not isinstance(event, Frame):
            return super().process_event(event)  # the handshake
        on_message = self.on_message or self._keep
        op = event.opcode
        if op is Opcode.BINARY or op is Opcode.TEXT:
            if not event.fin:
                self._fragments, self._text = [bytes(event.data)], op is Opcode.TEXT
                return
            data, text = bytes(event.data), op is Opcode.TEXT
        elif op is Opcode.CONT:
            if self._fragments is None:
                return  # websockets' protocol refuses a continuation with no message before it (1002)
            self._fragments.append(bytes(event.data))
            if not event.fin:
                return
            data, text, self._fragments = b"".join(self._fragments), self._text, None
        else:
            return super().process_event(event)  # ping, pong (the read check), close
        if text:
            try:
                on_message(data.decode())
            except UnicodeDecodeError:
                self.protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                self.send_data()
            return
        on_message(data)


def response(page: Page) -> Response:
    headers = Headers({**page.headers, "Content-Length": str(len(page.body))})
    return Response(page.status, page.reason, headers, page.body)


class Listening:
    """The game port being served: its number, and the shutdown that closes every socket with 1001."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.port: int = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.server.close(close_connections=True)  # 1001 going away
        await self.server.wait_closed()  # and every handler has returned


@asynccontextmanager
async def serve(  # handler: gateway.handle, given each connection (a WebsocketsSocket)
    handler: Callable[[Any], Awaitable[None]], routes: Routes, net: NetSection
) -> AsyncIterator[Listening]:
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        page = routes.page(request.path)
        return None if page is None else response(page)

    async with ws_serve(
        handler,
        net.host,
        net.port,
        process_request=process_request,
        create_connection=WebsocketsSocket,  # each message handed to the gateway as it is parsed
        max_size=protocol.MAX_FRAME,  # larger frames: close 1009
        # no max_queue: WebsocketsSocket hands each message over as it is parsed (none queue); the hello's
        # followers wait in gateway.MAX_EARLY
        write_limit=WRITE_LIMIT,  # bytes; above it a send waits, which is how a slow reader is seen
        close_timeout=CLOSE_TIMEOUT_S,
        ping_interval=None,  # no keepalive: the gateway's read check pings every 2 s (gateway.READ_CHECK_S)
        server_header="npcworld",
        backlog=2048,  # pending TCP connects; the default 100 overflowed when 400 bots joined within a second
        compression="deflate" if net.compression else None,
    ) as server:
        yield Listening(server)
