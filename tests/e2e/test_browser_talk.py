"""The browser tells the player whom a typed line goes to (real Chromium, a real
server): the nearest NPC that talks, never one that does not (a hen), and
"no one here talks" when none is near; the NPC it talks to is drawn highlighted
(checked in a screenshot), the hen never. A Python player watches the server's
side: the say_start names the NPC the page said it would talk to.
"""

from __future__ import annotations

import os
import shutil

import pytest

from support.browserhelp import HIGHLIGHT, count_near, screenshot
from support.chromium import CHROMIUM, Observer, chromium_page, wait_connected
from support.paths import CLIENT_DIR
from support.wsclient import Player

pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        not os.path.isdir(os.path.join(CLIENT_DIR, "node_modules", "@msgpack", "msgpack")),
        reason="client_demo/node_modules missing: run `npm install` in client_demo/",
    ),
]

TAM = """
    id = "tam"
    name = "Old Tam"
    spawn = [400, 240]  # 7 tiles right of where players appear: beyond talking range, within earshot of a line
    [persona]
    who = "A merchant."
    fallback = ["Everything's for sale, {player}."]
    [actions]
    allowed = ["idle", "talk"]
    [actions.talk]
    reply = false
"""
# 24 x 16 tiles: players appear at "s" (world (176, 240)).
MAP = ["#" * 24] + ["#" + "." * 22 + "#"] * 6 + ["#....s" + "." * 17 + "#"] + ["#" + "." * 22 + "#"] * 7 + ["#" * 24]
HEN = """
    id = "hen"
    name = "Hen"
    spawn = "spawn"
    [actions]
    allowed = ["idle"]
"""


async def test_the_page_says_whom_a_line_goes_to_and_when_no_one_here_talks(npc_server):
    srv, _ = npc_server(
        {"tam.toml": TAM, "hen.toml": HEN}, "--dialogue-model", "tiny", "--dialogue-max-new-tokens", "8", rows=MAP
    )
    async with chromium_page(srv.http_url) as (page, page_errors):
        watcher = Observer(await Player.join(srv.ws_url, name="watcher"))
        try:
            await wait_connected(page)
            # Next to the hen (it spawns where players do), Tam far off at "b": no one here talks.
            await page.wait_for_function("window.npcworld.talkTo === 'no one here talks'", timeout=20_000)
            assert await page.evaluate("window.npcworld.nearNpc") is None
            await page.click("#chat-input")
            await page.keyboard.type("hello hen")
            await page.keyboard.press("Enter")
            note = page.locator("#chat-log .note")
            await note.wait_for(timeout=10_000)
            assert "no one here talks" in await note.text_content() and "Hen" in await note.text_content()

            # Walk right, towards Tam, until the page says we talk to him.
            await page.keyboard.down("ArrowRight")
            try:
                await page.wait_for_function("window.npcworld.talkTo === 'talking to Old Tam'", timeout=30_000)
            finally:
                await page.keyboard.up("ArrowRight")
            tam = await page.evaluate("window.npcworld.nearNpc")
            assert await page.get_attribute("#chat-input", "placeholder") == "Enter: say to Old Tam"

            # Tam is drawn highlighted: a ring in the highlight colour under his feet, where the server says he is.
            me = await page.evaluate("window.npcworld.myId")
            mx, my = await watcher.settled(me)
            tx, ty = await watcher.settled(tam)
            await page.wait_for_function(f"window.npcworld.highlighted === {tam}", timeout=5_000)
            radius = await page.evaluate("window.npcworld.welcome.radius")
            centre = await page.evaluate(f"window.npcworld.screen()[{me}]")
            sx, sy = centre["x"] + (tx - mx), centre["y"] + (ty - my)
            img = await screenshot(page)
            ring = (sx - radius * 1.6, sy + radius * 0.2, sx + radius * 1.6, sy + radius * 1.6)
            assert count_near(img, ring, HIGHLIGHT, 30) >= 12, "no highlight ring under Tam"
            hen = next(i for i, rec in watcher.player.known.items() if rec[2] == "Hen")
            hx, hy = await watcher.settled(hen)
            hx, hy = centre["x"] + (hx - mx), centre["y"] + (hy - my)
            assert (
                count_near(
                    img, (hx - radius * 1.6, hy + radius * 0.2, hx + radius * 1.6, hy + radius * 1.6), HIGHLIGHT, 30
                )
                == 0
            ), "the hen, who does not talk, is highlighted"

            await page.click("#chat-input")
            await page.keyboard.type("Hello Tam!")
            await page.keyboard.press("Enter")
            says = watcher.player.says
            await watcher.wait(lambda: any(m["t"] == "say_end" for m in says) or None, 60, "Tam's answer")
            start = next(m for m in says if m["t"] == "say_start")
            assert start["npc"] == tam and start["name"] == "Old Tam" and start["to"] == me
            # The log shows the answer under Tam's name.
            await page.wait_for_function(
                "[...document.querySelectorAll('#chat-log .npc-say .who')].some(e => e.textContent === 'Old Tam')",
                timeout=10_000,
            )
            assert page_errors == []
        finally:
            await watcher.close()
