"""A new NPC file, never in the policy's training set, on a real server with the shipped
policy deciding: the guard lets the policy decide it, and through a real WebSocket client it
behaves as its file says: it greets a player who comes near and never gives a gift, because
its file weighs giving at 0 (masked: the policy cannot choose it). GET /npcs says who decided."""

from __future__ import annotations

import asyncio
import math

import pytest

from npc.policy.model import DEFAULT_WEIGHTS
from support.npchelp import admin_of, call
from npc.policy.weights import weights_input
from npc.policy.observe import OBS_DIM
from support.wsclient import Player

GERDA = """
    id = "gerda"
    name = "Gerda"
    color = "#aa5500"
    spawn = "a"

    [persona]
    greeting = "Good day to you, {player}."

    [[schedule]]
    from = "00:00"
    to = "24:00"
    do = "idle"
    at = "a"
    activity = "knitting"

    [actions]
    allowed = ["idle", "talk", "give_item"]

    [actions.give_item]
    items = ["apple"]
    line = "Take this {item}, {player}."

    [weights]
    give_item = 0
"""

pytestmark = pytest.mark.skipif(
    not DEFAULT_WEIGHTS.is_file() or weights_input(str(DEFAULT_WEIGHTS)) != OBS_DIM,
    reason="the shipped policy weights are for another observation layout",
)


async def npcs(srv) -> dict:
    url, token = admin_of(srv)
    status, body = await asyncio.to_thread(call, url + "npcs", "GET", token)
    assert status == 200, body
    return body["npcs"][0]


async def test_an_unseen_file_is_decided_by_the_policy_as_it_says(npc_server):
    srv, _ = npc_server({"gerda.toml": GERDA}, "--decider", "policy", "--no-dialogue")
    p = await Player.join(srv.ws_url, name="Ansel")
    try:
        # the guard first: the built-in decides until the policy is measured on this file
        loop = asyncio.get_running_loop()
        end = loop.time() + 90
        while (row := await npcs(srv))["decider"]["why"].startswith("checking"):
            assert loop.time() < end, row
            for _ in range(10):  # between polls, read updates (no sleeping)
                await p.recv()
        assert row["decider"]["policy"] is True, row["decider"]
        await p.until(lambda me, m: any(r[2] == "Gerda" for r in me.known.values()), what="Gerda in view")
        gerda = next(eid for eid, rec in p.known.items() if rec[2] == "Gerda")

        async def near(me, msg):
            if gerda not in me.positions or me.id not in me.positions:
                return False
            (x, y), (gx, gy) = me.me(), me.positions[gerda]
            d = math.hypot(gx - x, gy - y)
            await me.move((gx - x) / d if d > 30 else 0.0, (gy - y) / d if d > 30 else 0.0)
            return d <= 40

        for _ in range(400):  # walk up to her (20 s at most)
            if await near(p, await p.recv()):
                break
        await p.until(
            lambda me, m: any("Good day to you, Ansel." in c[2] for c in me.chat), timeout=30, what="Gerda's greeting"
        )
        for _ in range(60):  # 3 s more next to her: no gift
            await p.recv()
        assert not [c for c in p.chat if "apple" in c[2]], p.chat
        row = await npcs(srv)
        assert row["decided_by"] in ("policy", "builtin") and row["decider"]["policy"] is True
    finally:
        await p.close()
