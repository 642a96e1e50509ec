"""The tick loop's schedule, driven by a fake clock (no real time passes)."""

import asyncio

from server.metrics import Metrics
from server.ticker import run_ticks


async def test_overrun_is_counted_and_caught_up_without_a_burst():
    now = [100.0]
    starts: list[float] = []
    stop = asyncio.Event()
    # Tick durations in seconds at 10 Hz (period 0.1): tick 3 takes 0.35 s.
    durations = [0.01, 0.01, 0.35, 0.01, 0.01, 0.01, 0.01]

    def on_tick():
        starts.append(round(now[0], 6))
        now[0] += durations[len(starts) - 1]
        if len(starts) == len(durations):
            stop.set()

    async def sleep(seconds):
        now[0] += seconds

    metrics = Metrics()
    await run_ticks(10, on_tick, metrics, stop, clock=lambda: now[0], sleep=sleep)
    assert starts[:3] == [100.0, 100.1, 100.2]
    # Tick 3 ended at 100.55, 0.25 s after its slot ended (100.3): two whole
    # slots are skipped, then the schedule goes on on its grid, one tick per slot.
    assert starts[3:] == [100.55, 100.6, 100.7, 100.8]
    assert metrics.tick_overruns == 1 and metrics.ticks_skipped == 2 and metrics.ticks == 7
    assert metrics.tick_duration.count == 7


async def test_a_raising_tick_does_not_stop_the_loop():
    now = [0.0]
    calls = []
    stop = asyncio.Event()

    def on_tick():
        calls.append(now[0])
        if len(calls) == 2:
            raise RuntimeError("bug in a tick")
        if len(calls) == 4:
            stop.set()

    async def sleep(seconds):
        now[0] += seconds

    await run_ticks(20, on_tick, Metrics(), stop, clock=lambda: now[0], sleep=sleep)
    assert len(calls) == 4
