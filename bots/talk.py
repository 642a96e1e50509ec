"""The `talk` scenario: bots walk to NPCs that talk, by the map, and talk to them.

What a player does (docs/protocol.md, "talk" and "say_*"), with nothing a
player could not know: which NPCs talk is learnt by asking. A `talk` to an
NPC that does not talk is refused at once with `bad_target`, wherever it
stands, and one that talks but is too far with `too_far`; what one bot of a
process learns, the others of that process know too (`Known`), so each NPC
is asked once per process. A bot:

    seek      walks (paths.Paths over /map.json) to a random point of interest,
              asking NPCs that come into view whether they talk; walks to the
              nearest one that does
    approach  walks to it and, within TALK_WITHIN world units (its hearing
              radius is 192 unless its file says otherwise), says a line
    wait      stands still until the NPC's say_end for it (walking off more
              than 320 units would cancel the reply)
    rest      a few seconds (the talk rate is 3 lines, then one per 2 s), then
              talks to the same NPC again or seeks another

Measured per bot, for the replies addressed to it (their `to` is the bot):
time to first token (talk sent -> first say_delta), reply duration (talk
sent -> say_end), and say_end reasons (done, cut, fallback, cancelled); the
report adds them up (bots/report.py). Updates are decoded (positions are
read 5 times a second), so a talk bot costs more than a wander bot.
"""

from __future__ import annotations

import json
import math
import urllib.request
from time import monotonic as _now
from urllib.parse import urlsplit, urlunsplit

from world.protocol import apply_update

from .paths import Paths
from .scenarios import Scenario
from .stats import LogHistogram

TALK_WITHIN = 120.0  # world units: well inside the default hearing radius (192), as an NPC may step away
FOLLOW_BEYOND = 200.0  # world units: while a reply comes, a bot follows an NPC that walks further than this
LOOK_EVERY = 4  # updates: positions are read from every 4th update (5 Hz at 20 Hz)
ASK_TIMEOUT_S = 10.0  # a talk with no answer (error or say_start) for this long is given up
REPLY_TIMEOUT_S = 100.0  # a reply whose say_end never came (the server guarantees one within ~90 s)
REST_S = (2.0, 4.0)
LINES = (
    "hello! what do you do here?",
    "good day. any news from the village?",
    "what would you sell me?",
    "do you know the way to the tavern?",
    "tell me a story, please.",
    "how is your day going?",
)


class Known:
    """What the bots of one process have learnt about NPCs: who talks and who does not (entity ids)."""

    talkers: set[int] = set()
    silent: set[int] = set()


class Talk(Scenario):
    """walks (by the map) to NPCs that talk and talks to them, one line at a time; pings once a second"""

    name = "talk"
    full_updates = True  # it reads positions from the updates
    paths: Paths | None = None  # the server's map, loaded once per process (prepare)

    @classmethod
    def prepare(cls, plan) -> None:
        """Once per bot process, before its bots connect: fetch and parse the map (GET /map.json)."""
        from world.tilemap import parse_map

        parts = urlsplit(plan.url)
        url = urlunsplit(("https" if parts.scheme == "wss" else "http", parts.netloc, "/map.json", "", ""))
        with urllib.request.urlopen(url, timeout=10) as resp:
            cls.paths = Paths(parse_map(json.loads(resp.read()), url))

    def __init__(self) -> None:
        super().__init__()
        self.state = "seek"
        self.pos: dict[int, tuple[float, float]] = {}  # entity id -> (x, y) in view, at the last look
        self.cells: dict = {}  # what the updates so far left: cell -> (ids, quantised positions[, steps])
        self.seen = 0
        self.goal: tuple[float, float] | None = None  # a point of interest, while seeking
        self.npc: int | None = None  # the NPC asked, approached or listened to
        self.asked_at: float | None = None  # a talk sent, not yet answered (error or say_start)
        self.conv: int | None = None  # the conversation id of the reply being waited for
        self.first_at: float | None = None
        self.talked_at = 0.0  # when the last talk was sent
        self.moving = False  # following the NPC while its reply comes
        self.rest_until = 0.0
        # what the report adds up
        self.sent = 0
        self.refused: dict[str, int] = {}
        self.reasons: dict[str, int] = {}
        self.ttft = LogHistogram()
        self.reply = LogHistogram()

    # -- hooks ----------------------------------------------------------------

    def on_start(self, bot, now: float) -> None:
        super().on_start(bot, now)
        self.quant = bot.welcome.get("quant", 16)

    def on_tick(self, bot, now: float) -> None:
        super().on_tick(bot, now)
        me = self.pos.get(bot.id)
        if me is None or self.paths is None:
            return
        if self.asked_at is not None:  # waiting for the answer to a talk
            if now - self.asked_at > ASK_TIMEOUT_S:
                self.asked_at, self.state = None, "seek"
            return
        if self.state == "wait":
            if now - self.talked_at > REPLY_TIMEOUT_S:
                self.conv, self.state = None, "seek"
            else:
                self.keep_near(bot, me)
            return
        if self.state == "rest":
            if now < self.rest_until:
                return
            self.state = "approach" if self.npc in self.pos and bot.rng.random() < 0.5 else "seek"
            if self.state == "seek":
                self.npc = None
        if self.state == "seek":
            self.seek(bot, me, now)
        if self.state == "approach":
            self.approach(bot, me, now)

    def seek(self, bot, me: tuple[float, float], now: float) -> None:
        talkers = [e for e in self.pos if e in Known.talkers and e != self.npc]
        if talkers:
            self.npc = min(talkers, key=lambda e: math.dist(me, self.pos[e]))
            self.state = "approach"
            return
        unknown = [
            e
            for e, rec in bot.visible.items()
            if rec[1] == 1 and e in self.pos and e not in Known.talkers and e not in Known.silent
        ]
        if unknown:  # ask the nearest whether it talks (refused at once if not: nothing is walked for it)
            self.ask(bot, min(unknown, key=lambda e: math.dist(me, self.pos[e])), now)
            return
        paths = self.paths
        assert paths is not None  # on_tick: nothing walks before the map is read
        if self.goal is None or math.dist(me, self.goal) < paths.tile:
            places = [xy for name, xy in paths.pois.items() if name != "spawn"] or [me]
            self.goal = places[bot.rng.randrange(len(places))]
        bot.move(*paths.direction(*me, *self.goal))

    def approach(self, bot, me: tuple[float, float], now: float) -> None:
        assert self.paths is not None  # on_tick: nothing walks before the map is read
        npc = self.npc
        there = self.pos.get(npc) if npc is not None else None
        if npc is None or there is None:  # out of view
            self.state, self.npc = "seek", None
            return
        if math.dist(me, there) <= TALK_WITHIN:
            bot.move(0.0, 0.0)
            self.ask(bot, npc, now)
            return
        bot.move(*self.paths.direction(*me, *there))

    def keep_near(self, bot, me: tuple[float, float]) -> None:
        """While the reply comes: stand still, or follow the NPC if it walks off (past
        320 world units between them the reply would be cancelled)."""
        assert self.paths is not None  # on_tick: nothing walks before the map is read
        there = self.pos.get(self.npc) if self.npc is not None else None
        if there is not None and math.dist(me, there) > FOLLOW_BEYOND:
            bot.move(*self.paths.direction(*me, *there))
            self.moving = True
        elif self.moving:
            bot.move(0.0, 0.0)
            self.moving = False

    def ask(self, bot, npc: int, now: float) -> None:
        bot.move(0.0, 0.0)  # stand still to talk: walking off would cancel the reply
        self.moving = False
        self.npc, self.asked_at, self.talked_at = npc, now, now
        bot.talk(npc, LINES[bot.rng.randrange(len(LINES))])
        self.sent += 1

    def on_message(self, bot, msg: dict) -> None:
        kind = msg["t"]
        if kind == "update":
            self.seen += 1
            # every update moves the cells held (deltas need the previous update's); looking is rarer
            self.cells = apply_update(self.cells, msg)
            if self.seen % LOOK_EVERY == 1:
                self.look()
        elif kind == "error" and msg.get("ref") == "talk" and self.asked_at is not None and self.npc is not None:
            code = msg.get("code", "?")  # (ask set both)
            self.refused[code] = self.refused.get(code, 0) + 1
            self.asked_at = None
            if code == "bad_target":
                Known.silent.add(self.npc)
                self.state, self.npc = "seek", None
            elif code == "too_far":
                Known.talkers.add(self.npc)
                self.state = "approach"
            else:  # busy, rate_limited: rest a little, then try again
                self.rest(bot)
        elif kind == "say_start" and msg.get("to") == bot.id:
            Known.talkers.add(msg["npc"])
            self.asked_at, self.conv, self.first_at, self.state = None, msg["id"], None, "wait"
        elif kind == "say_delta" and msg.get("id") == self.conv and self.first_at is None:
            self.first_at = _now()
            self.ttft.add((self.first_at - self.talked_at) * 1000.0)
        elif kind == "say_end" and msg.get("id") == self.conv:
            reason = msg.get("reason", "?")
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
            self.reply.add((_now() - self.talked_at) * 1000.0)
            self.conv = None
            self.rest(bot)

    def rest(self, bot) -> None:
        self.state = "rest"
        self.rest_until = _now() + bot.rng.uniform(*REST_S)

    def look(self) -> None:
        """Every entity in view and where it is, from the cells held (ids uint32, positions uint16 x quant)."""
        pos: dict[int, tuple[float, float]] = {}
        q = self.quant
        for ids, xy, *_ in self.cells.values():
            pos.update(zip(ids.tolist(), map(tuple, (xy / q).tolist())))
        self.pos = pos

    def summary(self) -> dict:
        """This bot's talk figures, added up over bots by the report."""
        return {
            "talk": {
                "sent": self.sent,
                "refused": self.refused,
                "reasons": self.reasons,
                "ttft_ms": self.ttft.counts,
                "reply_ms": self.reply.counts,
            }
        }
