"""Runners and models for the pool's tests and benchmarks (not for the game).

ScriptedRunner follows instructions in its payloads, so a test can make a
worker block, hang, crash or raise on cue, and see which requests reached
the runner, in which call and order. tiny_mlp builds a small torch model from
code (no weights on disk).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Any

from .runners import StreamRunner


class Latch:
    """A gate that opens once, shared with spawned workers (pass it in
    runner_options). Unlike multiprocessing.Event it survives a waiter being
    SIGKILLed: the Event's condition would wait forever for the dead sleeper
    when set. Event-like API: set(), wait(timeout) -> bool, is_set()."""

    def __init__(self) -> None:
        self._sem = multiprocessing.get_context("spawn").Semaphore(0)

    def set(self) -> None:
        if not self.is_set():
            self._sem.release()

    def is_set(self) -> bool:
        if self._sem.acquire(block=False):
            self._sem.release()
            return True
        return False

    def wait(self, timeout: float | None = None) -> bool:
        if not self._sem.acquire(timeout=timeout):
            return False
        self._sem.release()  # stays open for every later waiter
        return True


class ScriptedRunner:
    """Payloads are dicts; "op" says what the runner does when it meets one:

        "echo"   (default) nothing
        "block"  set `started` (if given), then wait for `gate` (Latch
                 objects passed in runner_options)
        "hang"   block forever (a stuck runner)
        "crash"  the process exits at once (os._exit), like a segfault
        "raise"  raise RuntimeError (the batch fails, the worker lives)

    Each output is {"call": n, "pos": i, "size": batch size, "pid": worker
    pid, "items": requests seen so far, "payload": the payload}: `call`
    counts runner.run invocations in this worker, so a test can prove a
    request was (or was not) computed, and in which batch and order.
    `progress` > 0: loading shows a tqdm bar of that many steps, as transformers'
    GGUF loader does (the worker silences such bars).
    """

    def __init__(self, gate: Any = None, started: Any = None, progress: int = 0):
        if progress:
            from tqdm import tqdm  # type: ignore[import-untyped]  # (no stubs in .venv)

            for _ in tqdm(range(progress), desc="scripted loading"):
                pass
        self.gate = gate
        self.started = started
        self.calls = 0
        self.items = 0

    def run(self, batch: list[Any]) -> list[Any]:
        self.calls += 1
        self.items += len(batch)
        for p in batch:
            op = p.get("op", "echo") if isinstance(p, dict) else "echo"
            if op == "block":
                if self.started is not None:
                    self.started.set()
                if self.gate is not None:
                    self.gate.wait()
            elif op == "hang":
                threading.Event().wait()
            elif op == "crash":
                os._exit(70)
            elif op == "raise":
                raise RuntimeError("scripted failure")
        return [
            {"call": self.calls, "pos": i, "size": len(batch), "pid": os.getpid(), "items": self.items, "payload": p}
            for i, p in enumerate(batch)
        ]


def tiny_mlp(in_dim: int = 16, hidden: int = 32, out_dim: int = 4, seed: int = 0, layers: int = 1):
    """An MLP with `layers` hidden ReLU layers and fixed-seed random weights:
    (B, in_dim) -> (B, out_dim)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    dims = [in_dim] + [hidden] * layers
    mods: list = []
    for a, b in zip(dims, dims[1:]):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*mods, torch.nn.Linear(dims[-1], out_dim))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / max(1, p.shape[-1]) ** 0.5)
    return net


class ScriptedStreamRunner(StreamRunner):
    """A streaming runner (add/step/cancel) that follows its payloads, for tests.

    Payload {"n": pieces, "op": ...} (defaults: the runner options `n`, `op`): each step yields the next piece
    "<tag>:<i>" of every running stream (tag = payload "tag", default the
    sid), the last one final. Ops:
        "echo"   (default) nothing more
        "gate"   before its first piece, set `started` and wait for `gate`
                 (Latch objects passed in runner_options): the step blocks
        "crash"  the process exits at its first step (os._exit)
        "raise"  its first step raises (every running stream fails)
    Each piece is {"text": ..., "batch": streams in this step, "step": step
    count, "joined": step at which this stream joined}, so a test can see
    streams join and leave the running batch.

    `say` (runner option): the model's lines, for dialogue tests. Each request
    then gets, after its `n` pieces' steps (and its op), one piece per candidate
    it asked for ({"n": j, "text": say[j], "end": True}, as the dialogue runner
    sends them), the last one final; a request for one candidate gets say[0].
    """

    def __init__(
        self,
        gate: Any = None,
        started: Any = None,
        op: str = "echo",
        n: int = 3,
        step_s: float = 0.0,
        say: list[str] | None = None,
    ):
        self.gate = gate
        self.started = started
        self.step_s = step_s  # a pause before each step: a slow model, so a stream lasts (remote-worker tests)
        self.op, self.n = op, n  # for payloads that name none (e.g. a dialogue request)
        self.running: dict[int, dict] = {}  # sid -> {"payload", "i", "joined"}
        self.steps = 0
        self.cancelled: list[int] = []
        self.say = say

    def add(self, sid: int, payload: Any) -> None:
        if payload.get("op") == "bad":
            raise ValueError("scripted bad request")
        self.running[sid] = {"payload": payload, "i": 0, "joined": self.steps + 1}

    def cancel(self, sid: int) -> None:
        self.running.pop(sid, None)
        self.cancelled.append(sid)

    def step(self) -> list:
        if self.step_s:
            threading.Event().wait(self.step_s)
        self.steps += 1
        out = []
        batch = len(self.running)
        for sid, st in list(self.running.items()):
            p = st["payload"]
            op = p.get("op", self.op)
            if st["i"] == 0:
                if op == "gate":
                    if self.started is not None:
                        self.started.set()
                    if self.gate is not None:
                        self.gate.wait()
                elif op == "crash":
                    os._exit(70)
                elif op == "raise":
                    raise RuntimeError("scripted failure")
            st["i"] += 1
            final = st["i"] >= p.get("n", self.n)
            if self.say is not None:
                if final:
                    k = max(1, int(p.get("candidates", 1)))
                    for j in range(k):
                        out.append((sid, {"n": j, "text": self.say[j % len(self.say)], "end": True}, j == k - 1))
                    del self.running[sid]
                continue
            out.append(
                (
                    sid,
                    {
                        "text": f"{p.get('tag', sid)}:{st['i']}",
                        "batch": batch,
                        "step": self.steps,
                        "joined": st["joined"],
                        "cancelled": list(self.cancelled),
                    },
                    final,
                )
            )
            if final:
                del self.running[sid]
        return out
