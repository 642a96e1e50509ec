"""Pool configuration: one typed place, defaults that work out of the box."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class PoolConfig:
    # What each worker runs: "module:attr", a runner class or factory, or a
    # function returning a torch.nn.Module (wrapped in a ModuleRunner). It is
    # called with `runner_options` as keyword arguments (and `device=` when it
    # takes one). See npc/inference/runners.py.
    runner: "str | Callable[..., Any]" = "npc.inference.runners:EchoRunner"
    runner_options: dict[str, Any] = field(default_factory=dict)  # must pickle (sent to spawned workers)

    # Workers and devices. None: one worker per usable GPU (cuda:0..N-1),
    # else one CPU worker. `devices` lists device strings ("cpu", "cuda:1").
    # 0: no local workers (only with `remote`: every request goes to remote workers).
    workers: int | None = None
    devices: list[str] | None = None
    # torch threads per CPU worker. None: the cores left after one for the
    # tick process, shared by the CPU workers (at least 1).
    threads: int | None = None
    # Scheduling priority of the workers (os.nice increment, 0..19). A worker
    # with a positive nice value yields the CPU to the tick process whenever
    # both want it, so a worker may use every core without delaying ticks.
    nice: int = 0

    # Batching. A batch is one message, so max_batch * request size is bounded
    # by wire.MAX_MESSAGE_BYTES (256 MiB).
    max_batch: int = 256
    max_wait_s: float = 0.002  # longest a request waits for others to join its batch
    margin_s: float = 0.001  # kept free before the earliest deadline, beyond the estimated latency
    latency_prior_s: float = 0.005  # batch latency assumed before any is measured
    latency_alpha: float = 0.2  # weight of the newest measurement in the running estimate
    # Streams (open_stream) a streaming worker runs at once: its continuous
    # batch. More wait in the pool's queue (first come, first served).
    max_streams: int = 16
    # Requests queued in the parent beyond this are dropped at once ("queue full").
    max_queue: int = 100_000

    # Health. An idle worker sends a heartbeat every heartbeat_s; a worker
    # silent for hang_timeout_s (idle or busy) is killed and restarted, so
    # hang_timeout_s must exceed the slowest legitimate batch. A hang is
    # detected within hang_timeout_s of the worker's last message; a death
    # at once (its socket closes).
    heartbeat_s: float = 0.1
    hang_timeout_s: float = 2.0
    start_timeout_s: float = 120.0  # import, model load and warm-up of a new worker
    restart_backoff_max_s: float = 5.0  # repeated failures back off 0, 0.1, 0.2, ... up to this
    # A warm standby per local worker: a second process, loaded and ready but sent nothing, that takes
    # over the moment its worker is lost (no import and model load while NPCs wait for answers). The
    # replacement standby starts standby_delay_s later and loads at nice standby_nice (the lowest
    # priority: it takes the CPU only when the tick and the worker leave it), then is given the worker's
    # own priority when it takes over (needs root or RLIMIT_NICE to lower a nice value; without, it
    # loads at the worker's nice). Costs one more process per worker: its memory and a model copy.
    # Measured (bench/decisions.py fault run, 10,000 NPCs): see docs/workers.md.
    standby: bool = False
    standby_delay_s: float = 1.0
    standby_nice: int = 19
    close_timeout_s: float = 5.0  # close() waits this long for workers to finish, then kills them

    # Remote workers through an MQTT 5 broker (npc/inference/broker.py:RemoteConfig);
    # None: local workers only, no broker.
    remote: Any = None

    def validate(self) -> "PoolConfig":
        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(f"inference pool: {name} = {getattr(self, name)!r}: expected {expected}")

        need(
            (isinstance(self.runner, str) and ":" in self.runner) or callable(self.runner),
            "runner",
            '"module:attr" or a callable',
        )
        need(
            self.workers is None or self.workers >= 1 or (self.workers == 0 and self.remote is not None),
            "workers",
            ">= 1, None (auto), or 0 with remote workers",
        )
        need(
            self.devices is None
            or (len(self.devices) >= 1 and all(d == "cpu" or d.startswith("cuda") or d == "mps" for d in self.devices)),
            "devices",
            'a non-empty list of "cpu", "cuda", "cuda:N" or "mps"',
        )
        need(self.threads is None or self.threads >= 1, "threads", ">= 1 or None (auto)")
        need(0 <= self.nice <= 19, "nice", "0..19")
        need(self.max_batch >= 1, "max_batch", ">= 1")
        need(self.max_wait_s >= 0, "max_wait_s", "seconds >= 0")
        need(self.margin_s >= 0, "margin_s", "seconds >= 0")
        need(self.latency_prior_s > 0, "latency_prior_s", "seconds > 0")
        need(0 < self.latency_alpha <= 1, "latency_alpha", "0 < alpha <= 1")
        need(self.max_queue >= 1, "max_queue", ">= 1")
        need(self.max_streams >= 1, "max_streams", ">= 1")
        need(self.heartbeat_s > 0, "heartbeat_s", "seconds > 0")
        need(self.hang_timeout_s > 2 * self.heartbeat_s, "hang_timeout_s", "seconds > 2 * heartbeat_s")
        need(self.start_timeout_s > 0, "start_timeout_s", "seconds > 0")
        need(self.standby_delay_s >= 0, "standby_delay_s", "seconds >= 0")
        need(0 <= self.standby_nice <= 19, "standby_nice", "0..19")
        return self

    def cpu_threads(self, cpu_workers: int) -> int:
        if self.threads:
            return self.threads
        return max(1, ((os.cpu_count() or 1) - 1) // max(1, cpu_workers))
