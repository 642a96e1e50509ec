"""The room: the world, its players and the work of one tick, driven by plain calls (Sans-I/O).

    join(hello) -> Player       a character resumed by its token, or a new one
    command(player, msg)        a validated Input, Chat or Talk, applied at the next tick
    leave(player)               its connection closed; the character stays for the grace period
    tick()                      commands, NPC minds, dialogue, the world's step, the observers' views

What it says to players goes out as typed events per player into an `Outbound`
(server/events.py); it never sees a socket, a connection or a close code. The
gateway (server/gateway.py) is the I/O edge: it validates frames, calls these,
and turns the events into bytes and closes. Nothing here awaits or blocks,
except `close()` at a stop. The parts (world, cast, decider, dialogue, store,
clock) are built in one place, server/app.py `build_room`.
"""

from __future__ import annotations

import colorsys
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from npc.dialogue import service as dialogue
from npc.minds.cast import Cast
from npc.policy.decider import PolicyDecider
from world import protocol
from world.protocol import Chat, Hello, Input, Talk
from world.sim import NPC, PLAYER, World

from . import tokens
from .checkpoints import Checkpoints
from .config import StoreSection, WorldSection
from .events import Items, Line, Outbound, Refused, Replaced, Welcome
from .metrics import Metrics
from .store import Store
from .store.accounts import Account, Accounts

log = logging.getLogger("npcworld.game")


def colour_for(n: int) -> str:
    """A distinct, readable colour per entity id (golden-angle hues)."""
    r, g, b = colorsys.hls_to_rgb((n * 0.381966) % 1.0, 0.55, 0.65)
    return "#%02x%02x%02x" % (int(r * 255), int(g * 255), int(b * 255))


# Why a token was refused, as the bad_token error says it
REFUSED = {
    "malformed": "not a token",
    "forged": "not signed by this server",
    "expired": "expired",
    "unknown": "no such player (forgotten by an operator?)",
    "used": "already used: a newer token replaced it",
}


@dataclass(slots=True)
class Player:
    eid: int
    name: str
    token: str
    account: Account
    ack: int = -1  # seq of the last input applied
    last_seq: int = -1  # last seq accepted from the current connection
    left_at: float | None = None  # clock time its connection dropped; None while connected

    @property
    def online(self) -> bool:
        return self.left_at is None


# A validated message of a player (its entity id, the message), applied at the next tick in arrival
# order. A plain tuple: a NamedTuple's constructor was 2.5% of the server's samples at 1,200 clients.
Command = tuple[int, Input | Chat | Talk]


class Game:
    """One room, given its sections of the configuration whole (server/config.py: `rules` the world's,
    `storage` the store's). Times: `clock` in seconds (monotonic: grace periods), `wall` in Unix seconds
    (token expiry, first/last seen, checkpoint times)."""

    def __init__(
        self,
        rules: WorldSection,
        storage: StoreSection,
        world: World,
        cast: Cast,
        dialogue: "dialogue.Dialogue",
        out: Outbound,
        metrics: Metrics,
        *,
        decider: PolicyDecider | None = None,
        store: Store | None = None,
        wanderers: dict[int, str] | None = None,
        secret: bytes,
        clock: Callable[[], float],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules  # tick rate, grace period, where players spawn
        self.storage = storage  # checkpoint interval, token expiry
        self.world = world
        self.cast = cast  # the NPCs of the NPC files
        self.dialogue = dialogue  # conversations with NPCs (npc/dialogue/service.py)
        self.out = out
        self.metrics = metrics
        self.decider = decider  # the policy's say in NPC decisions, or None
        self.store = store  # None: nothing is kept across restarts (--store "")
        self.wanderers = wanderers or {}  # entity id -> its stable key in checkpoints
        self.secret = secret  # HMAC key of the session tokens
        self.clock, self.wall = clock, wall
        self.players: dict[int, Player] = {}
        self._online = 0  # players whose left_at is None (connected()); every change of left_at counts here
        self.by_account: dict[int, Player] = {}  # account id -> its player in the world
        self.commands: list[Command] = []  # since the last tick
        self.accounts: Accounts = store.start() if store is not None else Accounts()  # every player ever seen
        self.checkpoints: Checkpoints | None = None  # None without a store
        if store is not None:
            self.checkpoints = Checkpoints(
                store,
                world,
                cast,
                self.players,
                self.wanderers,
                world.map.raw,
                max(1, round(storage.checkpoint_s * rules.tick_rate)),
                wall,
            )
            if store.saved is not None:
                self.checkpoints.resume(store.saved)
        self._count()

    # -- what the dialogue says (its send / connected) -----------------------

    def line(self, eid: int, msg: dict[str, Any]) -> None:
        """A dialogue message to a player; dropped when it is not connected."""
        if self.online(eid):
            self.out.event(eid, Line(msg))

    def online(self, eid: int) -> bool:
        player = self.players.get(eid)
        return player is not None and player.online

    # -- joining and leaving (called by the gateway between ticks) ----------

    def connected(self) -> int:
        """Players online now: counted as they come and go, since the gateway asks at every hello
        (a sum over the players was O(N) a join, 2% of the server's samples while 2,400 joined)."""
        return self._online

    def join(self, hello: Hello) -> Player:
        """Resume the character a valid token names, or spawn a new one. Emits, for the joining player,
        the hello's errors, then its Welcome (and first a Replaced, for a connection it takes over)."""
        errors: list[protocol.ProtocolError] = []
        name = protocol.clean_text(hello.name or "")
        why = protocol.name_problem(name) if hello.name is not None else None
        if why:
            errors.append(
                protocol.ProtocolError("bad_field", f"hello: {why}; a name was picked for you", "name", "hello")
            )
            name = ""
        player: Player | None = None
        if hello.token is not None:
            player, refused = self._resume(hello.token)
            if player is None:
                errors.append(
                    protocol.ProtocolError(
                        "bad_token",
                        f"session token not accepted ({REFUSED[refused]}); you have a new character",
                        "token",
                        "hello",
                    )
                )
        resumed = player is not None
        if player is None:
            account = self.accounts.create(name or "guest", self.wall())
            if not name:
                account.name = f"guest {account.id}"
            player = self._enter(account)
            self._count()
        for err in errors:
            self.out.event(player.eid, Refused(err))
        self.out.event(player.eid, self._welcome(player, resumed, hello.version))
        return player

    def _resume(self, token: str) -> tuple[Player | None, str]:
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
            if player.online:
                self.out.event(player.eid, Replaced())
            else:
                self._online += 1
            player.left_at, player.last_seq, player.ack = None, -1, -1
            player.token = self._token(account)
            self.world.set_direction(player.eid, 0.0, 0.0)
            self.world.add_observer(player.eid)
            account.last_seen = self.wall()
            self.accounts.changed(account)
        else:
            player = self._enter(account)  # after its grace period or a restart: where it left
            self._count()
        return player, ""

    def _enter(self, account: Account) -> Player:
        """Spawn an account's character where it last stood (a new one: at the spawn point)."""
        eid = None
        if account.x is not None and account.y is not None:
            try:
                eid = self.world.spawn(PLAYER, account.name, colour_for(account.id * 5 + 2), account.x, account.y)
            except ValueError as e:  # the map changed under it
                log.info(
                    "player %s (account %d) cannot stand where it left (%s): at the spawn point",
                    account.name,
                    account.id,
                    e,
                )
        if eid is None:  # a new character: at the spawn point, or anywhere free with --spawn random
            xy = self.world.random_open_point() if self.rules.spawn == "random" else (None, None)
            eid = self.world.spawn(PLAYER, account.name, colour_for(account.id * 5 + 2), *xy)
        if account.stats:
            self.world.set_stats(eid, account.stats)
        account.x, account.y = self.world.position(eid)
        account.last_seen = self.wall()
        player = Player(eid, account.name, self._token(account), account)
        self.players[eid] = player
        self._online += 1
        self.by_account[account.id] = player
        self.world.add_observer(eid)
        self.accounts.changed(account)
        return player

    def _token(self, account: Account) -> str:
        return tokens.issue(self.secret, account.id, account.token_gen, int(self.wall() + self.storage.token_expiry_s))

    def _left(self, player: Player) -> None:
        """Keep where a player stood and when (it is leaving the world or its connection)."""
        a = player.account
        if self.world.alive(player.eid):
            a.x, a.y = self.world.position(player.eid)
            a.stats = self.world.stats(player.eid)
        a.last_seen = self.wall()
        self.accounts.changed(a)

    def leave(self, eid: int) -> None:
        """The player's connection closed; the character stays for the grace period."""
        player = self.players.get(eid)
        if player is None or not player.online:
            return
        player.left_at = self.clock()
        self._online -= 1
        self._left(player)
        if self.world.alive(player.eid):
            self.world.remove_observer(player.eid)
            self.world.set_direction(player.eid, 0.0, 0.0)

    def _welcome(self, player: Player, resumed: bool, version: int) -> Welcome:
        w, h = self.world.map.world_size
        wc = self.world.config
        return Welcome(
            version,
            player.eid,
            player.name,
            player.token,
            resumed,
            self.rules.grace,
            tuple(player.account.items),
            self.world.tick,
            self.rules.tick_rate,
            (int(w), int(h)),
            wc.cell_size,
            wc.view_radius,
            wc.quant,
            wc.player_speed,
            wc.radius,
        )

    # -- commands and the tick ------------------------------------------------

    def command(self, eid: int, msg: Input | Chat | Talk) -> None:
        """A player's validated message, for the next tick. An input whose seq is not newer than the
        last one accepted from this connection is dropped (reordered or repeated)."""
        player = self.players.get(eid)
        if player is None or not player.online:
            return
        if type(msg) is Input:
            if msg.seq <= player.last_seq:
                return
            player.last_seq = msg.seq
        self.commands.append((eid, msg))

    def tick(self) -> None:
        world = self.world
        commands, self.commands = self.commands, []
        moves: dict[int, Input] = {}  # each player's last input of the tick: its direction from now on
        for eid, msg in commands:
            player = self.players.get(eid)
            if player is None or not world.alive(eid):
                continue
            if type(msg) is Input:
                moves[eid] = msg
                player.ack = msg.seq
            elif type(msg) is Talk:
                try:
                    self.dialogue.talk(eid, msg.npc, msg.text)
                except dialogue.TalkRefused as e:
                    if player.online:
                        self.out.event(eid, Refused(protocol.ProtocolError(e.code, e.message, ref="talk")))
            elif type(msg) is Chat:
                world.say(eid, msg.text)
        if moves:  # (a talk or a chat above depends on where a player stands, never on its direction)
            inputs = moves.values()
            world.set_directions(list(moves), [m.dx for m in inputs], [m.dy for m in inputs])
        self.cast.tick()  # NPCs hear and (those due) re-think; never blocks (hooks are time-capped)
        if self.cast.gifts:
            self._hand_gifts()
        self.dialogue.tick()  # replies stream on; budgets, cancels; never waits for the model
        world.step(1.0 / self.rules.tick_rate)
        tick = world.tick
        players, update = self.players, self.out.update
        for eid, view in world.build_views().items():
            player = players.get(eid)
            if player is not None and player.left_at is None:
                update(eid, tick, player.ack, view)
        if tick % self.rules.tick_rate == 0:
            self._housekeeping()
        if self.checkpoints is not None and self.checkpoints.due(tick):
            self.checkpoints.take()  # a copy, handed to the writer thread

    # -- items ------------------------------------------------------------------------------

    def _hand_gifts(self) -> None:
        """Items NPCs gave this tick: held by the players who received them, who are told (an `items`)."""
        gifts, self.cast.gifts = self.cast.gifts, []
        for npc, receiver, item in gifts:
            player = self.players.get(receiver)
            if player is None:
                continue  # an NPC, or a player gone meanwhile: nobody holds it
            self.accounts.give(player.account, str(item))
            if player.online:
                self.out.event(receiver, Items(tuple(player.account.items), str(item), npc))

    def _housekeeping(self) -> None:
        """Once a second: end grace periods."""
        now = self.clock()
        for eid, player in list(self.players.items()):
            if player.left_at is not None and now - player.left_at > self.rules.grace:
                self._left(player)
                del self.players[eid]
                if self.by_account.get(player.account.id) is player:
                    del self.by_account[player.account.id]
                if self.world.alive(eid):
                    self.world.despawn(eid)
                log.info("player %s (%d) removed after its grace period", player.name, eid)
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
