"""The engine loop: intake -> scheduler -> dispatch to executors -> results.

One thread in the pool's process (started by Pool.start). Each iteration:
1. wait in a selector for a wake-up byte (the client queued something), a
   worker's socket or exit (the local executor registers those), or the next
   time something is due (a batching window, a deadline, a health check);
2. intake: move what the client queued (requests, streams, cancels) into the
   scheduler and the stream admission queue (scheduler.py, pure);
3. let every executor take what has arrived and check its workers' health;
4. drop the requests and streams whose deadline passed in the queue;
5. dispatch: for each free place an executor offers (remote first, then
   local: local workers serve what no remote worker has room for), ask the
   scheduler for a batch; admit queued streams to places with room.

Only this thread finishes futures and ends streams (`finish`, `end_stream`),
so each ends exactly once and the counters have one writer. An executor is
one implementation of the seam below (`Executor`): local.py (spawned
processes over Unix sockets) and mqtt_executor.py (remote workers through an
MQTT 5 broker).
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
import time
from typing import Any, Iterable, Protocol

from . import messages as m
from . import wire
from .config import PoolConfig
from .future import InferenceFuture, Outcome
from .scheduler import BatchLatency, Pending, Scheduler, StreamAdmission
from .stats import PoolStats
from .stream import Stream, StreamEnd

log = logging.getLogger("npcworld.inference")

IDLE_WAKE_S = 1.0  # the engine wakes at least this often even with nothing to do


class Executor(Protocol):
    """Owns a set of workers. The engine asks it for free places and hands it
    batches and streams; it reports results through engine.finish / end_stream.
    Every method runs on the engine thread; none may block."""

    name: str  # "local", "mqtt"

    def start(self, engine: "Engine", now: float) -> None: ...

    def on_event(self, data: Any, mask: int, now: float) -> None:
        """A selector event for something this executor registered (engine.sel)."""

    def poll(self, now: float) -> None:
        """Take what arrived by other means, check workers' health, restart them."""

    def next_wake(self, now: float) -> float | None: ...

    def slots(self) -> Iterable[tuple[Any, BatchLatency]]:
        """Places free for one batch now, each with its latency estimate."""

    def send_batch(self, place: Any, batch: list[Pending], now: float) -> None: ...

    def stream_rooms(self) -> Iterable[tuple[Any, int]]:
        """Places that run streams, and how many more each can take now."""

    def send_stream(self, place: Any, stream: Stream, now: float) -> None: ...

    def cancel_stream(self, stream: Stream) -> None: ...

    def begin_close(self, now: float) -> None: ...

    def closed(self) -> bool:
        """Every worker has stopped (close may end)."""

    def shutdown(self, now: float) -> None:
        """Kill what still runs; fail what is still owed (engine exit)."""

    def gauges(self) -> tuple[int, int]:
        """(workers ready, requests in flight)."""

    def infos(self) -> list: ...


class Intake:
    """What the client's threads hand the engine, under one lock, and the
    engine's wake-up pipe. The calling thread (the tick) holds the lock for a
    few instructions and writes at most one byte to the pipe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.incoming: list[Pending] = []
        self.cancels: list[InferenceFuture] = []
        self.streams: list[Stream] = []
        self.stream_cancels: list[Stream] = []
        self.closing = False
        self.accepting = True  # False once the engine has exited: the client answers by itself
        self.wake_pending = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def wake_locked(self) -> None:
        """Wake the engine (one byte in its pipe, unless one is there already).
        Under the lock, so the pipe cannot be closed between check and write."""
        if self.wake_pending or self.wake_w is None:
            return
        self.wake_pending = True
        try:
            os.write(self.wake_w, b"\0")
        except OSError:
            pass  # full: the engine is awake anyway

    def wake(self) -> None:
        """From any thread (an executor's I/O thread): wake the engine."""
        with self.lock:
            self.wake_locked()

    def drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except (BlockingIOError, TypeError):
            pass

    def close_pipe(self) -> None:
        """Under the lock; after the engine has stopped."""
        for name in ("wake_r", "wake_w"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)


def encode_batch(
    batch: list[Pending], batch_id: int, now: float, finish, transit_s: float = 0.0
) -> tuple[bytes | None, list[Pending]]:
    """The Batch message for these requests and the requests it holds: a
    payload that cannot travel fails alone (finish(fut, FAILED, ...)), the rest
    go. Budgets are each request's time left minus the expected transit."""

    def pack(ps: list[Pending]) -> bytes:
        budgets = [p.deadline - now - transit_s for p in ps]
        return m.encode(m.Batch(batch_id, budgets, wire.stack([p.item.request for p in ps])))

    try:
        return pack(batch), batch
    except (TypeError, ValueError, OverflowError):
        good = []
        for p in batch:
            try:
                wire.pack(p.item.request)
                good.append(p)
            except (TypeError, ValueError, OverflowError) as exc:
                finish(p.item, Outcome.FAILED, now, error=f"request cannot be sent to a worker: {exc}")
        return (pack(good), good) if good else (None, [])


class Engine:
    def __init__(self, config: PoolConfig, stats: PoolStats, intake: Intake, executors: list[Executor]):
        self.config = config
        self.stats = stats
        self.intake = intake
        self.executors = executors
        self.scheduler = Scheduler(config.max_batch, config.max_wait_s, config.margin_s, config.max_queue)
        self.admission = StreamAdmission(config.max_queue)
        self.closing = False
        self.state_changed = threading.Condition()
        self.done = threading.Event()
        self.sel: selectors.BaseSelector | None = None
        self.batch_ids = 0
        self._decide_at: float | None = None  # when the scheduler wants to decide again

    # -- what executors call -------------------------------------------------------

    def finish(
        self, fut: InferenceFuture, outcome: Outcome, now: float, value: Any = None, error: str | None = None
    ) -> None:
        s = self.stats
        if outcome is Outcome.ON_TIME:
            s.on_time += 1
        elif outcome is Outcome.LATE:
            s.late += 1
        elif outcome is Outcome.DROPPED:
            s.dropped += 1
        else:
            s.failed += 1
        fut._finish(outcome, now, value, error)

    def end_stream(self, stream: Stream, end: str, error: str | None = None) -> None:
        if stream._end(end, error):
            self.stats.count_stream_end(end)

    def next_batch_id(self) -> int:
        self.batch_ids += 1
        return self.batch_ids

    def notify(self) -> None:
        """A worker changed state: refresh the gauges, wake whoever waits on it."""
        self.refresh_gauges()
        with self.state_changed:
            self.state_changed.notify_all()

    def refresh_gauges(self) -> None:
        s = self.stats
        s.queued = len(self.scheduler)
        ready = in_flight = 0
        for ex in self.executors:
            r, f = ex.gauges()
            ready += r
            in_flight += f
        s.workers_ready, s.in_flight = ready, in_flight

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.intake.wake_r, selectors.EVENT_READ, (None, None))
        close_by: float | None = None
        try:
            now = time.monotonic()
            for ex in self.executors:
                ex.start(self, now)
            while True:
                now = time.monotonic()
                timeout = max(0.0, min(self._next_wake(now, close_by), now + IDLE_WAKE_S) - now)
                try:
                    events = self.sel.select(timeout)
                    now = time.monotonic()
                    for key, mask in events:
                        ex, data = key.data
                        if ex is None:
                            self.intake.drain_wake()
                        else:
                            ex.on_event(data, mask, now)
                    now = time.monotonic()
                    closing = self._intake(now)
                    if closing:
                        if close_by is None:
                            close_by = now + self.config.close_timeout_s
                            self._begin_close(now)
                        if self._close_step(now, close_by):
                            break
                        continue
                    for ex in self.executors:
                        ex.poll(now)
                    for p in self.scheduler.expire(now):
                        self.finish(p.item, Outcome.DROPPED, now, error="deadline passed in the queue")
                    self._dispatch(now)
                    if len(self.admission):
                        self._admit_streams(now)
                except Exception:
                    # A bug here must not strand every future; log it and keep serving.
                    log.exception("inference engine iteration failed")
                finally:
                    self.refresh_gauges()
        finally:
            self._shutdown_now(time.monotonic())
            self.sel.close()
            with self.intake.lock:
                self.intake.close_pipe()
            self.done.set()
            with self.state_changed:
                self.state_changed.notify_all()

    def _next_wake(self, now: float, close_by: float | None) -> float:
        t = self._decide_at if self._decide_at is not None else now + IDLE_WAKE_S
        for due in (
            self.scheduler.next_deadline(),
            self.admission.next_deadline(),
            close_by,
            *(ex.next_wake(now) for ex in self.executors),
        ):
            if due is not None:
                t = min(t, due)
        return t

    def _intake(self, now: float) -> bool:
        """Move what the client queued into the scheduler; True when closing."""
        intake = self.intake
        with intake.lock:
            incoming, intake.incoming = intake.incoming, []
            cancels, intake.cancels = intake.cancels, []
            streams, intake.streams = intake.streams, []
            stream_cancels, intake.stream_cancels = intake.stream_cancels, []
            intake.wake_pending = False
            closing = intake.closing
        for stream in streams:
            if not self.admission.add(stream):
                self.end_stream(stream, StreamEnd.DROPPED, f"queue full ({self.config.max_queue} streams)")
        for stream in stream_cancels:
            if stream.end is not None:
                continue
            if stream.executor is not None:
                stream.executor.cancel_stream(stream)
            self.end_stream(stream, StreamEnd.CANCELLED, "cancelled")
        add = self.scheduler.add
        for p in incoming:
            if not add(p):
                self.finish(p.item, Outcome.DROPPED, now, error=f"queue full ({self.config.max_queue} requests)")
        for fut in cancels:
            queued = fut._pending
            if queued is not None and fut.outcome is None:
                self.scheduler.cancel(queued)
                self.finish(fut, Outcome.DROPPED, now, error="cancelled")
        return closing

    # -- dispatch -----------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        self._decide_at = None
        for ex in self.executors:
            for place, latency in ex.slots():
                if not len(self.scheduler):
                    return
                decision = self.scheduler.decide(now, latency)
                if decision.batch:
                    ex.send_batch(place, decision.batch, now)
                elif decision.wake_at is not None:
                    self._decide_at = (
                        decision.wake_at if self._decide_at is None else min(self._decide_at, decision.wake_at)
                    )

    def _admit_streams(self, now: float) -> None:
        for stream in self.admission.expire(now):
            self.end_stream(stream, StreamEnd.DROPPED, "deadline passed in the queue")
        for ex in self.executors:
            if not len(self.admission):
                return
            for place, stream in self.admission.admit(ex.stream_rooms()):
                ex.send_stream(place, stream, now)

    # -- closing --------------------------------------------------------------------------

    def _fail_queued(self, now: float) -> None:
        for p in self.scheduler.drain():
            self.finish(p.item, Outcome.FAILED, now, error="the inference pool closed")
        for stream in self.admission.drain():
            self.end_stream(stream, StreamEnd.FAILED, "the inference pool closed")

    def _begin_close(self, now: float) -> None:
        self.closing = True
        self._fail_queued(now)
        for ex in self.executors:
            ex.begin_close(now)

    def _close_step(self, now: float, close_by: float) -> bool:
        """True when every executor has stopped, or the close timeout has passed."""
        self._fail_queued(now)  # submitted while closing
        for ex in self.executors:
            ex.poll(now)
        return all(ex.closed() for ex in self.executors) or now >= close_by

    def _shutdown_now(self, now: float) -> None:
        """Kill whatever still runs and fail whatever is still owed (engine exit)."""
        self.closing = True
        self._fail_queued(now)
        intake = self.intake
        while True:
            # After this, submit answers by itself (under the lock, so the
            # counters have one writer at a time).
            with intake.lock:
                intake.closing = True
                incoming, intake.incoming = intake.incoming, []
                intake.cancels.clear()
                streams, intake.streams = intake.streams, []
                intake.stream_cancels.clear()
                if not incoming and not streams:
                    intake.accepting = False
                    break
            for p in incoming:
                self.finish(p.item, Outcome.FAILED, now, error="the inference pool closed")
            for stream in streams:
                self.end_stream(stream, StreamEnd.FAILED, "the inference pool closed")
        for ex in self.executors:
            try:
                ex.shutdown(now)
            except Exception:
                log.exception("inference executor %s did not shut down cleanly", ex.name)
        self.refresh_gauges()


def finish_batch(engine: "Engine", futures: list[InferenceFuture], done: m.Done, now: float) -> None:
    """A Done answer -> each future's outcome (shared by the executors)."""
    values = wire.unstack(done.values)
    if len(done.statuses) != len(futures) or len(values) != len(futures):
        for fut in futures:  # never silent, though only a bug (or a bad remote worker) could cause it
            engine.finish(
                fut,
                Outcome.FAILED,
                now,
                error=f"worker answered {len(done.statuses)} statuses for a batch of {len(futures)}",
            )
        return
    for fut, status, value in zip(futures, done.statuses, values):
        if status == "ok":
            engine.finish(fut, Outcome.ON_TIME if now <= fut.deadline else Outcome.LATE, now, value)
        elif status == "dropped":
            engine.finish(fut, Outcome.DROPPED, now, error="deadline passed before the worker ran it")
        elif status == "busy":
            engine.finish(fut, Outcome.DROPPED, now, error="the worker was full (no compute spent)")
        else:
            engine.finish(fut, Outcome.FAILED, now, error=f"runner failed: {value}")


def feed_piece(engine: "Engine", stream: Stream, value: Any, end: str | None, now: float) -> bool:
    """One piece of a stream -> the stream; True when it was the stream's last."""
    if end is None or end == "ok":
        if value is not None:
            stream._feed(value, now)
        if end == "ok":
            engine.end_stream(stream, StreamEnd.OK)
            return True
        return False
    if end == "dropped":
        engine.end_stream(stream, StreamEnd.DROPPED, "deadline passed before the worker ran it")
    elif end == "busy":
        engine.end_stream(stream, StreamEnd.DROPPED, "the worker was full (no compute spent)")
    else:
        engine.end_stream(stream, StreamEnd.FAILED, f"runner failed: {value}")
    return True
