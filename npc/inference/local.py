"""The local executor: model workers as spawned processes on this machine.

Each worker owns one device and talks to the engine over a Unix socketpair
(messages.py, one typed message after another). This executor spawns them,
writes batches and streams to them without blocking (a worker that stops
reading never blocks the engine), reads their answers, and watches their
health:
- an idle worker sends a heartbeat every `heartbeat_s`; one silent for
  `hang_timeout_s` is killed, and its batch and streams fail at once;
- a dead worker (its socket closes, its process sentinel fires) restarts at
  once, then with backoff (0.1 s doubling up to `restart_backoff_max_s`)
  while it keeps failing;
- one batch is in flight per worker (its place in `slots()` is free only
  while it is idle); a streaming worker holds up to `max_streams` streams;
- with `standby` (PoolConfig), each worker has a warm standby: a second
  process, loaded and heartbeating but sent nothing. When the worker is lost
  a ready standby takes its place at once (reniced to the worker's priority)
  and the lost one's slot becomes the standby, spawned again
  `standby_delay_s` later at nice `standby_nice`, so a loss costs the pool
  one socket swap instead of an import and a model load while requests wait
  (measured with bench/decisions.py's fault run: docs/workers.md).
"""

from __future__ import annotations

import enum
import logging
import multiprocessing
import os
import selectors
import sys
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from . import messages as m
from . import wire
from .devices import plan_devices
from .engine import Engine, encode_batch, feed_piece, finish_batch
from .future import InferenceFuture, Outcome
from .scheduler import BatchLatency, Pending
from .stats import WorkerInfo
from .stream import Stream, StreamEnd

log = logging.getLogger("npcworld.inference")

RECV_BYTES = 1 << 20


class WorkerState(enum.Enum):
    STARTING = "starting"  # spawned, loading its runner
    IDLE = "idle"
    BUSY = "busy"  # one batch in flight
    EXITING = "exiting"  # lost (died, hung, stopping): waiting for the process to end
    DOWN = "down"  # no process; restarts at `restart_at`


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
    standby: bool = False  # a warm standby (LocalExecutor.spares): ready, sent nothing, not in slots()


class LocalExecutor:
    name = "local"

    def __init__(self, config, workers: int | None):
        self.config = config
        self.count = workers
        self.workers: list[_Worker] = []
        self.spares: list[_Worker] = []  # with config.standby: spares[i] stands by for workers[i]
        self._renice_warned = False
        self.ctx = multiprocessing.get_context("spawn")
        self._engine: "Engine | None" = None

    @property
    def engine(self) -> "Engine":
        """The engine this executor runs in: set by `start`, before the engine calls anything else."""
        assert self._engine is not None, "the executor was not started"
        return self._engine

    @property
    def sel(self) -> "selectors.BaseSelector":
        """The engine's selector (exists while the engine runs: every caller is on the engine thread)."""
        assert self.engine.sel is not None, "the engine is not running"
        return self.engine.sel

    def plan(self) -> None:
        """Decide the devices (before the engine starts, so wait_ready knows the count)."""
        cfg = self.config
        devices = plan_devices(self.count, cfg.devices)
        cpu_workers = sum(1 for d in devices if d == "cpu")
        self.workers = [
            _Worker(
                i,
                d,
                cfg.cpu_threads(cpu_workers) if d == "cpu" else 1,
                BatchLatency(cfg.latency_prior_s, cfg.latency_alpha),
            )
            for i, d in enumerate(devices)
        ]
        self.spares = (
            [
                _Worker(
                    w.index, w.device, w.threads, BatchLatency(cfg.latency_prior_s, cfg.latency_alpha), standby=True
                )
                for w in self.workers
            ]
            if cfg.standby
            else []
        )

    # -- the seam ---------------------------------------------------------------------

    def start(self, engine: "Engine", now: float) -> None:
        self._engine = engine

    def on_event(self, data: Any, mask: int, now: float) -> None:
        kind, w = data
        if kind == "sock":
            if mask & selectors.EVENT_WRITE:
                self._flush(w)
            if mask & selectors.EVENT_READ:
                self._read(w, now)
        elif kind == "proc":
            self._reap(w, now)

    def poll(self, now: float) -> None:
        cfg = self.config
        closing = self.engine.closing
        for w in self.workers + self.spares:
            if w.state is WorkerState.DOWN:
                if closing:
                    w.restart_at = None
                elif w.restart_at is not None and now >= w.restart_at:
                    self._spawn(w, now)
            elif closing:
                continue
            elif w.state is WorkerState.STARTING:
                if now - w.started_at > cfg.start_timeout_s:
                    self._kill(w, now, f"worker {w.index} did not start within {cfg.start_timeout_s:g} s")
            elif w.state in (WorkerState.IDLE, WorkerState.BUSY):
                silent = now - w.last_seen
                if silent > cfg.hang_timeout_s:
                    self._kill(
                        w,
                        now,
                        f"worker {w.index} (pid {w.pid}) stopped answering for {silent:.2f} s "
                        f"(hang_timeout_s = {cfg.hang_timeout_s:g})",
                    )

    def next_wake(self, now: float) -> float | None:
        cfg = self.config
        t = None
        for w in self.workers + self.spares:
            if w.state is WorkerState.STARTING:
                due = w.started_at + cfg.start_timeout_s
            elif w.state in (WorkerState.IDLE, WorkerState.BUSY):
                due = w.last_seen + cfg.hang_timeout_s
            elif w.state is WorkerState.DOWN and w.restart_at is not None:
                due = w.restart_at
            else:
                continue
            t = due if t is None else min(t, due)
        return t

    def slots(self):
        for w in self.workers:
            if w.state is WorkerState.IDLE and not w.streaming:
                yield w, w.latency

    def send_batch(self, w: _Worker, batch: list[Pending], now: float) -> None:
        engine = self.engine
        batch_id = engine.next_batch_id()
        data, batch = encode_batch(batch, batch_id, now, engine.finish)
        if data is None:
            return
        n = len(batch)
        inflight = w.inflight = []
        for p in batch:
            fut = p.item
            fut._pending = None
            fut.worker = w.index
            fut.batch_size = n
            inflight.append(fut)
        w.batch_id = batch_id
        w.dispatched_at = now
        w.state = WorkerState.BUSY
        engine.stats.count_batch(n)
        self._write(w, data)

    def stream_rooms(self):
        for w in self.workers:
            if w.state is WorkerState.IDLE and w.streaming:
                yield w, self.config.max_streams - len(w.streams)

    def send_stream(self, w: _Worker, stream: Stream, now: float) -> None:
        budget = None if stream.deadline is None else stream.deadline - now
        try:
            data = m.encode(m.Add(stream.sid, budget, stream.request))
        except (TypeError, ValueError, OverflowError) as exc:
            self.engine.end_stream(stream, StreamEnd.FAILED, f"request cannot be sent to a worker: {exc}")
            return
        stream.worker, stream.executor, stream.place = w.index, self, w
        w.streams[stream.sid] = stream
        self._write(w, data)

    def cancel_stream(self, stream: Stream) -> None:
        w = stream.place
        if w is not None and w.streams.pop(stream.sid, None) is not None and w.sock is not None:
            self._write(w, m.encode(m.Cancel(stream.sid)))

    def begin_close(self, now: float) -> None:
        stop = m.encode(m.Stop())
        for w in self.workers + self.spares:
            w.restart_at = None
            if w.sock is not None:
                self._write(w, stop)

    def closed(self) -> bool:
        return all(w.proc is None for w in self.workers + self.spares)

    def gauges(self) -> tuple[int, int]:
        ready = sum(1 for w in self.workers if w.state in (WorkerState.IDLE, WorkerState.BUSY))
        return ready, sum(len(w.inflight) for w in self.workers)

    def infos(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(w.index, w.device, w.state.value, w.pid, w.starts, w.batches, dict(w.latency.ewma), w.last_error)
            for w in self.workers
        ]

    # -- writing ----------------------------------------------------------------------

    def _write(self, w: _Worker, data: bytes) -> None:
        w.out += data
        self._flush(w)

    def _flush(self, w: _Worker) -> None:
        """Write what the socket takes now; the rest waits for it to be writable."""
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
            self.sel.modify(w.sock, events, (self, ("sock", w)))

    # -- reading ----------------------------------------------------------------------

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
            for raw in w.unpacker:
                try:
                    msg = m.from_list(raw)
                except m.BadMessage as exc:
                    log.warning("inference worker %d sent a bad message (ignored): %s", w.index, exc)
                    continue
                self._on_message(w, msg, now)
            if len(data) < RECV_BYTES:
                return

    def _on_message(self, w: _Worker, msg: m.Message, now: float) -> None:
        engine = self.engine
        if isinstance(msg, m.Done):
            if msg.batch_id != w.batch_id:
                return  # a stale answer (cannot happen with one batch in flight; ignored)
            inflight, w.inflight = w.inflight, []
            w.latency.observe(len(inflight), now - w.dispatched_at)
            engine.stats.compute_s += msg.compute_s
            w.batches += 1
            w.failures = 0
            w.state = WorkerState.IDLE
            finish_batch(engine, inflight, msg, now)
        elif isinstance(msg, m.Pieces):
            engine.stats.compute_s += msg.compute_s
            if msg.pieces:
                w.failures = 0
            for sid, _seq, value, end in msg.pieces:
                stream = w.streams.get(sid)
                if stream is None:
                    continue  # cancelled here before the worker saw the cancel
                if feed_piece(engine, stream, value, end, now):
                    del w.streams[sid]
        elif isinstance(msg, m.Ready):
            info = msg.info
            w.streaming = bool(info.get("streaming"))
            w.state = WorkerState.IDLE
            if w.standby:
                log.info(
                    "inference worker %d's standby ready: pid %s on %s, nice %s",
                    w.index,
                    info.get("pid"),
                    info.get("device"),
                    info.get("nice"),
                )
                return
            log.info(
                "inference worker %d ready: pid %s on %s, runner %s, %s thread(s), nice %s, torch %s",
                w.index,
                info.get("pid"),
                info.get("device"),
                info.get("runner"),
                info.get("threads"),
                info.get("nice"),
                info.get("torch"),
            )
            engine.notify()
        elif isinstance(msg, m.Fatal):
            w.fatal = w.last_error = msg.message
            log.error("inference worker %d on %s could not start:\n%s", w.index, w.device, msg.message)
            engine.notify()

    # -- health -------------------------------------------------------------------------

    def _spawn(self, w: _Worker, now: float) -> None:
        from . import worker as worker_module  # its `main` is what the child imports

        cfg = self.config
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # A standby loads at the lowest priority when it can be given the worker's back (_promote).
        nice = max(cfg.nice, cfg.standby_nice) if w.standby and _can_renice(self._worker_nice()) else cfg.nice
        proc = self.ctx.Process(
            target=worker_module.main,
            name=f"npcworld-inference-{w.index}{'-standby' if w.standby else ''}",
            daemon=True,
            args=(child_sock, cfg.runner, cfg.runner_options, w.device, w.threads, os.getpid(), cfg.heartbeat_s, nice),
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
        if nice and proc.pid is not None:
            # At its nice from the start: a spawned child first re-imports the parent's main module (numpy,
            # the world, the pool: ~0.5 s of CPU) before worker.main's own os.nice runs; a standby
            # replaced every 5 s in the fault run did that at the tick's priority, on the tick's cores.
            try:
                os.setpriority(os.PRIO_PROCESS, proc.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
            except OSError:
                pass  # gone already, or not allowed: worker.main still applies os.nice(nice)
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
        self.engine.stats.worker_starts += 1
        self.sel.register(parent_sock, selectors.EVENT_READ, (self, ("sock", w)))
        self.sel.register(proc.sentinel, selectors.EVENT_READ, (self, ("proc", w)))
        self.engine.notify()

    def _kill(self, w: _Worker, now: float, reason: str) -> None:
        self.engine.stats.worker_hangs += 1
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
        engine = self.engine
        if death and not engine.closing:
            engine.stats.worker_deaths += 1
            log.warning("%s", reason)
        if not w.fatal or not death:
            w.last_error = reason
        inflight, w.inflight = w.inflight, []
        for fut in inflight:
            engine.finish(fut, Outcome.FAILED, now, error=reason)
        streams, w.streams = w.streams, {}
        for stream in streams.values():
            engine.end_stream(stream, StreamEnd.FAILED, reason)
        self._close_socket(w)
        w.state = WorkerState.EXITING
        if not w.standby and not engine.closing:
            self._promote(w, now)
        engine.notify()
        proc = w.proc
        if proc is None:
            return
        if proc.exitcode is not None:
            self._reap(w, now)
        elif not engine.closing:
            # Without its socket a worker is useless; one that lingers (a runner's
            # thread keeping it alive) must not hold its device: end it now.
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _worker_nice(self) -> int:
        """The nice value of a worker (this process's, plus PoolConfig.nice)."""
        return min(19, os.getpriority(os.PRIO_PROCESS, 0) + self.config.nice)

    def _promote(self, lost: _Worker, now: float) -> None:
        """The lost worker's ready standby takes its place; the lost one's slot becomes the standby
        (spawned again once its process is reaped, standby_delay_s later)."""
        if not self.spares:
            return
        i = self.workers.index(lost)
        spare = self.spares[i]
        if spare.state is not WorkerState.IDLE or spare.pid is None:
            return  # none ready (starting, or lost too): the worker restarts as without one
        nice = self._worker_nice()
        try:
            _renice(spare.pid, nice)
        except OSError as exc:  # it serves at the standby's priority: say so once
            if not self._renice_warned:
                self._renice_warned = True
                log.warning(
                    "inference worker %d's standby (pid %s) could not be given nice %d (%s); it serves at its own",
                    i,
                    spare.pid,
                    nice,
                    exc,
                )
        spare.standby, lost.standby = False, True
        spare.latency, spare.batches, spare.starts = lost.latency, lost.batches, lost.starts + 1
        spare.failures = lost.failures = 0
        spare.last_error = lost.last_error
        spare.last_seen = now
        self.workers[i], self.spares[i] = spare, lost
        log.info("inference worker %d: its standby (pid %s) took over from pid %s", i, spare.pid, lost.pid)

    def _close_socket(self, w: _Worker) -> None:
        if w.sock is not None:
            try:
                self.sel.unregister(w.sock)
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
                self.sel.unregister(proc.sentinel)
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
        if self.engine.closing:
            w.restart_at = None
            return
        w.failures += 1
        delay = 0.0 if w.failures <= 1 else min(self.config.restart_backoff_max_s, 0.1 * 2 ** (w.failures - 2))
        if w.standby:
            delay = max(delay, self.config.standby_delay_s)
        w.restart_at = now + delay

    def shutdown(self, now: float) -> None:
        engine = self.engine
        for w in self.workers + self.spares:
            inflight, w.inflight = w.inflight, []
            for fut in inflight:
                engine.finish(fut, Outcome.FAILED, now, error="the inference pool closed")
            streams, w.streams = w.streams, {}
            for stream in streams.values():
                engine.end_stream(stream, StreamEnd.FAILED, "the inference pool closed")
            if engine.sel is not None:
                self._close_socket(w)
            if w.proc is not None:
                if w.proc.exitcode is None:
                    try:
                        os.kill(w.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                w.proc.join(2.0)
                try:
                    self.sel.unregister(w.proc.sentinel)
                except (KeyError, ValueError):
                    pass
                w.proc = None
            w.pid = None
            w.state = WorkerState.DOWN


def _can_renice(nice: int) -> bool:
    """Whether this process may lower a child's nice value back to `nice` (root, or RLIMIT_NICE)."""
    if os.geteuid() == 0:
        return True
    try:
        import resource

        return resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20 - nice
    except (ImportError, AttributeError, ValueError, OSError):
        return False


def _renice(pid: int, nice: int) -> None:
    """Every thread of process `pid` at nice `nice` (on Linux a nice value is per thread: torch's
    threads, started while the standby loaded, keep theirs otherwise). OSError when not allowed."""
    tids = [pid]
    if sys.platform.startswith("linux"):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            pass
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:
            pass  # a thread that just ended
