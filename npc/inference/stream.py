"""What `Pool.open_stream` returns: one streaming request (a dialogue reply).

A streaming runner (runners.py, "Streaming runners") produces a request's
output in pieces over many decode steps; the worker sends each step's pieces
at once, and the pool's engine appends them here. The consumer (the tick)
never waits: each tick it calls `take()` for the pieces that arrived since
the last call, and checks `end`.

Only the engine thread writes a stream (`_feed`, `_end`); `take` pops from a
deque, which is safe against concurrent appends. `end` is written last, after
the final pieces are queued, so a consumer that sees `end` set and then calls
`take()` gets everything.
"""

from __future__ import annotations

import collections
import time
from typing import Any


class StreamEnd:
    """How a stream ended (the values of `Stream.end`)."""

    OK = "ok"  # the runner finished it
    DROPPED = "dropped"  # never started: its admission deadline passed, or the queue was full
    CANCELLED = "cancelled"  # the consumer cancelled it (its compute is freed at the worker's next step)
    FAILED = "failed"  # the runner raised, its worker died or hung, or the pool closed


class Stream:
    """One streaming request. Attributes are written by the pool's engine thread.

    request, deadline:  as opened (deadline: time.monotonic() seconds by which it
                        must have reached a worker, or None for no deadline)
    opened_at:          time.monotonic() at open
    first_at:           when its first piece reached the pool, or None
    end:                a StreamEnd value, None while it runs
    error:              why it was dropped or failed, else None
    pieces:             how many pieces arrived so far
    """

    __slots__ = (
        "request",
        "deadline",
        "opened_at",
        "first_at",
        "end",
        "error",
        "pieces",
        "sid",
        "worker",
        "priority",
        "executor",
        "place",
        "seq",
        "listener",
        "_q",
        "_pool",
    )

    def __init__(self, request: Any, deadline: float | None, sid: int, pool: Any = None):
        self.request = request
        self.deadline = deadline
        self.opened_at = time.monotonic()
        self.first_at: float | None = None
        self.end: str | None = None
        self.error: str | None = None
        self.pieces = 0
        self.sid = sid
        self.worker: int | str | None = None  # a local worker's index, or a remote worker's name
        self.priority = 0
        self.executor: Any = None  # the engine's: who runs it, where, and the next piece's number
        self.place: Any = None
        self.seq = 0
        # Called (from the engine thread) after each piece and at the end; keep it
        # short and thread-safe. The remote worker uses it to forward pieces at once.
        self.listener: Any = None
        self._q: collections.deque = collections.deque()
        self._pool = pool

    def __repr__(self) -> str:
        return f"<Stream {self.sid} {self.end or 'running'} pieces={self.pieces}>"

    def done(self) -> bool:
        return self.end is not None

    def take(self) -> list[Any]:
        """The pieces that arrived since the last call, in order; never blocks."""
        q, out = self._q, []
        while q:
            out.append(q.popleft())
        return out

    def cancel(self) -> bool:
        """Stop it: queued, it never starts; running, the worker drops it before
        its next decode step. False when it has already ended."""
        pool = self._pool
        return pool is not None and self.end is None and pool._cancel_stream(self)

    # -- the engine's side -----------------------------------------------------------

    def _feed(self, piece: Any, now: float) -> None:
        if self.first_at is None:
            self.first_at = now
        self.pieces += 1
        self._q.append(piece)
        if self.listener is not None:
            self.listener(self)

    def _end(self, end: str, error: str | None = None) -> bool:
        if self.end is not None:
            return False
        self.error = error
        self.end = end
        if self.listener is not None:
            self.listener(self)
        return True
