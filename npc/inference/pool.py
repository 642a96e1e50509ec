"""The inference pool's client: what the game calls (submit, open_stream, close).

    pool = Pool(PoolConfig(runner="npc.inference.runners:EchoRunner")).start()
    inbox = Inbox()
    fut = pool.submit(payload, deadline=time.monotonic() + 0.05, inbox=inbox)
    ...                                   # next tick:
    for fut in inbox.poll():              # never blocks
        if fut.outcome is Outcome.ON_TIME: apply(fut.value)
    pool.close()

The parts, as vLLM splits its engine:
- the client (this file): thread-safe `submit`, `open_stream`, `close`;
- the engine loop (engine.py): one thread in the pool's process that moves
  requests from the client into the scheduler, batches to executors and
  results back to futures;
- the scheduler (scheduler.py, pure: which requests form the next batch and
  when; which queued stream starts where);
- executors, two implementations of one seam (engine.Executor): local.py
  (spawned worker processes: heartbeat, restart) and mqtt_executor.py
  (remote workers through an MQTT 5 broker, docs/workers.md; its connection
  on a thread of its own, link.py; the names and topics, broker.py);
- the remote worker process (mqtt_worker.py; `npcworld worker`, worker_cli.py): an MQTT
  front on local pools of the same workers;
- typed messages (messages.py) that both executors and the workers speak;
- the workers (worker.py: processes that only run a model) and the runner
  protocols they drive (runners.py: BatchRunner, StreamRunner).

With `PoolConfig.remote` set, remote workers are offered work first and the
local ones (`workers`, 0 for none) serve what no remote worker has room for.

The calling thread (the tick) only ever takes a lock for a few instructions
and writes one byte to a pipe; it never waits on the engine, a worker or a
socket. torch is never imported in this process.

Deadlines are absolute `time.monotonic()` seconds in this process; what
travels to a worker is the time left (messages.py), so a worker on another
machine, with another clock, enforces the same deadline. Outcomes, each
counted in `pool.stats`:
- ON_TIME: the result reached the pool at or before the deadline;
- LATE: after it (the value is still given; the caller decides);
- DROPPED: no compute was spent: the deadline passed while queued here or on
  the way to the worker (checked at both ends), the queue was full, a remote
  worker was full ("busy"), or the caller cancelled it;
- FAILED: the runner raised, the worker died or hung with it (a remote one:
  went offline, or did not answer by deadline + reply_grace_s), the broker
  connection was lost, or the pool closed.

Bounds and what happens at them:
- queue: `max_queue` requests; beyond it a request is dropped at once;
- in flight: one batch of at most `max_batch` per local worker, and to remote
  workers at most the capacity their status announces; the rest wait here;
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
import threading
import time
import weakref
from typing import Any, Callable, Iterable

from prometheus_client.metrics_core import Metric

from .config import PoolConfig
from .engine import Engine, Intake
from .future import Inbox, InferenceFuture, Outcome
from .scheduler import Pending
from .stats import PoolStats, WorkerInfo
from .stream import Stream, StreamEnd

__all__ = ["Pool", "WorkerInfo"]


class Pool:
    """A pool of model workers. Thread-safe `submit`; everything else runs on
    the engine thread started by `start()`."""

    def __init__(self, config: PoolConfig | None = None):
        self.config = (config or PoolConfig()).validate()
        self.stats = PoolStats()
        self._intake = Intake()
        self._seq = 0
        self._sids = 0
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self.executors: list = []

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> "Pool":
        """Start the engine thread, which spawns the workers (and connects to the
        broker). Returns at once; requests submitted before a worker is ready
        wait in the queue."""
        if self._thread is not None:
            return self
        cfg = self.config
        if cfg.remote is not None:
            from .mqtt_executor import MqttExecutor  # imports aiomqtt: only when asked for

            self.executors.append(MqttExecutor(cfg, cfg.remote))
        if cfg.workers != 0:
            from .local import LocalExecutor

            local = LocalExecutor(cfg, cfg.workers)
            local.plan()
            self.executors.append(local)
        self._engine = Engine(cfg, self.stats, self._intake, self.executors)
        self._thread = threading.Thread(target=self._engine.run, name="npcworld-inference-engine", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)

        def close_at_exit() -> None:
            if (p := ref()) is not None:
                p.close()

        self._atexit = close_at_exit
        atexit.register(self._atexit)
        return self

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting work, fail what is queued, let workers finish their
        batch and exit (killing any still running after `close_timeout_s`).
        Blocks up to about that long (not from the tick: use aclose() in
        asyncio code); idempotent."""
        intake = self._intake
        if self._thread is None:
            with intake.lock:
                intake.accepting = False
                intake.close_pipe()
            return
        with intake.lock:
            intake.closing = True
            intake.wake_pending = False  # make sure this wake-up is written
            intake.wake_locked()
        if threading.current_thread() is self._thread:
            return  # called from a done-callback: the engine finishes the close itself
        limit = self.config.close_timeout_s if timeout is None else timeout
        self._thread.join(limit + 5.0)
        atexit.unregister(self._atexit)

    async def aclose(self) -> None:
        """close() from asyncio code, without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> "Pool":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the calling thread's side ----------------------------------------------------

    def submit(self, request: Any, deadline: float, inbox: Inbox | None = None, priority: int = 0) -> InferenceFuture:
        """Queue one request; returns its future at once.

        deadline: absolute `time.monotonic()` seconds. inbox: if given, the
        future is appended to it when it finishes (see Inbox.poll). priority:
        higher is served first (EDF within a level).
        """
        return self.submit_many((request,), deadline, inbox, priority)[0]

    def submit_many(
        self,
        requests: Iterable[Any],
        deadline: "float | Iterable[float]",
        inbox: Inbox | None = None,
        priority: int = 0,
    ) -> list[InferenceFuture]:
        """Queue several requests under one lock and one wake-up (a tick's worth).
        `deadline` is one time for all, or one per request."""
        now = time.monotonic()
        requests = list(requests)
        deadlines = (
            [float(d) for d in deadline] if isinstance(deadline, Iterable) else [float(deadline)] * len(requests)
        )
        if len(deadlines) != len(requests):
            raise ValueError(f"{len(requests)} requests but {len(deadlines)} deadlines")
        futures = [InferenceFuture(request, dl, now, inbox) for request, dl in zip(requests, deadlines)]
        pendings = [Pending(dl, 0, now, fut, False, priority) for dl, fut in zip(deadlines, futures)]
        intake = self._intake
        with intake.lock:
            running = intake.accepting and self._thread is not None
            if running:
                seq = self._seq
                for fut, p in zip(futures, pendings):
                    seq += 1
                    p.seq = seq
                    fut._pending = p
                    fut._pool = self
                self._seq = seq
                intake.incoming.extend(pendings)
                self.stats.submitted += len(futures)
                intake.wake_locked()
            else:
                # No engine to hand them to: answer here, under the lock, as
                # nothing else writes the counters once the engine is gone.
                self.stats.submitted += len(futures)
                self.stats.failed += len(futures)
        if not running:
            for fut in futures:
                fut._finish(Outcome.FAILED, now, error="the inference pool is not running")
        return futures

    def open_stream(self, request: Any, deadline: float | None = None, priority: int = 0) -> Stream:
        """Queue one streaming request; returns its Stream at once (thread-safe).

        deadline: time.monotonic() seconds by which a worker must have taken
        it (else it ends DROPPED without compute); None waits as long as it takes.
        """
        intake = self._intake
        with intake.lock:
            self._sids += 1
            stream = Stream(request, deadline, self._sids, self)
            stream.priority = priority
            running = intake.accepting and self._thread is not None
            if running:
                intake.streams.append(stream)
                self.stats.streams_opened += 1
                intake.wake_locked()
        if not running:
            stream._end(StreamEnd.FAILED, "the inference pool is not running")
        return stream

    def _cancel_stream(self, stream: Stream) -> bool:
        intake = self._intake
        with intake.lock:
            if not intake.accepting:
                return False
            intake.stream_cancels.append(stream)
            intake.wake_locked()
        return True

    def _cancel(self, fut: InferenceFuture) -> bool:
        intake = self._intake
        with intake.lock:
            if not intake.accepting:
                return False
            intake.cancels.append(fut)
            intake.wake_locked()
        return True

    # -- waiting and looking (start-up, tests, the monitor; not the tick) -----------

    def wait_ready(self, timeout: float, count: int | None = None) -> bool:
        """Block until `count` workers (default: all local ones, or one remote
        one when there are no local ones) are ready; False on timeout."""
        want = count
        if want is None:
            local = sum(len(ex.workers) for ex in self.executors if ex.name == "local")
            want = local or 1
        return self.wait_for(lambda: self.stats.workers_ready >= want, timeout)

    def wait_for(self, predicate: Callable[[], Any], timeout: float) -> bool:
        """Block until predicate() is true, re-checking whenever a worker changes
        state (spawned, ready, lost, reported an error); False on timeout."""
        end = time.monotonic() + timeout
        engine = self._engine
        if engine is None:
            return bool(predicate())
        with engine.state_changed:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0 or engine.done.is_set():
                    return bool(predicate())
                # Woken by worker state changes; re-checked every 50 ms for anything else.
                engine.state_changed.wait(min(left, 0.05))
        return True

    def workers(self) -> list[WorkerInfo]:
        return [info for ex in self.executors for info in ex.infos()]

    def collect(self, prefix: str = "npcworld_inference") -> list[Metric]:
        """/metrics families (a prometheus-client collector): the pool's counters, and each
        executor's own (remote workers)."""
        families = self.stats.families(prefix)
        for ex in self.executors:
            more = getattr(ex, "families", None)
            if more is not None:
                families += more()
        return families
