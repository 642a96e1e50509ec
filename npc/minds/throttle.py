"""How often a repeated warning reaches the log: at most once per key (an NPC file's hook) in a
window of real seconds, saying how many like it were held back since the last one logged.

Why: a slow hook that is not slow often enough to be disabled (3 overruns in 20 calls) still
overruns on a busy machine. An on_hear answering every overheard line runs hundreds of times a
minute, and each overrun was a log line ("on_hear took 12 ms"). Every overrun is still a report
(GET /errors, the inspector); only the log is thinned. Real time (time.monotonic), not the world's
clock: the log is read by an operator, and the game clock may run fast or stand still.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

WINDOW_S = 60.0  # real seconds: one line per key in this long
MAX_KEYS = 10_000  # bound: past it, the keys logged longest ago are forgotten (their next line is logged)


class Throttle:
    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self.last: dict[Hashable, float] = {}  # key -> when its last line was logged (clock seconds)
        self.held: dict[Hashable, int] = {}  # key -> lines held back since then

    def admit(self, key: Hashable) -> int | None:
        """None: hold this line back. Otherwise log it: the number held back since the last one."""
        now = self.clock()
        at = self.last.get(key)
        if at is not None and now - at < self.window_s:
            self.held[key] = self.held.get(key, 0) + 1
            return None
        self.last.pop(key, None)  # re-inserted last: dict order is oldest logged first
        self.last[key] = now
        if len(self.last) > MAX_KEYS:
            for k in list(self.last)[: MAX_KEYS // 2]:
                del self.last[k]
                self.held.pop(k, None)
        return self.held.pop(key, 0)
