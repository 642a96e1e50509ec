"""The tick process's side of `npcworld serve --gateways N` (issue 14): N gateway processes
(server/gateway_proc.py) serve the game port, each on its own listening socket bound to the same
port with SO_REUSEPORT (the kernel spreads new connections over them), each behind a socketpair
(server/gateway_link.py). The room stays here, whole: joins, seats and 4003 are decided here, as
gateway.Seats decides them in one process; the gateways do everything per connection.

`Gateways` is the room's Outbound: each player's events go to the gateway and connection holding its
seat, in order, as CONTROL items; its update goes into that gateway's batch. Right after the tick
(call_soon, as the Flusher) every gateway gets one CONTROL message and one UPDATES message, in which
each distinct View travels once: bench/gateway_ipc.py measured that at 0.06-0.09x of the CPU the
tick process spends flushing the same updates into its own sockets (README "Capacity").

A gateway that dies does not stop the room: its players leave as on a disconnect (their characters
stay for the grace period, so they can resume through another gateway), and the port goes on being
served by the others. It is not restarted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable

import msgpack

from world import protocol
from world.protocol import Chat, Hello, Input, Talk
from world.snapshot import View

from . import events
from .config import NetSection
from .events import Refused, Replaced, Welcome
from .game import Game
from .gateway import SWEEP_S
from . import gateway_link as wire
from .gateway_proc import COUNTERS
from .metrics import Metrics

log = logging.getLogger("npcworld.gateways")

ROOT = Path(__file__).resolve().parent.parent
# Bytes the tick process holds for a gateway that does not read (stopped, or far behind) before it is
# dropped as a dead one: about 3 s of updates at 2,400 players (bench/gateway_ipc.py: ~0.85 MB a
# tick to 2 gateways), so a gateway process's stall cannot grow this process's memory without end.
LINK_BEHIND = 64 * 1024 * 1024
START_S = 60.0  # how long a start waits for every gateway process to accept connections
STOP_S = 10.0  # how long a stop waits for a gateway to close its connections (1001) and end


def listening_sockets(host: str, port: int, n: int) -> list[socket.socket]:
    """n listening TCP sockets on one port, SO_REUSEPORT. The port is first bound alone (no
    SO_REUSEPORT; `port` 0: any free one), so that a port in use, by another npcworld with gateways
    too, is refused (OSError: address in use) instead of shared: any socket of this user with
    SO_REUSEPORT could join the group, and would take its share of the connections."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # as asyncio's servers: a restart's TIME_WAIT is fine
        probe.bind(addr)
        addr = (addr[0], probe.getsockname()[1], *addr[2:])
    out: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(family, kind, proto)
            out.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(addr)
            s.listen(2048)
    except OSError:
        for s in out:
            s.close()
        raise
    return out


class Gateways:
    """The room's Outbound (server/events.py) across the gateway processes. Invariant, as Seats': `of`
    maps a player to at most one (gateway, connection), the newest; a Replaced unmaps the old one and
    closes it (4003) before the new one is seated."""

    def __init__(self, net: NetSection, metrics: Metrics, map_path: str, log_level: str = "info") -> None:
        self.net, self.metrics, self.map_path, self.log_level = net, metrics, map_path, log_level
        self.game: Game | None = None  # set by start
        self.of: dict[int, tuple[int, int]] = {}  # player id -> (gateway, connection id)
        self.seat_of: dict[tuple[int, int], int] = {}  # (gateway, connection id) -> player id
        self.joining: tuple[int, int] | None = None
        self.links: list[wire.Link | None] = []
        self.procs: list[subprocess.Popen] = []
        self.control: list[list[list[Any]]] = []  # per gateway: CONTROL items since the last send
        self.batch: list[list[tuple[int, int, View]]] = []  # per gateway: this tick's updates
        self.tick = 0
        self.scheduled = False
        self.stats: list[dict[str, Any]] = []  # per gateway: its last STATS
        self.port = 0
        self.stopping = False
        self._sent_map: Any = None  # the map as last sent to the gateways (PAGES)

    # -- the room's Outbound ----------------------------------------------------

    def event(self, player: int, event: events.Event) -> None:
        where = self.of.get(player)
        if type(event) is Replaced:
            if where is not None:
                del self.of[player]
                self.seat_of.pop(where, None)
                reason = "replaced: this character was resumed by a newer connection"
                self._queue(where[0], [wire.CLOSE, where[1], protocol.CLOSE_REPLACED, reason])
            return
        if where is None:
            where = self.joining
            if where is None:
                return  # gone between the room's last look and now
            if type(event) is Welcome:
                self.of[player] = where
                self.seat_of[where] = player
                log.info(
                    "%s %s (%d) on gateway %d", "resumed" if event.resumed else "joined", event.name, player, where[0]
                )
        error = event.error.code if type(event) is Refused else None
        self._queue(where[0], [wire.SEND, where[1], events.encode(event), error])
        if type(event) is Welcome:
            self._queue(where[0], [wire.SEAT, where[1], player, event.name])

    def update(self, player: int, tick: int, ack: int, view: View) -> None:
        where = self.of.get(player)
        if where is not None:
            self.tick = tick
            self.batch[where[0]].append((where[1], ack, view))
            self._schedule()

    def _queue(self, g: int, item: list[Any]) -> None:
        self.control[g].append(item)
        self._schedule()

    def _schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.send)

    def send(self) -> None:
        """Every gateway's CONTROL items, then its updates: right after the tick, one message each."""
        self.scheduled = False
        for g, link in enumerate(self.links):
            control, batch = self.control[g], self.batch[g]
            self.control[g], self.batch[g] = [], []
            if link is None:
                continue
            t = link.transport
            if t is not None and t.get_write_buffer_size() > LINK_BEHIND:
                log.error("gateway %d read nothing of its last %d bytes: dropped", g, t.get_write_buffer_size())
                t.close()  # its players leave (lost); it sees the end of the link and closes its sockets
                continue
            if control:
                link.send(wire.CONTROL, msgpack.packb(control))
            if batch:
                link.send(wire.UPDATES, wire.pack_updates(self.tick, batch))

    # -- from the gateways --------------------------------------------------------

    def on_message(self, g: int, kind: bytes, payload: bytes) -> None:
        game = self.game
        assert game is not None
        if kind == wire.COMMANDS:
            of = self.of
            for c in msgpack.unpackb(payload):
                eid = c[0]
                where = of.get(eid)
                if where is None or where[0] != g:
                    continue  # its seat was taken meanwhile (4003: by another gateway's connection) or it left
                code = c[1]
                msg: Input | Chat | Talk = (
                    Input(c[2], c[3], c[4])
                    if code == wire.INPUT
                    else Chat(c[2])
                    if code == wire.CHAT
                    else Talk(c[2], c[3])
                )
                game.command(eid, msg)
        elif kind == wire.JOIN:
            cid, first = msgpack.unpackb(payload)
            self.join(g, cid, first)
        elif kind == wire.LEAVE:
            (cid,) = msgpack.unpackb(payload)
            eid = self.seat_of.pop((g, cid), None)
            if eid is not None and self.of.get(eid) == (g, cid):
                del self.of[eid]
                game.leave(eid)
        elif kind == wire.STATS:
            self.stats[g] = msgpack.unpackb(payload, strict_map_key=False)
            self.sum_stats()
        else:
            log.error("gateway %d sent an unknown message kind %r", g, kind)

    def join(self, g: int, cid: int, first: bytes) -> None:
        """A gateway's connection with a checked hello: seated (its events, then SEAT), or refused (4004)."""
        game = self.game
        assert game is not None
        hello = protocol.decode(first)  # checked by the gateway (gateway.read_hello)
        assert type(hello) is Hello
        if game.connected() >= self.net.max_players:
            self._queue(g, [wire.CLOSE, cid, protocol.CLOSE_FULL, "server full"])
            return
        self.joining = (g, cid)
        try:
            game.join(hello)
        finally:
            self.joining = None

    def lost(self, g: int) -> None:
        """Gateway g is gone: its players leave as on a disconnect; the others go on."""
        if self.links[g] is None:
            return
        self.links[g] = None
        gone = [(eid, where) for eid, where in self.of.items() if where[0] == g]
        if self.game is not None and not self.stopping:
            log.error("gateway %d ended; its %d players leave", g, len(gone))
        for eid, where in gone:
            del self.of[eid]
            self.seat_of.pop(where, None)
            if self.game is not None:
                self.game.leave(eid)
        self.stats[g]["connections"] = 0
        self.sum_stats()

    def sum_stats(self) -> None:
        """The gateways' counters, summed, as this process's /metrics shows them."""
        m = self.metrics
        for name in COUNTERS:
            setattr(m, name, sum(s.get(name, 0) for s in self.stats))
        for name in ("errors_sent", "closes"):
            total: dict[Any, int] = {}
            for s in self.stats:
                for key, n in s.get(name, {}).items():
                    total[key] = total.get(key, 0) + n
            setattr(m, name, total)

    # -- the processes ------------------------------------------------------------

    async def start(self, game: Game, host: str, port: int, n: int) -> int:
        """Start n gateway processes on one port; returns the port."""
        self.game = game
        socks = listening_sockets(host, port, n)
        self.port = socks[0].getsockname()[1]
        self.links = [None] * n
        self.control = [[] for _ in range(n)]
        self.batch = [[] for _ in range(n)]
        self.stats = [{} for _ in range(n)]
        for g, listen in enumerate(socks):
            mine, theirs = socket.socketpair()
            cmd = [sys.executable, "-m", "server.gateway_proc", "--link", str(theirs.fileno())]
            cmd += ["--listen", str(listen.fileno()), "--map", self.map_path, "--log-level", self.log_level]
            if not self.net.direct_writes:
                cmd.append("--no-direct-writes")
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT, pass_fds=(theirs.fileno(), listen.fileno())))
            log.info("gateway %d of %d: pid %d on port %d", g, n, self.procs[-1].pid, self.port)
            theirs.close()
            listen.close()
            self.links[g] = await wire.open_link(
                mine,
                self._on_message_of(g),
                lambda g=g: self.lost(g),  # type: ignore[misc]
            )
        # each gateway's first STATS comes once it accepts: only then is the port served (the start's
        # "serving" line); a machine busy enough starts a Python process in seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_S
        while not all(self.stats) and loop.time() < deadline:
            if any(link is None for link in self.links):
                break  # one ended
            await asyncio.sleep(0.05)
        waiting = [g for g, (st, link) in enumerate(zip(self.stats, self.links)) if not st or link is None]
        if waiting:
            await self.close()
            raise RuntimeError(f"gateway process(es) {waiting} did not start within {START_S:.0f} s (see their log)")
        return self.port

    def _on_message_of(self, g: int) -> Callable[[bytes, bytes], None]:
        return lambda kind, payload: self.on_message(g, kind, payload)

    async def publish(self, health: Callable[[], dict], stop: asyncio.Event, every_s: float = SWEEP_S) -> None:
        """PAGES to every gateway every `every_s` until `stop`: /healthz, /metrics, and the map when it changed."""
        while not stop.is_set():
            game = self.game
            assert game is not None
            raw = game.world.map.raw
            new_map = None if raw is self._sent_map else json.dumps(raw)
            self._sent_map = raw
            try:
                payload = msgpack.packb([health(), self.metrics.render(), new_map])
                for link in self.links:
                    if link is not None:
                        link.send(wire.PAGES, payload)
            except Exception:  # the next sweep tries again; the gateways' /healthz says "stale" meanwhile
                log.exception("gateways: the pages could not be sent")
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                pass

    @asynccontextmanager
    async def serving(self, game: Game, net: NetSection) -> AsyncIterator["Gateways"]:
        """The game port served by net.gateways processes, as an edge's `serve` (its .port, close())."""
        await self.start(game, net.host, net.port, net.gateways)
        try:
            yield self
        finally:
            await self.close()

    async def close(self) -> None:
        """Each gateway closes its connections with 1001 and ends (STOP_S at most, then it is killed)."""
        self.stopping = True
        loop = asyncio.get_running_loop()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                await loop.run_in_executor(None, p.wait, STOP_S)
            except subprocess.TimeoutExpired:
                log.error("gateway pid %d did not end in %.0f s: killed", p.pid, STOP_S)
                p.kill()
                await loop.run_in_executor(None, p.wait)
