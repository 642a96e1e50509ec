"""Which requests run next, and when: the pool's scheduling policy.

Pure: no processes, no threads, no clock. Every method takes `now` (seconds on
the same clock as the deadlines, `time.monotonic()` in the pool), so a test
drives it with plain numbers.

The policy, for one free worker:
- priority first, then earliest deadline first (EDF): one heap per priority
  level (a small int, higher first; 0 unless the caller says), each ordered
  by deadline, ties broken by arrival order; a batch is filled from the
  highest level down;
- a request whose deadline has passed (`deadline <= now`) is expired: the
  engine drops it without spending compute;
- a batch holds up to `max_batch` requests, taken from the head of the queue;
- a batch is sent as soon as the queue holds `max_batch` requests; otherwise
  the scheduler waits for more, but never past the moment when waiting longer
  would miss the earliest deadline:
      latest_start = earliest_deadline - latency(n) - margin_s
  where latency(n) is the worker's measured round trip for a batch of n
  (`BatchLatency`), nor longer than `max_wait_s` after the first request of
  the batch arrived (so a lone request with a far deadline is not held back).

Streams (dialogue) are admitted by `StreamAdmission`, below: first come,
first served, to whichever worker has room in its running batch.
"""

from __future__ import annotations

import collections
import heapq
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(slots=True)
class Pending:
    """A request waiting in the queue, which orders them by (deadline, seq)."""

    deadline: float  # absolute, seconds (time.monotonic() in the pool)
    seq: int  # arrival order; unique per pool
    arrived: float = 0.0
    item: Any = None  # the pool's future; opaque here
    cancelled: bool = False
    priority: int = 0  # higher is served first; EDF within a level


def size_bucket(n: int) -> int:
    """Batch sizes are measured in power-of-two buckets (1, 2, 4, 8, ...), so a
    few dozen batches warm every estimate the scheduler uses."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class BatchLatency:
    """Running estimate of one worker's round trip (dispatch to result, seconds)
    per batch size: an exponentially weighted moving average per size bucket.

    Before a bucket has been measured, its estimate comes from its neighbours:
    the nearest measured larger bucket (latency does not shrink with size), or
    else the largest measured smaller bucket scaled linearly with size (an
    upper bound for batched models, whose cost grows slower than linearly), or
    else `prior_s`.
    """

    def __init__(self, prior_s: float = 0.005, alpha: float = 0.2):
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha = {alpha!r}: expected 0 < alpha <= 1")
        self.prior_s = prior_s
        self.alpha = alpha
        self.ewma: dict[int, float] = {}  # bucket -> seconds

    def observe(self, n: int, seconds: float) -> None:
        b = size_bucket(n)
        old = self.ewma.get(b)
        self.ewma[b] = seconds if old is None else old + self.alpha * (seconds - old)

    def estimate(self, n: int) -> float:
        b = size_bucket(n)
        if b in self.ewma:
            return self.ewma[b]
        larger = [k for k in self.ewma if k > b]
        if larger:
            return self.ewma[min(larger)]
        smaller = [k for k in self.ewma if k < b]
        if smaller:
            k = max(smaller)
            return self.ewma[k] * b / k
        return self.prior_s


@dataclass(slots=True)
class Decision:
    batch: list[Pending]  # to dispatch now, priority then EDF order; empty: nothing yet
    wake_at: float | None  # when to decide again if nothing changes; None: not needed


class Scheduler:
    """The queue of pending requests and the batching decision.

    Bounds: the queue holds at most `max_queue` requests (`add` refuses more:
    the pool drops them at once); a batch holds at most `max_batch`.
    """

    def __init__(
        self, max_batch: int = 256, max_wait_s: float = 0.002, margin_s: float = 0.001, max_queue: int = 100_000
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch = {max_batch!r}: expected >= 1")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.margin_s = margin_s
        self.max_queue = max_queue
        # priority -> heap of (deadline, seq, entry): tuples compare in C, several
        # times faster than the dataclass's generated ordering on this hot path.
        self._heaps: dict[int, list[tuple[float, int, Pending]]] = {}
        self._levels: list[int] = []  # the keys of _heaps, highest first
        self._live = 0  # entries in the heaps not cancelled
        self._window_start: float | None = None  # arrival of the first request not yet batched

    def __len__(self) -> int:
        return self._live

    def add(self, p: Pending) -> bool:
        """Queue a request; False (and not queued) when the queue is full."""
        if self._live >= self.max_queue:
            return False
        heap = self._heaps.get(p.priority)
        if heap is None:
            heap = self._heaps[p.priority] = []
            self._levels = sorted(self._heaps, reverse=True)
        heapq.heappush(heap, (p.deadline, p.seq, p))
        self._live += 1
        if self._window_start is None:
            self._window_start = p.arrived
        return True

    def cancel(self, p: Pending) -> None:
        """Forget a queued request (lazily: it is skipped when it reaches the head)."""
        if not p.cancelled:
            p.cancelled = True
            self._live -= 1

    def _skip_cancelled(self) -> None:
        for heap in self._heaps.values():
            while heap and heap[0][2].cancelled:
                heapq.heappop(heap)

    def _reset_window(self) -> None:
        if not self._live:
            for heap in self._heaps.values():
                heap.clear()  # only cancelled entries can remain
            self._window_start = None

    def expire(self, now: float) -> list[Pending]:
        """Remove and return every request whose deadline has passed (deadline <= now)."""
        out = []
        for heap in self._heaps.values():
            while heap and (heap[0][2].cancelled or heap[0][0] <= now):
                p = heapq.heappop(heap)[2]
                if not p.cancelled:
                    self._live -= 1
                    out.append(p)
        self._reset_window()
        return out

    def next_deadline(self) -> float | None:
        """The earliest deadline queued, over every priority level."""
        self._skip_cancelled()
        heads = [heap[0][0] for heap in self._heaps.values() if heap]
        return min(heads) if heads else None

    def decide(self, now: float, latency: BatchLatency) -> Decision:
        """For one free worker with this latency: a batch to send now, or when to look again.

        Call `expire(now)` first; this does not drop anything.
        """
        earliest = self.next_deadline()
        if earliest is None:
            return Decision([], None)
        n = min(self._live, self.max_batch)
        if self._live < self.max_batch:
            latest_start = earliest - latency.estimate(n) - self.margin_s
            window = self._window_start if self._window_start is not None else now
            send_at = min(latest_start, window + self.max_wait_s)
            if now < send_at:
                return Decision([], send_at)
        batch: list[Pending] = []
        for level in self._levels:
            heap = self._heaps[level]
            while heap and len(batch) < n:
                p = heapq.heappop(heap)[2]
                if not p.cancelled:
                    batch.append(p)
            if len(batch) >= n:
                break
        self._live -= len(batch)
        # Requests left behind (a full batch was taken) keep the window they
        # arrived in: they have waited already and go to the next free worker.
        self._reset_window()
        return Decision(batch, None)

    def drain(self) -> list[Pending]:
        """Remove and return everything queued (the pool is closing)."""
        out = [entry[2] for level in self._levels for entry in sorted(self._heaps[level]) if not entry[2].cancelled]
        self._heaps.clear()
        self._levels = []
        self._live = 0
        self._window_start = None
        return out


class StreamAdmission:
    """Streams waiting for a place in a worker's running batch: first come,
    first served.

    Pure like the Scheduler: the items are the pool's streams, seen only
    through `deadline` (time by which a worker must have taken it, or None)
    and `end` (not None once it ended: cancelled while queued). Bound: at
    most `max_queue` wait (`add` refuses more: the pool drops them at once).
    """

    def __init__(self, max_queue: int = 100_000):
        self.max_queue = max_queue
        self._q: collections.deque = collections.deque()

    def __len__(self) -> int:
        return len(self._q)

    def add(self, stream: Any) -> bool:
        if len(self._q) >= self.max_queue:
            return False
        self._q.append(stream)
        return True

    def expire(self, now: float) -> list[Any]:
        """Forget the streams that ended while queued; remove and return those
        whose admission deadline has passed (deadline <= now)."""
        kept: collections.deque = collections.deque()
        out = []
        for stream in self._q:
            if stream.end is not None:
                continue
            if stream.deadline is not None and stream.deadline <= now:
                out.append(stream)
            else:
                kept.append(stream)
        self._q = kept
        return out

    def admit(self, rooms: Iterable[tuple[Any, int]]) -> list[tuple[Any, Any]]:
        """(place, free room) pairs, in the order to fill them -> (place, stream)
        pairs to start now, oldest stream first. Call `expire(now)` first."""
        out = []
        q = self._q
        for place, room in rooms:
            while room > 0 and q:
                out.append((place, q.popleft()))
                room -= 1
            if not q:
                break
        return out

    def next_deadline(self) -> float | None:
        deadlines = [s.deadline for s in self._q if s.deadline is not None and s.end is None]
        return min(deadlines) if deadlines else None

    def drain(self) -> list[Any]:
        q, self._q = self._q, collections.deque()
        return [s for s in q if s.end is None]
