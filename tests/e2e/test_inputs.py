"""docs/protocol.md's input rules as a predicting client meets them, through a real server and a
real WebSocket client: several inputs in one tick count as the last; the first update that
acknowledges an input already holds one step of it; the direction is held between inputs; a
direction shorter than 1 moves slower."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from support.wsclient import Player


async def until_ack(p: Player, seq: int) -> dict:
    """The first update whose ack is at least `seq`."""
    return await p.until(lambda me, m: m["t"] == "update" and m["ack"] >= seq, what=f"ack {seq}")


async def stand(p: Player) -> tuple[float, float]:
    """Stop, and return where the player stands once the stop is applied."""
    await until_ack(p, await p.move(0, 0))
    return p.me()


@pytest.mark.asyncio
async def test_inputs_as_a_predicting_client_sees_them(npc_server):
    srv, _ = npc_server(None)
    p = await Player.join(srv.ws_url, "ana")
    try:
        step = p.welcome["speed"] / p.welcome["tick_rate"]  # world units a tick at full speed
        tol = 1.0 / p.quant  # two positions, each within 1/(2 quant)
        await p.until(lambda me, m: m["t"] == "update" and me.id in me.positions, what="my position")
        # Two inputs sent back to back land in one tick (retried in the rare case a tick falls between).
        for _ in range(5):
            x, y = await stand(p)
            first, last = next(p.seq), next(p.seq)
            await asyncio.gather(
                p.ws.send(msgpack.packb({"t": "input", "seq": first, "dx": -1, "dy": 0})),
                p.ws.send(msgpack.packb({"t": "input", "seq": last, "dx": 0, "dy": 1})),
            )
            msg = await until_ack(p, first)
            if msg["ack"] == last:
                break
        else:
            raise AssertionError("two inputs sent together never landed in one tick")
        # the last one's direction, one step of it already; nothing of the first
        assert p.me() == pytest.approx((x, y + step), abs=tol)
        # held: every tick since moved one more step with no input sent
        tick = msg["tick"]
        nxt = await p.until(lambda me, m: m["t"] == "update", what="the next update")
        ticks = nxt["tick"] - tick  # 1 unless updates were coalesced
        assert ticks >= 1 and nxt["ack"] == last
        assert p.me() == pytest.approx((x, y + (1 + ticks) * step), abs=tol)
        # shorter than 1: slower, in proportion
        x, y = await stand(p)
        msg = await until_ack(p, await p.move(0.5, 0))
        assert p.me() == pytest.approx((x + 0.5 * step, y), abs=tol)
    finally:
        await p.close()
