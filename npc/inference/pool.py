"""The inference pool: worker processes, and the engine loop that feeds them.

    pool = Pool(PoolConfig(runner="npc.inference.runners:EchoRunner")).start()
    inbox = Inbox()
    fut = pool.submit(payload, deadline=time.monotonic() + 0.05, inbox=inbox)
    ...                                   # next tick:
    for fut in inbox.poll():              # never blocks
        if fut.outcome is Outcome.ON_TIME: apply(fut.value)
    pool.close()

Three parts, as in vLLM: the scheduler (scheduler.py, pure policy: which
requests form the next batch, and when), the engine (this file: one thread in
the pool's process that moves requests from `submit` into the scheduler,
batches to workers and results back to futures, and watches worker health),
and the workers (worker.py: processes that only run a model).

The calling thread (the tick) only ever takes a lock for a few instructions
and writes one byte to a pipe; it never waits on the engine, a worker or a
socket. torch is never imported in this process.

Deadlines are absolute `time.monotonic()` seconds (system-wide on Linux, so
the workers compare the same clock). Outcomes, each counted in `pool.stats`:
- ON_TIME: the result reached the pool at or before the deadline;
- LATE: after it (the value is still given; the caller decides);
- DROPPED: no compute was spent: the deadline passed while queued here or on
  the way to the worker (checked at both ends), the queue was full, or the
  caller cancelled it;
- FAILED: the runner raised, the worker died or hung with it, or the pool closed.

Bounds and what happens at them:
- queue: `max_queue` requests; beyond it a request is dropped at once;
- in flight: one batch of at most `max_batch` per worker; the rest wait here;
- a worker silent for `hang_timeout_s` is killed; its batch fails at once;
- a dead worker restarts at once, then with backoff (0.1 s doubling up to
  `restart_backoff_max_s`) while it keeps failing; while no worker is up,
  requests wait in the queue and are dropped at their deadlines.

Streams (dialogue): a streaming runner (runners.py) makes a pool of
streaming workers. `open_stream(request)` returns a `Stream` (stream.py) at
once; the engine hands queued streams, first come first served, to a ready
worker holding fewer than `max_streams`, which joins them to its running
batch between decode steps; pieces come back as they are made and are
appended to the stream, which the tick drains with `take()`. A stream whose
admission deadline passes while queued is dropped; one whose worker dies or
hangs fails at once; `Stream.cancel()` frees its compute at the worker's next
step.

Cost to the tick's process: the engine thread shares the GIL with the tick.
It spends a few microseconds per request (packing, unpacking, finishing the
future; bench/pool.py measures it), so a tick with thousands of due NPCs is
cheaper sent as one request holding an (N, obs) matrix than as N requests;
the pool serves both, and batches across requests either way.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import enum
import logging
import multiprocessing
import numbers
import os
import selectors
import signal
import socket
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from . import wire
from .config import PoolConfig
from .devices import plan_devices
from .future import Inbox, InferenceFuture, Outcome
from .scheduler import BatchLatency, Pending, Scheduler
from .stats import PoolStats
from .stream import Stream, StreamEnd

log = logging.getLogger("npcworld.inference")

RECV_BYTES = 1 << 20
IDLE_WAKE_S = 1.0  # the engine wakes at least this often even with nothing to do


class WorkerState(enum.Enum):
    STARTING = "starting"  # spawned, loading its runner
    IDLE = "idle"
    BUSY = "busy"  # one batch in flight
    EXITING = "exiting"  # lost (died, hung, stopping): waiting for the process to end
    DOWN = "down"  # no process; restarts at `restart_at`


@dataclass
class WorkerInfo:
    """A snapshot of one worker, for tests, benchmarks and the monitor page."""

    index: int
    device: str
    state: str
    pid: int | None
    starts: int
    batches: int
    latency_s: dict[int, float]  # batch-size bucket -> estimated round trip
    last_error: str | None


@dataclass
class _Worker:
    index: int
    device: str
    threads: int
    latency: BatchLatency
    state: WorkerState = WorkerState.DOWN
    proc: Any = None  # multiprocessing.Process
    sock: socket.socket | None = None
    unpacker: Any = None
    out: bytearray = field(default_factory=bytearray)  # bytes not yet written to the socket
    want_write: bool = False  # registered for EVENT_WRITE (out is not empty)
    pid: int | None = None
    started_at: float = 0.0
    last_seen: float = 0.0
    restart_at: float | None = 0.0
    failures: int = 0  # consecutive losses without a completed batch
    starts: int = 0
    batches: int = 0
    batch_id: int = 0
    dispatched_at: float = 0.0
    inflight: list[InferenceFuture] = field(default_factory=list)  # the batch sent, in order
    last_error: str | None = None
    fatal: str | None = None  # the traceback a worker sent before exiting
    reaping: bool = False
    streaming: bool = False  # its runner is a streaming runner (reported when ready)
    streams: dict[int, Stream] = field(default_factory=dict)  # sid -> the streams it runs


class Pool:
    """A pool of model workers. Thread-safe `submit`; everything else runs on
    the engine thread started by `start()`."""

    def __init__(self, config: PoolConfig | None = None):
        self.config = (config or PoolConfig()).validate()
        self.stats = PoolStats()
        self._lock = threading.Lock()
        self._incoming: list[Pending] = []
        self._cancels: list[InferenceFuture] = []
        self._seq = 0
        self._wake_pending = False
        self._closing = False
        self._engine_done = threading.Event()
        self._state_changed = threading.Condition()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._scheduler = Scheduler(self.config.max_batch, self.config.max_wait_s, self.config.margin_s,
                                    self.config.max_queue)
        self._thread: threading.Thread | None = None
        self._accepting = True  # False once the engine has exited: submit answers by itself
        self._batch_ids = 0
        self._decide_at: float | None = None  # when the scheduler wants to decide again
        self._stream_in: list[Stream] = []  # opened since the engine's last intake (under the lock)
        self._stream_cancels: list[Stream] = []
        self._stream_queue: collections.deque[Stream] = collections.deque()  # engine only
        self._sids = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> "Pool":
        """Start the engine thread, which spawns the workers. Returns at once;
        requests submitted before the workers are ready wait in the queue."""
        if self._thread is not None:
            return self
        cfg = self.config
        devices = plan_devices(cfg.workers, cfg.devices)
        cpu_workers = sum(1 for d in devices if d == "cpu")
        self._workers = [
            _Worker(i, d, cfg.cpu_threads(cpu_workers) if d == "cpu" else 1,
                    BatchLatency(cfg.latency_prior_s, cfg.latency_alpha))
            for i, d in enumerate(devices)
        ]
        self._thread = threading.Thread(target=self._engine, name="npcworld-inference-engine", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)
        self._atexit = lambda: (p := ref()) is not None and p.close()
        atexit.register(self._atexit)
        return self

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting work, fail what is queued, let workers finish their
        batch and exit (killing any still running after `close_timeout_s`).
        Blocks up to about that long (not from the tick: use aclose() in
        asyncio code); idempotent."""
        if self._thread is None:
            with self._lock:
                self._accepting = False
                self._close_pipe()
            self._engine_done.set()
            return
        with self._lock:
            self._closing = True
            self._wake_pending = False  # make sure this wake-up is written
            self._wake_locked()
        if threading.current_thread() is self._thread:
            return  # called from a done-callback: the engine finishes the close itself
        limit = self.config.close_timeout_s if timeout is None else timeout
        self._thread.join(limit + 5.0)
        atexit.unregister(self._atexit)

    def _close_pipe(self) -> None:
        """Close the engine's wake-up pipe (under the lock; after the engine has stopped)."""
        for name in ("_wake_r", "_wake_w"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    async def aclose(self) -> None:
        """close() from asyncio code, without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> "Pool":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the calling thread's side ----------------------------------------------------

    def submit(self, request: Any, deadline: float, inbox: Inbox | None = None) -> InferenceFuture:
        """Queue one request; returns its future at once.

        deadline: absolute `time.monotonic()` seconds. inbox: if given, the
        future is appended to it when it finishes (see Inbox.poll).
        """
        return self.submit_many((request,), deadline, inbox)[0]

    def submit_many(self, requests: Iterable[Any], deadline: "float | Iterable[float]",
                    inbox: Inbox | None = None) -> list[InferenceFuture]:
        """Queue several requests under one lock and one wake-up (a tick's worth).
        `deadline` is one time for all, or one per request."""
        now = time.monotonic()
        requests = list(requests)
        deadlines = ([float(deadline)] * len(requests) if isinstance(deadline, numbers.Real)
                     else [float(d) for d in deadline])
        if len(deadlines) != len(requests):
            raise ValueError(f"{len(requests)} requests but {len(deadlines)} deadlines")
        futures = [InferenceFuture(request, dl, now, inbox) for request, dl in zip(requests, deadlines)]
        pendings = [Pending(dl, 0, now, fut) for dl, fut in zip(deadlines, futures)]
        with self._lock:
            running = self._accepting and self._thread is not None
            if running:
                seq = self._seq
                for fut, p in zip(futures, pendings):
                    seq += 1
                    p.seq = seq
                    fut._pending = p
                    fut._pool = self
                self._seq = seq
                self._incoming.extend(pendings)
                self.stats.submitted += len(futures)
                self._wake_locked()
            else:
                # No engine to hand them to: answer here, under the lock, as
                # nothing else writes the counters once the engine is gone.
                self.stats.submitted += len(futures)
                self.stats.failed += len(futures)
        if not running:
            for fut in futures:
                fut._finish(Outcome.FAILED, now, error="the inference pool is not running")
        return futures

    def open_stream(self, request: Any, deadline: float | None = None) -> Stream:
        """Queue one streaming request; returns its Stream at once (thread-safe).

        deadline: time.monotonic() seconds by which a worker must have taken
        it (else it ends DROPPED without compute); None waits as long as it takes.
        """
        with self._lock:
            self._sids += 1
            stream = Stream(request, deadline, self._sids, self)
            running = self._accepting and self._thread is not None
            if running:
                self._stream_in.append(stream)
                self.stats.streams_opened += 1
                self._wake_locked()
        if not running:
            stream._end(StreamEnd.FAILED, "the inference pool is not running")
        return stream

    def _cancel_stream(self, stream: Stream) -> bool:
        with self._lock:
            if not self._accepting:
                return False
            self._stream_cancels.append(stream)
            self._wake_locked()
        return True

    def _end_stream(self, stream: Stream, end: str, error: str | None = None) -> None:
        if stream._end(end, error):
            self.stats.count_stream_end(end)

    def _cancel(self, fut: InferenceFuture) -> bool:
        with self._lock:
            if not self._accepting:
                return False
            self._cancels.append(fut)
            self._wake_locked()
        return True

    def _wake_locked(self) -> None:
        """Wake the engine (one byte in its pipe, unless one is there already).
        Under the lock, so the pipe cannot be closed between check and write."""
        if self._wake_pending or self._wake_w is None:
            return
        self._wake_pending = True
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # full: the engine is awake anyway

    def wait_ready(self, timeout: float, count: int | None = None) -> bool:
        """Block until `count` workers (default: all) are ready; False on timeout.
        For start-up and tests, not the tick."""
        want = len(self._workers) if count is None else count
        return self.wait_for(lambda: self.stats.workers_ready >= want, timeout)

    def wait_for(self, predicate: Callable[[], Any], timeout: float) -> bool:
        """Block until predicate() is true, re-checking whenever a worker changes
        state (spawned, ready, lost, reported an error); False on timeout."""
        end = time.monotonic() + timeout
        with self._state_changed:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0 or self._engine_done.is_set():
                    return bool(predicate())
                # Woken by worker state changes; re-checked every 50 ms for anything else.
                self._state_changed.wait(min(left, 0.05))
        return True

    def workers(self) -> list[WorkerInfo]:
        return [WorkerInfo(w.index, w.device, w.state.value, w.pid, w.starts, w.batches, dict(w.latency.ewma),
                           w.last_error) for w in self._workers]

    # -- the engine thread ----------------------------------------------------------

    def _engine(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        close_by: float | None = None
        try:
            while True:
                now = time.monotonic()
                timeout = max(0.0, min(self._next_wake(now, close_by), now + IDLE_WAKE_S) - now)
                try:
                    events = self._sel.select(timeout)
                    now = time.monotonic()
                    for key, mask in events:
                        kind, w = key.data
                        if kind == "wake":
                            self._drain_wake()
                        elif kind == "sock":
                            if mask & selectors.EVENT_WRITE:
                                self._flush(w)
                            if mask & selectors.EVENT_READ:
                                self._read(w, now)
                        elif kind == "proc":
                            self._reap(w, now)
                    now = time.monotonic()
                    closing = self._intake(now)
                    if closing:
                        if close_by is None:
                            close_by = now + self.config.close_timeout_s
                            self._begin_close(now)
                        if self._close_step(now, close_by):
                            break
                        continue
                    self._check_health(now)
                    for p in self._scheduler.expire(now):
                        self._finish(p.item, Outcome.DROPPED, now, error="deadline passed in the queue")
                    self._dispatch(now)
                    if self._stream_queue:
                        self._dispatch_streams(now)
                except Exception:
                    # A bug here must not strand every future; log it and keep serving.
                    log.exception("inference engine iteration failed")
                finally:
                    self._refresh_gauges()
        finally:
            self._shutdown_now(time.monotonic())
            self._sel.close()
            with self._lock:
                self._close_pipe()
            self._engine_done.set()
            with self._state_changed:
                self._state_changed.notify_all()

    def _next_wake(self, now: float, close_by: float | None) -> float:
        t = self._decide_at if self._decide_at is not None else now + IDLE_WAKE_S
        deadline = self._scheduler.next_deadline()
        if deadline is not None:
            t = min(t, deadline)
        cfg = self.config
        for w in self._workers:
            if w.state is WorkerState.STARTING:
                t = min(t, w.started_at + cfg.start_timeout_s)
            elif w.state in (WorkerState.IDLE, WorkerState.BUSY):
                t = min(t, w.last_seen + cfg.hang_timeout_s)
            elif w.state is WorkerState.DOWN and w.restart_at is not None:
                t = min(t, w.restart_at)
        if close_by is not None:
            t = min(t, close_by)
        for stream in self._stream_queue:
            if stream.deadline is not None:
                t = min(t, stream.deadline)
        return t

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _intake(self, now: float) -> bool:
        """Move submitted requests and cancels into the scheduler; True when closing."""
        with self._lock:
            incoming, self._incoming = self._incoming, []
            cancels, self._cancels = self._cancels, []
            stream_in, self._stream_in = self._stream_in, []
            stream_cancels, self._stream_cancels = self._stream_cancels, []
            self._wake_pending = False
            closing = self._closing
        for stream in stream_in:
            if len(self._stream_queue) >= self.config.max_queue:
                self._end_stream(stream, StreamEnd.DROPPED, f"queue full ({self.config.max_queue} streams)")
            else:
                self._stream_queue.append(stream)
        for stream in stream_cancels:
            if stream.end is not None:
                continue
            w = self._workers[stream.worker] if stream.worker is not None else None
            if w is not None and w.streams.pop(stream.sid, None) is not None and w.sock is not None:
                self._write(w, wire.pack(["cancel", stream.sid]))
            self._end_stream(stream, StreamEnd.CANCELLED, "cancelled")
        add = self._scheduler.add
        for p in incoming:
            if not add(p):
                self._finish(p.item, Outcome.DROPPED, now, error=f"queue full ({self.config.max_queue} requests)")
        for fut in cancels:
            p = fut._pending
            if p is not None and fut.outcome is None:
                self._scheduler.cancel(p)
                self._finish(fut, Outcome.DROPPED, now, error="cancelled")
        return closing

    def _finish(self, fut: InferenceFuture, outcome: Outcome, now: float, value: Any = None,
                error: str | None = None) -> None:
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

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        self._decide_at = None
        for w in self._workers:
            if w.state is not WorkerState.IDLE or w.streaming or not len(self._scheduler):
                continue
            decision = self._scheduler.decide(now, w.latency)
            if decision.batch:
                self._send_batch(w, decision.batch, now)
            elif decision.wake_at is not None:
                self._decide_at = decision.wake_at if self._decide_at is None else min(self._decide_at,
                                                                                         decision.wake_at)

    def _dispatch_streams(self, now: float) -> None:
        """Queued streams, first come first served, to streaming workers with room."""
        q = self._stream_queue
        kept: collections.deque[Stream] = collections.deque()
        while q:
            stream = q.popleft()
            if stream.end is not None:
                continue  # cancelled while queued
            if stream.deadline is not None and stream.deadline <= now:
                self._end_stream(stream, StreamEnd.DROPPED, "deadline passed in the queue")
                continue
            kept.append(stream)
        self._stream_queue = kept
        for w in self._workers:
            if not kept:
                break
            if w.state is not WorkerState.IDLE or not w.streaming:
                continue
            while kept and len(w.streams) < self.config.max_streams:
                stream = kept.popleft()
                try:
                    data = wire.pack(["add", stream.sid, stream.deadline, stream.request])
                except (TypeError, ValueError, OverflowError) as exc:
                    self._end_stream(stream, StreamEnd.FAILED, f"request cannot be sent to a worker: {exc}")
                    continue
                stream.worker = w.index
                w.streams[stream.sid] = stream
                self._write(w, data)

    def _send_batch(self, w: _Worker, batch: list[Pending], now: float) -> None:
        self._batch_ids += 1
        try:
            data = self._pack_batch(batch)
        except (TypeError, ValueError, OverflowError):
            # Some payload cannot travel: fail those requests, send the rest.
            good = []
            for p in batch:
                try:
                    wire.pack(p.item.request)
                    good.append(p)
                except (TypeError, ValueError, OverflowError) as exc:
                    self._finish(p.item, Outcome.FAILED, now, error=f"request cannot be sent to a worker: {exc}")
            if not good:
                return
            batch = good
            data = self._pack_batch(batch)
        n = len(batch)
        inflight = w.inflight = []
        for p in batch:
            fut = p.item
            fut._pending = None
            fut.worker = w.index
            fut.batch_size = n
            inflight.append(fut)
        w.batch_id = self._batch_ids
        w.dispatched_at = now
        w.state = WorkerState.BUSY
        self.stats.count_batch(n)
        self._write(w, data)

    def _pack_batch(self, batch: list[Pending]) -> bytes:
        payloads = wire.stack([p.item.request for p in batch])
        return wire.pack(["batch", self._batch_ids, [p.seq for p in batch], [p.deadline for p in batch], payloads])

    def _write(self, w: _Worker, data: bytes) -> None:
        w.out += data
        self._flush(w)

    def _flush(self, w: _Worker) -> None:
        """Write what the socket takes now; the rest waits for it to be writable
        (a worker that stops reading never blocks the engine)."""
        if w.sock is None:
            w.out.clear()
            return
        try:
            while w.out:
                sent = w.sock.send(w.out)
                del w.out[:sent]
        except BlockingIOError:
            pass
        except OSError:
            w.out.clear()  # the worker is gone; its socket's EOF or its exit reports it
            return
        if w.want_write != bool(w.out):
            w.want_write = bool(w.out)
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if w.out else 0)
            self._sel.modify(w.sock, events, ("sock", w))

    # -- results -------------------------------------------------------------------------

    def _read(self, w: _Worker, now: float) -> None:
        while w.sock is not None:
            try:
                data = w.sock.recv(RECV_BYTES)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                code = w.proc.exitcode if w.proc is not None else None
                detail = f" with code {code}" if code is not None else ""
                if w.fatal:
                    detail += f": {w.fatal.strip().splitlines()[-1]}"
                self._lose(w, now, f"worker {w.index} (pid {w.pid}) exited{detail}", death=True)
                return
            w.last_seen = now
            w.unpacker.feed(data)
            for msg in w.unpacker:
                self._on_message(w, msg, now)
            if len(data) < RECV_BYTES:
                return

    def _on_message(self, w: _Worker, msg: list, now: float) -> None:
        kind = msg[0]
        if kind == "done":
            _, batch_id, statuses, values, compute_s = msg
            if batch_id != w.batch_id:
                return  # a stale answer (cannot happen with one batch in flight; ignored)
            inflight, w.inflight = w.inflight, []
            values = wire.unstack(values)
            w.latency.observe(len(inflight), now - w.dispatched_at)
            self.stats.compute_s += compute_s
            w.batches += 1
            w.failures = 0
            w.state = WorkerState.IDLE
            if len(statuses) != len(inflight) or len(values) != len(inflight):
                for fut in inflight:  # never silent, though only a bug could cause it
                    self._finish(fut, Outcome.FAILED, now, error="worker answered a batch of the wrong size")
                return
            for fut, status, value in zip(inflight, statuses, values):
                if status == "ok":
                    self._finish(fut, Outcome.ON_TIME if now <= fut.deadline else Outcome.LATE, now, value)
                elif status == "dropped":
                    self._finish(fut, Outcome.DROPPED, now, error="deadline passed before the worker ran it")
                else:
                    self._finish(fut, Outcome.FAILED, now, error=f"runner failed: {value}")
        elif kind == "pieces":
            _, pieces, compute_s = msg
            self.stats.compute_s += compute_s
            if pieces:
                w.failures = 0
            for sid, value, end in pieces:
                stream = w.streams.get(sid)
                if stream is None:
                    continue  # cancelled here before the worker saw the cancel
                if end is None or end == "ok":
                    if value is not None:
                        stream._feed(value, now)
                    if end == "ok":
                        del w.streams[sid]
                        self._end_stream(stream, StreamEnd.OK)
                else:
                    del w.streams[sid]
                    if end == "dropped":
                        self._end_stream(stream, StreamEnd.DROPPED, "deadline passed before the worker ran it")
                    else:
                        self._end_stream(stream, StreamEnd.FAILED, f"runner failed: {value}")
        elif kind == "ready":
            info = msg[1]
            w.streaming = bool(info.get("streaming"))
            w.state = WorkerState.IDLE
            log.info("inference worker %d ready: pid %s on %s, runner %s, %s thread(s), nice %s, torch %s", w.index,
                     info.get("pid"), info.get("device"), info.get("runner"), info.get("threads"), info.get("nice"),
                     info.get("torch"))
            self._notify()
        elif kind == "fatal":
            w.fatal = msg[1]
            w.last_error = msg[1]
            log.error("inference worker %d on %s could not start:\n%s", w.index, w.device, msg[1])
            self._notify()

    # -- health --------------------------------------------------------------------------

    def _check_health(self, now: float) -> None:
        cfg = self.config
        for w in self._workers:
            if w.state is WorkerState.DOWN:
                if w.restart_at is not None and now >= w.restart_at:
                    self._spawn(w, now)
            elif w.state is WorkerState.STARTING:
                if now - w.started_at > cfg.start_timeout_s:
                    self._kill(w, now, f"worker {w.index} did not start within {cfg.start_timeout_s:g} s")
            elif w.state in (WorkerState.IDLE, WorkerState.BUSY):
                silent = now - w.last_seen
                if silent > cfg.hang_timeout_s:
                    self._kill(w, now, f"worker {w.index} (pid {w.pid}) stopped answering for {silent:.2f} s "
                                       f"(hang_timeout_s = {cfg.hang_timeout_s:g})")

    def _spawn(self, w: _Worker, now: float) -> None:
        from . import worker as worker_module  # its `main` is what the child imports

        cfg = self.config
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        proc = self._ctx.Process(
            target=worker_module.main, name=f"npcworld-inference-{w.index}", daemon=True,
            args=(child_sock, cfg.runner, cfg.runner_options, w.device, w.threads, os.getpid(), cfg.heartbeat_s,
                  cfg.nice),
        )
        try:
            proc.start()
        except Exception as exc:
            parent_sock.close()
            child_sock.close()
            w.last_error = f"could not spawn worker {w.index}: {exc}"
            log.error("%s", w.last_error)
            self._schedule_restart(w, now)
            return
        child_sock.close()
        parent_sock.setblocking(False)
        w.proc, w.sock, w.pid = proc, parent_sock, proc.pid
        w.unpacker = wire.unpacker()
        w.out.clear()
        w.want_write = False
        w.fatal = None
        w.state = WorkerState.STARTING
        w.started_at = w.last_seen = time.monotonic()
        w.restart_at = None
        w.starts += 1
        self.stats.worker_starts += 1
        self._sel.register(parent_sock, selectors.EVENT_READ, ("sock", w))
        self._sel.register(proc.sentinel, selectors.EVENT_READ, ("proc", w))
        self._notify()

    def _kill(self, w: _Worker, now: float, reason: str) -> None:
        self.stats.worker_hangs += 1
        log.warning("%s; killing it", reason)
        if w.proc is not None and w.proc.exitcode is None:
            try:
                os.kill(w.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._lose(w, now, reason, death=False)

    def _lose(self, w: _Worker, now: float, reason: str, death: bool) -> None:
        """The worker is gone or going: fail its batch at once, stop talking to it.
        Its process is reaped (and the worker restarted) when its sentinel fires."""
        if w.state in (WorkerState.EXITING, WorkerState.DOWN):
            return
        if death and not self._closing:
            self.stats.worker_deaths += 1
            log.warning("%s", reason)
        if not w.fatal or not death:
            w.last_error = reason
        inflight, w.inflight = w.inflight, []
        for fut in inflight:
            self._finish(fut, Outcome.FAILED, now, error=reason)
        streams, w.streams = w.streams, {}
        for stream in streams.values():
            self._end_stream(stream, StreamEnd.FAILED, reason)
        self._close_socket(w)
        w.state = WorkerState.EXITING
        self._notify()
        proc = w.proc
        if proc is None:
            return
        if proc.exitcode is not None:
            self._reap(w, now)
        elif not self._closing:
            # Without its socket a worker is useless; one that lingers (a runner's
            # thread keeping it alive) must not hold its device: end it now.
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _close_socket(self, w: _Worker) -> None:
        if w.sock is not None:
            try:
                self._sel.unregister(w.sock)
            except (KeyError, ValueError):
                pass
            w.sock.close()
            w.sock = None
        w.out.clear()

    def _reap(self, w: _Worker, now: float) -> None:
        """The worker's process has ended (its sentinel is readable): restart it."""
        proc = w.proc
        if proc is None or w.reaping:
            return
        w.reaping = True  # _read and _lose below may lead back here
        try:
            if w.sock is not None:
                self._read(w, now)  # results it wrote before dying still count
            if proc.exitcode is None:
                return  # still running (a spurious wake-up); its sentinel stays registered
            self._lose(w, now, f"worker {w.index} (pid {w.pid}) exited with code {proc.exitcode}", death=True)
            try:
                self._sel.unregister(proc.sentinel)
            except (KeyError, ValueError):
                pass
            proc.join(0)
            proc.close()
            w.proc = None
            w.pid = None
            self._schedule_restart(w, now)
        finally:
            w.reaping = False

    def _schedule_restart(self, w: _Worker, now: float) -> None:
        w.state = WorkerState.DOWN
        if self._closing:
            w.restart_at = None
            return
        w.failures += 1
        delay = 0.0 if w.failures <= 1 else min(self.config.restart_backoff_max_s, 0.1 * 2 ** (w.failures - 2))
        w.restart_at = now + delay

    def _notify(self) -> None:
        self._refresh_gauges()
        with self._state_changed:
            self._state_changed.notify_all()

    def _refresh_gauges(self) -> None:
        s = self.stats
        s.queued = len(self._scheduler)
        s.in_flight = sum(len(w.inflight) for w in self._workers)
        s.workers_ready = sum(1 for w in self._workers if w.state in (WorkerState.IDLE, WorkerState.BUSY))

    # -- closing --------------------------------------------------------------------------

    def _fail_queued_streams(self) -> None:
        q, self._stream_queue = self._stream_queue, collections.deque()
        for stream in q:
            self._end_stream(stream, StreamEnd.FAILED, "the inference pool closed")

    def _begin_close(self, now: float) -> None:
        for p in self._scheduler.drain():
            self._finish(p.item, Outcome.FAILED, now, error="the inference pool closed")
        self._fail_queued_streams()
        for w in self._workers:
            w.restart_at = None
            if w.sock is not None:
                self._write(w, wire.pack(["stop"]))

    def _close_step(self, now: float, close_by: float) -> bool:
        """True when every worker has exited, or the close timeout has passed."""
        for p in self._scheduler.drain():  # submitted while closing
            self._finish(p.item, Outcome.FAILED, now, error="the inference pool closed")
        self._fail_queued_streams()
        for w in self._workers:
            if w.state is WorkerState.DOWN:
                w.restart_at = None
        if all(w.proc is None for w in self._workers):
            return True
        return now >= close_by

    def _shutdown_now(self, now: float) -> None:
        """Kill whatever still runs and fail whatever is still owed (engine exit)."""
        for p in self._scheduler.drain():
            self._finish(p.item, Outcome.FAILED, now, error="the inference pool closed")
        while True:
            # After this, submit answers by itself (under the lock, so the
            # counters have one writer at a time).
            with self._lock:
                self._closing = True
                incoming, self._incoming = self._incoming, []
                self._cancels.clear()
                stream_in, self._stream_in = self._stream_in, []
                self._stream_cancels.clear()
                if not incoming and not stream_in:
                    self._accepting = False
                    break
            for p in incoming:
                self._finish(p.item, Outcome.FAILED, now, error="the inference pool closed")
            for stream in stream_in:
                self._end_stream(stream, StreamEnd.FAILED, "the inference pool closed")
        self._fail_queued_streams()
        for w in self._workers:
            inflight, w.inflight = w.inflight, []
            for fut in inflight:
                self._finish(fut, Outcome.FAILED, now, error="the inference pool closed")
            streams, w.streams = w.streams, {}
            for stream in streams.values():
                self._end_stream(stream, StreamEnd.FAILED, "the inference pool closed")
            self._close_socket(w)
            if w.proc is not None:
                if w.proc.exitcode is None:
                    try:
                        os.kill(w.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                w.proc.join(2.0)
                try:
                    self._sel.unregister(w.proc.sentinel)
                except (KeyError, ValueError):
                    pass
                w.proc = None
            w.pid = None
            w.state = WorkerState.DOWN
        self._refresh_gauges()
