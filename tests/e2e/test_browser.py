"""The browser client (client_demo/) in real Chromium against a real server.

A second, independent player speaks the wire protocol from Python and watches
the browser's player move in its own updates: the test trusts the server's
view of the world, not what the page says about itself.
"""

from __future__ import annotations

import itertools
import os
import shutil

import pytest

from support.chromium import CHROMIUM, Observer, chromium_page, wait_connected
from support.paths import CLIENT_DIR
from support.wsclient import Player

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = [
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        not os.path.isdir(os.path.join(CLIENT_DIR, "node_modules", "@msgpack", "msgpack")),
        reason="client_demo/node_modules missing: run `npm install` in client_demo/",
    ),
]

# Counts canvas pixels that are not the page background (#101418), on a grid.
NON_BLANK_PIXELS = """() => {
  const c = document.getElementById("world");
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let other = 0, total = 0;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4 * 97) {
    total++;
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    if (r !== 0x10 || g !== 0x14 || b !== 0x18) other++;
    colours.add((r << 16) | (g << 8) | b);
  }
  return {other, total, colours: colours.size};
}"""


async def test_browser_client_plays(server):
    async with chromium_page(server.http_url) as (page, page_errors):
        await wait_connected(page)

        # The world is drawn: map tiles and entities, not an empty canvas.
        pixels = await page.evaluate(NON_BLANK_PIXELS)
        assert pixels["other"] > pixels["total"] // 2, pixels
        assert pixels["colours"] >= 4, pixels

        my_id = await page.evaluate("window.npcworld.myId")
        assert isinstance(my_id, int) and my_id >= 1
        observer = Observer(await Player.join(server.ws_url, name="observer"))
        try:
            # Both players spawn near the 'spawn' point, so each sees the other.
            await observer.wait(lambda: observer.position(my_id), 10, "the browser player in view")
            x0, y0 = await observer.settled(my_id)

            # Typing in the chat box sends chat and never moves the player.
            await page.click("#chat-input")
            await page.keyboard.type("ddd hello from chromium")
            await page.keyboard.press("Enter")
            await observer.wait(
                lambda: any(c[0] == my_id and c[2] == "ddd hello from chromium" for c in observer.player.chat),
                10,
                "the browser's chat line",
            )
            assert await observer.settled(my_id) == (x0, y0)

            # Hold the right arrow until the server has moved the player 1.5 tiles right.
            await page.keyboard.down("ArrowRight")
            try:
                await observer.wait(
                    lambda: (observer.position(my_id) or (x0, y0))[0] > x0 + 48, 10, "the browser player to move right"
                )
            finally:
                await page.keyboard.up("ArrowRight")
            x1, y1 = await observer.settled(my_id)
            assert x1 > x0 + 48 and y1 == y0, ((x0, y0), (x1, y1))

            # Once stopped, prediction agrees with the server (up to quantisation).
            quant = observer.player.quant
            await page.wait_for_function(
                f"""() => {{
                    const p = window.npcworld.myPos(), s = window.npcworld.serverPos();
                    return p && s && Math.abs(s.x - {x1}) < 1e-6 && Math.abs(s.y - {y1}) < 1e-6
                        && Math.abs(p.x - s.x) <= 1 / {quant} && Math.abs(p.y - s.y) <= 1 / {quant};
                }}""",
                timeout=10_000,
            )
        finally:
            await observer.close()

        # Reloading the tab resumes the same character (token in localStorage).
        await page.reload()
        await wait_connected(page)
        assert await page.evaluate("window.npcworld.myId") == my_id
        assert page_errors == []


# Records what the chat log's NPC line shows after every change (each WebSocket
# message is its own task, so every streamed piece is seen).
WATCH_NPC_LINE = """() => {
  window.seen = [];
  const log = document.querySelector("#chat-log") || document.body;
  new MutationObserver(() => {
    const lines = log.querySelectorAll(".npc-say");
    if (!lines.length) return;
    const body = lines[lines.length - 1].lastElementChild;
    const last = window.seen[window.seen.length - 1];
    if (!last || last.text !== body.textContent || last.cls !== body.className)
      window.seen.push({text: body.textContent, cls: body.className});
  }).observe(log, {childList: true, subtree: true, characterData: true});
}"""


async def test_an_npc_reply_streams_into_the_log_and_a_bubble(npc_server, tmp_path):
    from support.npchelp import TAM

    srv, _ = npc_server(
        {"tam.toml": TAM},
        "--dialogue-model",
        "tiny",
        "--dialogue-max-new-tokens",
        "24",
        # 20 ms per token: the reply spans many ticks, so it arrives in several say_delta pieces.
        "--dialogue-step-delay-ms",
        "20",
        "--dialogue-first-token-ms",
        "60000",
        "--memory-db",
        str(tmp_path / "memory.sqlite"),
    )
    async with chromium_page(srv.http_url) as (page, page_errors):
        bystander = Observer(await Player.join(srv.ws_url, name="observer"))
        try:
            await wait_connected(page)
            await page.wait_for_function("window.npcworld.nearNpc !== null", timeout=20_000)
            tam = await page.evaluate("window.npcworld.nearNpc")
            await page.evaluate(WATCH_NPC_LINE)

            await page.click("#chat-input")
            await page.keyboard.type("Hello Tam, what do you sell?")
            await page.keyboard.press("Enter")

            # The server's word on the line: the bystander standing nearby gets it too.
            says = bystander.player.says
            await bystander.wait(lambda: any(m["t"] == "say_end" for m in says), 60, "say_end (bystander)")
            start = next(m for m in says if m["t"] == "say_start")
            end = next(m for m in says if m["t"] == "say_end")
            assert start["npc"] == tam and start["to"] == await page.evaluate("window.npcworld.myId")
            assert end["id"] == start["id"] and end["reason"] == "done" and end["text"]

            await page.wait_for_function(
                "window.seen.length && window.seen[window.seen.length - 1].cls === 'said done'", timeout=10_000
            )
            seen = await page.evaluate("window.seen")
            streamed = [s["text"] for s in seen if s["cls"] == "streaming"]
            # Piece by piece: the log showed each say_delta as it came (the same pieces the bystander got),
            # then the whole, cleaned line. (How many pieces depends on the model's text: any number >= 1.)
            deltas = [m["text"] for m in says if m["t"] == "say_delta"]
            assert deltas and streamed == list(itertools.accumulate(deltas)), (seen, deltas)
            assert seen[-1]["text"] == end["text"]
            bubbles = await page.evaluate("window.npcworld.bubbles()")
            assert bubbles[str(tam)][-1] == end["text"]
            assert page_errors == []
        finally:
            await bystander.close()


async def test_the_monitor_page_plots_live_metrics(server):
    async with chromium_page(server.http_url + "monitor") as (page, page_errors):
        await page.wait_for_selector("body[data-state=live]", timeout=20_000)
        player = Observer(await Player.join(server.ws_url, name="watched"))
        try:
            # The page's figures follow the server: one connection appears, ticks run, bytes flow.
            await page.wait_for_function(
                """() => {
                const m = window.monitor.latest;
                return m.connections === 1 && m.players === 1 && m.ticks > 0 && m.tick_mean > 0 && m.bytes_out > 0
                    && m.store_failed === 0;
            }""",
                timeout=20_000,
            )
        finally:
            await player.close()
        await page.wait_for_function("window.monitor.latest.connections === 0", timeout=20_000)
        cards = await page.locator(".card .value").all_text_contents()
        assert len(cards) >= 15 and all(c for c in cards)
        assert "npcworld_ticks_total" in await page.locator("#raw").text_content()
        # The reload log needs the admin port: here the page says where it is.
        await page.wait_for_function("window.monitor.log && window.monitor.log.state === 'elsewhere'", timeout=10_000)
        assert "admin port" in await page.text_content("#log-note")
        assert page_errors == [] and await page.evaluate("window.monitor.errors") == 0
