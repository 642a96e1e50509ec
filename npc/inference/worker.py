"""A worker process: owns one device, runs one model runner, nothing else.

`main` is the entry point of a spawned worker; `serve` is its loop, which a
test can also run in a thread over a socketpair with any runner object.

The loop, per message from the pool (wire.py has the formats):
- "batch": requests whose deadline has passed are answered "dropped"
  without being passed to the runner; the rest run as one `runner.run` call;
  one "done" message answers the whole batch.
- "stop": return (the pool is closing).
A streaming runner (one with `step`, see runners.py) is driven by
`serve_stream` instead: "add" and "cancel" messages change its running set
between decode steps, and every step's pieces go back at once as one
"pieces" message.
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

from . import wire
from .runners import Runner, load_runner

RECV_BYTES = 1 << 20


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0))
        except (OSError, AttributeError):
            pass  # the EOF and parent-pid checks below still apply
    if os.getppid() != parent_pid:
        os._exit(0)  # the parent died before the death signal was armed


def _limit_threads(threads: int) -> None:
    # Read by OpenMP/MKL when torch loads; torch.set_num_threads follows once it has.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested, but torch {torch.__version__} sees no CUDA GPU "
                               "(a CPU-only torch build, or no driver); configure devices=['cpu']")
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(f"device {device!r} requested, but only {torch.cuda.device_count()} GPU(s) are visible")
        torch.cuda.set_device(index)


def main(sock: socket.socket, spec: Any, options: dict, device: str, threads: int, parent_pid: int,
         heartbeat_s: float, nice: int = 0) -> None:
    """Entry point of a spawned worker."""
    _die_with_parent(parent_pid)
    if nice:
        os.nice(nice)  # yield the CPU to the tick process (PoolConfig.nice)
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
            sock.sendall(wire.pack(["fatal", traceback.format_exc(limit=8)]))
        except OSError:
            pass
        sys.exit(3)
    torch = sys.modules.get("torch")
    info = {"pid": os.getpid(), "device": device, "runner": spec if isinstance(spec, str) else repr(spec),
            "threads": threads, "nice": os.nice(0), "torch": getattr(torch, "__version__", None),
            "streaming": is_streaming(runner)}
    sock.sendall(wire.pack(["ready", info]))
    try:
        serve(sock, runner, heartbeat_s, parent_pid)
    finally:
        close = getattr(runner, "close", None)
        if callable(close):
            close()


def serve(sock: socket.socket, runner: Runner, heartbeat_s: float, parent_pid: int | None = None,
          clock: Callable[[], float] = time.monotonic) -> None:
    """Answer batches until "stop", EOF, or the parent is gone. `sock` is blocking."""
    if is_streaming(runner):
        return serve_stream(sock, runner, heartbeat_s, parent_pid, clock)
    unpacker = wire.unpacker()
    while True:
        readable, _, _ = select.select([sock], [], [], heartbeat_s)
        if not readable:
            if parent_pid is not None and os.getppid() != parent_pid:
                return
            sock.sendall(wire.pack(["hb"]))
            continue
        data = sock.recv(RECV_BYTES)
        if not data:
            return  # the pool closed its end, or its process is gone
        unpacker.feed(data)
        for msg in unpacker:
            if msg[0] == "batch":
                _, batch_id, _ids, deadlines, payloads = msg
                sock.sendall(run_batch(runner, batch_id, deadlines, payloads, clock))
            elif msg[0] == "stop":
                return


def run_batch(runner: Runner, batch_id: int, deadlines: list[float], payloads: Any,
              clock: Callable[[], float] = time.monotonic) -> bytes:
    """One batch -> the encoded "done" message. Expired requests never reach the runner."""
    payloads = wire.unstack(payloads)
    now = clock()
    statuses = ["dropped"] * len(payloads)
    values: list[Any] = [None] * len(payloads)
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
    try:
        packed = wire.stack(values) if len(live) == len(values) and statuses[0] == "ok" else values
        return wire.pack(["done", batch_id, statuses, packed, compute_s])
    except (TypeError, ValueError, OverflowError) as exc:
        error = f"runner output cannot be sent: {exc}"
        for i in live:
            statuses[i] = "error"
            values[i] = error
        return wire.pack(["done", batch_id, statuses, values, compute_s])


def is_streaming(runner: Any) -> bool:
    return all(callable(getattr(runner, name, None)) for name in ("add", "step", "cancel"))


def serve_stream(sock: socket.socket, runner: Any, heartbeat_s: float, parent_pid: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
    """The step loop of a streaming runner, until "stop", EOF, or the parent is gone.

    Between two decode steps the worker takes every message waiting on its
    socket (without blocking while streams run): "add" joins a stream to the
    runner's running set (or answers "dropped" when its admission deadline has
    passed), "cancel" removes one, so its compute is freed before the next
    step. Then one `runner.step()` advances every running stream, and its
    pieces go back as one message. A stream is live from its "add" until a
    piece marked final, its cancel, or a failure. Invariant: `step` is only
    called while at least one stream is live, so an idle worker sleeps in
    select and sends heartbeats; a busy one sends a message at least every
    step (the pool's hang timeout must exceed the slowest step: a prefill of
    many joining prompts at once).
    """
    unpacker = wire.unpacker()
    live: set[int] = set()
    last_sent = clock()
    while True:
        readable, _, _ = select.select([sock], [], [], 0.0 if live else heartbeat_s)
        pieces: list[list] = []  # [sid, value, end]: end None (more follows), "ok", "dropped", "error"
        if readable:
            data = sock.recv(RECV_BYTES)
            if not data:
                return
            unpacker.feed(data)
            for msg in unpacker:
                kind = msg[0]
                if kind == "add":
                    _, sid, deadline, payload = msg
                    if deadline is not None and deadline <= clock():
                        pieces.append([sid, None, "dropped"])
                        continue
                    try:
                        runner.add(sid, payload)
                        live.add(sid)
                    except Exception as exc:
                        pieces.append([sid, f"{type(exc).__name__}: {exc}", "error"])
                elif kind == "cancel":
                    sid = msg[1]
                    if sid in live:
                        live.discard(sid)
                        try:
                            runner.cancel(sid)
                        except Exception:
                            traceback.print_exc()
                elif kind == "stop":
                    return
        elif not live:
            if parent_pid is not None and os.getppid() != parent_pid:
                return
            sock.sendall(wire.pack(["hb"]))
            last_sent = clock()
            continue
        t0 = time.perf_counter()
        if live:
            try:
                for sid, value, final in runner.step():
                    if sid in live:
                        pieces.append([sid, value, "ok" if final else None])
                        if final:
                            live.discard(sid)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                for sid in sorted(live):
                    pieces.append([sid, error, "error"])
                    try:
                        runner.cancel(sid)
                    except Exception:
                        pass
                live.clear()
        now = clock()
        if pieces or now - last_sent >= heartbeat_s:
            try:
                data = wire.pack(["pieces", pieces, time.perf_counter() - t0])
            except (TypeError, ValueError, OverflowError) as exc:
                data = wire.pack(["pieces", [[p[0], f"runner output cannot be sent: {exc}", "error"]
                                             for p in pieces], 0.0])
                for p in pieces:
                    live.discard(p[0])
            sock.sendall(data)
            last_sent = now
