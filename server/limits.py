"""Token buckets for inbound rate limits. Time is passed in (seconds), so the
bucket is a pure object that tests drive with plain numbers."""

from __future__ import annotations


class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate` tokens per second.

    `take(now)` spends one token and returns True, or returns False when the
    bucket is empty (the caller then drops the message). Memory: O(1).
    """

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False
