"""`npcworld serve --gateways 2` (server/gateways.py, server/gateway_proc.py): a real server whose port
two gateway processes serve, real WebSocket clients on both, one gateway killed (SIGKILL) and
restarted, killed again at once (the backoff). (The limit, close, HTTP and 1001 tests of
tests/e2e/test_server.py run on --gateways 2 too.)"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import socket
import urllib.request

import msgpack
import pytest

from server import gateway_link as wire
from server import gateways
from server.app import build_room
from server.config import flat
from server.metrics import Metrics
from server.ticker import run_ticks
from support.maphelp import write_ascii_map
from support.wsclient import Player, close_code
from world.tilemap import load_map

JOINED = re.compile(r"(?:joined|resumed) \S+ \((\d+)\) on gateway (\d+)")
STARTED = re.compile(r"gateway (\d+) of \d+: pid (\d+)")
RESTARTED = re.compile(r"gateway (\d+) restarted \(restart (\d+)\): pid (\d+)")


async def printed(srv, pattern: str | re.Pattern, after: int = 0, seconds: float = 15) -> re.Match:
    """The first line of the server's output from line `after` on that matches `pattern`."""
    for _ in range(int(seconds * 10)):  # bounded: `seconds` for the line to come
        for text in srv.output[after:]:
            m = re.search(pattern, text)
            if m:
                return m
        await asyncio.sleep(0.1)
    raise AssertionError(f"no line matching {pattern!r} in {seconds} s:\n" + "\n".join(srv.output[-40:]))


async def metrics_until(srv, ok, what: str) -> dict[str, float]:
    """/metrics (answered by either gateway) once `ok(figures)`; the room sends them every 0.5 s."""
    for _ in range(60):  # bounded: 6 s
        m = await asyncio.to_thread(srv.metrics)
        if ok(m):
            return m
        await asyncio.sleep(0.1)
    raise AssertionError(f"/metrics never showed {what}: {m}")


async def gateway_of(srv, eid: int, resumed: bool = False) -> int:
    """The gateway holding this player's seat, as the tick process logged it (`resumed`: its resume's)."""
    for _ in range(100):  # bounded: 5 s for the line to be read from the server's output
        for line in reversed(srv.output):
            m = JOINED.search(line)
            if m and int(m.group(1)) == eid and (not resumed or "resumed" in line):
                return int(m.group(2))
        await asyncio.sleep(0.05)
    raise AssertionError(f"no 'on gateway' line for player {eid}:\n" + "\n".join(srv.output[-30:]))


async def one_on_each(srv) -> dict[int, Player]:
    """Players joined until both gateways hold one (SO_REUSEPORT picks by the connection's ports);
    the others leave at once."""
    on: dict[int, Player] = {}
    for i in range(60):  # bounded: two gateways, 60 tries
        p = await Player.join(srv.ws_url, f"p{i}")
        g = await gateway_of(srv, p.id)
        if g in on:
            await p.close()
        else:
            on[g] = p
        if len(on) == 2:
            return on
    raise AssertionError(f"60 connections all landed on gateway(s) {sorted(on)}")


def health(srv) -> dict:
    with urllib.request.urlopen(srv.http_url + "healthz", timeout=10) as resp:
        return json.loads(resp.read())


async def test_players_on_two_gateways_see_and_hear_each_other_and_a_resume_replaces_across_them(launch):
    srv = launch("--npcs", "0", "--npc-dir", "", "--gateways", "2")  # everyone at the spawn point
    on = await one_on_each(srv)
    a, b = on[0], on[1]
    await a.until(lambda p, m: b.id in p.known, what="the other gateway's player in view")
    await b.until(lambda p, m: a.id in p.known, what="the other gateway's player in view")
    start = b.positions.get(a.id) or (0.0, 0.0)
    await a.move(1.0, 0.0)
    await b.until(lambda p, m: p.positions.get(a.id, start)[0] > start[0] + 5, what="the other player walking")
    await b.send({"t": "chat", "text": "hello from gateway 1"})
    await a.until(lambda p, m: any("hello from gateway 1" in str(c) for c in p.chat), what="the chat line")
    await b.send({"t": "ping", "id": 5})
    pong = await b.until(lambda p, m: m["t"] == "pong", what="pong")
    assert pong["tick"] > 0  # the gateway knows the tick
    # a's token, from a new connection (on either gateway): the same character; a's connection 4003
    c = await Player.join(srv.ws_url, token=a.welcome["token"])
    assert c.welcome["resumed"] and c.id == a.id
    assert await close_code(a.ws) == 4003
    for _ in range(50):  # bounded: the room sends the gateways its figures every 0.5 s (README)
        m = await asyncio.to_thread(srv.metrics)
        if m["npcworld_entities{kind=player}"] >= 2 and m["npcworld_connections"] >= 2:
            break
        await asyncio.sleep(0.1)
    assert m["npcworld_entities{kind=player}"] >= 2 and m["npcworld_connections"] >= 2, m
    await b.close()
    await c.close()


async def test_a_killed_gateway_s_players_drop_the_room_goes_on_and_the_gateway_is_restarted(launch):
    srv = launch("--npcs", "5", "--npc-dir", "", "--gateways", "2", "--grace", "60")
    pids = {}
    for line in srv.output:
        m = STARTED.search(line)
        if m:
            pids[int(m.group(1))] = int(m.group(2))
    assert sorted(pids) == [0, 1], srv.output[-30:]
    on = await one_on_each(srv)
    dead, alive = on[0], on[1]
    joins = sum(1 for text in srv.output if JOINED.search(text))
    await metrics_until(  # both gateways have reported their connections: gateway 0's are counted in the totals
        srv, lambda f: f.get("npcworld_connections_total") == joins, f"{joins} connections ever"
    )
    os.kill(pids[0], signal.SIGKILL)  # gateway 0, a child of the server this test started
    assert await close_code(dead.ws) == 1006  # its connections drop
    tick = alive.last_tick
    await alive.until(lambda p, m: p.last_tick > tick + 20, what="20 more ticks on the other gateway")
    assert srv.proc.poll() is None
    for _ in range(50):  # bounded: 5 s for the line to be read from the server's output
        if any("gateway 0 ended after" in line and "its 1 players leave" in line for line in srv.output):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("no 'gateway 0 ended' line:\n" + "\n".join(srv.output[-40:]))
    # the dropped player resumes its character (the grace period) on a gateway (the other, or the new one)
    back = await Player.join(srv.ws_url, token=dead.welcome["token"])
    assert back.welcome["resumed"] and back.id == dead.id
    await back.until(lambda p, m: alive.id in p.known, what="the other player in view")
    for _ in range(40):  # bounded: the gateways report every 0.5 s
        h = await asyncio.to_thread(health, srv)
        if h["connections"] == 2:
            break
        await asyncio.sleep(0.1)
    assert h["status"] == "ok" and h["connections"] == 2 and h["players"] >= 2, h  # and those in their grace
    # a room that is stuck (its process stopped) is seen on /healthz, which the gateway answers
    os.kill(srv.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(60):  # bounded: 6 s; "stale" after 2 s without the room's figures
            h = await asyncio.to_thread(health, srv)
            if h["status"] == "stale":
                break
            await asyncio.sleep(0.1)
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)
    assert h["status"] == "stale", h
    await back.close()
    await alive.close()
    # gateway 0 was started again on the same port: a new process, which seats players who see each other
    m = await printed(srv, RESTARTED)
    assert m.group(1) == "0" and m.group(2) == "1" and int(m.group(3)) != pids[0]
    on = await one_on_each(srv)
    await on[0].until(lambda p, m: on[1].id in p.known, what="the other gateway's player, from the new gateway")
    joins = sum(1 for text in srv.output if JOINED.search(text))  # every connection so far, the dead one's too
    figures = await metrics_until(
        srv,
        lambda f: (
            f.get("npcworld_gateway_restarts_total{gateway=0}") == 1
            and f.get("npcworld_gateways") == 2
            and f.get("npcworld_connections_total") == joins
        ),  # the dead gateway's counters still count
        f"one restart of gateway 0, 2 gateways up and {joins} connections ever",
    )
    assert figures["npcworld_gateway_restarts_total{gateway=1}"] == 0
    await on[0].close()
    await on[1].close()
    assert srv.stop() == 0


async def test_a_gateway_that_dies_at_once_over_and_over_is_restarted_with_a_growing_wait(launch):
    srv = launch("--npcs", "0", "--npc-dir", "", "--gateways", "2")
    pid = int((await printed(srv, r"gateway 1 of \d+: pid (\d+)")).group(1))
    waits = []
    for restart in (1, 2, 3):  # bounded: three deaths, each within a second or two of its start
        mark = len(srv.output)
        os.kill(pid, signal.SIGKILL)
        ended = await printed(
            srv, rf"gateway 1 ended after [\d.]+ s; its \d+ players leave; restart {restart} in ([\d.]+) s", mark
        )
        waits.append(float(ended.group(1)))
        pid = int((await printed(srv, rf"gateway 1 restarted \(restart {restart}\): pid (\d+)", mark)).group(1))
    assert waits == [0.5, 1.0, 2.0]  # doubled while it dies young (README "Gateway processes")
    figures = await metrics_until(
        srv, lambda f: f.get("npcworld_gateway_restarts_total{gateway=1}") == 3, "three restarts of gateway 1"
    )
    assert figures["npcworld_gateway_restarts_total{gateway=0}"] == 0
    p = await Player.join(srv.ws_url, "after")  # the port is served all along
    await p.close()
    assert srv.stop() == 0


# -- a gateway that sends what is not a message of the link ----------------------------------------
# The tick process's side in this test's process (the real room, server/gateways.py, two real gateway
# processes, real players); the bad bytes go into the tick side's end of gateway 0's link as the
# socket would give them (Link.data_received), since a real gateway sends only good ones.

MAP_ROWS = ["##########", "#........#", "#...s....#", "#........#", "##########"]
BAD = {
    "commands that are not msgpack": (b"c", b"\xc1\xc1"),
    "an input whose dx is text": (b"c", None),  # filled with a seated player's id below
    "an input whose dx is NaN": (b"c", None),
    "a chat whose text is a number": (b"c", None),
    "a join without a hello": (b"j", msgpack.packb([7, b"\x93\x01\x02\x03"])),
    "a leave of a list": (b"l", msgpack.packb([[1, 2]])),
    "stats with a counter in text": (b"s", msgpack.packb({"connections": "many"})),
    "an unknown kind": (b"z", b""),
    "commands past their bound": (b"c", bytes(wire.FROM_GATEWAY[wire.COMMANDS[0]] + 1)),
    "a join past its bound": (b"j", bytes(wire.FROM_GATEWAY[wire.JOIN[0]] + 1)),
}


def bad_commands(case: str, eid: int) -> bytes:
    return msgpack.packb(
        {
            "an input whose dx is text": [[eid, 0, 99, "fast", 0.0]],
            "an input whose dx is NaN": [[eid, 0, 99, math.nan, 0.0]],
            "a chat whose text is a number": [[eid, 1, 12345]],
        }[case]
    )


@pytest.fixture
async def room_on_gateways(tmp_path, monkeypatch):
    monkeypatch.setattr(gateways, "STABLE_S", 0.0)  # every death restarts after RESTART_FIRST_S: no backoff wait
    cfg = flat(
        port=0,
        map=str(write_ascii_map(tmp_path, MAP_ROWS, "room.tmj", {"s": "spawn"})),
        npc_dir="",
        npcs=3,
        decider="builtin",
        dialogue=False,
        memory_db="",
        store="",
        gateways=2,
    ).validate()
    metrics = Metrics()
    gws = gateways.Gateways(cfg.net, metrics, cfg.world.map)
    game = build_room(cfg, load_map(cfg.world.map), metrics, gws, store=None)
    await gws.start(game, "127.0.0.1", 0, 2)
    stop = asyncio.Event()
    ticks = asyncio.create_task(run_ticks(cfg.world.tick_rate, game.tick, metrics, stop))
    pages = asyncio.create_task(gws.publish(lambda: {"status": "ok"}, stop))
    try:
        yield game, gws, metrics
    finally:
        stop.set()
        await ticks
        await pages
        await gws.close()
        game.close()


async def seated_on(gws, g: int) -> Player:
    """A player whose seat is on gateway g (which is up, or coming back: 10 s)."""
    for _ in range(100):  # bounded: 10 s for gateway g to be up
        if gws.links[g] is not None and gws.stats[g]:
            break
        await asyncio.sleep(0.1)
    for i in range(60):  # bounded: two gateways, 60 tries
        p = await Player.join(f"ws://127.0.0.1:{gws.port}/ws", f"q{i}")
        if gws.of.get(p.id, (None,))[0] == g:
            return p
        await p.close()
    raise AssertionError(f"60 connections, none on gateway {g}")


async def test_a_gateway_that_sends_a_bad_message_is_dropped_and_restarted_and_the_room_goes_on(
    room_on_gateways, caplog
):
    game, gws, metrics = room_on_gateways
    other = await seated_on(gws, 1)
    for restarts, (case, (kind, payload)) in enumerate(BAD.items(), 1):  # bounded: 10 cases
        p = await seated_on(gws, 0)
        payload = payload if payload is not None else bad_commands(case, p.id)
        link, proc = gws.links[0], gws.procs[0]
        caplog.clear()
        ticks = metrics.ticks
        link.data_received(wire.HEAD.pack(len(payload), kind[0]) + payload)  # as the socket would give it
        assert gws.links[0] is None, case  # dropped at once
        assert any(r.levelname == "ERROR" and "gateway 0" in r.getMessage() for r in caplog.records), case
        if "bound" in case:  # the log says how long it was and what the bound is
            assert any(
                f"of {len(payload)} bytes (at most {len(payload) - 1})" in r.getMessage() for r in caplog.records
            )
        assert p.id not in gws.of  # its player left as on a disconnect
        assert await close_code(p.ws) == 1006, case  # the process was killed
        assert await asyncio.to_thread(proc.wait, 10) == -signal.SIGKILL
        tick = game.world.tick
        await other.until(lambda q, m: q.last_tick > tick + 5, what=f"5 more ticks after {case}")
        assert metrics.ticks > ticks and gws.links[1] is not None, case
        # nothing of the bad message reached the world: every position finite, no tick failed
        assert all(math.isfinite(v) for xy in other.positions.values() for v in xy)
        assert not any("tick failed" in r.getMessage() for r in caplog.records), case
        for _ in range(100):  # bounded: 10 s for the replacement
            if gws.restarts[0] == restarts and gws.links[0] is not None:
                break
            await asyncio.sleep(0.1)
        assert gws.restarts[0] == restarts, case
    back = await seated_on(gws, 0)
    await other.until(lambda q, m: back.id in q.known, what="a player of the restarted gateway in view")
    await back.close()
    await other.close()


async def test_a_stopped_gateway_is_dropped_past_its_bound_without_blocking_the_tick_and_restarted(
    room_on_gateways, caplog
):
    """Gateway 0's process stopped (SIGSTOP: it reads nothing) while the tick side sends it a 1 MiB page a
    loop turn: dropped once LINK_BEHIND (64 MiB) is held for it, killed and restarted; the room ticks on
    meanwhile and the player on gateway 1 keeps getting its updates."""
    game, gws, metrics = room_on_gateways
    other = await seated_on(gws, 1)
    stopped = await seated_on(gws, 0)
    link, proc = gws.links[0], gws.procs[0]
    sndbuf = link.transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    page = msgpack.packb([{"status": "ok", "pad": bytes(2**20)}, "", None])  # a PAGES message of 1 MiB
    os.kill(proc.pid, signal.SIGSTOP)  # a child of this test's process
    try:
        caplog.clear()
        updates, ticks, at = other.updates, metrics.ticks, []
        for _ in range(100):  # bounded: 100 MiB; one page per loop turn, the ticks and the players' reads between
            if gws.links[0] is not link:
                break
            link.send(wire.PAGES, page)
            at.append(game.world.tick)
            await asyncio.sleep(0.005)
        assert gws.links[0] is None, "never dropped"
        sent = (len(at) - 1) * (wire.HEAD.size + len(page))  # the last send found the bound passed: it dropped
        # the bound is on what the tick side holds: what it wrote, less what the kernel took (at most the
        # socket's send buffer); so dropped at the first send past 64 MiB held, not before
        assert gateways.LINK_BEHIND < sent <= gateways.LINK_BEHIND + wire.HEAD.size + len(page) + sndbuf, (sent, sndbuf)
        dropped = [r.getMessage() for r in caplog.records if "gateway 0 read nothing" in r.getMessage()]
        assert dropped and f"(at most {gateways.LINK_BEHIND})" in dropped[0], dropped
        # the tick went on while the pages piled up, and so did the other gateway's player's updates
        assert at[-1] > at[0] and metrics.ticks > ticks
        await other.until(lambda q, m: q.updates > updates + 10, what="10 more updates on gateway 1")
        assert await asyncio.to_thread(proc.wait, 10) == -signal.SIGKILL  # killed, stopped as it was
        assert await close_code(stopped.ws) == 1006
        assert stopped.id not in gws.of
    finally:
        if proc.poll() is None:  # not dropped: this test ends the process it stopped
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(10)
    for _ in range(100):  # bounded: 10 s for the replacement
        if gws.restarts[0] == 1 and gws.links[0] is not None:
            break
        await asyncio.sleep(0.1)
    assert gws.restarts[0] == 1 and gws.procs[0] is not proc
    back = await seated_on(gws, 0)
    await other.until(lambda q, m: back.id in q.known, what="a player of the restarted gateway in view")
    await back.close()
    await other.close()
