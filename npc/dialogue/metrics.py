"""The dialogue service's /metrics families (a prometheus-client collector's): conversations
by how they went, those running now, and the pool's dialogue workers."""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric


def families(counts: dict[str, int], active: int, pool) -> list[Metric]:
    total = CounterMetricFamily(
        "npcworld_dialogue_total", "Conversations with NPCs: started, and how they ended.", labels=["event"]
    )
    for k, v in sorted(counts.items()):
        total.add_metric([k], v)
    out: list[Metric] = [
        total,
        GaugeMetricFamily("npcworld_dialogue_active", "Conversations running now.", value=active),
    ]
    if pool is not None:
        st = pool.stats
        out += [
            CounterMetricFamily(
                "npcworld_dialogue_worker_deaths_total",
                "Dialogue workers lost (died or hung).",
                value=st.worker_deaths + st.worker_hangs,
            ),
            GaugeMetricFamily(
                "npcworld_dialogue_ready", "Dialogue workers ready (0 while the model loads).", value=st.workers_ready
            ),
        ]
        for ex in pool.executors:  # remote workers: presence, requests, outcomes, latency
            if ex.name != "local":
                out += ex.families()
    return out
