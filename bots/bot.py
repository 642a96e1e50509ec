"""One bot: a WebSocket connection that speaks docs/protocol.md, plays a
scenario and measures what it sees.

Kept cheap on purpose (a process runs hundreds of these, and the server must
saturate before the bots do). A bot is its own `asyncio.Protocol`: a minimal
RFC 6455 client with no task, queue or generator per message.

- Handshake: HTTP/1.1 GET with Upgrade, a random Sec-WebSocket-Key and
  version 13; the answer must be 101 with the matching Sec-WebSocket-Accept,
  and no extension or subprotocol (none is offered: like the server's
  default, no permessage-deflate). Any other status is a failed connect
  ("HTTP 404").
- Frames from the server are parsed incrementally in `data_received`
  (unmasked; 7, 16 and 64-bit lengths; fragmented messages reassembled from
  continuation frames; a message over MAX_INCOMING closes with 1009, a
  protocol violation with 1002). A ping is answered with a pong; a close
  frame is echoed and its code and reason recorded.
- Frames to the server are masked with a fresh random key each; what the
  scenario queued in one tick goes out in one write.
- An update is read only as far as the bot needs: `tick`, `ack` and the number of chat lines. In
  version 3 (the default) they are its first items (world/protocol.py's `read_update3_head`: a
  fixarray of 7, two ints, the chat array's head); in version 2 (`--protocol 2`) `tick` and `ack`
  come from the fixed prefix the server writes (`read_update_head`: a fixmap of 8 starting "t",
  "update", "tick", <int>, "ack", <int>, "cells"), and there are no chat lines when it ends in
  `"chat": []`. Anything else - a prefix that differs, version-2 chat lines, a scenario with
  `full_updates` - is decoded with `msgpack.unpackb` (a version-3 update then as
  `update3_as_map` names its items), as are welcome, pong and error messages.

Outgoing messages are queued by the scenario's hooks and written by `flush`,
which the worker calls right after `on_tick`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterator
from functools import lru_cache
from urllib.parse import urlsplit

import msgpack
from websockets.frames import apply_mask  # websockets' C speedup where built (else its Python one)

from world.protocol import EMPTY_CHAT_TAIL, VERSION, read_update3_head, read_update_head, update3_as_map

from .plan import CLOSE_TIMEOUT_S, OPEN_TIMEOUT_S
from .scenarios import Scenario
from .stats import LogHistogram, bucket_of

MAX_PENDING = 256  # inputs/pings awaiting their ack/pong; older ones are forgotten (a server that stopped answering)
MAX_INCOMING = 1 << 20  # bytes: a bigger message from the server closes the connection (1009)
MAX_RESPONSE_HEAD = 16 * 1024  # bytes of the HTTP answer to the handshake
WRITE_HIGH_WATER = 64 * 1024  # bytes buffered for the socket above which sends are skipped (the server stopped reading)
USER_AGENT = "npcworld-bots"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Connection states.
HANDSHAKE, PLAYING, CLOSED = 0, 1, 2  # PLAYING: handshake done, hello sent (`open`: welcome came)

# One Packer for the process (msgpack.packb makes one per call: half its 0.6 us for a 40-byte input)
_packb = msgpack.Packer().pack
_unpackb = msgpack.unpackb
_now = time.monotonic
_from_bytes = int.from_bytes


class Tally:
    """What all bots of one worker saw in the current second: counters and
    histograms the bots add to directly, taken (and reset) once a second."""

    FIELDS = (
        "updates",
        "bytes",
        "msgs_in",
        "msgs_out",
        "connects",
        "connect_failures",
        "disconnects",
        "missed_ticks",
        "send_skips",
    )
    # FIELDS, set by reset(): counts in the current second
    updates: int
    bytes: int
    msgs_in: int
    msgs_out: int
    connects: int
    connect_failures: int
    disconnects: int
    missed_ticks: int
    send_skips: int

    def __init__(self) -> None:
        self.gap = LogHistogram()
        self.rtt = LogHistogram()
        self.ack = LogHistogram()
        self.reset()

    def reset(self) -> None:
        for name in self.FIELDS:
            setattr(self, name, 0)
        self.errors: dict[str, int] = {}  # error messages received, by code
        self.ends: dict[str, int] = {}  # connection ends and failed connects, by reason ("1001 going away")

    def take(self) -> dict:
        out = {name: getattr(self, name) for name in self.FIELDS}
        out.update(errors=self.errors, ends=self.ends, gap=self.gap.take(), rtt=self.rtt.take(), ack=self.ack.take())
        self.reset()
        return out


class JoinFailed(Exception):
    """A connect that did not get as far as `welcome`; the argument is the
    reason as the report shows it ("HTTP 404", "closed 4004 server full")."""


def describe_failure(exc: BaseException) -> str:
    """A short, stable reason for a failed connect, used as a counter key."""
    if isinstance(exc, JoinFailed):
        return str(exc)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"[:60]
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc) or type(exc).__name__)[:60]
    return type(exc).__name__


# -- frames --------------------------------------------------------------------

_mask_keys: Iterator[bytes] = iter(())


def _mask_key() -> bytes:
    """4 bytes from the OS's random source (RFC 6455 5.3), drawn 4 KiB (1,024 keys) at a time."""
    global _mask_keys
    key = next(_mask_keys, None)
    if key is None:
        pool = os.urandom(4096)
        _mask_keys = iter([pool[i : i + 4] for i in range(0, 4096, 4)])
        key = next(_mask_keys)
    return key


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame. The mask is applied by websockets' C `apply_mask` (0.06 us for
    a 40-byte input; the XOR of two Python ints it replaced: ~0.5 us of this frame's 0.9)."""
    n = len(payload)
    key = _mask_key()
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 0x10000:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + key + apply_mask(payload, key) if n else head + key


@lru_cache(maxsize=16)
def _target(url: str) -> tuple[str, int, ssl.SSLContext | None, bytes]:
    """(host, port, TLS context or None, the request line and fixed headers) for a ws:// or wss:// URL."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    shown = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        shown += f":{parts.port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = (
        f"GET {path} HTTP/1.1\r\nHost: {shown}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Version: 13\r\nUser-Agent: {USER_AGENT}\r\n"
    ).encode()
    return host, port, (ssl.create_default_context() if secure else None), head


def _tokens(values: list[bytes]) -> set[bytes]:
    return {tok.strip().lower() for v in values for tok in v.split(b",")}


def check_handshake(head: bytes, key: bytes) -> str | None:
    """The server's answer to the opening handshake (status line and headers,
    without the blank line): None when it accepts, else the reason."""
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].isdigit():
        return "handshake failed: not an HTTP response"
    code = int(status[1])
    if code != 101:
        return f"HTTP {code}"
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            return "handshake failed: malformed header line"
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if b"websocket" not in _tokens(headers.get(b"upgrade", [])):
        return "handshake failed: no Upgrade: websocket"
    if b"upgrade" not in _tokens(headers.get(b"connection", [])):
        return "handshake failed: no Connection: Upgrade"
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    if headers.get(b"sec-websocket-accept") != [accept]:
        return "handshake failed: wrong Sec-WebSocket-Accept"
    if headers.get(b"sec-websocket-extensions"):
        return "handshake failed: an extension that was not offered"
    if headers.get(b"sec-websocket-protocol"):
        return "handshake failed: a subprotocol that was not offered"
    return None


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()[:123]


# -- the bot ---------------------------------------------------------------------


class Bot(asyncio.Protocol):
    def __init__(
        self,
        index: int,
        url: str,
        scenario: Scenario,
        tally: Tally,
        window_at: float,
        seed: int = 0,
        version: int = VERSION,
    ):
        self.index = index
        self.version = version  # the protocol version of its hello
        self.window_at = window_at  # monotonic time the steady window starts
        self.name = f"bot {index}"
        self.url = url
        self.scenario = scenario
        self.full = bool(getattr(scenario, "full_updates", True))  # decode every update (see module docstring)
        self.tally = tally
        self.rng = random.Random(seed * 1_000_003 + index)
        self.transport: asyncio.Transport | None = None
        self.state = HANDSHAKE
        self.paused = False  # the socket's send buffer is over WRITE_HIGH_WATER
        self.open = False  # welcome received and not yet closed
        self.fast = False  # open, updates read from their head only (not full_updates), no fragmented message
        self.closing = False  # we started the closing handshake (end of the run)
        self.close_sent = False
        self.close_code: int | None = None  # from the server's close frame
        self.close_reason = ""
        self._key = b""
        self._head = b""  # the HTTP answer so far
        self._buf = bytearray()  # an incomplete frame
        self._need = 0  # bytes _buf must hold before parsing is worth another try
        self._frag_op = -1  # opcode of a fragmented message in progress, else -1
        self._frags: list[bytes] = []
        self._frag_len = 0
        self._joined: asyncio.Future | None = None
        self._lost: asyncio.Future | None = None
        self.id = -1
        self.welcome: dict = {}
        self.visible: dict[int, list] = {}
        self.outgoing: list[tuple[str, int, bytes]] = []  # (kind, key, payload) queued by the scenario
        self.seq = 0
        self.ping_id = 0
        self.pending_inputs: deque[tuple[int, float]] = deque()  # (seq, sent at), oldest first
        self.pending_pings: dict[int, float] = {}  # ping id -> sent at
        # Everything this bot saw, for its line in the report.
        self.opened_at: float | None = None
        self.ended_at: float | None = None
        self.end = "not started"  # finished | closed NNNN reason | failed: reason | error: ...
        self.updates = 0
        self.bytes = 0
        self.msgs_in = 0
        self.msgs_out = 0
        self.missed_ticks = 0
        self.chat_heard = 0
        self.sent = {"hello": 0, "input": 0, "ping": 0, "chat": 0, "talk": 0}
        self.errors: dict[str, int] = {}
        self.last_update_at: float | None = None
        self.last_tick = -1
        self.gap = LogHistogram()
        self.rtt = LogHistogram()
        self.ack = LogHistogram()
        self.second_mark = 0  # updates at the start of the current second (per-client rate)
        self.window_mark: tuple[float, int, int] | None = None  # (time, updates, bytes) at the steady window's start
        self.window_end: tuple[float, int, int] | None = None

    # -- what a scenario calls ----------------------------------------------

    def move(self, dx: float, dy: float) -> None:
        self.seq += 1
        self.outgoing.append(("input", self.seq, _packb({"t": "input", "seq": self.seq, "dx": dx, "dy": dy})))

    def ping(self) -> None:
        self.ping_id += 1
        self.outgoing.append(("ping", self.ping_id, _packb({"t": "ping", "id": self.ping_id})))

    def say(self, text: str) -> None:
        self.outgoing.append(("chat", 0, _packb({"t": "chat", "text": text})))

    def talk(self, npc: int, text: str) -> None:
        self.outgoing.append(("talk", 0, _packb({"t": "talk", "npc": npc, "text": text})))

    # -- the run ----------------------------------------------------------------

    async def run(self) -> None:
        """Connect, handshake, say hello, wait for welcome (all within
        OPEN_TIMEOUT_S), then wait for the connection to end; the protocol
        callbacks below do the rest."""
        loop = asyncio.get_running_loop()
        self._joined = loop.create_future()
        self._lost = loop.create_future()
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                host, port, tls, _ = _target(self.url)
                await loop.create_connection(lambda: self, host, port, ssl=tls, server_hostname=host if tls else None)
                await self._joined
        except asyncio.CancelledError:
            self.abort()  # the run ended while this bot was still connecting
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is a measured outcome
            if not self.open:  # (a timeout in the same instant as welcome is a success)
                self.abort()
                self.state = CLOSED
                self._ended("failed: " + describe_failure(exc))
                self.tally.connect_failures += 1
                return
        await self._lost

    def abort(self) -> None:
        """Drop the socket at once (no closing handshake); a no-op once closed."""
        if self.transport is not None:
            self.transport.abort()

    async def close(self) -> None:
        """End of the run: close with 1000, keep reading until the server's
        close frame (so every message it sent before is counted), bounded by
        CLOSE_TIMEOUT_S + 1 s; then the socket is dropped."""
        now = _now()
        if self.open and self.window_mark is not None and self.window_end is None:
            self.window_end = (now, self.updates, self.bytes)
        if self.transport is None or self._lost is None:
            return
        self.closing = True
        if self.state != CLOSED and not self.close_sent:
            self._send_close(1000)
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), CLOSE_TIMEOUT_S + 1)
        except Exception:  # noqa: BLE001 - timed out: drop the socket
            self.abort()

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._key = base64.b64encode(os.urandom(16))
        transport.write(_target(self.url)[3] + b"Sec-WebSocket-Key: " + self._key + b"\r\n\r\n")

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def connection_lost(self, exc) -> None:
        was = self.state
        self.state = CLOSED
        self.fast = False
        if self._joined is not None and not self._joined.done():
            if was == HANDSHAKE:
                why = "handshake failed: connection closed"
            elif self.close_code is not None:
                why = f"closed {self.close_code} {self.close_reason}".strip()
            else:
                why = "closed 1006 (no close frame)"
            self._joined.set_exception(JoinFailed(why))
        elif self.open:
            self._closed_end()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.fast and not self._buf:
            # The common case in one step: this read is exactly one final binary
            # frame holding an update in the server's layout (in version 2: without chat).
            n = len(data)
            if n > 7 and data[0] == 0x82:
                b1 = data[1]
                if b1 == 126:
                    hl = 4
                    end = 4 + ((data[2] << 8) | data[3])
                else:
                    hl = 2
                    end = 2 + b1
                head: tuple[int, ...] | None = None
                if end == n and b1 != 127:
                    if self.version >= 3:  # (tick, ack, chat lines), chat or not
                        head = read_update3_head(data, hl, n)
                    elif n > 40 and data.endswith(EMPTY_CHAT_TAIL):
                        two = read_update_head(data, hl, n)
                        head = None if two is None else (two[0], two[1], 0)
                    if head is not None:
                        n -= hl
                        self.msgs_in += 1
                        self.bytes += n
                        tally = self.tally
                        tally.msgs_in += 1
                        tally.bytes += n
                        self._update(head[0], head[1], head[2], _now())
                        return
        try:
            if self.state != PLAYING:
                if self.state == HANDSHAKE:
                    data = self._handshake(data)
                    if not data:
                        return
                else:
                    return  # CLOSED: after the server's close frame nothing counts
            buf = self._buf
            if buf:
                buf += data
                if len(buf) < self._need:
                    return
                data = bytes(buf)
                buf.clear()
            self._frames(data)
        except Exception as exc:  # noqa: BLE001 - e.g. bytes that are not msgpack: a measured outcome
            self._fail(f"error: {type(exc).__name__}", 1002 if isinstance(exc, _ProtocolError) else 1011)

    # -- incoming -----------------------------------------------------------------

    def _handshake(self, data: bytes) -> bytes:
        head = self._head + data
        i = head.find(b"\r\n\r\n")
        if i < 0:
            self._head = head
            if len(head) > MAX_RESPONSE_HEAD:
                self._join_failed("handshake failed: response headers too long")
            return b""
        self._head = b""
        why = check_handshake(head[:i], self._key)
        if why is not None:
            self._join_failed(why)
            return b""
        self.state = PLAYING
        assert self.transport is not None  # bytes came in through it
        self.transport.write(client_frame(OP_BINARY, _packb({"t": "hello", "v": self.version, "name": self.name})))
        self.msgs_out += 1
        self.sent["hello"] += 1
        self.tally.msgs_out += 1
        return head[i + 4 :]

    def _join_failed(self, why: str) -> None:
        self.state = CLOSED
        if self._joined is not None and not self._joined.done():
            self._joined.set_exception(JoinFailed(why))
        self.abort()

    def _frames(self, data: bytes) -> None:
        """Handle every complete frame in data; keep the rest for the next read."""
        n = len(data)
        pos = 0
        now = _now()
        while True:
            avail = n - pos
            if avail < 2:
                need = 2
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            hl = 2
            if length == 126:
                if avail < 4:
                    need = 4
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                hl = 4
            elif length == 127:
                if avail < 10:
                    need = 10
                    break
                length = _from_bytes(data[pos + 2 : pos + 10], "big")
                hl = 10
            if b1 & 0x80 or b0 & 0x70:
                raise _ProtocolError("masked frame or reserved bits from the server")
            if length > MAX_INCOMING or self._frag_len + length > MAX_INCOMING:
                self._fail("error: message too big", 1009)
                return
            start = pos + hl
            end = start + length
            if end > n:
                need = end - pos
                break
            pos = end
            op = b0 & 0x0F
            if op == OP_BINARY and b0 & 0x80 and self._frag_op < 0:  # nearly every frame
                self._message(data, start, end, now)
            elif op >= 8:
                if not b0 & 0x80 or length > 125:
                    raise _ProtocolError("bad control frame")
                if op == OP_PING:
                    assert self.transport is not None  # the ping came in through it
                    self.transport.write(client_frame(OP_PONG, data[start:end]))
                elif op == OP_CLOSE:
                    self._close_received(data[start:end])
                    return
                elif op != OP_PONG:
                    raise _ProtocolError(f"unknown opcode {op}")
            elif op == OP_CONT:
                if self._frag_op < 0:
                    raise _ProtocolError("continuation frame without a message")
                self._frags.append(data[start:end])
                self._frag_len += length
                if b0 & 0x80:
                    whole = b"".join(self._frags)
                    kind = self._frag_op
                    self._frags, self._frag_len, self._frag_op = [], 0, -1
                    self.fast = self.open and not self.full and self.state == PLAYING
                    if kind != OP_BINARY:
                        self._fail("error: text frame", 1003)  # the protocol is binary only
                        return
                    self._message(whole, 0, len(whole), now)
            elif op in (OP_BINARY, OP_TEXT):
                if self._frag_op >= 0:
                    raise _ProtocolError("new message inside a fragmented one")
                if b0 & 0x80:
                    self._fail("error: text frame", 1003)  # the protocol is binary only
                    return
                self._frag_op = op
                self.fast = False
                self._frags.append(data[start:end])
                self._frag_len = length
            else:
                raise _ProtocolError(f"unknown opcode {op}")
            if self.state != PLAYING:
                return
        if pos < n:
            self._buf += data[pos:] if pos else data
            self._need = need

    def _message(self, data: bytes, start: int, end: int, now: float) -> None:
        """One binary message, data[start:end]."""
        n = end - start
        tally = self.tally
        self.msgs_in += 1
        self.bytes += n
        tally.msgs_in += 1
        tally.bytes += n
        if not self.open:
            msg = _unpackb(data[start:end])
            if type(msg) is not dict:
                return  # (an update before the welcome: none is sent)
            kind = msg.get("t")
            if kind == "welcome":
                self._welcome(msg, now)
            elif kind == "error":
                self._error(msg)
            return
        if not self.full:
            if self.version >= 3:
                head3 = read_update3_head(data, start, end)
                if head3 is not None:
                    self._update(head3[0], head3[1], head3[2], now)
                    return
            else:
                head = read_update_head(data, start, end)
                if head is not None:
                    if data.endswith(EMPTY_CHAT_TAIL, start, end):
                        self._update(head[0], head[1], 0, now)
                    else:
                        self._update(head[0], head[1], len(_unpackb(data[start:end])["chat"]), now)
                    return
        msg = _unpackb(data[start:end])
        if type(msg) is list:
            msg = update3_as_map(msg)
        kind = msg.get("t")
        if kind == "update":
            if self.full:
                visible = self.visible
                for eid in msg["leave"]:
                    visible.pop(eid, None)
                for rec in msg["enter"]:
                    visible[rec[0]] = rec
            self._update(msg["tick"], msg["ack"], len(msg["chat"]), now)
            if not self.full:
                return  # (an update laid out otherwise than the server's usual)
        elif kind == "pong":
            sent = self.pending_pings.pop(msg.get("id"), None)
            if sent is not None:
                i = bucket_of((now - sent) * 1000.0)
                self.rtt.counts[i] = self.rtt.counts.get(i, 0) + 1
                self.rtt.n += 1
                tally.rtt.counts[i] = tally.rtt.counts.get(i, 0) + 1
                tally.rtt.n += 1
        elif kind == "error":
            self._error(msg)
        self.scenario.on_message(self, msg)

    def _welcome(self, msg: dict, now: float) -> None:
        self.welcome = msg
        self.id = msg["id"]
        self.opened_at = now
        self.open = True
        self.fast = not self.full
        self.tally.connects += 1
        if now >= self.window_at - 0.05:  # the worker marks the open bots at about window_at
            self.mark_window(now)
        self.scenario.on_start(self, now)
        if self._joined is not None and not self._joined.done():
            self._joined.set_result(None)

    def _error(self, msg: dict) -> None:
        code = str(msg.get("code"))
        self.errors[code] = self.errors.get(code, 0) + 1
        self.tally.errors[code] = self.tally.errors.get(code, 0) + 1

    def _update(self, tick: int, ack: int, chat: int, now: float) -> None:
        tally = self.tally
        self.updates += 1
        tally.updates += 1
        last = self.last_update_at
        if last is not None:
            i = bucket_of((now - last) * 1000.0)
            self.gap.counts[i] = self.gap.counts.get(i, 0) + 1
            self.gap.n += 1
            tally.gap.counts[i] = tally.gap.counts.get(i, 0) + 1
            tally.gap.n += 1
        self.last_update_at = now
        if self.last_tick >= 0 and tick > self.last_tick + 1:
            self.missed_ticks += tick - self.last_tick - 1  # coalesced by the server (a slow reader)
            tally.missed_ticks += tick - self.last_tick - 1
        self.last_tick = tick
        if chat:
            self.chat_heard += chat
        pending = self.pending_inputs
        if pending and pending[0][0] <= ack:
            # Latency counts from sending an input to the first update that
            # acknowledges it (or a later input: acks are cumulative).
            while pending and pending[0][0] <= ack:
                _, sent = pending.popleft()
                i = bucket_of((now - sent) * 1000.0)
                self.ack.counts[i] = self.ack.counts.get(i, 0) + 1
                self.ack.n += 1
                tally.ack.counts[i] = tally.ack.counts.get(i, 0) + 1
                tally.ack.n += 1

    def _close_received(self, payload: bytes) -> None:
        """The server's close frame: record it, echo it (unless this answers
        ours), and let the server close the TCP connection (dropped after
        CLOSE_TIMEOUT_S if it does not)."""
        if len(payload) >= 2:
            self.close_code = _from_bytes(payload[:2], "big")
            self.close_reason = payload[2:].decode("utf-8", "replace")
        else:
            self.close_code, self.close_reason = 1005, ""
        self.fast = False
        if not self.close_sent:
            self._send_close(self.close_code if len(payload) >= 2 else None)
        self.state = CLOSED
        if self._joined is not None and not self._joined.done():
            self._joined.set_exception(JoinFailed(f"closed {self.close_code} {self.close_reason}".strip()))
        elif self.open:
            self._closed_end()
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self.abort)

    def _closed_end(self) -> None:
        if self.closing:
            self._ended("finished")
        elif self.close_code is not None:
            self._ended(f"closed {self.close_code} {self.close_reason}".strip())
        else:
            self._ended("closed 1006 (no close frame)")

    def _fail(self, how: str, code: int) -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame with `code`, then the socket closes."""
        if self.state == CLOSED:
            return
        self.fast = False
        if self._joined is not None and not self._joined.done():
            self._joined.set_exception(JoinFailed(how))
        elif self.open:
            self._ended(how)
        if not self.close_sent:
            self._send_close(code)
        self.state = CLOSED
        if self.transport is not None:
            self.transport.close()

    # -- outgoing -------------------------------------------------------------------

    def _send_close(self, code: int | None) -> None:
        self.close_sent = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(OP_CLOSE, b"" if code is None else close_payload(code)))

    def flush(self) -> None:
        """Send what the scenario queued, in one write. Never waits on a full
        socket: when the server stops reading, queued messages are dropped and
        counted (send_skips), so one stuck connection cannot stall its worker."""
        out = self.outgoing
        if not out:
            return
        self.outgoing = []
        transport = self.transport
        if not self.open or self.state != PLAYING or self.close_sent or self.paused or transport is None:
            self.tally.send_skips += len(out)
            return
        now = _now()
        tally = self.tally
        frames = []
        for kind, key, payload in out:
            frames.append(client_frame(OP_BINARY, payload))
            self.msgs_out += 1
            self.sent[kind] += 1
            tally.msgs_out += 1
            if kind == "input":
                self.pending_inputs.append((key, now))
                if len(self.pending_inputs) > MAX_PENDING:
                    self.pending_inputs.popleft()
            elif kind == "ping":
                self.pending_pings[key] = now
                if len(self.pending_pings) > MAX_PENDING:
                    self.pending_pings.pop(next(iter(self.pending_pings)))
        transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    # -- bookkeeping ----------------------------------------------------------------

    def mark_window(self, now: float) -> None:
        if self.open and self.window_mark is None:
            self.window_mark = (now, self.updates, self.bytes)

    def _ended(self, how: str) -> None:
        if self.ended_at is not None:
            return  # the first way it ended is the one that counts
        now = _now()
        if self.open and self.window_mark is not None and self.window_end is None:
            self.window_end = (now, self.updates, self.bytes)
        self.open = self.fast = False
        self.ended_at = now
        self.end = how
        if how != "finished":
            self.tally.ends[how] = self.tally.ends.get(how, 0) + 1
            if not how.startswith("failed"):
                self.tally.disconnects += 1

    def summary(self, t0: float) -> dict:
        """This bot's line in the report (times in seconds after the start, latencies in ms)."""

        def rel(t):
            return None if t is None else round(t - t0, 3)

        rate = bps = None
        if self.window_mark and self.window_end:
            t_a, u_a, b_a = self.window_mark
            t_b, u_b, b_b = self.window_end
            if t_b - t_a >= 0.5:
                rate = (u_b - u_a) / (t_b - t_a)
                bps = (b_b - b_a) / (t_b - t_a)

        def pct(h, q):
            v = h.percentile(q)
            return None if v is None else round(v, 3)

        return {
            "bot": self.index,
            "id": self.id,
            "opened": rel(self.opened_at),
            "ended": rel(self.ended_at),
            "end": self.end,
            "updates": self.updates,
            "bytes": self.bytes,
            "msgs_in": self.msgs_in,
            "msgs_out": self.msgs_out,
            "sent": self.sent,
            "missed_ticks": self.missed_ticks,
            "chat_heard": self.chat_heard,
            "updates_per_s": None if rate is None else round(rate, 3),
            "bytes_per_s": None if bps is None else round(bps, 1),
            "gap_p50": pct(self.gap, 50),
            "gap_p99": pct(self.gap, 99),
            "rtt_p50": pct(self.rtt, 50),
            "rtt_p99": pct(self.rtt, 99),
            "ack_p50": pct(self.ack, 50),
            "ack_p99": pct(self.ack, 99),
            "errors": self.errors,
            "tick_rate": self.welcome.get("tick_rate"),
            "close_code": self.close_code,
            **(self.scenario.summary() or {}),
        }


class _ProtocolError(Exception):
    """The server broke RFC 6455 framing; the connection is failed with 1002."""
