"""The dialogue service's /metrics lines (Prometheus text format): conversations by how
they went, those running now, and the pool's dialogue workers."""

from __future__ import annotations


def prometheus(counts: dict[str, int], active: int, pool) -> list[str]:
    lines = ["# HELP npcworld_dialogue_total Conversations with NPCs: started, and how they ended.",
             "# TYPE npcworld_dialogue_total counter"]
    lines += [f'npcworld_dialogue_total{{event="{k}"}} {v}' for k, v in sorted(counts.items())]
    lines += ["# HELP npcworld_dialogue_active Conversations running now.", "# TYPE npcworld_dialogue_active gauge",
              f"npcworld_dialogue_active {active}"]
    if pool is not None:
        st = pool.stats
        lines += ["# HELP npcworld_dialogue_worker_deaths_total Dialogue workers lost (died or hung).",
                  "# TYPE npcworld_dialogue_worker_deaths_total counter",
                  f"npcworld_dialogue_worker_deaths_total {st.worker_deaths + st.worker_hangs}",
                  "# HELP npcworld_dialogue_ready Dialogue workers ready (0 while the model loads).",
                  "# TYPE npcworld_dialogue_ready gauge", f"npcworld_dialogue_ready {st.workers_ready}"]
        for ex in pool.executors:  # remote workers: presence, requests, outcomes, latency
            if ex.name != "local":
                lines += ex.prometheus()
    return lines
