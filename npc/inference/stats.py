"""The pool's counters, as plain numbers (cheap to bump on the hot path).

`submitted` is written by the submitting thread under the pool's lock; every
other field only by the engine thread. Readers (/metrics, benchmarks) read
without locking: each number is current to within one engine iteration.

Invariant, once the pool is idle: submitted == on_time + late + dropped + failed
(each request ends exactly once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

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

    def families(self, prefix: str = "npcworld_inference") -> list[Metric]:
        """The counters as Prometheus metric families, for the server's /metrics (read, not copied)."""
        requests = CounterMetricFamily(
            f"{prefix}_requests_total", "Inference requests finished, by outcome.", labels=["outcome"]
        )
        for o in ("on_time", "late", "dropped", "failed"):
            requests.add_metric([o], getattr(self, o))
        sizes = CounterMetricFamily(
            f"{prefix}_batches_by_size_total",
            "Batches by size, in power-of-two buckets (label: upper bound).",
            labels=["size"],
        )
        for b, n in sorted(self.batch_sizes.items()):
            sizes.add_metric([str(b)], n)
        events = CounterMetricFamily(f"{prefix}_worker_events_total", "Worker lifecycle events.", labels=["event"])
        for e in ("starts", "deaths", "hangs"):
            events.add_metric([e], getattr(self, "worker_" + e))
        return [
            requests,
            CounterMetricFamily(f"{prefix}_submitted_total", "Inference requests submitted.", value=self.submitted),
            CounterMetricFamily(f"{prefix}_batches_total", "Batches sent to workers.", value=self.batches),
            sizes,
            CounterMetricFamily(
                f"{prefix}_compute_seconds_total", "Time spent in model runners.", value=self.compute_s
            ),
            events,
            GaugeMetricFamily(f"{prefix}_queued", "Requests waiting for a worker.", value=self.queued),
            GaugeMetricFamily(
                f"{prefix}_in_flight", "Requests sent to workers and not answered.", value=self.in_flight
            ),
            GaugeMetricFamily(f"{prefix}_workers_ready", "Workers started and answering.", value=self.workers_ready),
        ]
