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
stay for the grace period, so they can resume through another gateway), the port goes on being
served by the others, and a replacement starts on the same port after a backoff (`restart_delay`).
So does a gateway that is dropped: one that reads nothing while LINK_BEHIND bytes pile up, or sends
anything the link's checks refuse (server/gateway_link.py): it is killed first, since it cannot be
trusted to close its sockets, and its listening socket would go on taking its share of new
connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable

import msgpack

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from world import protocol
from world.snapshot import View

from . import events
from .config import NetSection
from .events import Refused, Replaced, Welcome
from .game import Game
from .gateway import SWEEP_S
from . import gateway_link as wire
from .gateway_link import COUNTERS
from .metrics import Metrics, labelled

log = logging.getLogger("npcworld.gateways")

ROOT = Path(__file__).resolve().parent.parent
# Bytes the tick process holds for a gateway that does not read (stopped, or far behind) before it is
# dropped as a dead one: about 3 s of updates at 2,400 players (bench/gateway_ipc.py: ~0.85 MB a
# tick to 2 gateways), so a gateway process's stall cannot grow this process's memory without end.
LINK_BEHIND = 64 * 1024 * 1024
START_S = 60.0  # how long a start waits for every gateway process to accept connections
STOP_S = 10.0  # how long a stop waits for a gateway to close its connections (1001) and end
# A dead gateway's replacement waits RESTART_FIRST_S, doubled for each death within STABLE_S of its
# start, at most RESTART_MAX_S: a gateway that dies at once over and over (a bad build, no memory)
# costs a Python start every 30 s, not a loop of them; one that served a while restarts at once.
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
STABLE_S = 30.0


def restart_delay(last_delay: float, lived_s: float) -> float:
    """Seconds before a gateway that ended after `lived_s` seconds is started again, its last restart
    having waited `last_delay` (0: none yet)."""
    if lived_s >= STABLE_S:
        return RESTART_FIRST_S
    return min(RESTART_MAX_S, max(RESTART_FIRST_S, 2 * last_delay))


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
            out.append(joined_socket(family, addr))
    except OSError:
        for s in out:
            s.close()
        raise
    return out


def joined_socket(family: int, addr: tuple) -> socket.socket:
    """One more listening socket in the port's SO_REUSEPORT group (a restarted gateway's)."""
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(addr)
        s.listen(2048)
    except OSError:
        s.close()
        raise
    return s


class Gateways:
    """The room's Outbound (server/events.py) across the gateway processes. Invariant, as Seats': `of`
    maps a player to at most one (gateway, connection), the newest; a Replaced unmaps the old one and
    closes it (4003) before the new one is seated. `links[g]` is gateway g's live link, None while it
    is down; a message or an end from any other link of g (its dead predecessor's) is ignored."""

    def __init__(self, net: NetSection, metrics: Metrics, map_path: str, log_level: str = "info") -> None:
        self.net, self.metrics, self.map_path, self.log_level = net, metrics, map_path, log_level
        self.game: Game | None = None  # set by start
        self.of: dict[int, tuple[int, int]] = {}  # player id -> (gateway, connection id)
        self.seat_of: dict[tuple[int, int], int] = {}  # (gateway, connection id) -> player id
        self.joining: tuple[int, int] | None = None
        self.links: list[wire.Link | None] = []
        self.procs: list[subprocess.Popen | None] = []
        self.control: list[list[list[Any]]] = []  # per gateway: CONTROL items since the last send
        self.batch: list[wire.Updates] = []  # per gateway: this tick's updates
        self.tick = 0
        self.scheduled = False
        self.stats: list[dict[str, Any]] = []  # per gateway: its last STATS
        self.ended: dict[str, Any] = {}  # the counters of gateways that ended, so that totals never fall
        self.port = 0
        self.addr: tuple[int, tuple] | None = None  # (family, address) of the port, for a restart's socket
        self.up = False  # every gateway started once: from then on a dead one is restarted
        self.stopping = False
        self.started_at: list[float] = []  # per gateway: loop time of its process's start
        self.delay: list[float] = []  # per gateway: the wait before its last restart, s
        self.restarts: list[int] = []  # per gateway: restarts so far
        self.restarting: set[asyncio.Task] = set()
        self._sent_map: Any = None  # the map as last sent to the gateways (PAGES)
        self._has_map: set[wire.Link] = set()  # the links that got it (a restarted gateway's has not)
        metrics.add(self)

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
            # out.add(where[1], ack, view), inline (once per player and tick): each View indexed as the
            # room hands it over, so that the send walks the distinct Views only. With a list of (slot,
            # ack, View) walked again at the send, the tick's side cost 1.44-1.71 us per player, 1.23-1.28
            # this way (bench/gateway_ipc.py --path, 1,200 and 2,400 players, README "Gateway processes")
            out = self.batch[where[0]]
            i = out.index.get(id(view))
            if i is None:
                i = out.index[id(view)] = len(out.views)
                out.views.append(view)
            out.records += (where[1], i, ack)
            if not self.scheduled:
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
            self.control[g], self.batch[g] = [], wire.Updates()
            if link is None:
                continue  # (a link past LINK_BEHIND drops its gateway in its send)
            if control:
                link.send(wire.CONTROL, msgpack.packb(control))
            if batch:
                link.send(wire.UPDATES, batch.pack(self.tick))

    # -- from the gateways --------------------------------------------------------

    def on_message(self, g: int, link: wire.Link, kind: bytes, payload: bytes) -> None:
        """One message of gateway g's `link`. Anything it sends that is not a message of the link, and
        anything that fails handling it, drops that gateway (a log line, a restart): never this process."""
        if self.links[g] is not link:
            return  # a dropped gateway's last bytes
        try:
            self._handle(g, kind, payload)
        except Exception as err:
            if isinstance(err, ValueError):
                log.error("gateway %d sent a bad %r message (%s)", g, kind, err)
            else:
                log.exception("gateway %d: its %r message failed", g, kind)
            link.break_off(f"sent a bad {kind!r} message")

    def _handle(self, g: int, kind: bytes, payload: bytes) -> None:
        game = self.game
        assert game is not None
        if kind == wire.COMMANDS:
            of = self.of
            for eid, msg in wire.unpack_commands(payload):
                where = of.get(eid)
                if where is None or where[0] != g:
                    continue  # its seat was taken meanwhile (4003: by another gateway's connection) or it left
                game.command(eid, msg)
        elif kind == wire.JOIN:
            self.join(g, *wire.unpack_join(payload))
        elif kind == wire.LEAVE:
            where = (g, wire.unpack_leave(payload))
            left = self.seat_of.pop(where, None)
            if left is not None and self.of.get(left) == where:
                del self.of[left]
                game.leave(left)
        elif kind == wire.STATS:
            self.stats[g] = wire.unpack_stats(payload)
            self.sum_stats()
        else:
            raise ValueError(f"unknown message kind {kind!r}")

    def join(self, g: int, cid: int, hello: protocol.Hello) -> None:
        """A gateway's connection with a checked hello: seated (its events, then SEAT), or refused (4004)."""
        game = self.game
        assert game is not None
        if game.connected() >= self.net.max_players:
            self._queue(g, [wire.CLOSE, cid, protocol.CLOSE_FULL, "server full"])
            return
        self.joining = (g, cid)
        try:
            game.join(hello)
        finally:
            self.joining = None

    def drop(self, g: int, link: wire.Link, why: str) -> None:
        """Gateway g, alive but broken (`why`, from its link's break_off): its link closed, its process
        killed, then as a death."""
        if self.links[g] is not link:
            return  # a predecessor's link
        log.error("gateway %d %s: dropped", g, why)
        if link.transport is not None:
            link.transport.close()
        self.lost(g, link)

    def lost(self, g: int, link: wire.Link) -> None:
        """Gateway g's `link` is gone: its players leave as on a disconnect; the others go on; a
        replacement is started (after the start, before a stop)."""
        if self.links[g] is not link:
            return  # already handled (dropped, then its link's end), or a predecessor's
        self.links[g] = None
        self.control[g], self.batch[g] = [], wire.Updates()  # they name its connections, which are gone
        gone = [(eid, where) for eid, where in self.of.items() if where[0] == g]
        for eid, where in gone:
            del self.of[eid]
        for where in [w for w in self.seat_of if w[0] == g]:
            del self.seat_of[where]
        if self.game is not None:
            for eid, _ in gone:
                self.game.leave(eid)
        self._retire(g)
        proc = self.procs[g]
        if proc is not None and proc.poll() is None:
            proc.kill()  # dropped while alive, or ending by itself: either way it serves no one now
        if self.stopping or not self.up:
            return
        loop = asyncio.get_running_loop()
        lived = loop.time() - self.started_at[g]
        self.delay[g] = restart_delay(self.delay[g], lived)
        log.error(
            "gateway %d ended after %.1f s; its %d players leave; restart %d in %.1f s",
            g,
            lived,
            len(gone),
            self.restarts[g] + 1,
            self.delay[g],
        )
        task = loop.create_task(self._restart(g, proc))
        self.restarting.add(task)
        task.add_done_callback(self.restarting.discard)

    async def _restart(self, g: int, dead: subprocess.Popen | None) -> None:
        """Gateway g again, on a new socket in the port's group, after its backoff. A socket that cannot
        be bound (the port taken meanwhile, all gateways being down) is tried again, backing off too."""
        loop = asyncio.get_running_loop()
        if dead is not None:
            await loop.run_in_executor(None, dead.wait)  # reaped: killed above, so this is short
        while True:
            await asyncio.sleep(self.delay[g])
            if self.stopping:
                return
            assert self.addr is not None
            try:
                listen = joined_socket(*self.addr)
            except OSError as err:
                self.delay[g] = restart_delay(self.delay[g], 0.0)
                log.error("gateway %d: port %d: %s; trying again in %.1f s", g, self.port, err, self.delay[g])
                continue
            self.restarts[g] += 1
            await self._spawn(g, listen)
            log.info("gateway %d restarted (restart %d): pid %d", g, self.restarts[g], self.procs[g].pid)  # type: ignore[union-attr]
            return

    def _retire(self, g: int) -> None:
        """Gateway g's counters join those of the gateways that ended (a replacement counts from 0)."""
        st, self.stats[g] = self.stats[g], {}
        for name in COUNTERS:
            if name != "connections":
                self.ended[name] = self.ended.get(name, 0) + st.get(name, 0)
        for name in ("errors_sent", "closes"):
            total = self.ended.setdefault(name, {})
            for key, n in st.get(name, {}).items():
                total[key] = total.get(key, 0) + n
        self.sum_stats()

    def sum_stats(self) -> None:
        """The gateways' counters, summed with those of the gateways that ended, as /metrics shows them."""
        m = self.metrics
        every = [self.ended, *self.stats]
        for name in COUNTERS:
            setattr(m, name, sum(s.get(name, 0) for s in every))
        for name in ("errors_sent", "closes"):
            total: dict[Any, int] = {}
            for s in every:
                for key, n in s.get(name, {}).items():
                    total[key] = total.get(key, 0) + n
            setattr(m, name, total)

    def collect(self) -> Iterator[Metric]:
        """/metrics: gateways serving now, and the restarts of each."""
        yield GaugeMetricFamily(
            "npcworld_gateways", "Gateway processes serving the game port.", value=sum(1 for x in self.links if x)
        )
        yield labelled(
            CounterMetricFamily(
                "npcworld_gateway_restarts_total", "Gateway processes restarted, by gateway.", labels=["gateway"]
            ),
            list(enumerate(self.restarts)),
        )

    # -- the processes ------------------------------------------------------------

    async def start(self, game: Game, host: str, port: int, n: int) -> int:
        """Start n gateway processes on one port; returns the port."""
        self.game = game
        socks = listening_sockets(host, port, n)
        self.port = socks[0].getsockname()[1]
        self.addr = (socks[0].family, socks[0].getsockname())
        self.links, self.procs = [None] * n, [None] * n
        self.control = [[] for _ in range(n)]
        self.batch = [wire.Updates() for _ in range(n)]
        self.stats = [{} for _ in range(n)]
        self.started_at, self.delay, self.restarts = [0.0] * n, [0.0] * n, [0] * n
        for g, listen in enumerate(socks):
            await self._spawn(g, listen)
            log.info("gateway %d of %d: pid %d on port %d", g, n, self.procs[g].pid, self.port)  # type: ignore[union-attr]
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
        self.up = True
        return self.port

    async def _spawn(self, g: int, listen: socket.socket) -> None:
        """Gateway g's process on `listen` (closed here: the process holds it), and its link."""
        mine, theirs = socket.socketpair()
        cmd = [sys.executable, "-m", "server.gateway_proc", "--link", str(theirs.fileno())]
        cmd += ["--listen", str(listen.fileno()), "--map", self.map_path, "--log-level", self.log_level]
        cmd += ["--slow-client-s", repr(self.net.slow_client_s)]
        if not self.net.direct_writes:
            cmd.append("--no-direct-writes")
        try:
            self.procs[g] = subprocess.Popen(cmd, cwd=ROOT, pass_fds=(theirs.fileno(), listen.fileno()))
        finally:
            theirs.close()
            listen.close()
        self.started_at[g] = asyncio.get_running_loop().time()
        link = wire.Link(
            lambda kind, payload: self.on_message(g, link, kind, payload),
            lambda: self.lost(g, link),
            bounds=wire.FROM_GATEWAY,
            behind=LINK_BEHIND,
            on_broken=lambda why: self.drop(g, link, why),
        )
        self.links[g] = link  # before it is attached: an end that comes at once is this link's
        await wire.attach(link, mine)

    async def publish(self, health: Callable[[], dict], stop: asyncio.Event, every_s: float = SWEEP_S) -> None:
        """PAGES to every gateway every `every_s` until `stop`: /healthz, /metrics, and the map when it changed.
        A restarted gateway gets the map with its first PAGES."""
        while not stop.is_set():
            game = self.game
            assert game is not None
            raw = game.world.map.raw
            if raw is not self._sent_map:
                self._sent_map, self._has_map = raw, set()
            self._has_map &= set(self.links)  # the dead ones' go
            try:
                pages = [health(), self.metrics.render(), None]
                plain, with_map = msgpack.packb(pages), None
                for link in self.links:
                    if link is None:
                        continue
                    if link in self._has_map:
                        link.send(wire.PAGES, plain)
                        continue
                    if with_map is None:
                        with_map = msgpack.packb([*pages[:2], json.dumps(raw)])
                    link.send(wire.PAGES, with_map)
                    self._has_map.add(link)
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
        for task in list(self.restarting):
            task.cancel()  # no gateway starts during the stop
        loop = asyncio.get_running_loop()
        procs = [p for p in self.procs if p is not None]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                await loop.run_in_executor(None, p.wait, STOP_S)
            except subprocess.TimeoutExpired:
                log.error("gateway pid %d did not end in %.0f s: killed", p.pid, STOP_S)
                p.kill()
                await loop.run_in_executor(None, p.wait)
