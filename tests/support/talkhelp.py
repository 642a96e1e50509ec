"""Talking to an NPC through a real server with real players: find it, walk to it, hold a
conversation that a bystander hears too, and check the stream (say_start, say_delta..., say_end)
as docs/protocol.md says it comes."""

from __future__ import annotations

import asyncio
import math

from .wsclient import Player

Client = Player  # keeps say_* messages in .says


async def find_npc(p: Client, name: str) -> int:
    await p.until(
        lambda me, m: any(r[2] == name for r in me.known.values()) and me.id in me.positions, what=f"{name} in view"
    )
    return next(eid for eid, r in p.known.items() if r[2] == name)


async def walk_to(p: Client, eid: int, within: float = 100) -> None:
    """Steer towards an entity until within `within` world units."""
    for _ in range(400):
        await p.until(lambda me, m: m["t"] == "update" and eid in me.positions and me.id in me.positions)
        (x, y), (tx, ty) = p.me(), p.positions[eid]
        d = math.hypot(tx - x, ty - y)
        if d < within:
            await p.move(0, 0)
            return
        await p.move((tx - x) / d, (ty - y) / d)
    raise AssertionError("could not reach the NPC")


async def conversation(srv, line: str, timeout: float):
    ana = await Client.join(srv.ws_url, "Ana")
    bo = await Client.join(srv.ws_url, "Bo")
    try:
        tam = await find_npc(ana, "Old Tam")
        await walk_to(ana, tam)
        await find_npc(bo, "Old Tam")
        await walk_to(bo, tam)
        await ana.send({"t": "talk", "npc": tam, "text": line})
        # Both read all along (a client that stops reading is closed as too slow).
        end, _ = await asyncio.gather(
            ana.until(lambda me, m: m["t"] == "say_end", timeout=timeout, what="say_end"),
            bo.until(lambda me, m: m["t"] == "say_end", timeout=timeout, what="say_end (bystander)"),
        )
        return tam, ana, bo, end
    finally:
        await ana.close()
        await bo.close()


def check_stream(tam: int, p: Client, end: dict) -> str:
    assert p.says[0]["t"] == "say_start" and p.says[0]["npc"] == tam and p.says[0]["heard"]
    cid = p.says[0]["id"]
    assert all(m["id"] == cid for m in p.says)
    deltas = [m["text"] for m in p.says if m["t"] == "say_delta"]
    assert end["reason"] == "done", end
    assert deltas and end["text"] and "".join(deltas).strip()
    return end["text"]
