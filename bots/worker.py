"""A bot process: runs its share of the bots on one uvloop event loop and
reports to the parent once a second.

Bot k belongs to worker k % procs and connects at start + k * ramp / clients,
so the ramp is even across all processes. One timer drives every bot's
`on_tick`: each 10 ms slot ticks a tenth of the bots (bot i of this worker in
slot i % 10), which gives every bot 10 Hz without a timer per bot.

Messages to the parent, over one multiprocessing queue:
    ("ready", wid, pid)                       imports done, waiting for the start
    ("second", wid, s, snapshot)              what happened in second s (s-1 .. s after the start)
    ("done", wid, {"final", "bots", "why"})   the rest of the run and one summary per bot
    ("fatal", wid, text)                      this worker failed (traceback text)
A snapshot is small whatever the number of bots: counters, sparse histograms
and {updates in this second: bots}; per-bot detail is sent once, at the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import traceback

from .bot import Bot, Tally
from .plan import CLOSE_TIMEOUT_S, Plan
from .scenarios import SCENARIOS

SLOTS = 10  # on_tick slots per 100 ms
SLOT_S = 0.1 / SLOTS
READY_TIMEOUT_S = 60.0  # a worker never told to start exits by itself

_now = time.monotonic


def main(wid: int, plan: Plan, queue, go, start_at, stop) -> None:
    """Process entry point (multiprocessing "spawn")."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the parent, which stops us in order
    try:
        import uvloop

        queue.put(("ready", wid, os.getpid()))
        if not go.wait(READY_TIMEOUT_S):
            return
        uvloop.run(_run(wid, plan, queue, stop, start_at.value))
    except BaseException:  # noqa: BLE001 - reported to the parent, which prints a clear message
        queue.put(("fatal", wid, traceback.format_exc(limit=6)))


def _snapshot(tally: Tally, bots: list[Bot], now: float, started: int) -> dict:
    snap = tally.take()
    rate: dict[int, int] = {}
    connected = 0
    for bot in bots:
        if bot.open:
            connected += 1
            n = bot.updates - bot.second_mark
            bot.second_mark = bot.updates
            if (
                bot.opened_at is not None and bot.opened_at <= now - 1.0
            ):  # open for the whole second: a fair per-client rate
                rate[n] = rate.get(n, 0) + 1
    snap.update(rate=rate, connected=connected, started=started)
    return snap


async def _run(wid: int, plan: Plan, queue, stop, t0: float) -> None:
    tally = Tally()
    scenario = SCENARIOS[plan.scenario]
    prepare = getattr(scenario, "prepare", None)
    if prepare is not None:  # e.g. talk: the map, fetched once per process before its bots connect
        await asyncio.to_thread(prepare, plan)
    window_at = t0 + plan.window[0]
    end_at = t0 + plan.duration
    bots = [
        Bot(k, plan.url, scenario(), tally, window_at, plan.seed, plan.protocol)
        for k in range(wid, plan.clients, plan.procs)
    ]
    tasks: dict[int, asyncio.Task] = {}

    async def start_all() -> None:
        for bot in bots:
            delay = t0 + plan.start_offset(bot.index) - _now()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks[bot.index] = asyncio.create_task(bot.run())

    async def tick_all() -> None:
        phases = [bots[i::SLOTS] for i in range(SLOTS)]
        slot, next_at = 0, t0
        while True:
            delay = next_at - _now()
            if delay > 0:
                await asyncio.sleep(delay)
            now = _now()
            for bot in phases[slot % SLOTS]:
                if bot.open:
                    bot.scenario.on_tick(bot, now)
                    if bot.outgoing:
                        bot.flush()  # one write; never blocks: see Bot.flush
            slot += 1
            next_at += SLOT_S
            if next_at < now - 0.1:  # this process fell behind: skip ahead rather than burst
                next_at = now

    starter = asyncio.create_task(start_all())
    ticker = asyncio.create_task(tick_all())
    marked = False
    second = 1
    why = "duration"
    while True:
        target = min(t0 + second, end_at)
        delay = target - _now()
        if delay > 0:
            await asyncio.sleep(delay)
        now = _now()
        if not marked and second >= plan.window[0]:  # by count, not clock: a timer may fire a little early
            marked = True
            for bot in bots:
                bot.mark_window(now)
        if now >= end_at:
            break
        queue.put(("second", wid, second, _snapshot(tally, bots, now, len(tasks))))
        second += 1
        if stop.is_set():
            why = "stopped"
            break
        if starter.done() and all(bot.ended_at is not None for bot in bots):
            why = "all connections ended"
            break

    # The end: stop playing, close every connection, report.
    starter.cancel()
    ticker.cancel()
    await asyncio.gather(starter, ticker, return_exceptions=True)
    now = _now()
    for bot in bots:
        task = tasks.get(bot.index)
        if task is not None and not task.done() and not bot.open:  # still connecting: give up
            task.cancel()
            bot.ended_at, bot.end = now, "failed: still connecting at the end"
            tally.connect_failures += 1
            tally.ends[bot.end] = tally.ends.get(bot.end, 0) + 1
    closing = [asyncio.create_task(bot.close()) for bot in bots if bot.open]
    if closing:
        await asyncio.wait(closing, timeout=CLOSE_TIMEOUT_S + 2)
    running = [t for t in tasks.values() if not t.done()]
    if running:  # readers draining the last frames before the server's close frame
        await asyncio.wait(running, timeout=1.0)
        for task in running:
            task.cancel()
    for bot in bots:
        bot.abort()  # no-op for a closed socket; never leave one open
    final = _snapshot(tally, bots, _now(), len(tasks))
    queue.put(("done", wid, {"second": second, "final": final, "why": why, "bots": [bot.summary(t0) for bot in bots]}))
