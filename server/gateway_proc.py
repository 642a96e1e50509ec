"""One gateway process of `npcworld serve --gateways N` (issue 14): the game port's sockets, on a
listening socket that shares the port with the other gateways (SO_REUSEPORT: the kernel spreads the
connections), each served by server/gateway.py's `Connection` as in one process (limits, rate and
strikes, decode, read checks, outbox and coalescing, direct writes, closes), with the room behind a
socketpair to the tick process (server/gateway_link.py).

What goes to the tick process: a connection's checked hello (JOIN; the tick process seats it or
refuses it, 4004), its players' commands, batched once per loop iteration (COMMANDS), its end
(LEAVE), and this process's counters every SWEEP_S (STATS), which /metrics sums. What comes back:
CONTROL (a connection's messages, its seat, a close such as 4003), UPDATES every tick (each distinct
View once: the bodies are built here, once per View, as in one process) and PAGES (/healthz,
/metrics, /map.json as the tick process last sent them, every SWEEP_S): this process answers the
HTTP routes of the game port too.

When the tick process is gone (the socketpair closes) this process closes its sockets with 1001 and
ends. Started by server/gateways.py as `python -m server.gateway_proc --link FD --listen FD ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import socket
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import msgpack

from world.protocol import CLOSE_INTERNAL, Chat, Input, Talk

from . import edge_picows, gateway
from .config import NetSection
from .gateway import SWEEP_S, Connection, Flusher, PlayerSocket, SocketClosed, accept, play, read_hello
from .gateway_link import (
    CHAT,
    CLOSE,
    COMMANDS,
    COMMANDS_PER_MESSAGE,
    COUNTERS,
    CONTROL,
    INPUT,
    JOIN,
    LEAVE,
    PAGES,
    SEAT,
    SEND,
    STATS,
    TALK,
    UPDATES,
    open_link,
    unpack_views,
)
from .http import Routes
from .metrics import Metrics

log = logging.getLogger("npcworld.gateway")

STALE_S = 4 * SWEEP_S  # seconds without PAGES after which /healthz says "stale" (the room is stuck)


@dataclass(slots=True)
class Seat:
    """The player a connection here holds the seat of (the tick process chose it)."""

    eid: int
    name: str


class RoomLink:
    """The room as a Connection here sees it (gateway.Room): the last tick the tick process sent, and
    commands, which go to it in one COMMANDS message per loop iteration."""

    def __init__(self) -> None:
        self.world = SimpleNamespace(tick=0)
        self.link: Any = None
        self.batch: list[list[Any]] = []

    def command(self, eid: int, msg: Input | Chat | Talk) -> None:
        if not self.batch:
            asyncio.get_running_loop().call_soon(self.send)
        if type(msg) is Input:
            self.batch.append([eid, INPUT, msg.seq, msg.dx, msg.dy])
        elif type(msg) is Chat:
            self.batch.append([eid, CHAT, msg.text])
        else:
            assert type(msg) is Talk
            self.batch.append([eid, TALK, msg.npc, msg.text])

    def send(self) -> None:
        """This loop iteration's commands, COMMANDS_PER_MESSAGE a message (the tick process's bound)."""
        batch, self.batch = self.batch, []
        if batch and self.link is not None:
            for i in range(0, len(batch), COMMANDS_PER_MESSAGE):
                self.link.send(COMMANDS, msgpack.packb(batch[i : i + COMMANDS_PER_MESSAGE]))


class Gateway:
    """This process's connections (by the id it gave each) and its end of the socketpair."""

    def __init__(self, net: NetSection) -> None:
        self.metrics = Metrics()
        self.flusher = Flusher()
        self.room = RoomLink()
        # gateway.Seats for its read checks (read_checks sweeps `of`: player id -> connection)
        self.seats = gateway.Seats(net)
        self.conns: dict[int, Connection] = {}  # every open connection, seated or not
        self.joins: dict[int, asyncio.Future[tuple[int, str] | None]] = {}  # None: seated; else (code, reason)
        self.next_id = 0
        self.pages: dict[str, Any] = {"health": {"status": "starting"}, "metrics": "", "map": {}}
        self.pages_at = -math.inf  # when the last PAGES came
        self.stop = asyncio.Event()
        self.link: Any = None

    def health(self) -> dict:
        """/healthz as the tick process last sent it; "stale" once it has sent none for STALE_S."""
        if time.monotonic() - self.pages_at > STALE_S:
            return {**self.pages["health"], "status": "stale"}
        return self.pages["health"]

    # -- from the tick process ------------------------------------------------

    def on_message(self, kind: bytes, payload: bytes) -> None:
        if kind == UPDATES:
            tick, views, records = unpack_views(payload)
            self.room.world.tick = tick
            conns = self.conns
            it = iter(records)
            for cid, i, ack in zip(it, it, it):  # (connection, view index, ack) per player
                conn = conns.get(cid)
                if conn is not None:  # else gone meanwhile: its LEAVE is on its way
                    conn.outbox.push_update(tick, ack, views[i])
            # written now, not at the end of the loop iteration: two ticks read at once (this process was
            # late) are two updates, as in one process; only a congested socket coalesces them
            self.flusher.flush()
        elif kind == CONTROL:
            for item in msgpack.unpackb(payload):
                self.control(item)
        elif kind == PAGES:
            health, metrics_text, raw_map = msgpack.unpackb(payload)
            self.pages["health"], self.pages["metrics"] = health, metrics_text
            self.pages_at = time.monotonic()
            if raw_map is not None:
                self.pages["map"] = json.loads(raw_map)
        else:
            log.error("gateway link: unknown message kind %r", kind)

    def control(self, item: list[Any]) -> None:
        what, cid = item[0], item[1]
        conn = self.conns.get(cid)
        if conn is None:
            return  # gone meanwhile
        if what == SEND:
            data, error = item[2], item[3]
            if error is not None:
                self.metrics.errors_sent[error] = self.metrics.errors_sent.get(error, 0) + 1
            conn.outbox.push(data)
        elif what == SEAT:
            conn.player = Seat(item[2], item[3])
            self.seats.of[item[2]] = conn
            joined = self.joins.pop(cid, None)
            if joined is not None and not joined.done():
                joined.set_result(None)
        elif what == CLOSE:
            code, reason = item[2], item[3]
            joined = self.joins.pop(cid, None)
            if joined is not None and not joined.done():
                joined.set_result((code, reason))  # refused before its seat (4004)
            else:
                self.unseat(conn)
                conn.close_soon(code, reason)

    def unseat(self, conn: Connection) -> None:
        if conn.player is not None and self.seats.of.get(conn.player.eid) is conn:
            del self.seats.of[conn.player.eid]

    def lost(self) -> None:
        if not self.stop.is_set():
            log.warning("gateway: the tick process is gone; closing every connection")
        self.link = self.room.link = None
        self.stop.set()

    # -- to the tick process ----------------------------------------------------

    async def report(self) -> None:
        """STATS every SWEEP_S until stopped."""
        while not self.stop.is_set():
            self.send_stats()
            try:
                await asyncio.wait_for(self.stop.wait(), SWEEP_S)
            except TimeoutError:
                pass

    def send_stats(self) -> None:
        m = self.metrics
        stats: dict[str, Any] = {name: getattr(m, name) for name in COUNTERS}
        stats["errors_sent"], stats["closes"] = m.errors_sent, m.closes
        if self.link is not None:
            self.link.send(STATS, msgpack.packb(stats))

    # -- one player's socket ------------------------------------------------------

    async def handle(self, ws: PlayerSocket) -> None:
        """As gateway.handle, with the seat decided by the tick process."""
        metrics = self.metrics
        cid, self.next_id = self.next_id, self.next_id + 1
        conn, closed = accept(ws, self.room, metrics, self.flusher, self.seats.direct_writes)
        self.conns[cid] = conn
        asked = False  # its JOIN went to the tick process, which may have seated it since
        try:
            hello = await read_hello(conn, closed)
            if hello is None or self.link is None:
                return
            joined = self.joins[cid] = asyncio.get_running_loop().create_future()
            self.link.send(JOIN, msgpack.packb([cid, conn.hello.result()]))
            asked = True
            await asyncio.wait((joined, closed), return_when=asyncio.FIRST_COMPLETED)
            if not joined.done():
                return  # gone before the tick process seated it (its seat, if any, is freed by LEAVE)
            refused = joined.result()
            if refused is not None:
                metrics.closes[refused[0]] = metrics.closes.get(refused[0], 0) + 1
                await ws.close(*refused)
                return
            await play(conn, closed)
        except SocketClosed:
            pass
        except Exception:  # never let one connection's bug reach others
            log.exception("connection handler failed")
            metrics.closes[CLOSE_INTERNAL] = metrics.closes.get(CLOSE_INTERNAL, 0) + 1
            await ws.close(CLOSE_INTERNAL, "internal error")
        finally:
            closed.cancel()
            self.joins.pop(cid, None)
            self.conns.pop(cid, None)
            self.unseat(conn)
            if asked and self.link is not None:
                self.link.send(LEAVE, msgpack.packb([cid]))
            metrics.connections -= 1


async def serve(net: NetSection, link_sock: socket.socket, listen_sock: socket.socket, map_path: str) -> None:
    gw = Gateway(net)
    gw.link = gw.room.link = await open_link(link_sock, gw.on_message, gw.lost)
    routes = Routes(map_path, lambda: gw.pages["map"], gw.health, lambda: gw.pages["metrics"])
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, gw.stop.set)
    async with edge_picows.serve(gw.handle, routes, net, sock=listen_sock) as listening:
        tasks = [
            loop.create_task(gateway.read_checks(gw.seats, gw.stop)),
            loop.create_task(gw.report()),
        ]
        await gw.stop.wait()
        await listening.close()  # 1001 to each, then every handler has returned (and sent its LEAVE)
        gw.send_stats()
        for t in tasks:
            await t
    if gw.link is not None and gw.link.transport is not None:
        gw.link.transport.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="one gateway process of npcworld serve --gateways N")
    ap.add_argument("--link", type=int, required=True, help="fd of this end of the socketpair")
    ap.add_argument("--listen", type=int, required=True, help="fd of the listening socket (SO_REUSEPORT)")
    ap.add_argument("--map", required=True, help="the map file (its folder serves /map/ images)")
    ap.add_argument("--no-direct-writes", action="store_true")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--slow-client-s", type=float, default=NetSection.slow_client_s, help="the read check's bound")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # the seats' limit (max_players) is the room's
    net = NetSection(direct_writes=not args.no_direct_writes, slow_client_s=args.slow_client_s)
    link_sock = socket.socket(fileno=args.link)
    listen_sock = socket.socket(fileno=args.listen)
    import uvloop

    started = time.monotonic()
    uvloop.run(serve(net, link_sock, listen_sock, args.map))
    log.info("gateway stopped after %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
