"""A worker process: owns one device, runs one model runner, nothing else.

`main` is the entry point of a spawned worker; `serve` is its loop, which a
test can also run in a thread over a socketpair with any runner object.

The loop, per message from the pool (messages.py has the table):
- Batch: each request's budget becomes a deadline on this process's clock
  when it arrives; requests whose deadline has passed are answered
  "dropped" without being passed to the runner; the rest run as one
  `runner.run` call; one Done message answers the whole batch.
- Stop: return (the pool is closing).
A streaming runner (one that declares `protocol = "stream"`, runners.py) is
driven by `serve_stream` instead: Add and Cancel messages change its running
set between decode steps, and every step's pieces go back at once as one
Pieces message.
While idle the worker sends a heartbeat every `heartbeat_s`, so the pool can
tell a hung worker (silent) from an idle one. While a batch runs it sends
nothing: the pool's hang timeout must exceed the slowest legitimate batch.

A worker never outlives the pool's process: on Linux the kernel kills it when
the thread that spawned it exits (PR_SET_PDEATHSIG), and everywhere it exits
when its socket reaches EOF or its parent pid changes (checked while idle).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
import traceback
from typing import Any, Callable

from . import messages as m
from . import wire
from .runners import Runner, is_streaming, load_runner

RECV_BYTES = 1 << 20


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(
                PR_SET_PDEATHSIG,
                ctypes.c_ulong(signal.SIGKILL),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
            )
        except (OSError, AttributeError):
            pass  # the EOF and parent-pid checks below still apply
    if os.getppid() != parent_pid:
        os._exit(0)  # the parent died before the death signal was armed


def _quiet_progress_bars() -> None:
    # A worker has no terminal of its own: a library's progress bar (transformers' GGUF
    # conversion, 272 redraws) lands in the server's log. tqdm reads TQDM_DISABLE once, when it
    # is imported (torch imports it), so this runs before anything is loaded; a TQDM_DISABLE the
    # operator set wins. (A parent whose main module imports torch at the top has imported tqdm
    # in the spawned child already, before main: bench/dialogue.py sets it in the parent.)
    os.environ.setdefault("TQDM_DISABLE", "1")


def _limit_threads(threads: int) -> None:
    # Read by OpenMP/MKL when torch loads; torch.set_num_threads follows once it has.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {device!r} requested, but torch {torch.__version__} sees no CUDA GPU "
                "(a CPU-only torch build, or no driver); configure devices=['cpu']"
            )
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(f"device {device!r} requested, but only {torch.cuda.device_count()} GPU(s) are visible")
        torch.cuda.set_device(index)


def main(
    sock: socket.socket,
    spec: Any,
    options: dict,
    device: str,
    threads: int,
    parent_pid: int,
    heartbeat_s: float,
    nice: int = 0,
) -> None:
    """Entry point of a spawned worker."""
    _quiet_progress_bars()
    _die_with_parent(parent_pid)
    if nice:  # yield the CPU to the tick process (PoolConfig.nice): the parent's nice + nice
        try:
            want = min(19, os.getpriority(os.PRIO_PROCESS, parent_pid) + nice)
        except OSError:  # the parent is gone (_die_with_parent ends this process) or not readable
            want = min(19, os.nice(0) + nice)
        if os.nice(0) < want:  # the pool may have set it already, at spawn (local.py _spawn)
            os.setpriority(os.PRIO_PROCESS, 0, want)
    # Ctrl+C reaches the whole process group; the pool, not each worker, decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_threads(threads)
    sock.setblocking(True)
    try:
        _check_device(device)
        runner = load_runner(spec, options, device)
        torch = sys.modules.get("torch")
        if torch is not None and device == "cpu":
            torch.set_num_threads(threads)
        warmup = getattr(runner, "warmup", None)
        if callable(warmup):
            warmup()
    except BaseException:
        try:
            sock.sendall(m.encode(m.Fatal(traceback.format_exc(limit=8))))
        except OSError:
            pass
        sys.exit(3)
    torch = sys.modules.get("torch")
    info = {
        "pid": os.getpid(),
        "device": device,
        "runner": spec if isinstance(spec, str) else repr(spec),
        "threads": threads,
        "nice": os.nice(0),
        "torch": getattr(torch, "__version__", None),
        "streaming": is_streaming(runner),
    }
    sock.sendall(m.encode(m.Ready(info)))
    try:
        serve(sock, runner, heartbeat_s, parent_pid)
    finally:
        close = getattr(runner, "close", None)
        if callable(close):
            close()


def _messages(sock: socket.socket, unpacker: Any) -> list[m.Message] | None:
    """The whole messages waiting on the socket; None at EOF. A message the
    pool could not have sent (a bug) is skipped, never fatal to the worker."""
    data = sock.recv(RECV_BYTES)
    if not data:
        return None
    unpacker.feed(data)
    out = []
    for raw in unpacker:
        try:
            out.append(m.from_list(raw))
        except m.BadMessage as exc:
            print(f"npcworld inference worker: ignored a bad message: {exc}", file=sys.stderr)
    return out


def serve(
    sock: socket.socket,
    runner: Runner,
    heartbeat_s: float,
    parent_pid: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Answer batches until Stop, EOF, or the parent is gone. `sock` is blocking."""
    if is_streaming(runner):
        return serve_stream(sock, runner, heartbeat_s, parent_pid, clock)
    unpacker = wire.unpacker()
    heartbeat = m.encode(m.Heartbeat())
    while True:
        readable, _, _ = select.select([sock], [], [], heartbeat_s)
        if not readable:
            if parent_pid is not None and os.getppid() != parent_pid:
                return
            sock.sendall(heartbeat)
            continue
        received = clock()
        msgs = _messages(sock, unpacker)
        if msgs is None:
            return  # the pool closed its end, or its process is gone
        for msg in msgs:
            if isinstance(msg, m.Batch):
                deadlines = [received + b for b in msg.budgets]
                sock.sendall(run_batch(runner, msg.batch_id, deadlines, msg.payloads, clock))
            elif isinstance(msg, m.Stop):
                return


def run_batch(
    runner: Runner, batch_id: int, deadlines: list[float], payloads: Any, clock: Callable[[], float] = time.monotonic
) -> bytes:
    """One batch -> the encoded Done message. Expired requests never reach the runner.
    deadlines: on `clock`, one per request."""
    return m.encode(run_batch_message(runner, batch_id, deadlines, payloads, clock))


def run_batch_message(
    runner: Runner, batch_id: int, deadlines: list[float], payloads: Any, clock: Callable[[], float] = time.monotonic
) -> m.Done:
    payloads = wire.unstack(payloads)
    now = clock()
    statuses = ["dropped"] * len(payloads)
    values: list[Any] = [None] * len(payloads)
    if len(deadlines) != len(payloads):
        return m.Done(
            batch_id,
            ["error"] * len(payloads),
            [f"{len(deadlines)} budgets for {len(payloads)} requests"] * len(payloads),
            0.0,
        )
    live = [i for i, deadline in enumerate(deadlines) if deadline > now]
    t0 = time.perf_counter()
    if live:
        try:
            outputs = runner.run(payloads if len(live) == len(payloads) else [payloads[i] for i in live])
            if len(outputs) != len(live):
                raise ValueError(f"runner returned {len(outputs)} outputs for {len(live)} requests")
            for i, out in zip(live, outputs):
                statuses[i] = "ok"
                values[i] = out
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            for i in live:
                statuses[i] = "error"
                values[i] = error
    compute_s = time.perf_counter() - t0
    packed = wire.stack(values) if len(live) == len(values) and statuses and statuses[0] == "ok" else values
    try:
        m.encode(m.Done(batch_id, statuses, packed, compute_s))  # can it travel? (the caller sends it)
    except (TypeError, ValueError, OverflowError) as exc:
        error = f"runner output cannot be sent: {exc}"
        for i in live:
            statuses[i] = "error"
            values[i] = error
        packed = values
    return m.Done(batch_id, statuses, packed, compute_s)


def serve_stream(
    sock: socket.socket,
    runner: Any,
    heartbeat_s: float,
    parent_pid: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """The step loop of a streaming runner, until Stop, EOF, or the parent is gone.

    Between two decode steps the worker takes every message waiting on its
    socket (without blocking while streams run): Add joins a stream to the
    runner's running set (or answers "dropped" when its admission budget has
    run out), Cancel removes one, so its compute is freed before the next
    step. Then one `runner.step()` advances every running stream, and its
    pieces go back as one message. A stream is live from its Add until a
    piece marked final, its cancel, or a failure. Invariant: `step` is only
    called while at least one stream is live, so an idle worker sleeps in
    select and sends heartbeats; a busy one sends a message at least every
    step (the pool's hang timeout must exceed the slowest step: a prefill of
    many joining prompts at once).
    """
    unpacker = wire.unpacker()
    live: set[int] = set()
    seqs: dict[int, int] = {}  # sid -> pieces sent so far
    last_sent = clock()
    heartbeat = m.encode(m.Heartbeat())

    def piece(sid: int, value: Any, end: str | None) -> list:
        seq = seqs.get(sid, 0)
        seqs[sid] = seq + 1
        if end is not None:
            seqs.pop(sid, None)
        return [sid, seq, value, end]

    while True:
        readable, _, _ = select.select([sock], [], [], 0.0 if live else heartbeat_s)
        pieces: list[list] = []  # [sid, seq, value, end]: end None (more follows), "ok", "dropped", "error"
        if readable:
            received = clock()
            msgs = _messages(sock, unpacker)
            if msgs is None:
                return
            for msg in msgs:
                if isinstance(msg, m.Add):
                    if msg.budget is not None and received + msg.budget <= clock():
                        pieces.append(piece(msg.sid, None, "dropped"))
                        continue
                    try:
                        runner.add(msg.sid, msg.payload)
                        live.add(msg.sid)
                    except Exception as exc:
                        pieces.append(piece(msg.sid, f"{type(exc).__name__}: {exc}", "error"))
                elif isinstance(msg, m.Cancel):
                    if msg.sid in live:
                        live.discard(msg.sid)
                        seqs.pop(msg.sid, None)
                        try:
                            runner.cancel(msg.sid)
                        except Exception:
                            traceback.print_exc()
                elif isinstance(msg, m.Stop):
                    return
        elif not live:
            if parent_pid is not None and os.getppid() != parent_pid:
                return
            sock.sendall(heartbeat)
            last_sent = clock()
            continue
        t0 = time.perf_counter()
        if live:
            try:
                for sid, value, final in runner.step():
                    if sid in live:
                        pieces.append(piece(sid, value, "ok" if final else None))
                        if final:
                            live.discard(sid)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                for sid in sorted(live):
                    pieces.append(piece(sid, error, "error"))
                    try:
                        runner.cancel(sid)
                    except Exception:
                        pass
                live.clear()
        now = clock()
        if pieces or now - last_sent >= heartbeat_s:
            try:
                data = m.encode(m.Pieces(pieces, time.perf_counter() - t0))
            except (TypeError, ValueError, OverflowError) as exc:
                data = m.encode(
                    m.Pieces([[p[0], p[1], f"runner output cannot be sent: {exc}", "error"] for p in pieces], 0.0)
                )
                for p in pieces:
                    live.discard(p[0])
                    seqs.pop(p[0], None)
            sock.sendall(data)
            last_sent = now
