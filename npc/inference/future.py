"""What `Pool.submit` returns: a future that ends in exactly one outcome.

A synchronous tick never waits on a future: it checks `done()`, or drains an
`Inbox` it passed to `submit` (`inbox.poll()` returns the futures finished
since the last call). asyncio code may `await` a future instead; plain
threads may `wait(timeout)`.

Only the pool's engine thread finishes futures; `_finish` runs once per
future, which is what makes the four outcomes exclusive.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .pool import Pool
    from .scheduler import Pending

log = logging.getLogger("npcworld.inference")

# Guards `_event` creation against a concurrent finish. Held for a few
# instructions at a time; shared by every future (an Event per future would
# cost more than the request).
_LOCK = threading.Lock()


class Outcome(enum.Enum):
    ON_TIME = "on_time"  # result arrived in the pool before the deadline
    LATE = "late"  # result arrived after the deadline (value still there)
    DROPPED = "dropped"  # never computed: deadline passed in the queue or the worker, queue full, or cancelled
    FAILED = "failed"  # the runner raised, its worker died or hung, or the pool closed


class InferenceError(Exception):
    """Raised by `result()` for a request that has no value."""


class RequestDropped(InferenceError):
    pass


class RequestFailed(InferenceError):
    pass


class InferenceFuture:
    """One request's fate. Attributes are written once by the engine thread.

    request, deadline:  as submitted (deadline: time.monotonic() seconds)
    submitted_at:       time.monotonic() at submit
    finished_at:        time.monotonic() when the outcome was set
    outcome:            an Outcome, None until done
    value:              the runner's output (ON_TIME or LATE), else None
    error:              why it was dropped or failed, else None
    worker:             the worker that ran it: its index (local) or name (remote); None if never sent
    batch_size:         size of the batch it ran in (0 if never sent)
    """

    __slots__ = (
        "request",
        "deadline",
        "submitted_at",
        "finished_at",
        "outcome",
        "value",
        "error",
        "worker",
        "batch_size",
        "_callbacks",
        "_event",
        "_inbox",
        "_pending",
        "_pool",
    )

    def __init__(self, request: Any, deadline: float, submitted_at: float, inbox: "Inbox | None" = None):
        self.request = request
        self.deadline = deadline
        self.submitted_at = submitted_at
        self.finished_at: float | None = None
        self.outcome: Outcome | None = None
        self.value: Any = None
        self.error: str | None = None
        self.worker: int | str | None = None
        self.batch_size = 0
        self._callbacks: list[Callable[["InferenceFuture"], None]] | None = None
        self._event: threading.Event | None = None
        self._inbox = inbox
        self._pending: Pending | None = None  # the scheduler's entry while queued (the pool's business)
        self._pool: Pool | None = None

    def __repr__(self) -> str:
        state = self.outcome.value if self.outcome else "pending"
        return f"<InferenceFuture {state} deadline={self.deadline:.3f}>"

    # -- checking, never blocking -------------------------------------------------

    def done(self) -> bool:
        return self.outcome is not None

    @property
    def ok(self) -> bool:
        """True when there is a value (on time or late)."""
        return self.outcome is Outcome.ON_TIME or self.outcome is Outcome.LATE

    @property
    def latency(self) -> float | None:
        """Seconds from submit to outcome."""
        return None if self.finished_at is None else self.finished_at - self.submitted_at

    def result(self, timeout: float | None = 0.0) -> Any:
        """The value. Waits up to `timeout` seconds (default: not at all; None:
        forever). Raises TimeoutError if not done, RequestDropped or
        RequestFailed if there is no value."""
        if self.outcome is None and not self.wait(timeout):
            raise TimeoutError("inference request not finished")
        if self.outcome is Outcome.DROPPED:
            raise RequestDropped(self.error)
        if self.outcome is Outcome.FAILED:
            raise RequestFailed(self.error)
        return self.value

    # -- waiting ------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Block this thread until done or `timeout` seconds; True when done.
        Not for the tick thread."""
        if self.outcome is not None:
            return True
        with _LOCK:
            if self.outcome is not None:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def add_done_callback(self, fn: Callable[["InferenceFuture"], None]) -> None:
        """Call fn(future) once done: at once if it is, else from the pool's
        engine thread (keep it short and thread-safe)."""
        with _LOCK:
            if self.outcome is None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn(self)

    def __await__(self):
        if self.outcome is None:
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()

            def wake(_f: InferenceFuture) -> None:
                loop.call_soon_threadsafe(lambda: waiter.done() or waiter.set_result(None))

            self.add_done_callback(wake)
            yield from waiter.__await__()
        return self.result()

    def cancel(self) -> bool:
        """Withdraw a request still in the queue: it ends DROPPED ("cancelled")
        without compute. False when it is already running or done."""
        pool = self._pool
        return pool is not None and self.outcome is None and pool._cancel(self)

    # -- the engine's side ------------------------------------------------------------

    def _finish(self, outcome: Outcome, now: float, value: Any = None, error: str | None = None) -> None:
        with _LOCK:
            if self.outcome is not None:
                raise RuntimeError(f"{self!r} finished twice ({outcome.value})")
            self.value = value
            self.error = error
            self.finished_at = now
            self.outcome = outcome
            callbacks, self._callbacks = self._callbacks, None
            event = self._event
        self._pending = None
        if event is not None:
            event.set()
        if self._inbox is not None:
            self._inbox.append(self)
        if callbacks:
            for fn in callbacks:
                try:
                    fn(self)
                except Exception:
                    # A consumer's bug must not stop the engine that serves everyone.
                    log.exception("inference future callback failed")


class Inbox:
    """Where finished futures land for a consumer that polls (the tick).

    Pass it to `submit(..., inbox=...)`; `poll()` returns the futures finished
    since the last poll, in finishing order, without blocking. Unbounded, but
    it only ever holds futures its owner submitted and has not polled yet.
    """

    __slots__ = ("_q",)

    def __init__(self) -> None:
        self._q: collections.deque[InferenceFuture] = collections.deque()

    def append(self, fut: InferenceFuture) -> None:  # engine thread
        self._q.append(fut)

    def poll(self) -> list[InferenceFuture]:
        q = self._q
        out = []
        # popleft is atomic; appends racing with this loop land in this poll or the next.
        while q:
            out.append(q.popleft())
        return out

    def __len__(self) -> int:
        return len(self._q)
