"""`npcworld bots` against real servers: its report agrees with what the
server's own /metrics counted, every scenario plays, a server that goes away
ends the run with a clear summary, bad arguments are usage errors, and the
HTML report renders in real Chromium."""

from __future__ import annotations

import json
import shutil
import socket

import msgpack
import pytest

from support.botshelp import clean, metrics, run_bots, start_bots, wait_for
from support.chromium import CHROMIUM, CHROMIUM_ARGS
from support.servers import start_server
from world import protocol


@pytest.fixture(scope="module")
def wander_run(tmp_path_factory):
    """One wander run of 4 bots in 2 processes; what it printed, its report, the server's figures after it."""
    srv = start_server("--npcs", "20")
    try:
        out_dir = tmp_path_factory.mktemp("wander")
        res = run_bots(
            "--url",
            srv.ws_url,
            "--clients",
            "4",
            "--ramp",
            "1",
            "--duration",
            "4",
            "--procs",
            "2",
            "--report",
            str(out_dir),
        )
        wait_for(lambda: metrics(srv)["npcworld_connections"] == 0, "the server to see every bot leave")
        yield res, json.loads((out_dir / "report.json").read_text()), out_dir, metrics(srv)
    finally:
        srv.stop()


def test_a_run_reports_what_the_server_counted(wander_run):
    res, r, _, m = wander_run
    assert res.returncode == 0, res.stdout + res.stderr
    clean(res.stdout, res.stderr)
    assert "updates/s per client" in res.stdout and "report:" in res.stdout
    s = r["summary"]
    assert s["connected"] == s["finished"] == 4 and s["problems"] == []
    # Connections: every bot was accepted once and all were open together.
    assert m["npcworld_connections_total"] == 4
    assert r["server"]["connections_accepted"] == 4 and r["server"]["connections_max"] == 4
    assert max(row["connected"] for row in r["timeline"]) == 4
    # Messages, exactly: the server is fresh, so its totals are this run's. The
    # bots close with a handshake and read until the server's close frame, so
    # nothing either side sent is still in flight when the counts are taken.
    assert s["messages_sent"] == m["npcworld_messages_in_total"] == r["server"]["messages_in"]
    assert s["messages_received"] == m["npcworld_messages_out_total"] == r["server"]["messages_out"]
    assert s["messages_sent"] == sum(s["sent_by_kind"].values())
    assert s["sent_by_kind"]["hello"] == 4 and s["sent_by_kind"]["input"] > 0 and s["sent_by_kind"]["chat"] == 0
    # Every bot measured what the issue asks for.
    for bot in r["bots"]:
        assert bot["end"] == "finished" and bot["updates"] > 0 and bot["bytes"] > 0
        assert bot["updates_per_s"] > 0 and bot["bytes_per_s"] > 0
        assert bot["gap_p50"] > 0 and bot["rtt_p50"] > 0 and bot["ack_p50"] > 0
    assert s["rtt_p99"] >= s["rtt_p50"] > 0 and s["gap_p99"] >= s["gap_p50"] > 0
    assert r["server"]["timeline"] and r["server"]["steady"]["tick_p99_ms"] > 0


async def test_the_html_report_renders_in_chromium(wander_run):
    playwright_api = pytest.importorskip("playwright.async_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    _, r, out_dir, _ = wander_run
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            urls: list[str] = []
            page.on("request", lambda req: urls.append(req.url))
            await page.goto((out_dir / "report.html").as_uri())
            assert await page.title() == "npcworld bots: 4 x wander"
            plots = await page.query_selector_all("svg.plot")
            assert len(plots) == 10
            for plot in plots:
                box = await plot.bounding_box()
                assert box and box["width"] > 100 and box["height"] > 100
            # Each plot drew its data (lines, points or bars), not just axes.
            drawn = await page.evaluate("""() => [...document.querySelectorAll('svg.plot')].map(svg => [
                svg.getAttribute('aria-label'),
                [...svg.querySelectorAll('.data')].filter(el => {
                    const b = el.getBBox(); return b.width > 0 || b.height > 0; }).length])""")
            assert all(n > 0 for _, n in drawn), drawn
            assert all(u.startswith("file://") for u in urls), urls  # nothing fetched: opens offline
        finally:
            await browser.close()


def test_each_scenario_plays(launch, tmp_path):
    srv = launch("--npcs", "20")

    def short_run(name: str, *extra: str):
        args = ("--url", srv.ws_url, "--clients", "3", "--ramp", "0.5", "--duration", "3.5", *extra)
        return start_bots(*args, "--report", str(tmp_path / name))

    runs = {name: short_run(name, "--scenario", name) for name in ("chatty", "idle")}
    # version 2 (a server older than version 3): the bots read the map form's head
    runs["v2"] = short_run("v2", "--protocol", "2")
    reports = {}
    for name, proc in runs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        clean(out, err)
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())["summary"]
    chatty, idle = reports["chatty"], reports["idle"]
    # chatty walks and speaks (every bot's first line comes 0.5..2 s after joining) and hears itself
    assert chatty["sent_by_kind"]["input"] > 0 and chatty["sent_by_kind"]["chat"] >= 3
    assert chatty["chat_heard"] >= 3
    # idle never moves or speaks, but pings
    assert idle["sent_by_kind"]["input"] == idle["sent_by_kind"]["chat"] == 0
    assert idle["sent_by_kind"]["ping"] > 0 and idle["ack_p50"] is None and idle["rtt_p50"] > 0
    for s in (chatty, idle, reports["v2"]):
        assert s["connected"] == s["finished"] == 3 and s["updates_per_s_median"] > 0
    wait_for(lambda: metrics(srv)["npcworld_connections"] == 0, "the server to see every bot leave")
    sent = sum(r["messages_sent"] for r in reports.values())
    assert sent == metrics(srv)["npcworld_messages_in_total"]


def test_a_server_that_goes_away_ends_the_run_with_a_clear_summary(launch, tmp_path):
    srv = launch("--npcs", "10")
    bots = start_bots(
        "--url", srv.ws_url, "--clients", "3", "--ramp", "0.3", "--duration", "120", "--report", str(tmp_path)
    )
    try:
        # Joined (a player each), and a few ticks later, so every welcome has gone out:
        # the bots are playing, not still connecting, when the server goes.
        wait_for(lambda: metrics(srv)["npcworld_entities{kind=player}"] == 3, "3 bots joined")
        joined_at = metrics(srv)["npcworld_ticks_total"]
        wait_for(lambda: metrics(srv)["npcworld_ticks_total"] >= joined_at + 3, "3 more ticks")
        srv.stop()  # SIGTERM: the server closes every connection with 1001 and exits
        out, err = bots.communicate(timeout=60)  # the run ends with its connections, not after 120 s
    finally:
        if bots.poll() is None:
            bots.kill()
    clean(out, err)
    said = f"bots said:\n{out}\n{err}\nthe server said:\n" + "\n".join(srv.output[-30:])
    assert bots.returncode == 1, said
    assert "3 connections ended before the run did: closed 1001 x3" in out, said
    assert "stopped answering" in out, said  # /metrics went away with the server
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["why_ended"] == "all connections ended" and r["summary"]["connected"] == 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_arguments_are_usage_errors_and_a_missing_server_is_clear(tmp_path):
    url = "ws://127.0.0.1:9/ws"
    cases = [
        ([], "--url"),
        (["--url", "http://127.0.0.1:8080/ws"], "expected ws://"),
        (["--url", "ws://127.0.0.1:99999/ws"], "port"),
        (["--url", url, "--clients", "0"], "--clients 0"),
        (["--url", url, "--clients", "many"], "--clients"),
        (["--url", url, "--ramp", "10", "--duration", "5"], "--ramp 10.0 is not shorter than --duration"),
        (["--url", url, "--duration", "-1"], "--duration"),
        (["--url", url, "--scenario", "dance"], "--scenario"),
        (["--url", url, "--procs", "0"], "--procs 0"),
        (["--url", url, "--protocol", "4"], "--protocol 4"),
    ]
    for args, expected in cases:
        res = run_bots(*args, "--report", str(tmp_path))
        assert res.returncode == 2, (args, res.stderr)
        assert "usage: npcworld bots" in res.stderr and expected in res.stderr, (args, res.stderr)
        clean(res.stdout, res.stderr)
    res = run_bots("--url", f"ws://127.0.0.1:{free_port()}/ws", "--report", str(tmp_path))
    assert res.returncode == 3 and "cannot reach the server" in res.stderr and "connection refused" in res.stderr
    clean(res.stdout, res.stderr)


# -- the bot's own WebSocket client, against a reference server (the websockets library) --


def _update(tick: int, ack: int, cells_bytes: int = 64, chat: list | None = None, enter: list | None = None) -> bytes:
    """An update laid out exactly as the server writes it (world/protocol.py), in the version the bots
    speak (3: an array)."""
    from world.protocol import encode_cell_block, encode_cell_block3
    from world.snapshot import View, encode_update

    n = max(1, cells_bytes // 12)
    cells = msgpack.packb([]) if not cells_bytes else (b"\x91" + encode_cell_block(3, bytes(4 * n), bytes(4 * n)))
    cells3 = (
        msgpack.packb([])
        if not cells_bytes
        else (b"\x91" + encode_cell_block3(3, bytes(4 * n), bytes(4 * n), bytes(4 * n)))
    )
    recs = [msgpack.packb(r) for r in (enter or [])]
    chat_recs = [msgpack.packb(c) for c in (chat or [])]
    view = View.make(cells, recs, [r[0] for r in (enter or [])], [], chat_recs, cells3=cells3)
    return encode_update(tick, ack, view, version=protocol.VERSION)


async def _bot_against(handler, scenario=None, process_request=None):
    """Run one Bot against a websockets server with `handler`; returns the bot once its run ended."""
    import asyncio

    from websockets.asyncio.server import serve

    from bots.bot import Bot, Tally
    from bots.scenarios import Wander

    async with serve(handler, "127.0.0.1", 0, compression=None, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        bot = Bot(0, f"ws://127.0.0.1:{port}/ws", scenario or Wander(), Tally(), window_at=0.0)
        await asyncio.wait_for(bot.run(), 15)
        return bot


async def test_the_bot_speaks_rfc6455_frames_fragments_pings_and_close_codes():
    import asyncio

    seen: dict = {}

    async def handler(ws):
        seen["headers"] = ws.request.headers
        seen["hello"] = msgpack.unpackb(await ws.recv())  # websockets rejects unmasked client frames
        await ws.send(msgpack.packb({"t": "welcome", "v": 1, "id": 7, "tick": 0, "tick_rate": 20}))
        ping = msgpack.unpackb(await ws.recv())
        move = msgpack.unpackb(await ws.recv())
        seen["client"] = [ping, move]
        await ws.send(msgpack.packb({"t": "pong", "id": ping["id"], "tick": 1}))
        await ws.send(_update(10, -1))  # 7-bit length
        await ws.send(_update(11, move["seq"], cells_bytes=3000))  # 16-bit length
        await ws.send(_update(12, move["seq"], cells_bytes=100_000))  # 64-bit length
        frag = _update(13, move["seq"], chat=[[7, "bot 0", "hi", 13]])
        await ws.send([frag[:5], frag[5:30], frag[30:]])  # fragmented, with a chat line
        pong_waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(pong_waiter, 5)  # the bot answers pings
        seen["pong"] = True
        # Not the server's usual layout (keys reordered): decoded in full instead.
        await ws.send(
            msgpack.packb(
                {"t": "update", "ack": move["seq"], "tick": 15, "cells": [], "enter": [], "leave": [], "chat": []}
            )
        )
        await ws.send(msgpack.packb({"t": "error", "code": "rate_limited", "message": "slow down"}))
        await ws.close(4003, "replaced")

    from bots.bot import Bot

    orig_welcome = Bot._welcome

    def welcome_then_send(self, msg, now):  # right after welcome: one ping and one input
        orig_welcome(self, msg, now)
        self.ping()
        self.move(1.0, 0.0)
        self.flush()

    Bot._welcome = welcome_then_send
    try:
        bot = await _bot_against(handler)
    finally:
        Bot._welcome = orig_welcome
    assert seen["hello"] == {"t": "hello", "v": protocol.VERSION, "name": "bot 0"}
    assert seen["headers"]["User-Agent"] == "npcworld-bots" and "Sec-WebSocket-Extensions" not in seen["headers"]
    assert seen["client"][0]["t"] == "ping" and seen["client"][1] == {"t": "input", "seq": 1, "dx": 1.0, "dy": 0.0}
    assert seen["pong"]
    assert bot.end == "closed 4003 replaced" and bot.close_code == 4003
    assert bot.updates == 5 and bot.last_tick == 15 and bot.missed_ticks == 1  # 14 never came
    assert bot.chat_heard == 1 and bot.errors == {"rate_limited": 1}
    assert bot.msgs_in == 1 + 1 + 5 + 1 and bot.msgs_out == 3 and bot.sent["input"] == 1
    assert bot.rtt.n == 1 and bot.ack.n == 1 and bot.gap.n == 4
    assert bot.tally.disconnects == 1 and bot.tally.ends == {"closed 4003 replaced": 1}


async def test_the_bot_reports_http_errors_and_refusals_as_failed_connects():
    from bots.bot import check_handshake

    async def never(ws):  # pragma: no cover - the handshake is refused
        raise AssertionError

    def not_found(conn, request):
        return conn.respond(404, "no such path\n")

    bot = await _bot_against(never, process_request=not_found)
    assert bot.end == "failed: HTTP 404" and bot.tally.connect_failures == 1 and not bot.open

    async def full(ws):  # a server that refuses after hello, as npcworld does when full
        await ws.recv()
        await ws.close(4004, "server full")

    bot = await _bot_against(full)
    assert bot.end == "failed: closed 4004 server full"
    key = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example
    good = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    )
    assert check_handshake(good, key) is None
    assert check_handshake(good.replace(b"s3pP", b"xxxx"), key) == "handshake failed: wrong Sec-WebSocket-Accept"
    assert "extension" in check_handshake(good + b"\r\nSec-WebSocket-Extensions: permessage-deflate", key)
