"""NPC decisions through the inference pool on a real server, seen by a real
WebSocket client: the policy's decisions move an NPC (counted on time in
/metrics), and a killed worker leaves the NPCs moving on their built-in
behaviour while the server keeps ticking, then comes back."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from support.decisionhelp import STAYS, WANDERS, decisions, metrics, until_metrics, walker, walker_at_b
from support.wsclient import Player


def workers_of(pid: int) -> list[int]:
    """The server's inference worker processes (spawned multiprocessing children)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


@pytest.fixture
def start(npc_server):
    """tests/conftest.py's npc_server with one walker file, decided by the policy (no guard)."""
    return lambda npc, *args: npc_server({"walker.toml": npc}, "--decider", "policy", "--no-policy-guard", *args)[0]


async def test_policy_decisions_from_the_pool_move_an_npc(start):
    srv = start(STAYS, "--policy-module", "tests.support.policy_modules:go_to_need")
    p = await Player.join(srv.ws_url, name="watcher")
    try:
        await p.until(walker_at_b, timeout=60, what="the walker to go to b on the policy's word")
        m = await asyncio.to_thread(metrics, srv.http_url)
        assert decisions(m, "on_time") > 0
        assert m['npcworld_inference_requests_total{outcome="on_time"}'] > 0
    finally:
        await p.close()


async def test_a_killed_worker_leaves_npcs_moving_and_the_server_ticking(start):
    srv = start(WANDERS, "--policy-module", "tests.support.policy_modules:wander")
    p = await Player.join(srv.ws_url, name="watcher")
    try:
        await until_metrics(p, srv.http_url, lambda m: decisions(m, "on_time") > 0, "on-time decisions")
        # the decision worker and its warm standby (PoolConfig.standby, when it has been spawned yet): both
        # killed, so that no worker is left (tests/npc/inference/test_inference_pool.py has the standby taking over)
        killed = workers_of(srv.proc.pid)
        assert 1 <= len(killed) <= 2, killed
        before = await asyncio.to_thread(metrics, srv.http_url)
        for worker in killed:
            os.kill(worker, signal.SIGKILL)
        # A request in flight to the dead worker fails, and while no worker is ready nothing is asked:
        # either way the built-in behaviour decides, at once.
        m = await until_metrics(
            p,
            srv.http_url,
            lambda m: m['npcworld_inference_worker_events_total{event="deaths"}'] >= 1,
            "the worker's death",
        )
        eid = walker(p)
        first = p.positions.get(eid)
        await p.until(
            lambda p, msg: p.positions.get(eid) not in (None, first), timeout=30, what="the walker to keep moving"
        )
        # A new worker starts and on-time decisions resume; the server ticked throughout.
        after = await until_metrics(
            p,
            srv.http_url,
            lambda x: x["npcworld_inference_workers_ready"] == 1 and decisions(x, "on_time") > decisions(m, "on_time"),
            "a restarted worker",
            timeout=90,
        )
        assert after["npcworld_ticks_total"] > before["npcworld_ticks_total"]
        assert srv.proc.poll() is None
        assert not set(workers_of(srv.proc.pid)) & set(killed)
    finally:
        await p.close()


async def test_metrics_say_when_the_policy_has_checked_every_file(npc_server):
    """npcworld_npc_policy_checks_running counts the files still being checked (a load test waits for 0)."""
    srv, _ = npc_server({"walker.toml": WANDERS}, "--decider", "policy")
    p = await Player.join(srv.ws_url, "watcher")
    m = await until_metrics(
        p,
        srv.http_url,
        lambda m: m.get("npcworld_npc_policy_checks_running") == 0 and 'npcworld_npc_policy_files{npc="walker"}' in m,
        "the guard to check walker.toml",
    )
    assert m["npcworld_inference_workers_ready"] >= 1
    await p.close()
