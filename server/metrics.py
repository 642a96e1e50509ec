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
        self.errors_sent: dict[str, int] = {}
        self.closes: dict[int, int] = {}
        self.players = 0
        self.npcs = 0

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
        metric("npcworld_ticks_total", "counter", "Ticks run.", [f"npcworld_ticks_total {self.ticks}"])
        metric("npcworld_tick_overruns_total", "counter", "Ticks that ended after their time slot.",
               [f"npcworld_tick_overruns_total {self.tick_overruns}"])
        metric("npcworld_ticks_skipped_total", "counter", "Tick slots skipped to catch up after overruns.",
               [f"npcworld_ticks_skipped_total {self.ticks_skipped}"])
        metric("npcworld_connections", "gauge", "Open player connections.",
               [f"npcworld_connections {self.connections}"])
        metric("npcworld_connections_total", "counter", "Player connections accepted.",
               [f"npcworld_connections_total {self.connections_total}"])
        metric("npcworld_bytes_in_total", "counter", "WebSocket payload bytes received.",
               [f"npcworld_bytes_in_total {self.bytes_in}"])
        metric("npcworld_bytes_out_total", "counter", "WebSocket payload bytes sent.",
               [f"npcworld_bytes_out_total {self.bytes_out}"])
        metric("npcworld_messages_in_total", "counter", "WebSocket messages received.",
               [f"npcworld_messages_in_total {self.messages_in}"])
        metric("npcworld_messages_out_total", "counter", "WebSocket messages sent.",
               [f"npcworld_messages_out_total {self.messages_out}"])
        metric("npcworld_updates_coalesced_total", "counter", "World updates merged into a newer one for a slow client.",
               [f"npcworld_updates_coalesced_total {self.updates_coalesced}"])
        metric("npcworld_errors_sent_total", "counter", "Error messages sent, by code.",
               [f'npcworld_errors_sent_total{{code="{c}"}} {n}' for c, n in sorted(self.errors_sent.items())])
        metric("npcworld_closes_total", "counter", "Connections closed by the server, by close code.",
               [f'npcworld_closes_total{{code="{c}"}} {n}' for c, n in sorted(self.closes.items())])
        metric("npcworld_entities", "gauge", "Entities in the world, by kind.",
               [f'npcworld_entities{{kind="player"}} {self.players}', f'npcworld_entities{{kind="npc"}} {self.npcs}'])
        return "\n".join(lines) + "\n"
