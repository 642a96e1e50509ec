"""The pool's counters, as plain numbers (cheap to bump on the hot path).

`submitted` is written by the submitting thread under the pool's lock; every
other field only by the engine thread. Readers (/metrics, benchmarks) read
without locking: each number is current to within one engine iteration.

Invariant, once the pool is idle: submitted == on_time + late + dropped + failed
(each request ends exactly once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .scheduler import size_bucket


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
    name: str = ""  # a remote worker's name (its --name); "" for a local one
    executor: str = "local"  # "local" or "mqtt"


@dataclass
class PoolStats:
    submitted: int = 0
    on_time: int = 0
    late: int = 0
    dropped: int = 0
    failed: int = 0
    batches: int = 0  # batches sent to workers
    batched_requests: int = 0  # requests in those batches
    batch_sizes: dict[int, int] = field(default_factory=dict)  # power-of-two bucket -> batches
    compute_s: float = 0.0  # time inside runner.run, summed over batches, as workers measured it
    worker_starts: int = 0  # processes spawned, first starts included
    worker_deaths: int = 0  # exited or closed their socket unexpectedly
    worker_hangs: int = 0  # killed for silence (hang_timeout_s) or a start past start_timeout_s
    # Streams (open_stream): opened, and how each ended (stream.StreamEnd values).
    streams_opened: int = 0
    streams_ended: dict[str, int] = field(default_factory=dict)
    # Gauges, refreshed every engine iteration.
    queued: int = 0
    in_flight: int = 0
    workers_ready: int = 0

    def count_batch(self, n: int) -> None:
        self.batches += 1
        self.batched_requests += n
        b = size_bucket(n)
        self.batch_sizes[b] = self.batch_sizes.get(b, 0) + 1

    def count_stream_end(self, end: str) -> None:
        self.streams_ended[end] = self.streams_ended.get(end, 0) + 1

    @property
    def finished(self) -> int:
        return self.on_time + self.late + self.dropped + self.failed

    def snapshot(self) -> dict:
        d = asdict(self)
        d["batch_sizes"] = dict(sorted(self.batch_sizes.items()))
        return d

    def prometheus(self, prefix: str = "npcworld_inference") -> list[str]:
        """Lines in the Prometheus text format, for the server's /metrics."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, rows: list[str]) -> None:
            lines.extend([f"# HELP {prefix}_{name} {help_}", f"# TYPE {prefix}_{name} {kind}", *rows])

        metric("requests_total", "counter", "Inference requests finished, by outcome.",
               [f'{prefix}_requests_total{{outcome="{o}"}} {getattr(self, o)}'
                for o in ("on_time", "late", "dropped", "failed")])
        metric("submitted_total", "counter", "Inference requests submitted.",
               [f"{prefix}_submitted_total {self.submitted}"])
        metric("batches_total", "counter", "Batches sent to workers.", [f"{prefix}_batches_total {self.batches}"])
        metric("batches_by_size_total", "counter", "Batches by size, in power-of-two buckets (label: upper bound).",
               [f'{prefix}_batches_by_size_total{{size="{b}"}} {n}' for b, n in sorted(self.batch_sizes.items())])
        metric("compute_seconds_total", "counter", "Time spent in model runners.",
               [f"{prefix}_compute_seconds_total {self.compute_s:.6f}"])
        metric("worker_events_total", "counter", "Worker lifecycle events.",
               [f'{prefix}_worker_events_total{{event="{e}"}} {getattr(self, "worker_" + e)}'
                for e in ("starts", "deaths", "hangs")])
        metric("queued", "gauge", "Requests waiting for a worker.", [f"{prefix}_queued {self.queued}"])
        metric("in_flight", "gauge", "Requests sent to workers and not answered.",
               [f"{prefix}_in_flight {self.in_flight}"])
        metric("workers_ready", "gauge", "Workers started and answering.",
               [f"{prefix}_workers_ready {self.workers_ready}"])
        return lines
