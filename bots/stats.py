"""Small, mergeable statistics for the bots: log-bucket histograms of
milliseconds, percentiles of plain lists, and quantiles of the server's
Prometheus histogram buckets.

A `LogHistogram` is a sparse dict {bucket index: count}. Bucket i holds values
in [MIN_MS * GROWTH**i, MIN_MS * GROWTH**(i+1)), so any percentile read from it
is within GROWTH - 1 (4 %) of the true sample, and its size grows with the
spread of the values (a few dozen buckets for update gaps), not their number.
Histograms travel between processes as plain dicts and merge by adding counts.
"""

from __future__ import annotations

import math

MIN_MS = 0.01  # values below (and 0) land in bucket 0
GROWTH = 1.04  # bucket width ratio: 4 % resolution
_LOG_GROWTH = math.log(GROWTH)
MAX_BUCKET = int(math.log(600_000 / MIN_MS) / _LOG_GROWTH)  # 10 minutes: anything longer is clamped


def bucket_of(ms: float) -> int:
    if ms <= MIN_MS:
        return 0
    i = int(math.log(ms / MIN_MS) / _LOG_GROWTH)
    return i if i < MAX_BUCKET else MAX_BUCKET


def bucket_bounds(i: int) -> tuple[float, float]:
    lo = MIN_MS * GROWTH**i
    return lo, lo * GROWTH


def bucket_mid(i: int) -> float:
    lo, hi = bucket_bounds(i)
    return math.sqrt(lo * hi)


class LogHistogram:
    """Counts of millisecond values in 4 %-wide buckets (see the module docstring)."""

    __slots__ = ("counts", "n")

    def __init__(self, counts: dict[int, int] | None = None):
        self.counts: dict[int, int] = dict(counts) if counts else {}
        self.n = sum(self.counts.values())

    def add(self, ms: float) -> None:
        i = bucket_of(ms)
        c = self.counts
        c[i] = c.get(i, 0) + 1
        self.n += 1

    def merge(self, other: "LogHistogram | dict[int, int]") -> None:
        counts = other.counts if isinstance(other, LogHistogram) else other
        c = self.counts
        for i, k in counts.items():
            i = int(i)  # JSON turns keys into strings
            c[i] = c.get(i, 0) + k
            self.n += k

    def take(self) -> dict[int, int]:
        """Return the counts so far and start afresh (a per-second delta)."""
        counts, self.counts, self.n = self.counts, {}, 0
        return counts

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0..100) in ms, None when empty."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.n))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                return bucket_mid(i)
        return bucket_mid(max(self.counts))

    def rows(self) -> list[tuple[float, float, int]]:
        """[(lo_ms, hi_ms, count)] for the non-empty buckets, in order."""
        return [(*bucket_bounds(i), self.counts[i]) for i in sorted(self.counts)]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank q-th percentile (0..100) of a list; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Quantile (0..1) of a Prometheus histogram from cumulative (upper bound,
    count) pairs, +Inf last; linear inside a bucket, like PromQL's
    histogram_quantile. Returns None when the histogram is empty; a quantile
    that falls in the +Inf bucket returns the largest finite bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            inside = count - prev_count
            if inside <= 0:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / inside
        prev_bound, prev_count = bound, count
    return prev_bound
