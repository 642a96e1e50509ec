"""The game: the world, its players and the work of one tick.

The gateway calls `join`/`leave` and appends validated commands; the tick loop
calls `tick()`. Nothing here awaits: a tick hands each observer's update to its
connection's outbox and returns.
"""

from __future__ import annotations

import colorsys
import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from npc.minds.cast import Cast
from npc.dialogue import service as dialogue
from npc.policy.decider import PolicyDecider, start_decider
from world.sim import NPC, PLAYER, World, WorldConfig
from world.tilemap import TileMap

from . import protocol, tokens
from .config import ServerConfig, use_policy
from .metrics import Metrics

if TYPE_CHECKING:
    from .gateway import Connection

log = logging.getLogger("npcworld.game")

SLOW_CLIENT_S = 5.0  # a connection whose socket accepted nothing for this long is closed (4002)


def colour_for(n: int) -> str:
    """A distinct, readable colour per entity id (golden-angle hues)."""
    r, g, b = colorsys.hls_to_rgb((n * 0.381966) % 1.0, 0.55, 0.65)
    return "#%02x%02x%02x" % (int(r * 255), int(g * 255), int(b * 255))


@dataclass(slots=True)
class Player:
    eid: int
    name: str
    token: str
    conn: "Connection | None" = None
    ack: int = -1  # seq of the last input applied
    last_seq: int = -1  # last seq accepted from the current connection
    left_at: float | None = None  # clock time its connection dropped; None while connected


@dataclass
class Game:
    cfg: ServerConfig
    tilemap: TileMap
    metrics: Metrics
    clock: Callable[[], float]
    world: World = field(init=False)
    players: dict[int, Player] = field(default_factory=dict)
    # Commands from the gateway since the last tick, applied in arrival order:
    # ("input", eid, seq, dx, dy) or ("chat", eid, text).
    commands: list[tuple] = field(default_factory=list)
    secret: bytes = b""
    joins: int = 0  # players spawned so far; names and colours for guests
    cast: Cast = field(init=False)  # the NPCs of the NPC files (npc_dir)
    decider: PolicyDecider | None = field(init=False, default=None)  # the policy's say in NPC decisions
    dialogue: "dialogue.Dialogue" = field(init=False)  # conversations with NPCs (npc/dialogue/service.py)

    def __post_init__(self) -> None:
        self.world = World(
            self.tilemap,
            WorldConfig(cell_size=self.cfg.cell_size, view_radius=self.cfg.view_radius, seed=self.cfg.seed,
                        day_length_s=self.cfg.day_length),
        )
        self.secret = self.cfg.secret.encode() if self.cfg.secret else secrets.token_bytes(32)
        # `npcs` generic wanderers (no file: they only wander), then the NPCs of the NPC files
        for i in range(self.cfg.npcs):
            self.world.spawn(NPC, f"wanderer {i + 1}", colour_for(i + 7))
        self.cast = Cast(self.world, self.cfg.npc_dir or None, tick_rate=self.cfg.tick_rate,
                         think_s=self.cfg.think_ms / 1000.0, budget_ms=self.cfg.hook_budget_ms)
        if use_policy(self.cfg):  # decisions from the policy, in worker processes (torch stays out of here)
            cfg = self.cfg
            self.decider = start_decider(
                self.world, weights=cfg.policy_weights, module=cfg.policy_module, workers=cfg.policy_workers or None,
                devices=[d.strip() for d in cfg.policy_devices.split(",") if d.strip()] or None, guard=cfg.policy_guard,
                budget_s=(cfg.decision_budget_ms or 1000.0 / cfg.tick_rate) / 1000.0)
        if self.decider is not None:
            self.cast.decider = self.decider      # before loading: the guard checks every file as it loads
            self.metrics.sources.append(self.decider.prometheus)
        self.cast.load_all()
        cfg = self.cfg
        self.dialogue = dialogue.start(
            self.cast, self._send_to, lambda eid: eid in self.players and self.players[eid].conn is not None,
            enabled=cfg.dialogue, model=cfg.dialogue_model, dtype=cfg.dialogue_dtype, device=cfg.dialogue_device,
            memory_db=cfg.memory_db, first_token_ms=cfg.dialogue_first_token_ms,
            max_new_tokens=cfg.dialogue_max_new_tokens, conversations=cfg.dialogue_conversations,
            threads=cfg.dialogue_threads or os.cpu_count() or 1, nice=cfg.dialogue_nice,
            prefix_cache=cfg.dialogue_prefix_cache, step_delay_ms=cfg.dialogue_step_delay_ms, clock=self.clock)
        self.metrics.sources.append(self.dialogue.prometheus)
        self._count()

    def _send_to(self, eid: int, msg: dict) -> None:
        """Queue a message to a player (dialogue lines); dropped when it is not connected."""
        player = self.players.get(eid)
        if player is not None and player.conn is not None:
            player.conn.outbox.push(protocol.encode(msg))

    # -- joining and leaving (called by the gateway between ticks) ----------

    def connected(self) -> int:
        return sum(1 for p in self.players.values() if p.conn is not None)

    def join(self, conn: "Connection", hello: protocol.Hello) -> tuple[Player, bool, list[protocol.ProtocolError]]:
        """Resume the character a valid token names, or spawn a new one."""
        errors: list[protocol.ProtocolError] = []
        name = protocol.clean_text(hello.name or "")
        why = protocol.name_problem(name) if hello.name is not None else None
        if why:
            errors.append(protocol.ProtocolError("bad_field", f"hello: {why}; a name was picked for you",
                                                 "name", "hello"))
            name = ""
        if hello.token is not None:
            eid = tokens.verify(self.secret, hello.token)
            player = self.players.get(eid) if eid is not None else None
            if player is not None and self.world.alive(eid):
                old = player.conn
                if old is not None:
                    old.replaced()
                player.conn, player.left_at, player.last_seq, player.ack = conn, None, -1, -1
                self.world.set_direction(eid, 0.0, 0.0)
                self.world.add_observer(eid)
                return player, True, errors
            errors.append(protocol.ProtocolError(
                "bad_token", "reconnect token not accepted (unknown, forged or past its grace period); "
                "you have a new character", "token", "hello"))
        self.joins += 1
        name = name or f"guest {self.joins}"
        eid = self.world.spawn(PLAYER, name, colour_for(self.joins * 5 + 2))
        player = Player(eid, name, tokens.issue(self.secret, eid, int(self.clock() * 1000)), conn)
        self.players[eid] = player
        self.world.add_observer(eid)
        self._count()
        return player, False, errors

    def leave(self, player: Player, conn: "Connection") -> None:
        """The connection closed; the character stays for the grace period."""
        if player.conn is not conn:
            return  # already taken over by a newer connection
        player.conn = None
        player.left_at = self.clock()
        if self.world.alive(player.eid):
            self.world.remove_observer(player.eid)
            self.world.set_direction(player.eid, 0.0, 0.0)

    def welcome(self, player: Player, resumed: bool) -> bytes:
        w, h = self.tilemap.world_size
        wc = self.world.config
        return protocol.encode({
            "t": "welcome", "v": protocol.VERSION, "id": player.eid, "name": player.name,
            "token": player.token, "resumed": resumed, "grace": self.cfg.grace,
            "tick": self.world.tick, "tick_rate": self.cfg.tick_rate, "map": "/map.json",
            "world": [int(w), int(h)], "cell": wc.cell_size, "view": wc.view_radius, "quant": wc.quant,
            "speed": wc.player_speed, "radius": wc.radius,
        })

    # -- the tick -------------------------------------------------------------

    def tick(self) -> None:
        world = self.world
        commands, self.commands = self.commands, []
        for cmd in commands:
            player = self.players.get(cmd[1])
            if player is None or not world.alive(player.eid):
                continue
            if cmd[0] == "input":
                _, eid, seq, dx, dy = cmd
                world.set_direction(eid, dx, dy)
                player.ack = seq
            elif cmd[0] == "talk":
                try:
                    self.dialogue.talk(cmd[1], cmd[2], cmd[3])
                except dialogue.TalkRefused as e:
                    if player.conn is not None:
                        player.conn.send_error(protocol.ProtocolError(e.code, e.message, ref="talk"))
            else:
                world.say(cmd[1], cmd[2])
        self.cast.tick()  # NPCs hear and (those due) re-think; never blocks (hooks are time-capped)
        self.dialogue.tick()  # replies stream on; budgets, cancels; never waits for the model
        world.step(1.0 / self.cfg.tick_rate)
        tick = world.tick
        players = self.players
        for eid, view in world.build_views().items():
            player = players.get(eid)
            if player is not None and player.conn is not None:
                player.conn.outbox.push_update(tick, player.ack, view)
        if tick % self.cfg.tick_rate == 0:
            self._housekeeping()

    def _housekeeping(self) -> None:
        """Once a second: end grace periods, close connections that stopped reading."""
        now = self.clock()
        for eid, player in list(self.players.items()):
            if player.conn is None and player.left_at is not None and now - player.left_at > self.cfg.grace:
                del self.players[eid]
                if self.world.alive(eid):
                    self.world.despawn(eid)
                log.info("player %s (%d) removed after its grace period", player.name, eid)
            elif player.conn is not None:
                stalled = player.conn.stalled_for(now)
                if stalled > SLOW_CLIENT_S:
                    log.info("closing %s (%d): read nothing for %.1f s", player.name, eid, stalled)
                    player.conn.close_soon(protocol.CLOSE_TOO_SLOW, "too slow: read nothing for 5 s")
        self._count()

    def close(self) -> None:
        """Stop the decision workers (blocks up to the pool's close timeout: not from the tick)."""
        if self.decider is not None:
            self.cast.decider = None
            self.decider.close()
        dialogue.stop(self.dialogue)

    def npcs_changed(self) -> None:
        """NPCs were spawned or despawned outside the tick (admin): refresh the counts."""
        self._count()

    def _count(self) -> None:
        self.metrics.players = self.world.count(PLAYER)
        self.metrics.npcs = self.world.count(NPC)
