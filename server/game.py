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
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from npc.minds.cast import Cast
from npc.dialogue import service as dialogue
from npc.policy.decider import PolicyDecider, start_decider
from world.sim import NPC, PLAYER, World, WorldConfig
from world.tilemap import TileMap

from . import protocol, tokens
from .checkpoints import Checkpoints
from .config import ServerConfig, remote_workers, use_policy
from .metrics import Metrics
from .store import Store
from .store.accounts import Account, Accounts

if TYPE_CHECKING:
    from .gateway import Connection

log = logging.getLogger("npcworld.game")

SLOW_CLIENT_S = 5.0  # a connection whose socket accepted nothing for this long is closed (4002)


def colour_for(n: int) -> str:
    """A distinct, readable colour per entity id (golden-angle hues)."""
    r, g, b = colorsys.hls_to_rgb((n * 0.381966) % 1.0, 0.55, 0.65)
    return "#%02x%02x%02x" % (int(r * 255), int(g * 255), int(b * 255))


# Why a token was refused, as the bad_token error says it
REFUSED = {"malformed": "not a token", "forged": "not signed by this server", "expired": "expired",
           "unknown": "no such player (forgotten by an operator?)", "used": "already used: a newer token replaced it"}


@dataclass(slots=True)
class Player:
    eid: int
    name: str
    token: str
    account: Account
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
    store: Store | None = None  # None: nothing is kept across restarts (--store "")
    wall: Callable[[], float] = time.time  # Unix seconds: token expiry, first/last seen, checkpoint times
    secret: bytes = b""
    accounts: Accounts = field(init=False)  # every player ever seen (server/store/accounts.py)
    by_account: dict[int, Player] = field(default_factory=dict)  # account id -> its player in the world
    cast: Cast = field(init=False)  # the NPCs of the NPC files (npc_dir)
    decider: PolicyDecider | None = field(init=False, default=None)  # the policy's say in NPC decisions
    dialogue: "dialogue.Dialogue" = field(init=False)  # conversations with NPCs (npc/dialogue/service.py)

    def __post_init__(self) -> None:
        self.world = World(
            self.tilemap,
            WorldConfig(cell_size=self.cfg.cell_size, view_radius=self.cfg.view_radius, seed=self.cfg.seed,
                        day_length_s=self.cfg.day_length),
        )
        self.secret = (self.cfg.secret.encode() if self.cfg.secret else
                       self.store.token_key if self.store is not None else secrets.token_bytes(32))
        self.accounts = self.store.start() if self.store is not None else Accounts()
        # `npcs` generic wanderers (no file: they only wander), then the NPCs of the NPC files
        self.wanderers: dict[int, str] = {}     # entity id -> its stable key in checkpoints
        for i in range(self.cfg.npcs):
            self.wanderers[self.world.spawn(NPC, f"wanderer {i + 1}", colour_for(i + 7))] = f"wanderer#{i + 1}"
        self.cast = Cast(self.world, self.cfg.npc_dir or None, tick_rate=self.cfg.tick_rate,
                         think_s=self.cfg.think_ms / 1000.0, budget_ms=self.cfg.hook_budget_ms)
        if use_policy(self.cfg):  # decisions from the policy, in worker processes (torch stays out of here)
            cfg = self.cfg
            self.decider = start_decider(
                self.world, weights=cfg.policy_weights, module=cfg.policy_module,
                **remote_workers(cfg, "decision", cfg.policy_workers or None),
                devices=[d.strip() for d in cfg.policy_devices.split(",") if d.strip()] or None, guard=cfg.policy_guard,
                budget_s=(cfg.decision_budget_ms or 1000.0 / cfg.tick_rate) / 1000.0)
        if self.decider is not None:
            self.cast.decider = self.decider      # before loading: the guard checks every file as it loads
            self.metrics.add(self.decider)
        self.cast.load_all()
        self.checkpoints: Checkpoints | None = None    # None without a store
        if self.store is not None:
            self.checkpoints = Checkpoints(self.store, self.world, self.cast, self.players, self.wanderers,
                                           self.tilemap.raw, max(1, round(self.cfg.checkpoint_s * self.cfg.tick_rate)),
                                           self.wall)
            self.metrics.add(self.store)
            if self.store.saved is not None:
                self.checkpoints.resume(self.store.saved)
        cfg = self.cfg
        self.dialogue = dialogue.start(
            self.cast, self._send_to, lambda eid: eid in self.players and self.players[eid].conn is not None,
            enabled=cfg.dialogue, model=cfg.dialogue_model, dtype=cfg.dialogue_dtype, device=cfg.dialogue_device,
            memory_db=cfg.memory_db, first_token_ms=cfg.dialogue_first_token_ms,
            max_new_tokens=cfg.dialogue_max_new_tokens, conversations=cfg.dialogue_conversations,
            threads=cfg.dialogue_threads or os.cpu_count() or 1, nice=cfg.dialogue_nice,
            prefix_cache=cfg.dialogue_prefix_cache, engine=cfg.dialogue_engine,
            step_delay_ms=cfg.dialogue_step_delay_ms, clock=self.clock, **remote_workers(cfg, "dialogue", 1))
        self.metrics.add(self.dialogue)
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
            player, why = self._resume(conn, hello.token)
            if player is not None:
                return player, True, errors
            errors.append(protocol.ProtocolError(
                "bad_token", f"session token not accepted ({REFUSED[why]}); you have a new character",
                "token", "hello"))
        account = self.accounts.create(name or "guest", self.wall())
        if not name:
            account.name = f"guest {account.id}"
        player = self._enter(account, conn)
        self._count()
        return player, False, errors

    def _resume(self, conn: "Connection", token: str) -> tuple[Player | None, str]:
        """The player a token names, back in the world (taken over, or spawned where it left), with the
        next token; or (None, why not: a key of REFUSED)."""
        claim, why = tokens.verify(self.secret, token, self.wall())
        if claim is None:
            return None, why
        account = self.accounts.get(claim.account)
        if account is None:
            return None, "unknown"
        if claim.gen < account.token_gen:
            return None, "used"
        # >=, not ==: a token issued just before a crash may be newer than what the store kept
        account.token_gen = claim.gen + 1
        player = self.by_account.get(account.id)
        if player is not None and self.world.alive(player.eid):
            if player.conn is not None:
                player.conn.replaced()
            player.conn, player.left_at, player.last_seq, player.ack = conn, None, -1, -1
            player.token = self._token(account)
            self.world.set_direction(player.eid, 0.0, 0.0)
            self.world.add_observer(player.eid)
            account.last_seen = self.wall()
            self.accounts.changed(account)
        else:
            player = self._enter(account, conn)     # after its grace period or a restart: where it left
            self._count()
        return player, ""

    def _enter(self, account: Account, conn: "Connection") -> Player:
        """Spawn an account's character where it last stood (a new one: at the spawn point)."""
        eid = None
        if account.x is not None and account.y is not None:
            try:
                eid = self.world.spawn(PLAYER, account.name, colour_for(account.id * 5 + 2), account.x, account.y)
            except ValueError as e:     # the map changed under it
                log.info("player %s (account %d) cannot stand where it left (%s): at the spawn point",
                         account.name, account.id, e)
        if eid is None:     # a new character: at the spawn point, or anywhere free with --spawn random
            xy = self.world.random_open_point() if self.cfg.spawn == "random" else (None, None)
            eid = self.world.spawn(PLAYER, account.name, colour_for(account.id * 5 + 2), *xy)
        if account.stats:
            self.world.set_stats(eid, account.stats)
        account.x, account.y = self.world.position(eid)
        account.last_seen = self.wall()
        player = Player(eid, account.name, self._token(account), account, conn)
        self.players[eid] = player
        self.by_account[account.id] = player
        self.world.add_observer(eid)
        self.accounts.changed(account)
        return player

    def _token(self, account: Account) -> str:
        return tokens.issue(self.secret, account.id, account.token_gen, int(self.wall() + self.cfg.token_expiry_s))

    def _left(self, player: Player) -> None:
        """Keep where a player stood and when (it is leaving the world or its connection)."""
        a = player.account
        if self.world.alive(player.eid):
            a.x, a.y = self.world.position(player.eid)
            a.stats = self.world.stats(player.eid)
        a.last_seen = self.wall()
        self.accounts.changed(a)

    def leave(self, player: Player, conn: "Connection") -> None:
        """The connection closed; the character stays for the grace period."""
        if player.conn is not conn:
            return  # already taken over by a newer connection
        player.conn = None
        player.left_at = self.clock()
        self._left(player)
        if self.world.alive(player.eid):
            self.world.remove_observer(player.eid)
            self.world.set_direction(player.eid, 0.0, 0.0)

    def welcome(self, player: Player, resumed: bool) -> bytes:
        w, h = self.tilemap.world_size
        wc = self.world.config
        return protocol.encode({
            "t": "welcome", "v": protocol.VERSION, "id": player.eid, "name": player.name,
            "token": player.token, "resumed": resumed, "grace": self.cfg.grace, "items": player.account.items,
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
        if self.cast.gifts:
            self._hand_gifts()
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
        if self.checkpoints is not None and self.checkpoints.due(tick):
            self.checkpoints.take()     # a copy, handed to the writer thread

    # -- items ------------------------------------------------------------------------------

    def _hand_gifts(self) -> None:
        """Items NPCs gave this tick: held by the players who received them, who are told (an `items`)."""
        gifts, self.cast.gifts = self.cast.gifts, []
        for npc, receiver, item in gifts:
            player = self.players.get(receiver)
            if player is None:
                continue            # an NPC, or a player gone meanwhile: nobody holds it
            self.accounts.give(player.account, str(item))
            self._send_to(receiver, {"t": "items", "items": player.account.items, "got": str(item), "from": npc})

    def _housekeeping(self) -> None:
        """Once a second: end grace periods, close connections that stopped reading."""
        now = self.clock()
        for eid, player in list(self.players.items()):
            if player.conn is None and player.left_at is not None and now - player.left_at > self.cfg.grace:
                self._left(player)
                del self.players[eid]
                if self.by_account.get(player.account.id) is player:
                    del self.by_account[player.account.id]
                if self.world.alive(eid):
                    self.world.despawn(eid)
                log.info("player %s (%d) removed after its grace period", player.name, eid)
            elif player.conn is not None:
                stalled = player.conn.stalled_for(now)
                if stalled > SLOW_CLIENT_S:
                    log.info("closing %s (%d): read nothing for %.1f s", player.name, eid, stalled)
                    player.conn.close_soon(protocol.CLOSE_TOO_SLOW, "too slow: read nothing for 5 s")
        self._count()

    def final_checkpoint(self) -> None:
        """At a clean stop, after the last tick: where everyone is now (written by close())."""
        if self.checkpoints is not None:
            for player in self.players.values():
                self._left(player)
            self.checkpoints.take()

    def close(self) -> None:
        """Stop the decision workers, write the NPC memory and the last checkpoint (blocks: not from the tick)."""
        if self.decider is not None:
            self.cast.decider = None
            self.decider.close()
        dialogue.stop(self.dialogue)
        if self.store is not None:
            self.store.close()

    def npcs_changed(self) -> None:
        """NPCs were spawned or despawned outside the tick (admin): refresh the counts."""
        self._count()

    def _count(self) -> None:
        self.metrics.players = self.world.count(PLAYER)
        self.metrics.npcs = self.world.count(NPC)
