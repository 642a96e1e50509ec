"""The WebSocket gateway, the room's I/O edge: one `Connection` per player socket.

It validates every inbound frame (size, rate, shape) before anything reaches
the room (server/game.py) and hands it the typed commands for the next tick.
The room's events come back through `Seats` (its `Outbound`), which encodes
them for the connection holding each player's seat; the close policy lives
here: a resumed character's old connection is closed (4003), a connection
whose client read nothing for SLOW_CLIENT_S is closed (4002; `read_checks`
sends the read-check pings and checks them, for every connection in one sweep
every SWEEP_S). Sending never awaits in the
tick: the tick queues each update in the connection's outbox, the gateway its
pongs and errors; right after the callback that queued them (same loop
iteration) the `Flusher` writes all of a connection's in one writev straight
into its socket's buffer while it is short, and hands a congested socket to the
connection's writer task, which waits for it to drain (meanwhile newer
updates coalesce). Limits and what happens at them are in docs/protocol.md.

Per connection and tick, the send is mostly the kernel's (Flusher.flush's docstring has the figures),
and a player's ~10 inputs a second are read without msgpack where they have the common form
(`input_frame`); bench/gateway_flush.py measures both paths of two trees in one process.

Everything here works on a `PlayerSocket`, the one seam to the WebSocket library: `--ws websockets`
(server/edge_websockets.py, the default) and `--ws picows` (server/edge_picows.py) each implement it
and serve the port (HTTP routes included); nothing above the socket is written twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import socket
import struct
import time
from typing import Any, Callable, Protocol

from world import protocol
from world.protocol import (
    HELLO_TIMEOUT_S,
    RATE_BURST,
    RATE_ERROR_EVERY_S,
    RATE_PER_S,
    SLOW_CLIENT_S,
    STRIKES,
    STRIKES_PER_S,
    Chat,
    Hello,
    Input,
    Ping,
    ProtocolError,
    Talk,
    update_head3,
)
from world.snapshot import View, head_for

from . import events
from .config import NetSection
from .events import Refused, Replaced, Welcome
from .frames import binary_frame_head, ping_frame
from .game import Game, Player
from .limits import TokenBucket
from .metrics import Metrics
from .outbox import Outbox

log = logging.getLogger("npcworld.gateway")

# Kernel send buffer per socket (Linux doubles it). With the edges' WRITE_LIMIT
# (64 KiB) and one pending update, this bounds what a client that stops
# reading can hold on the server to about 200 KiB, and lets the server notice
# it (4002) within seconds instead of after megabytes.
SEND_BUFFER = 64 * 1024
# How a client that stops reading is seen (docs/protocol.md, "Limits"): a WebSocket ping every
# READ_CHECK_S, queued behind everything sent before it. A client answers a ping only once it has
# read what came before it (frames are read in order; browsers and WebSocket libraries answer by
# themselves), so the age of the oldest unanswered ping is how long the client has read nothing.
# The socket buffers cannot hide it: on loopback they absorbed 25 s of a normal client's updates
# (about 160 KB), and the server saw nothing until websockets' 20 s keepalive closed with 1011.
# This check replaces that keepalive (both edges: no keepalive of their own): a dead peer is one that answers
# no ping. Cost: one ping frame (6 bytes) out and one pong in per connection every READ_CHECK_S,
# sent from one sweep over all connections (Seats.read_check), not from a task per connection: a
# task sleeping, pinging through websockets' ping() (an async send context) and waking on each pong
# was 3.4% of the server's CPU at 600 clients (py-spy, bench/capacity.py; README "Capacity").
# Both scale with the option `slow_client_s` (SLOW_CLIENT_S, 5 s, by default; Seats): the figures here
# are the default's.
READ_CHECK_S = 2.0
SWEEP_S = 0.5  # how often the sweep runs: a ping goes out 2.0-2.5 s after the last was sent and answered
# Updates are written directly (no task switch) while the socket's user-space
# buffer holds less than this; above it the writer task takes over and waits.
DIRECT_WRITE_LIMIT = 64 * 1024  # bytes, equal to the edges' WRITE_LIMIT
# Above this many bytes buffered in user space a send waits for the socket to drain (both edges):
# how a slow reader is seen by `sending_since` (websockets' write_limit; picows: the transport's
# high-water mark, pause_writing/resume_writing).
WRITE_LIMIT = 64 * 1024
CLOSE_TIMEOUT_S = 2.0  # how long a close waits for the client's close frame before dropping the TCP connection
# Messages a client may send between its hello and its welcome (the room has not joined it yet):
# kept, then received in order once it has; more are dropped and each counts as a strike (1008).
MAX_EARLY = 32  # messages (websockets' max_queue was 32 frames before reading stopped)


# An input as a client's msgpack library writes it most often ({"t", "seq", "dx", "dy"} in that order,
# seq an unsigned int of 1 to 5 bytes, dx and dy float64: bots/bot.py, Python's msgpack), read by
# one struct per seq width, told apart by the frame's length (37, 38, 39, 41 bytes). Any other form
# (another key order, ints or float32 for dx and dy, a bad value) goes to protocol.decode, which
# gives the same Input for it or says what is wrong. `input_frame` vs protocol.decode on a 40-byte
# input: 0.80 vs 1.75 us (timeit, load ~3.4); a player sends ~10 a second. A wander bot's messages
# through Connection.on_message (inputs and pings, bench/gateway_flush.py, 1,200 connections a tree,
# the trees taking turns tick by tick, load 3-5): 7.32 -> 5.45 us per message, per-tick ratio 0.77.
_INPUT_HEAD = b"\x84\xa1t\xa5input\xa3seq"
_INPUT_DX, _INPUT_DY = b"\xa2dx\xcb", b"\xa2dy\xcb"
_INPUT_FORMS: dict[int, tuple[Callable[[bytes], tuple[Any, ...]], bytes]] = {}
for _tag, _code in ((b"", "B"), (b"\xcc", "B"), (b"\xcd", "H"), (b"\xce", "I")):
    _form = struct.Struct(f">{len(_INPUT_HEAD)}s{len(_tag)}s{_code}4sd4sd")
    _INPUT_FORMS[_form.size] = (_form.unpack, _tag)
del _tag, _code, _form


def input_frame(frame: bytes) -> Input | None:
    """The Input `frame` is when it has the common form above and valid fields (protocol.decode would
    give the same); else None (then protocol.decode reads it, and refuses it if it is bad)."""
    form = _INPUT_FORMS.get(len(frame))
    if form is None:
        return None
    head, tag, seq, kx, dx, ky, dy = form[0](frame)
    if (
        head == _INPUT_HEAD
        and tag == form[1]
        and kx == _INPUT_DX
        and ky == _INPUT_DY
        and (tag or seq < 0x80)  # a bare byte is a positive fixint only below 0x80
        and -1.0 <= dx <= 1.0  # False for NaN
        and -1.0 <= dy <= 1.0
    ):
        return Input(seq, dx, dy)
    return None


class SocketClosed(Exception):
    """A send on a socket that closed meanwhile (each edge raises it from `send_message`)."""


class PlayerSocket(Protocol):
    """One player's WebSocket, as the gateway uses it: what an edge implements (websockets'
    `edge_websockets.WebsocketsSocket`, picows' `edge_picows.PicowsSocket`). Every message, from the
    first, goes to the callback given to `hand_messages_to` as soon as it is parsed and joined (the
    edge keeps up to MAX_EARLY that come before, more: 1008; joined fragments over MAX_FRAME: 1009;
    invalid UTF-8 in a text message: 1007; a malformed frame: 1002)."""

    @property
    def transport(self) -> Any: ...  # the TCP transport: flush writes frames into it (writelines)

    @property
    def remote_address(self) -> Any: ...

    @property
    def close_code(self) -> int | None: ...  # the code of the close frame received, once closed

    @property
    def direct_ok(self) -> bool: ...  # no extension was negotiated: frames may be written straight in

    def is_open(self) -> bool: ...  # open for messages: no close frame sent or received

    def hand_messages_to(self, on_message: Callable[[bytes | str], None]) -> None: ...

    def send_ping(self, data: bytes) -> asyncio.Future[Any]: ...  # done when its pong comes (or on close)

    def expect_pong(self, data: bytes) -> asyncio.Future[Any]: ...  # as send_ping, for a ping written directly

    def send_nowait(self, data: bytes) -> None: ...  # one binary message into the buffer, never waiting

    async def send_message(self, data: bytes) -> None: ...  # one binary message; waits past WRITE_LIMIT

    async def close(self, code: int, reason: str) -> None: ...  # the closing handshake, CLOSE_TIMEOUT_S at most

    async def wait_closed(self) -> None: ...


class Flusher:
    """Writes what was queued (a tick's updates, the pongs and errors of the frames just read), right
    after the callback that queued it returns to the loop.

    Scheduled with call_soon by the first connection marked (its outbox was empty), so a tick's
    duration measures the world, and the sends of all connections share one loop callback instead
    of one task wake-up each.
    """

    def __init__(self) -> None:
        self.dirty: list[Connection] = []

    def mark(self, conn: "Connection") -> None:
        if not self.dirty:
            asyncio.get_running_loop().call_soon(self.flush)
        self.dirty.append(conn)

    def flush(self) -> None:
        """Every marked connection's queue: the common case, direct writes into a socket that keeps up,
        here in one loop (per connection only its frames and its writev); the rest through
        `Connection.flush`.

        One writev for everything queued: each message as a frame head (with the observer's own update
        head) and the body its cell's observers share, never joined here, then the read-check ping if
        one is due. That writev, the kernel's send on loopback, is ~80% of the flush (bench/client_path.py's
        server under py-spy at 1,200 clients: 38% of all its samples); one per connection and tick.
        Session 17, py-spy --native on bench/gateway_flush.py (1,200 connections a tree): 85% of the
        flush's samples are in the sendmsg call itself (picows' aiofastnet transport), ~20 us of the
        ~24 us per connection-tick at load 3-5; a bare os.write of 600 bytes to a loopback TCP socket
        whose reader keeps up is 9-15 us here (/tmp script, 1,200 and 2,400 sockets). The update-alone
        case framed inline (below): push + flush 24.90 -> 23.98 and 25.90 -> 25.05 us per
        connection-tick, per-tick ratio medians 0.960 and 0.964 (bench/gateway_flush.py --clients 1200
        --ticks 150, two runs, load 3-5); joining the frame into one write instead of the writev
        measured 0.993 (kept as a writev).

        Session 18: the byte and message counters added once per flush, and Seats.update's common case
        inline: push 1.87 -> 1.63 us, push + flush 24.92 -> 24.82 us per connection-tick, per-tick ratio
        median 0.980 (bench/gateway_flush.py --clients 1200 --ticks 150, load 9-10). Where a client's
        time goes (bench/client_path.py's server at 1,200 clients, parts timed with thread_time, load 8):
        this flush 21.1 us per client-tick, about 3/4 of it the send syscalls (py-spy --native: sendmsg and
        send 29.4% of all samples, the flush 40.1%); the tick 15.6 (views 3.7, Seats.update 2.0); messages
        in 4.2 in on_message and ~10 in the loop's reads and picows; read checks 0.8. So a native call that
        writes the frames built here would save only aiofastnet's writelines around the syscall (0.7% of
        the samples): not built. io_uring is allowed here (io_uring_setup works, kernel 6.18), but a
        syscall's entry and exit is ~0.95 us (os.getppid) of a 14-17 us loopback send (1,200 sockets drained
        by another process; TCP_NODELAY or Nagle, one buffer or two, the same): batching the sends could
        save ~6% of them at most: not done."""
        dirty, self.dirty = self.dirty, []
        metrics: Metrics | None = None  # the connections' (one per server): counted once per flush
        sent = messages = 0
        for conn in dirty:
            transport = conn.transport
            if (
                not conn.direct
                or conn.writer_busy
                or transport.get_write_buffer_size() >= DIRECT_WRITE_LIMIT
                or not conn.ws.is_open()
            ):
                conn.flush()  # the writer task, a closed socket, or websockets' send path
                continue
            outbox = conn.outbox
            update = outbox.update
            if update is not None and conn.ping is None and not outbox.control:
                # The common case, once per connection and tick: the update alone, framed as
                # Outbox.take_frames frames it, here without its call, its lists and `ready.clear()`
                # (an event a congested flush set before only wakes the writer task to find nothing).
                tick, ack, view = update
                outbox.update = None
                if outbox.version >= 3:
                    body = view.body3_after(outbox.sent)
                    head = update_head3(tick, ack)
                else:
                    body = view.body_for(outbox.version, outbox.sent)
                    head = head_for(outbox.version, tick, ack)
                outbox.sent = view.build
                size = len(head) + len(body)
                frames: Any = (binary_frame_head(size) + head, body)
                count = 1
            else:
                frames, size, count = outbox.take_frames()
                ping = conn.ping
                if ping is not None:  # the read check's, behind everything queued (Connection.ping_if_due)
                    frames.append(ping)
                    conn.ping = None
                if not frames:
                    continue
            if conn.metrics is not metrics:
                if metrics is not None:
                    metrics.bytes_out += sent
                    metrics.messages_out += messages
                metrics, sent, messages = conn.metrics, 0, 0
            sent += size
            messages += count
            if not transport.is_closing():
                try:
                    transport.writelines(frames)
                except (OSError, RuntimeError):  # lost meanwhile (uvloop: "handler is closed"), as
                    pass  # broadcast ignores it: the reader side ends the session; others go on
        if metrics is not None:
            metrics.bytes_out += sent
            metrics.messages_out += messages


class Seats:
    """The room's outbox at the I/O edge (server/events.py `Outbound`): each player's events, as bytes,
    to the connection that holds its seat. Invariant: `of` maps a player to at most one open
    connection, the newest; a `Replaced` unmaps and closes the old one (4003) before the new one binds.
    A connection binds its player's seat at its `Welcome`, the last event of `join`; until then (within
    that synchronous call) the player's events go to the joining connection."""

    def __init__(self, net: NetSection) -> None:
        self.direct_writes = net.direct_writes  # see Connection.direct
        self.max_players = net.max_players  # further hellos are closed with 4004
        # the read check (READ_CHECK_S): a client that read nothing for slow_client_s is closed (4002)
        self.slow_client_s = net.slow_client_s
        self.read_check_s = READ_CHECK_S * net.slow_client_s / SLOW_CLIENT_S  # a ping every 2 s at 5 s
        self.sweep_s = min(SWEEP_S, SWEEP_S * net.slow_client_s / SLOW_CLIENT_S)  # read_checks' period
        self.of: dict[int, Connection] = {}  # player id -> the connection holding its seat
        self.joining: Connection | None = None

    def event(self, player: int, event: events.Event) -> None:
        conn = self.of.get(player)
        if type(event) is Replaced:
            if conn is not None:
                del self.of[player]
                conn.close_soon(protocol.CLOSE_REPLACED, "replaced: this character was resumed by a newer connection")
            return
        if conn is None:
            conn = self.joining
            if conn is None:
                return  # gone between the room's last look and now: nobody to tell
            if type(event) is Welcome:
                self.of[player] = conn
                where = conn.ws.remote_address
                log.info(
                    "%s %s (%d) from %s",
                    "resumed" if event.resumed else "joined",
                    event.name,
                    player,
                    where[0] if where else "?",
                )
        if type(event) is Refused:
            conn.send_error(event.error)
        else:
            conn.outbox.push(events.encode(event))

    def update(self, player: int, tick: int, ack: int, view: View) -> None:
        conn = self.of.get(player)
        if conn is None:
            return
        outbox = conn.outbox
        if outbox.update is None and not outbox.control:  # the common case, once per observer and tick:
            outbox.update = (tick, ack, view)  # Outbox.push_update's with nothing pending, without its call
            outbox.on_ready()
        else:
            outbox.push_update(tick, ack, view)

    def join(self, conn: "Connection", game: Game, hello: Hello) -> Player:
        self.joining = conn
        try:
            return game.join(hello)
        finally:
            self.joining = None

    def leave(self, conn: "Connection", game: Game) -> None:
        """The connection ended; its player leaves the room unless a newer connection holds the seat."""
        player = conn.player
        if player is not None and self.of.get(player.eid) is conn:
            del self.of[player.eid]
            game.leave(player.eid)

    def read_check(self, now: float) -> None:
        """The read check of every seated connection (see READ_CHECK_S): send the pings that are due,
        and close with 4002 the connections whose client read nothing for slow_client_s."""
        for eid, conn in list(self.of.items()):
            conn.ping_if_due(now, self.read_check_s)
            stalled = conn.stalled_for(now)
            if stalled > self.slow_client_s:
                log.info(
                    "closing %s (%d): read nothing for %.1f s", conn.player.name if conn.player else "?", eid, stalled
                )
                conn.close_soon(protocol.CLOSE_TOO_SLOW, f"too slow: read nothing for {self.slow_client_s:g} s")


async def read_checks(seats: Seats, stop: asyncio.Event, every_s: float | None = None) -> None:
    """Every `every_s` (default: the seats' sweep_s) until `stop`: `seats.read_check`."""
    every_s = seats.sweep_s if every_s is None else every_s
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            seats.read_check(time.monotonic())


class Room(Protocol):
    """What a Connection asks of the room: the tick (a pong carries it) and the player's commands.
    `Game` is one; a gateway process's link to the tick process (server/gateway_proc.py) the other."""

    @property
    def world(self) -> Any: ...  # .tick: the last tick

    def command(self, eid: int, msg: Input | Chat | Talk) -> None: ...


class Seated(Protocol):
    """The player a connection holds the seat of, as the connection uses it."""

    @property
    def eid(self) -> int: ...

    @property
    def name(self) -> str: ...


class Connection:
    def __init__(self, ws: PlayerSocket, game: Room, metrics: Metrics, flusher: Flusher, direct_writes: bool):
        now = time.monotonic()
        self.ws = ws
        self.game = game
        self.metrics = metrics
        self.flusher = flusher
        self.transport = ws.transport  # the TCP transport: set before the edge hands a socket over
        self.outbox = Outbox(metrics, on_ready=functools.partial(flusher.mark, self))  # no Python frame of its own
        self.player: Seated | None = None
        self.rate = TokenBucket(RATE_PER_S, RATE_BURST, now)
        self.strikes = TokenBucket(STRIKES_PER_S, STRIKES, now)
        self.last_rate_error = -math.inf
        self.sending_since: float | None = None  # set while a send waits for the socket to drain
        self.ping_since = now  # when the last read-check ping was sent (none yet: the first is due READ_CHECK_S on)
        self.pong: asyncio.Future[Any] | None = None  # the last ping's: done once its pong came (or on close)
        self.pings = 0  # read-check pings sent; the next one's payload
        self.ping: bytes | None = None  # a read-check ping frame waiting for the next writev (direct writes)
        self.writer_busy = False  # the writer task holds messages taken from the outbox
        self.closing = False
        self.hello: asyncio.Future[bytes | str] = asyncio.get_running_loop().create_future()  # the first message
        self.early: list[bytes | str] = []  # messages after the hello, before the room joined the player
        # Frames written by flush itself, not through websockets: only where no extension was
        # negotiated (permessage-deflate frames must go through websockets' compressor).
        self.direct = direct_writes and ws.direct_ok

    # -- called by the seats (never awaits) --------------------------------

    def stalled_for(self, now: float) -> float:
        """Seconds the client has read nothing: its unanswered ping, or a send waiting on a full socket."""
        unanswered = self.pong is not None and not self.pong.done()
        return max(
            0.0 if self.sending_since is None else now - self.sending_since,
            now - self.ping_since if unanswered else 0.0,
        )

    def ping_if_due(self, now: float, every_s: float = READ_CHECK_S) -> None:
        """Send the next read-check ping once the last was answered and `every_s` (READ_CHECK_S at the
        default slow_client_s: Seats.read_check_s) have passed since it went.

        With direct writes the ping frame waits in `ping` for the connection's next flush and goes out in
        its writev, behind the next tick's update (at most a tick on): no write of its own (one syscall per
        connection every READ_CHECK_S). Should no update come to carry it by the next sweep (a room that
        stopped ticking), the sweep flushes it alone; its age counts from now either way, so a client is
        never thought to read for longer than it does. Else the edge's `send_ping` queues it behind
        whatever is buffered. Both never wait for a full socket to drain (which is the point) and need no
        task; its pong resolves the future `expect_pong` or `send_ping` returns, which `stalled_for`
        looks at."""
        if self.ping is not None:  # no flush since the last sweep: nothing came to carry it
            self.flusher.mark(self)
            return
        if (self.pong is not None and not self.pong.done()) or now - self.ping_since < every_s:
            return
        ws = self.ws
        if self.closing or not ws.is_open():
            return
        self.pings += 1
        data = self.pings.to_bytes(4, "big")  # 4 bytes, as protocol.md says; unique among this socket's pings
        self.ping_since = now
        if self.direct:
            self.pong = ws.expect_pong(data)
            self.ping = ping_frame(data)
            return
        try:
            self.pong = ws.send_ping(data)
        except Exception:  # noqa: BLE001 - lost meanwhile (as a direct write): the reader side ends the session
            pass

    def close_soon(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.metrics.closes[code] = self.metrics.closes.get(code, 0) + 1
        asyncio.get_running_loop().create_task(self.ws.close(code, reason))

    # -- sending ------------------------------------------------------------

    def send_error(self, err: ProtocolError) -> None:
        self.metrics.errors_sent[err.code] = self.metrics.errors_sent.get(err.code, 0) + 1
        self.outbox.push(protocol.encode_error(err))

    def flush(self) -> None:
        """What `Flusher.flush` does not write itself (direct writes into a socket that keeps up): wake
        the writer task for a congested socket; drop what is queued on a closed one; else (websockets'
        send path, an extension negotiated) send each message as a frame of its own. A connection that
        is closing still gets what was queued before its close frame goes (a rate_limited error before
        its 1008: the close runs as a task, after this); once the frame is sent, nothing more."""
        ws = self.ws
        transport = self.transport
        if self.writer_busy or transport.get_write_buffer_size() >= DIRECT_WRITE_LIMIT:
            self.outbox.ready.set()
            if self.ping is not None:  # behind what is buffered, ahead of what the writer task sends next
                self._write_ping(transport)
            return
        if not ws.is_open():
            self.ping = None
            return  # closed: the reader side ends the session
        metrics = self.metrics
        for data in self.outbox.take():
            if not ws.is_open():
                return  # closing: the reader side ends the session
            ws.send_nowait(data)  # a non-blocking write of one frame
            metrics.bytes_out += len(data)
            metrics.messages_out += 1

    def _write_ping(self, transport: Any) -> None:
        ping, self.ping = self.ping, None
        if not transport.is_closing():
            try:
                transport.write(ping)
            except (OSError, RuntimeError):  # lost meanwhile, as in flush
                pass

    async def write_forever(self) -> None:
        ready, metrics, ws = self.outbox.ready, self.metrics, self.ws
        try:
            while True:
                await ready.wait()
                self.writer_busy = True  # until everything taken is sent, in order
                for data in self.outbox.take():
                    self.sending_since = time.monotonic()
                    await ws.send_message(data)
                    self.sending_since = None
                    metrics.bytes_out += len(data)
                    metrics.messages_out += 1
                self.writer_busy = False
        except SocketClosed:
            pass  # the reader side ends the session

    # -- receiving ----------------------------------------------------------

    def strike(self, now: float) -> None:
        if not self.strikes.take(now):
            self.close_soon(protocol.CLOSE_POLICY, "policy violation: too many bad or excess messages")

    def on_message(self, frame: bytes | str) -> None:
        """Every message of the socket (PlayerSocket.hand_messages_to), from its first: the hello to `handle`,
        what comes before the room joined the player kept (MAX_EARLY), then each to `receive`."""
        metrics = self.metrics
        metrics.messages_in += 1
        metrics.bytes_in += len(frame)
        if self.player is None:
            if not self.hello.done():
                self.hello.set_result(frame)
            elif len(self.early) < MAX_EARLY:
                self.early.append(frame)
            else:
                self.strike(time.monotonic())
            return
        try:
            self.receive(frame)
        except Exception:  # never let one connection's bug reach others
            log.exception("connection handler failed")
            self.close_soon(protocol.CLOSE_INTERNAL, "internal error")

    def receive(self, frame: bytes | str) -> None:
        if self.closing:
            return
        now = time.monotonic()
        if not self.rate.take(now):
            self.strike(now)
            if now - self.last_rate_error >= RATE_ERROR_EVERY_S:
                self.last_rate_error = now
                self.send_error(
                    ProtocolError("rate_limited", f"more than {RATE_PER_S:.0f} messages/s; messages were dropped")
                )
            return
        msg: Any = input_frame(frame) if type(frame) is bytes else None
        if msg is not None:  # the common message, ~10 a second per player
            assert self.player is not None  # frames are received only after the hello joined a player
            self.game.command(self.player.eid, msg)
            return
        try:
            msg = protocol.decode(frame)
        except ProtocolError as err:
            self.send_error(err)
            self.strike(now)
            return
        if type(msg) is Ping:
            self.outbox.push(protocol.encode_pong(msg.id, self.game.world.tick))
        elif type(msg) is Input or type(msg) is Chat or type(msg) is Talk:
            assert self.player is not None  # frames are received only after the hello joined a player
            self.game.command(self.player.eid, msg)
        else:
            self.send_error(ProtocolError("not_expected", "hello was already received on this connection", ref="hello"))
            self.strike(now)


async def _refuse(ws: PlayerSocket, metrics: Metrics, code: int, reason: str, err: ProtocolError | None = None) -> None:
    metrics.closes[code] = metrics.closes.get(code, 0) + 1
    if err is not None:
        await ws.send_message(protocol.encode_error(err))
    await ws.close(code, reason)


def accept(
    ws: PlayerSocket, room: Room, metrics: Metrics, flusher: Flusher, direct_writes: bool
) -> tuple[Connection, asyncio.Future[Any]]:
    """A new socket as a Connection: counted, its messages handed to it, its kernel send buffer set
    (SEND_BUFFER); and the future of its close. How `handle` and a gateway process's start."""
    metrics.connections += 1
    metrics.connections_total += 1
    conn = Connection(ws, room, metrics, flusher, direct_writes)
    ws.hand_messages_to(conn.on_message)
    closed = asyncio.ensure_future(ws.wait_closed())
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    return conn, closed


async def play(conn: Connection, closed: asyncio.Future[Any]) -> None:
    """A seated connection until it closes: its writer task, and the messages kept before its welcome
    received first, in order (from now on each is received as it is parsed)."""
    writer = asyncio.get_running_loop().create_task(conn.write_forever())
    try:
        early, conn.early = conn.early, []
        for frame in early:
            conn.receive(frame)
        await closed
    finally:
        writer.cancel()


async def read_hello(conn: "Connection", closed: asyncio.Future[Any]) -> Hello | None:
    """The connection's hello, checked (its version too), its session's form of updates set; None once
    the connection is refused for it (4000, 4001) or gone before it (also what a gateway process runs)."""
    ws, metrics = conn.ws, conn.metrics
    await asyncio.wait((conn.hello, closed), timeout=HELLO_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if not conn.hello.done():
        if not closed.done():  # else gone before its hello
            await _refuse(ws, metrics, protocol.CLOSE_BAD_HELLO, "no hello within 10 s")
        return None
    try:
        hello = protocol.decode(conn.hello.result())
    except ProtocolError as err:
        await _refuse(ws, metrics, protocol.CLOSE_BAD_HELLO, "first message must be a valid hello", err)
        return None
    if type(hello) is not Hello:
        await _refuse(ws, metrics, protocol.CLOSE_BAD_HELLO, "first message must be hello")
        return None
    if hello.version not in protocol.VERSIONS:
        await _refuse(
            ws,
            metrics,
            protocol.CLOSE_VERSION,
            f"unsupported protocol version {hello.version}; this server speaks "
            + " and ".join(map(str, protocol.VERSIONS)),
        )
        return None
    conn.outbox.version = hello.version  # version 1: every update a keyframe; 3: the array form
    return hello


async def handle(ws: PlayerSocket, game: Game, seats: Seats, metrics: Metrics, flusher: Flusher) -> None:
    """Serve one player socket from hello to close (each edge runs it for each WebSocket it accepts)."""
    conn, closed = accept(ws, game, metrics, flusher, seats.direct_writes)
    try:
        hello = await read_hello(conn, closed)
        if hello is None:
            return
        if game.connected() >= seats.max_players:
            return await _refuse(ws, metrics, protocol.CLOSE_FULL, "server full")
        conn.player = seats.join(conn, game, hello)
        await play(conn, closed)
    except SocketClosed:
        pass
    except Exception:  # never let one connection's bug reach others
        log.exception("connection handler failed")
        metrics.closes[protocol.CLOSE_INTERNAL] = metrics.closes.get(protocol.CLOSE_INTERNAL, 0) + 1
        await ws.close(protocol.CLOSE_INTERNAL, "internal error")
    finally:
        closed.cancel()
        if conn.player is not None:
            seats.leave(conn, game)
            log.info("left %s (%d) code=%s", conn.player.name, conn.player.eid, ws.close_code)
        metrics.connections -= 1
