"""One bot: a WebSocket connection that speaks docs/protocol.md, plays a
scenario and measures what it sees.

Kept cheap on purpose (a process runs hundreds of these, and the server must
saturate before the bots do): an update is decoded with one C call
(`msgpack.unpackb`) and only `tick`, `ack`, `enter` and `leave` are looked at;
cell blocks (positions) are never unpacked. Outgoing messages are queued by
the scenario's hooks and written by `flush`, which the worker calls right
after `on_tick`.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import deque

import msgpack
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from .plan import CLOSE_TIMEOUT_S, OPEN_TIMEOUT_S
from .scenarios import Scenario
from .stats import LogHistogram, bucket_of

MAX_PENDING = 256  # inputs/pings awaiting their ack/pong; older ones are forgotten (a server that stopped answering)
MAX_INCOMING = 1 << 20  # bytes: a bigger message from the server closes the connection (1009)

_packb = msgpack.packb
_unpackb = msgpack.unpackb
_now = time.monotonic


class Tally:
    """What all bots of one worker saw in the current second: counters and
    histograms the bots add to directly, taken (and reset) once a second."""

    FIELDS = ("updates", "bytes", "msgs_in", "msgs_out", "connects", "connect_failures", "disconnects",
              "missed_ticks", "send_skips")

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
        out.update(errors=self.errors, ends=self.ends,
                   gap=self.gap.take(), rtt=self.rtt.take(), ack=self.ack.take())
        self.reset()
        return out


def describe_failure(exc: BaseException) -> str:
    """A short, stable reason for a failed connect, used as a counter key."""
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        return f"closed {rcvd.code} {rcvd.reason}".strip() if rcvd else "closed 1006 (no close frame)"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, InvalidURI):
        return "invalid URL"
    if isinstance(exc, InvalidHandshake):
        return f"handshake failed: {exc}"[:60]
    if isinstance(exc, OSError):
        return (exc.strerror or type(exc).__name__)[:60]
    return type(exc).__name__


class Bot:
    def __init__(self, index: int, url: str, scenario: Scenario, tally: Tally, window_at: float, seed: int = 0):
        self.index = index
        self.window_at = window_at  # monotonic time the steady window starts
        self.name = f"bot {index}"
        self.url = url
        self.scenario = scenario
        self.tally = tally
        self.rng = random.Random(seed * 1_000_003 + index)
        self.ws = None
        self.open = False  # welcome received and not yet closed
        self.closing = False  # we started the closing handshake (end of the run)
        self.id = -1
        self.welcome: dict = {}
        self.visible: dict[int, list] = {}
        self.outgoing: list[tuple[str, int, bytes]] = []  # (kind, key, frame) queued by the scenario
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
        self.sent = {"hello": 0, "input": 0, "ping": 0, "chat": 0}
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

    # -- connection -----------------------------------------------------------

    async def run(self) -> None:
        """Connect, say hello, wait for welcome, then read until the connection ends."""
        tally = self.tally
        try:
            ws = await asyncio.wait_for(self._join(), OPEN_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - every failure is a measured outcome
            reason = "failed: " + describe_failure(exc)
            self._ended(reason)
            tally.connect_failures += 1
            return
        now = _now()
        self.opened_at = now
        self.open = True
        tally.connects += 1
        if now >= self.window_at - 0.05:  # the worker marks the open bots at about window_at
            self.mark_window(now)
        self.scenario.on_start(self, now)
        await self._read(ws)

    async def _join(self):
        # Offers permessage-deflate, as browsers do: the server's cost of
        # compressing every update per connection is part of what is measured.
        self.ws = ws = await websockets.connect(
            self.url, open_timeout=None, close_timeout=CLOSE_TIMEOUT_S,
            ping_interval=None,  # like a browser: it answers the server's pings, never sends its own
            max_size=MAX_INCOMING, max_queue=64, user_agent_header="npcworld-bots",
        )
        try:
            await ws.send(_packb({"t": "hello", "v": 1, "name": self.name}))
            self.msgs_out += 1
            self.sent["hello"] += 1
            self.tally.msgs_out += 1
            while True:
                data = await ws.recv()
                self._count_in(data)
                msg = _unpackb(data)
                if msg.get("t") == "welcome":
                    self.welcome = msg
                    self.id = msg["id"]
                    return ws
                if msg.get("t") == "error":
                    self._error(msg)
        except BaseException:
            ws.transport.abort()  # no closing handshake for a connect that failed or timed out
            raise

    def _count_in(self, data: bytes) -> None:
        n = len(data)
        self.msgs_in += 1
        self.bytes += n
        self.tally.msgs_in += 1
        self.tally.bytes += n

    def _error(self, msg: dict) -> None:
        code = str(msg.get("code"))
        self.errors[code] = self.errors.get(code, 0) + 1
        self.tally.errors[code] = self.tally.errors.get(code, 0) + 1

    async def _read(self, ws) -> None:
        tally = self.tally
        scenario = self.scenario
        try:
            async for data in ws:
                now = _now()
                self._count_in(data)
                msg = _unpackb(data)
                kind = msg.get("t")
                if kind == "update":
                    self._update(msg, now)
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
                scenario.on_message(self, msg)
        except ConnectionClosed:
            pass
        except Exception as exc:  # noqa: BLE001 - e.g. bytes that are not msgpack: a measured outcome
            self._ended(f"error: {type(exc).__name__}")
            ws.transport.abort()
            return
        if self.closing:
            self._ended("finished")
        else:
            rcvd = ws.protocol.close_rcvd
            self._ended(f"closed {rcvd.code} {rcvd.reason}".strip() if rcvd else "closed 1006 (no close frame)")

    def _update(self, msg: dict, now: float) -> None:
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
        tick = msg["tick"]
        if self.last_tick >= 0 and tick > self.last_tick + 1:
            self.missed_ticks += tick - self.last_tick - 1  # coalesced by the server (a slow reader)
            tally.missed_ticks += tick - self.last_tick - 1
        self.last_tick = tick
        visible = self.visible
        for eid in msg["leave"]:
            visible.pop(eid, None)
        for rec in msg["enter"]:
            visible[rec[0]] = rec
        if msg["chat"]:
            self.chat_heard += len(msg["chat"])
        ack = msg["ack"]
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

    async def flush(self) -> None:
        """Send what the scenario queued. Never waits on a full socket: when the
        server stops reading, queued messages are dropped and counted
        (send_skips), so one stuck connection cannot stall its worker."""
        out = self.outgoing
        if not out:
            return
        self.outgoing = []
        ws = self.ws
        if not self.open or ws.protocol.state is not State.OPEN or ws.paused:
            self.tally.send_skips += len(out)
            return
        now = _now()
        try:
            for kind, key, frame in out:
                await ws.send(frame)
                self.msgs_out += 1
                self.sent[kind] += 1
                self.tally.msgs_out += 1
                if kind == "input":
                    self.pending_inputs.append((key, now))
                    if len(self.pending_inputs) > MAX_PENDING:
                        self.pending_inputs.popleft()
                elif kind == "ping":
                    self.pending_pings[key] = now
                    if len(self.pending_pings) > MAX_PENDING:
                        self.pending_pings.pop(next(iter(self.pending_pings)))
        except ConnectionClosed:
            pass  # the reader records how it ended

    def mark_window(self, now: float) -> None:
        if self.open and self.window_mark is None:
            self.window_mark = (now, self.updates, self.bytes)

    def _ended(self, how: str) -> None:
        now = _now()
        if self.open and self.window_mark is not None and self.window_end is None:
            self.window_end = (now, self.updates, self.bytes)
        self.open = False
        self.ended_at = now
        self.end = how
        if how != "finished":
            self.tally.ends[how] = self.tally.ends.get(how, 0) + 1
            if not how.startswith("failed"):
                self.tally.disconnects += 1

    async def close(self) -> None:
        """End of the run: close with 1000, keep reading until the server's
        close frame (so every message it sent before is counted), bounded by
        CLOSE_TIMEOUT_S inside websockets plus one second here."""
        now = _now()
        if self.open and self.window_mark is not None and self.window_end is None:
            self.window_end = (now, self.updates, self.bytes)
        ws = self.ws
        if ws is None:
            return
        self.closing = True
        try:
            await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT_S + 1)
        except Exception:  # noqa: BLE001 - already closed or timed out: drop the socket
            ws.transport.abort()

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
            "bot": self.index, "id": self.id, "opened": rel(self.opened_at), "ended": rel(self.ended_at),
            "end": self.end, "updates": self.updates, "bytes": self.bytes,
            "msgs_in": self.msgs_in, "msgs_out": self.msgs_out, "sent": self.sent,
            "missed_ticks": self.missed_ticks, "chat_heard": self.chat_heard,
            "updates_per_s": None if rate is None else round(rate, 3),
            "bytes_per_s": None if bps is None else round(bps, 1),
            "gap_p50": pct(self.gap, 50), "gap_p99": pct(self.gap, 99),
            "rtt_p50": pct(self.rtt, 50), "rtt_p99": pct(self.rtt, 99),
            "ack_p50": pct(self.ack, 50), "ack_p99": pct(self.ack, 99),
            "errors": self.errors, "tick_rate": self.welcome.get("tick_rate"),
        }
