"""Wiring: load the map, build the game, serve HTTP + WebSocket on one port,
run the tick loop, watch the NPC files, serve the admin endpoints on their own
port, stop cleanly on SIGINT/SIGTERM (clients get 1001)."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import signal
import time

from websockets.asyncio.server import serve

from npc.files.reload import Watcher
from world.tilemap import load_map

from . import gateway, protocol
from .admin import Admin
from .config import ServerConfig
from .game import Game
from .http import Routes
from .metrics import Metrics
from .store import Store
from .ticker import run_ticks

log = logging.getLogger("npcworld")


class GameServer:
    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        self.metrics = Metrics()
        self.tilemap = load_map(cfg.map)
        # the store before the game: one that cannot be opened stops the start before any worker or port exists
        store = Store.open(cfg.store, cfg.token_expiry_s) if cfg.store else None
        self.game = Game(cfg, self.tilemap, self.metrics, time.monotonic, store=store)
        self.stop_event = asyncio.Event()
        self.port: int | None = None
        self.watcher = Watcher(self.game.cast)  # hot reload of the NPC files
        self.admin_token = cfg.admin_token or secrets.token_urlsafe(18)
        self.admin: Admin | None = None
        self.admin_port: int | None = None

    async def _start_admin(self) -> None:
        self.admin = Admin(self.game, self.watcher, self.admin_token)
        port = self.cfg.admin_port
        if port == -1:
            port = self.port + 1 if self.cfg.port and self.port is not None else 0
            try:
                self.admin_port = await self.admin.start(self.cfg.admin_host, port)
                return
            except OSError as e:   # the derived port is taken: any free one will do
                log.warning("admin port %d is not free (%s); using any free port", port, e.strerror)
                port = 0
        self.admin_port = await self.admin.start(self.cfg.admin_host, port)

    def health(self) -> dict:
        return {"status": "ok", "tick": self.game.world.tick, "players": self.metrics.players,
                "npcs": self.metrics.npcs, "connections": self.metrics.connections}

    async def run(self, on_ready=None) -> None:
        routes = Routes(self.cfg.map, self.tilemap.raw, self.health, self.metrics.render)
        handler = functools.partial(gateway.handle, game=self.game, metrics=self.metrics, flusher=gateway.Flusher())
        async with serve(
            handler, self.cfg.host, self.cfg.port,
            process_request=routes,
            max_size=protocol.MAX_FRAME,  # larger frames: close 1009
            max_queue=32,  # frames buffered per connection before reading stops (TCP pushes back)
            write_limit=64 * 1024,  # bytes; above it a send waits, which is how a slow reader is seen
            close_timeout=2,
            ping_interval=None,  # no keepalive: the gateway's read check pings every 2 s (gateway.READ_CHECK_S)
            server_header="npcworld",
            backlog=2048,  # pending TCP connects; the default 100 overflowed when 400 bots joined within a second
            compression="deflate" if self.cfg.compression else None,
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            await self._start_admin()
            ticks = asyncio.create_task(run_ticks(self.cfg.tick_rate, self.game.tick, self.metrics, self.stop_event))
            reloads = asyncio.create_task(self.watcher.run(self.stop_event))
            if on_ready:
                on_ready(self)
            await self.stop_event.wait()
            log.info("stopping: closing %d connections with 1001", self.metrics.connections)
            server.close(close_connections=True)  # 1001 going away
            await server.wait_closed()
            if self.admin is not None:
                await self.admin.stop()
            await ticks
            await reloads
            self.game.final_checkpoint()  # after the last tick: nothing lost on a clean stop
            await asyncio.to_thread(self.game.close)  # the decision workers, the NPC memory, the store's writer


def main(cfg: ServerConfig) -> int:
    import uvloop

    def ready(srv: GameServer) -> None:
        host = cfg.host if cfg.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        admin_host = cfg.admin_host if cfg.admin_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        # printed before the serving line, so whoever waits for that line has this one too
        print(f"npcworld admin http://{admin_host}:{srv.admin_port}/ token={srv.admin_token}"
              f"  ({len(srv.game.cast.minds)} NPCs from {cfg.npc_dir or 'no NPC folder'})", flush=True)
        print(f"npcworld serving http://{host}:{srv.port}/  (map {srv.tilemap.path}, {cfg.npcs} wandering NPCs, "
              f"{cfg.tick_rate} Hz) - open it in a browser; Ctrl+C stops", flush=True)

    async def amain() -> None:
        srv = GameServer(cfg)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, srv.stop_event.set)
        await srv.run(ready)

    uvloop.run(amain())
    log.info("stopped")
    return 0
