"""What a bot does once it is in the world: one small class per scenario.

A scenario gets three hooks, called by the bot that owns it (one instance per
bot). None of them may block or await: they decide, the bot sends.

    on_start(bot, now)      once, right after `welcome`
    on_tick(bot, now)       every 100 ms (10 Hz) while connected
    on_message(bot, msg)    every pong, error and say_* after `welcome`, decoded;
                            and every update too when the scenario sets
                            `full_updates = True` (the bot has already
                            measured it and applied enter/leave)

and, optionally, a classmethod `prepare(plan)`, called once per bot process
before its bots connect (it may block: `talk` fetches the map there), and
`summary()`, whose dict is merged into the bot's line in the report.

`now` is `time.monotonic()` in seconds. What a hook may use on `bot`:

    bot.move(dx, dy)        send an input (direction held until the next one)
    bot.say(text)           send a chat line (1..200 characters)
    bot.talk(npc, text)     say a line to an NPC (its entity id); see bots/talk.py
    bot.ping()              send a ping; the bot measures the round trip
    bot.id, bot.name        your entity id and display name
    bot.welcome             the welcome message (dict), see docs/protocol.md
    bot.visible             {entity id: [id, kind, name, color]} in view now
                            (kept only with `full_updates = True`)
    bot.rng                 this bot's random.Random (seeded per bot)

Every scenario here pings once a second, so round-trip time is measured for
all of them. Sends are queued and flushed right after `on_tick`, so their
timestamps (for round-trip and input-to-acknowledgement latency) are taken
when they go out.

Updates are the bulk of what a bot receives (20 a second, kilobytes each),
so by default a bot reads only their tick and ack (for its measurements) and
their chat count; it neither decodes them nor hands them to `on_message`. A
scenario that looks at updates or at `bot.visible` (chatty picks whom to talk
to from it) sets the class attribute `full_updates = True`; a subclass that
overrides `on_message` gets it automatically.

Adding a scenario: subclass `Scenario`, give it a `name` and a one-line
docstring (shown by `npcworld bots --help`), and add it to `SCENARIOS` below.
Keep hooks cheap: a bot process runs hundreds of bots, and the load test is
only honest while the server, not the bots, runs out of CPU first. Example:

    class Circler(Scenario):
        "walks in circles, turning a little every tick"
        name = "circler"

        def on_start(self, bot, now):
            self.angle = bot.rng.uniform(0, 2 * math.pi)

        def on_tick(self, bot, now):
            super().on_tick(bot, now)          # keeps the 1 Hz ping
            self.angle += 0.1
            bot.move(math.cos(self.angle), math.sin(self.angle))
"""

from __future__ import annotations

import math

PING_EVERY_S = 1.0


class Scenario:
    """connected; pings once a second"""

    name = "base"
    full_updates = False  # True: decode every update, keep bot.visible, pass updates to on_message

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # A scenario that reads messages wants updates too, unless it says otherwise.
        if "on_message" in cls.__dict__ and "full_updates" not in cls.__dict__:
            cls.full_updates = True

    def __init__(self) -> None:
        self.next_ping = 0.0

    def on_start(self, bot, now: float) -> None:
        # A random phase per bot, so that thousands of bots do not ping in step.
        self.next_ping = now + bot.rng.uniform(0, PING_EVERY_S)

    def on_tick(self, bot, now: float) -> None:
        if now >= self.next_ping:
            self.next_ping += PING_EVERY_S
            if self.next_ping < now:  # fell behind (a stalled bot process): no burst of pings
                self.next_ping = now + PING_EVERY_S
            bot.ping()

    def on_message(self, bot, msg: dict) -> None:
        pass

    def summary(self) -> dict | None:
        """Figures of this scenario for the bot's line in the report (merged into it), or None."""
        return None


class Idle(Scenario):
    """connected, never moves or speaks; pings once a second"""

    name = "idle"


class Wander(Scenario):
    """moves at 10 Hz in a random direction changed every 2 s; pings once a second"""

    name = "wander"
    TURN_EVERY_S = 2.0

    def on_start(self, bot, now: float) -> None:
        super().on_start(bot, now)
        self.next_turn = now + bot.rng.uniform(0, self.TURN_EVERY_S)
        self.turn(bot)

    def turn(self, bot) -> None:
        angle = bot.rng.uniform(0, 2 * math.pi)
        self.dx, self.dy = round(math.cos(angle), 3), round(math.sin(angle), 3)

    def on_tick(self, bot, now: float) -> None:
        super().on_tick(bot, now)
        if now >= self.next_turn:
            self.next_turn = now + self.TURN_EVERY_S
            self.turn(bot)
        bot.move(self.dx, self.dy)  # at 10 Hz, as a browser repeats a held key


class Chatty(Wander):
    """as wander, plus a line to a nearby player or NPC every 5..15 s"""

    name = "chatty"
    full_updates = True  # it talks to whoever is in view: bot.visible
    LINES = ("hello {}!", "{}, have you seen the plaza?", "nice weather today, {}", "where are you going, {}?")

    def on_start(self, bot, now: float) -> None:
        super().on_start(bot, now)
        self.next_chat = now + bot.rng.uniform(0.5, 2.0)  # soon: even a short run hears some chat

    def on_tick(self, bot, now: float) -> None:
        super().on_tick(bot, now)
        if now >= self.next_chat:
            self.next_chat = now + bot.rng.uniform(5, 15)
            # "Nearby" is what the bot can see: the cells around its own.
            others = [rec for eid, rec in bot.visible.items() if eid != bot.id]
            who = bot.rng.choice(others)[2] if others else "anyone"
            bot.say(bot.rng.choice(self.LINES).format(who)[:200])


from .talk import Talk  # noqa: E402 - it builds on Scenario, above

SCENARIOS: dict[str, type[Scenario]] = {cls.name: cls for cls in (Wander, Chatty, Talk, Idle)}
