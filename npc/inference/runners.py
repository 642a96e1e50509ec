"""Model runners: what a worker runs. A runner only computes; the worker
around it handles deadlines, transport and health.

A runner declares which of two protocols it speaks (`protocol`, below:
BatchRunner and StreamRunner). A batch runner is any object with

    run(batch: list[payload]) -> list[output]     same length, same order

and optionally `warmup()` (called once before the worker reports ready, so
the first real batch is not slow) and `close()`. Payloads and outputs are
msgpack types or numpy arrays (npc/inference/wire.py). If `run` raises, every
request of that batch fails and the worker carries on.

A worker makes its runner from the pool's `runner` spec, "module:attr" (or
the callable itself), called with the pool's `runner_options` as keyword
arguments, plus `device="cpu" | "cuda:N"` when it has a `device` parameter.
If that returns a `torch.nn.Module` instead of a runner, it is wrapped in a
`ModuleRunner`, so any module factory plugs in directly:

    PoolConfig(runner="npc.policy.model:build_policy", runner_options={"weights": "assets/policy.safetensors"})

Streaming runners (dialogue: continuous batching, tokens streamed) are a
second protocol beside this one, declared with `protocol = "stream"` (or by
subclassing StreamRunner), driven by the step loop in worker.py
(`serve_stream`); the batch protocol above is unchanged by it:

    add(sid, payload)                  a stream joins; it runs from the next step
    step() -> [(sid, value, final)]    advance every running stream once; a
                                       stream may yield nothing in a step, and
                                       yields final=True exactly once
    cancel(sid)                        drop a stream now, freeing its state

The pool opens such streams with `Pool.open_stream` (pool.py).

torch is imported only inside the functions that need it, which run only in
worker processes.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any, Callable, ClassVar, Protocol

import numpy as np


class BatchRunner(Protocol):
    """A runner of batches (decisions): one call per batch, outputs in order."""

    protocol: ClassVar[str] = "batch"

    def run(self, batch: list[Any]) -> list[Any]: ...


class StreamRunner(Protocol):
    """A runner of streams (dialogue): continuous batching, pieces per step."""

    protocol: ClassVar[str] = "stream"

    def add(self, sid: int, payload: Any) -> None: ...

    def step(self) -> list[tuple[int, Any, bool]]: ...

    def cancel(self, sid: int) -> None: ...


Runner = BatchRunner  # the name older code uses
PROTOCOLS = {"batch": ("run",), "stream": ("add", "step", "cancel")}  # declared protocol -> methods it needs


def protocol_of(runner: Any) -> str:
    """The protocol a runner declares (`protocol = "batch" | "stream"`; a class
    that declares nothing is a batch runner). Declared, not guessed from its
    methods: a batch runner that also has a `step` method stays a batch runner."""
    return getattr(runner, "protocol", "batch")


def is_streaming(runner: Any) -> bool:
    return protocol_of(runner) == "stream"


def resolve(spec: "str | Callable") -> Callable:
    """ "package.module:attr.sub" -> the object it names."""
    if callable(spec):
        return spec
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"runner spec {spec!r}: expected 'package.module:name'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"runner spec {spec!r}: {module} has no {attr!r}") from None
    if not callable(obj):
        raise ValueError(f"runner spec {spec!r}: {attr} is not callable")
    return obj


def _takes_device(factory: Callable) -> bool:
    try:
        return "device" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def load_runner(spec: "str | Callable", options: dict[str, Any], device: str) -> Runner:
    factory = resolve(spec)
    kwargs = dict(options)
    if _takes_device(factory):
        kwargs.setdefault("device", device)
    obj = factory(**kwargs)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.nn.Module):
        return ModuleRunner(module=obj, device=device)
    declared = protocol_of(obj)
    needs = PROTOCOLS.get(declared)
    if needs is None:
        raise TypeError(
            f"runner spec {spec!r} made a {type(obj).__name__} declaring protocol = {declared!r}; "
            f"expected one of {', '.join(PROTOCOLS)}"
        )
    missing = [n for n in needs if not callable(getattr(obj, n, None))]
    if missing:
        raise TypeError(
            f"runner spec {spec!r} made a {type(obj).__name__}, a {declared} runner without "
            f"{', '.join(missing)}; expected a runner (BatchRunner: run(batch); StreamRunner: "
            "protocol = 'stream', add/step/cancel) or a torch.nn.Module"
        )
    return obj


class EchoRunner:
    """Returns each payload unchanged: measures the pool's own overhead."""

    def __init__(self, device: str = "cpu"):
        self.device = device

    def run(self, batch: list[Any]) -> list[Any]:
        return batch


class ModuleRunner:
    """Runs a torch module on a batch: the payloads (one array per request, all
    the same shape) are stacked into one tensor on the worker's device, one
    forward pass runs under inference mode, and each request gets its row of
    the output (a numpy array; a tuple or dict of them if the module returns
    several tensors).

    module:        an nn.Module, or
    factory:       a spec ("module:attr") of a function returning one, called
                   with `factory_options` (and `device=` if it takes one)
    dtype:         dtype of the input tensor
    warmup_shape:  shape of one request; if given, warmup() runs a batch of
                   zeros so the first real batch does not pay for lazy init
    """

    protocol: ClassVar[str] = "batch"  # a BatchRunner

    def __init__(
        self,
        module: Any = None,
        device: str = "cpu",
        factory: str | None = None,
        factory_options: dict[str, Any] | None = None,
        dtype: str = "float32",
        warmup_shape: list[int] | None = None,
    ):
        import torch

        if module is None:
            if factory is None:
                raise ValueError("ModuleRunner needs a module or a factory spec")
            make = resolve(factory)
            kwargs = dict(factory_options or {})
            if _takes_device(make):
                kwargs.setdefault("device", device)
            module = make(**kwargs)
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"ModuleRunner: expected a torch.nn.Module, got {type(module).__name__}")
        self.torch = torch
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.dtype = np.dtype(dtype)
        self.warmup_shape = warmup_shape

    def warmup(self) -> None:
        if self.warmup_shape is not None:
            self.run([np.zeros(self.warmup_shape, self.dtype)] * 2)

    def run(self, batch: list[Any]) -> list[Any]:
        torch = self.torch
        x = torch.from_numpy(np.stack([np.asarray(p, dtype=self.dtype) for p in batch]))  # (B, *shape)
        with torch.inference_mode():
            y = self.module(x.to(self.device, non_blocking=True))
        return _split_rows(y, len(batch))


def _split_rows(y: Any, n: int) -> list[Any]:
    """Output tensors (B, ...) -> n per-request numpy rows (or tuples/dicts of rows)."""
    if isinstance(y, dict):
        cols = {k: _split_rows(v, n) for k, v in y.items()}
        return [{k: cols[k][i] for k in cols} for i in range(n)]
    if isinstance(y, (tuple, list)):
        parts = [_split_rows(v, n) for v in y]
        return [tuple(c[i] for c in parts) for i in range(n)]
    arr = y.detach().cpu().numpy()
    if arr.shape[:1] != (n,):
        raise ValueError(f"model output has shape {tuple(arr.shape)}; expected ({n}, ...) for a batch of {n}")
    return list(arr)
