"""Server metrics, kept as plain numbers (cheap to bump on the hot path) and
rendered in the Prometheus text exposition format for /metrics."""

from __future__ import annotations

import bisect

# Tick duration buckets in seconds: a 20 Hz tick has a 50 ms budget.
TICK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # last slot: above every bound (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, n in zip(self.buckets, self.counts):
            running += n
            out.append(f'{name}_bucket{{le="{bound}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {self.sum:.9f}")
        out.append(f"{name}_count {self.count}")
        return out


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
        # Other parts' metrics (e.g. the NPC decision pool): callables returning Prometheus text lines.
        self.sources: list = []

    def render(self) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, rows: list[str]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(rows)

        metric(
            "npcworld_tick_duration_seconds", "histogram", "Wall time of one tick (world step and updates).",
            self.tick_duration.lines("npcworld_tick_duration_seconds"),
        )
        simple = (
            ("npcworld_ticks_total", "counter", "Ticks run.", self.ticks),
            ("npcworld_tick_overruns_total", "counter", "Ticks that ended after their time slot.", self.tick_overruns),
            ("npcworld_ticks_skipped_total", "counter", "Tick slots skipped to catch up after overruns.",
             self.ticks_skipped),
            ("npcworld_connections", "gauge", "Open player connections.", self.connections),
            ("npcworld_connections_total", "counter", "Player connections accepted.", self.connections_total),
            ("npcworld_bytes_in_total", "counter", "WebSocket payload bytes received.", self.bytes_in),
            ("npcworld_bytes_out_total", "counter", "WebSocket payload bytes sent.", self.bytes_out),
            ("npcworld_messages_in_total", "counter", "WebSocket messages received.", self.messages_in),
            ("npcworld_messages_out_total", "counter", "WebSocket messages sent.", self.messages_out),
            ("npcworld_updates_coalesced_total", "counter", "World updates merged into a newer one for a slow client.",
             self.updates_coalesced),
            ("npcworld_control_dropped_total", "counter", "Pongs and errors dropped because a client's queue was full.",
             self.control_dropped),
        )
        for name, kind, help_, value in simple:
            metric(name, kind, help_, [f"{name} {value}"])
        metric("npcworld_errors_sent_total", "counter", "Error messages sent, by code.",
               [f'npcworld_errors_sent_total{{code="{c}"}} {n}' for c, n in sorted(self.errors_sent.items())])
        metric("npcworld_closes_total", "counter", "Connections closed by the server, by close code.",
               [f'npcworld_closes_total{{code="{c}"}} {n}' for c, n in sorted(self.closes.items())])
        metric("npcworld_entities", "gauge", "Entities in the world, by kind.",
               [f'npcworld_entities{{kind="player"}} {self.players}', f'npcworld_entities{{kind="npc"}} {self.npcs}'])
        for source in self.sources:
            lines.extend(source())
        return "\n".join(lines) + "\n"
