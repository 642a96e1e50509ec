"""Wiring, the one composition root: load the map, build the room from its parts
(`build_room`: world, cast, decider, dialogue, store, clock), serve HTTP +
WebSocket on one port, run the tick loop, watch the NPC files, serve the admin
endpoints on their own port, stop cleanly on SIGINT/SIGTERM (clients get 1001)."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import secrets
import signal
import time
from typing import Any, Callable

from npc.dialogue import service as dialogue
from npc.files.reload import Watcher
from npc.minds.cast import Cast
from npc.policy.decider import start_decider
from world.sim import NPC, World, WorldConfig
from world.tilemap import TileMap, load_map

from . import gateway
from .admin import Admin
from .config import ServerConfig, remote_workers, use_policy
from .events import Outbound
from .game import Game, colour_for
from .gateways import Gateways
from .http import Routes
from .metrics import Metrics
from .store import Store
from .ticker import run_ticks

log = logging.getLogger("npcworld")

# The collector, for a process whose start-up builds a large heap that lives as long as it does (the
# libraries, the map, the room, the NPC minds) and whose ticks then allocate many objects that die
# young (messages, commands, views). With Python's defaults (700, 10, 10) it was 9-10% of the server's
# CPU at 600 clients, with full collections of 60-75 ms each walking the start-up heap again (a tick
# is 50 ms): measured with gc.callbacks around the real server (README "Capacity"). Start-up's
# objects are frozen (never walked again; a cycle of them that later dies is not freed), and the
# young generation is larger, so a tick's garbage is freed before it is promoted.
GC_YOUNG = 20_000  # net allocations of container objects between young collections (Python: 700)


def tune_gc() -> None:
    """Once start-up is done: collect, freeze what is left, and enlarge the young generation."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


def build_room(
    cfg: ServerConfig,
    tilemap: TileMap,
    metrics: Metrics,
    out: Outbound,
    *,
    store: Store | None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> Game:
    """The room and its parts, started, each given its section of `cfg`: the world with its generic
    wanderers (no file: they only wander), the cast of the NPC files, the policy's decision workers
    (when it decides), the dialogue service; its events go to `out`. A store's checkpoint is resumed."""
    w, n, p = cfg.world, cfg.npcs, cfg.policy
    world = World(
        tilemap, WorldConfig(cell_size=w.cell_size, view_radius=w.view_radius, seed=w.seed, day_length_s=w.day_length)
    )
    wanderers = {
        world.spawn(NPC, f"wanderer {i + 1}", colour_for(i + 7)): f"wanderer#{i + 1}" for i in range(n.wanderers)
    }
    cast = Cast(world, n.dir or None, tick_rate=w.tick_rate, think_s=n.think_ms / 1000.0, budget_ms=n.hook_budget_ms)
    decider = None
    if use_policy(p):  # decisions from the policy, in worker processes (torch stays out of here)
        decider = start_decider(
            world,
            weights=p.weights,
            module=p.module,
            **remote_workers(cfg.workers, "decision", p.workers or None),
            devices=[d.strip() for d in p.devices.split(",") if d.strip()] or None,
            guard=p.guard,
            budget_s=(p.budget_ms or 1000.0 / w.tick_rate) / 1000.0,
        )
        cast.decider = decider  # before loading: the guard checks every file as it loads
        metrics.add(decider)
    cast.load_all()
    if store is not None:
        metrics.add(store)
    # The dialogue speaks through the room (its lines go to connected players only): bound once it exists.
    room: Game | None = None

    def line(eid: int, msg: dict) -> None:
        if room is not None:
            room.line(eid, msg)

    talks = dialogue.start(
        cast,
        line,
        lambda eid: room is not None and room.online(eid),
        cfg.dialogue,
        clock=clock,
        **remote_workers(cfg.workers, "dialogue", 1),
    )
    metrics.add(talks)
    s = cfg.store
    secret = s.secret.encode() if s.secret else store.token_key if store is not None else secrets.token_bytes(32)
    room = Game(
        w,
        s,
        world,
        cast,
        talks,
        out,
        metrics,
        decider=decider,
        store=store,
        wanderers=wanderers,
        secret=secret,
        clock=clock,
        wall=wall,
    )
    return room


class GameServer:
    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        self.metrics = Metrics()
        self.tilemap = load_map(cfg.world.map)
        # the store before the game: one that cannot be opened stops the start before any worker or port exists
        store = Store.open(cfg.store.path, cfg.store.token_expiry_s) if cfg.store.path else None
        # the room's outbox: the seats of this process's connections, or of the gateway processes'
        self.seats: gateway.Seats | Gateways = (
            Gateways(cfg.net, self.metrics, cfg.world.map, cfg.net.log_level)
            if cfg.net.gateways > 1
            else gateway.Seats(cfg.net)
        )
        self.game = build_room(cfg, self.tilemap, self.metrics, self.seats, store=store)
        self.stop_event = asyncio.Event()
        self.port: int | None = None
        self.watcher = Watcher(self.game.cast)  # hot reload of the NPC files
        self.admin_token = cfg.admin.token or secrets.token_hex(18)  # hex: never starts with "-" (a CLI flag)
        self.admin: Admin | None = None
        self.admin_port: int | None = None

    async def _start_admin(self) -> None:
        self.admin = Admin(self.game, self.watcher, self.admin_token)
        port = self.cfg.admin.port
        if port == -1:
            port = self.port + 1 if self.cfg.net.port and self.port is not None else 0
            try:
                self.admin_port = await self.admin.start(self.cfg.admin.host, port)
                return
            except OSError as e:  # the derived port is taken: any free one will do
                log.warning("admin port %d is not free (%s); using any free port", port, e.strerror)
                port = 0
        self.admin_port = await self.admin.start(self.cfg.admin.host, port)

    def health(self) -> dict:
        return {
            "status": "ok",
            "tick": self.game.world.tick,
            "players": self.metrics.players,
            "npcs": self.metrics.npcs,
            "connections": self.metrics.connections,
        }

    async def run(self, on_ready=None) -> None:
        routes = Routes(self.cfg.world.map, lambda: self.game.world.map.raw, self.health, self.metrics.render)
        seats = self.seats
        serve: Any
        if isinstance(seats, Gateways):  # the port served by gateway processes; their read checks are theirs
            serving = seats.serving(self.game, self.cfg.net)
            sweep = seats.publish(self.health, self.stop_event)  # /healthz, /metrics, /map.json to them
        else:
            handler = functools.partial(
                gateway.handle, game=self.game, seats=seats, metrics=self.metrics, flusher=gateway.Flusher()
            )
            if self.cfg.net.ws == "picows":
                from . import edge_picows as edge  # imported only when asked for: picows is a Cython extension
            else:
                from . import edge_websockets as edge  # type: ignore[no-redef]
            serve = edge.serve  # each edge serves the port: WebSockets at /ws, the routes' pages elsewhere
            serving = serve(handler, routes, self.cfg.net)
            sweep = gateway.read_checks(seats, self.stop_event)
        async with serving as listening:
            self.port = listening.port
            await self._start_admin()
            ticks = asyncio.create_task(
                run_ticks(self.cfg.world.tick_rate, self.game.tick, self.metrics, self.stop_event)
            )
            reloads = asyncio.create_task(self.watcher.run(self.stop_event))
            slow = asyncio.create_task(sweep)
            if on_ready:
                on_ready(self)
            await self.stop_event.wait()
            log.info("stopping: closing %d connections with 1001", self.metrics.connections)
            await listening.close()  # 1001 going away, then every connection's handler has returned
            if self.admin is not None:
                await self.admin.stop()
            await ticks
            await reloads
            await slow
            self.game.final_checkpoint()  # after the last tick: nothing lost on a clean stop
            await asyncio.to_thread(self.game.close)  # the decision workers, the NPC memory, the store's writer


def main(cfg: ServerConfig) -> int:
    import uvloop

    def ready(srv: GameServer) -> None:
        host = cfg.net.host if cfg.net.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        admin_host = cfg.admin.host if cfg.admin.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        # printed before the serving line, so whoever waits for that line has this one too
        print(
            f"npcworld admin http://{admin_host}:{srv.admin_port}/ token={srv.admin_token}"
            f"  ({len(srv.game.cast.minds)} NPCs from {cfg.npcs.dir or 'no NPC folder'})",
            flush=True,
        )
        # the token travels in the fragment, which a browser never sends; the page keeps it for the tab only
        print(
            f"npcworld inspector http://{admin_host}:{srv.admin_port}/inspector#token={srv.admin_token}"
            "  - the designers' page: open it in a browser (the token is the admin token above)",
            flush=True,
        )
        print(
            f"npcworld serving http://{host}:{srv.port}/  (map {srv.tilemap.path}, {cfg.npcs.wanderers} wandering NPCs, "
            f"{cfg.world.tick_rate} Hz) - open it in a browser; Ctrl+C stops",
            flush=True,
        )

    async def amain() -> None:
        srv = GameServer(cfg)
        tune_gc()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, srv.stop_event.set)
        await srv.run(ready)

    uvloop.run(amain())
    log.info("stopped")
    return 0
