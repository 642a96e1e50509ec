"""The fixed-timestep tick loop.

Each tick runs `on_tick()` (synchronous: it never awaits a socket or a model),
then sleeps until the next slot. A tick that ends after its slot is an
overrun; if the loop has fallen more than one whole slot behind, the missed
slots are skipped (counted) instead of run back to back, so an overload never
turns into a burst of catch-up ticks (no spiral of death). World time advances
one fixed step per tick run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from .metrics import Metrics

log = logging.getLogger("npcworld.tick")


async def run_ticks(
    rate: int,
    on_tick: Callable[[], None],
    metrics: Metrics,
    stop: asyncio.Event,
    clock: Callable[[], float] = time.monotonic,
    sleep=asyncio.sleep,
) -> None:
    """Run until `stop` is set. `clock` (seconds) and `sleep` are injectable for tests."""
    period = 1.0 / rate
    next_slot = clock()
    while not stop.is_set():
        start = clock()
        try:
            on_tick()
        except Exception:
            # A bug in one tick must not stop the world; it is logged with its traceback.
            log.exception("tick failed")
        end = clock()
        metrics.tick_duration.observe(end - start)
        metrics.ticks += 1
        next_slot += period
        if end > next_slot:
            metrics.tick_overruns += 1
            behind = end - next_slot
            if behind > period:
                skipped = int(behind // period)
                metrics.ticks_skipped += skipped
                next_slot += skipped * period
        delay = next_slot - clock()
        # Sleeping (even 0 s) lets sockets run between ticks; a stop is seen
        # within one period.
        await sleep(max(delay, 0.0))
