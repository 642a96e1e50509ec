"""The Walker NPC of the decision tests (a real server's, tests/e2e/test_decisions.py, and one whose
decisions come from a remote worker, tests/npc/inference/test_remote_workers.py): its files, the
POI it is sent to, and what the tests read of it (its entity, the policy's counters)."""

from __future__ import annotations

import asyncio

from .npchelp import near_b
from .servers import scrape as metrics
from .wsclient import Player

# The built-in behaviour keeps this NPC idle at 'a' (its need never falls low); only a policy that
# says "go_to the need's place" sends it to 'b'.
STAYS = """
    name = "Walker"
    color = "#123456"
    spawn = "a"

    [needs.thirst]
    start = 100
    rate = 0
    low = 10
    full = 90
    relief = "go_to"
    at = "b"

    [actions]
    allowed = ["idle", "go_to"]
"""

WANDERS = """
    name = "Walker"
    color = "#123456"
    spawn = "a"

    [[schedule]]
    from = "00:00"
    to = "24:00"
    do = "wander"

    [actions]
    allowed = ["idle", "wander"]
"""


def decisions(m: dict, outcome: str) -> float:
    return m.get(f'npcworld_npc_policy_decisions_total{{outcome="{outcome}"}}', 0.0)


async def until_metrics(p: Player, url: str, pred, what: str, timeout: float = 60) -> dict:
    """Poll /metrics until pred(m); between polls, read a few updates (no sleeping)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        m = await asyncio.to_thread(metrics, url)
        if pred(m):
            return m
        assert loop.time() < end, f"timed out waiting for {what}: {m}"
        for _ in range(4):
            await p.recv()


def walker(p: Player) -> int | None:
    return next((eid for eid, rec in p.known.items() if rec[2] == "Walker"), None)


def walker_at_b(p: Player, msg: dict) -> bool:
    """For Player.until: the Walker is in view and at b."""
    eid = walker(p)
    return near_b(p.positions.get(eid) if eid is not None else None)
