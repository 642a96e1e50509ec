"""Server metrics: plain numbers bumped on the hot path (an attribute increment, no lock, no
label lookup), exposed through prometheus-client collectors and rendered for /metrics by its
`generate_latest`.

Each server has its own `CollectorRegistry` (not the library's global one, so that two servers in
one process, as in the tests, never mix): the server's collector (this module's `Metrics.collect`)
and the parts' (the decision pool, dialogue, the store: anything with a `collect()` yielding
metric families) are registered in it. A collector reads its part's counters when /metrics is
asked, so nothing is kept twice and nothing is paid per event. Names and meanings: README.md
("Metrics"); a counter's samples end in `_total`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Tick duration buckets in seconds: a 20 Hz tick has a 50 ms budget.
TICK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)


class Histogram:
    """Counts per bucket (not cumulative: one increment per observation), sum and count."""

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # last slot: above every bound (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def family(self, name: str, help_: str) -> HistogramMetricFamily:
        cumulative, running = [], 0
        for bound, n in zip(self.buckets, self.counts):
            running += n
            cumulative.append((floatToGoString(bound), running))
        cumulative.append(("+Inf", self.count))
        return HistogramMetricFamily(name, help_, buckets=cumulative, sum_value=self.sum)


def counter(name: str, help_: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_, value=value)


def gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_, value=value)


def labelled(family: CounterMetricFamily | GaugeMetricFamily, rows: Iterable[tuple[Any, float]]) -> Metric:
    """`family` with one sample per (label value, value) of `rows`, in sorted label order."""
    for label, value in sorted(rows):
        family.add_metric([str(label)], value)
    return family


class Metrics:
    def __init__(self) -> None:
        self.tick_duration = Histogram(TICK_BUCKETS)
        self.tick_overruns = 0  # ticks that ended after their slot
        self.ticks_skipped = 0  # slots dropped to catch up without a burst
        self.ticks = 0
        self.connections = 0
        self.connections_total = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0
        self.updates_coalesced = 0
        self.control_dropped = 0  # pongs and errors dropped for a full outbox
        self.errors_sent: dict[str, int] = {}
        self.closes: dict[int, int] = {}
        self.players = 0
        self.npcs = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def add(self, collector: Collector) -> None:
        """Another part's metrics (the NPC decision pool, dialogue, the store), in this server's /metrics."""
        self.registry.register(collector)

    def render(self) -> str:
        """/metrics: every registered collector, in the Prometheus text format (version 0.0.4)."""
        return generate_latest(self.registry).decode("utf-8")

    def collect(self) -> Iterator[Metric]:
        yield self.tick_duration.family(
            "npcworld_tick_duration_seconds", "Wall time of one tick (world step and updates)."
        )
        yield counter("npcworld_ticks_total", "Ticks run.", self.ticks)
        yield counter("npcworld_tick_overruns_total", "Ticks that ended after their time slot.", self.tick_overruns)
        yield counter(
            "npcworld_ticks_skipped_total", "Tick slots skipped to catch up after overruns.", self.ticks_skipped
        )
        yield gauge("npcworld_connections", "Open player connections.", self.connections)
        yield counter("npcworld_connections_total", "Player connections accepted.", self.connections_total)
        yield counter("npcworld_bytes_in_total", "WebSocket payload bytes received.", self.bytes_in)
        yield counter("npcworld_bytes_out_total", "WebSocket payload bytes sent.", self.bytes_out)
        yield counter("npcworld_messages_in_total", "WebSocket messages received.", self.messages_in)
        yield counter("npcworld_messages_out_total", "WebSocket messages sent.", self.messages_out)
        yield counter(
            "npcworld_updates_coalesced_total",
            "World updates merged into a newer one for a slow client.",
            self.updates_coalesced,
        )
        yield counter(
            "npcworld_control_dropped_total",
            "Pongs and errors dropped because a client's queue was full.",
            self.control_dropped,
        )
        yield labelled(
            CounterMetricFamily("npcworld_errors_sent_total", "Error messages sent, by code.", labels=["code"]),
            list(self.errors_sent.items()),
        )
        yield labelled(
            CounterMetricFamily(
                "npcworld_closes_total", "Connections closed by the server, by close code.", labels=["code"]
            ),
            list(self.closes.items()),
        )
        yield labelled(
            GaugeMetricFamily("npcworld_entities", "Entities in the world, by kind.", labels=["kind"]),
            [("player", self.players), ("npc", self.npcs)],
        )
