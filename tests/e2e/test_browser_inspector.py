"""The designers' inspector (/inspector on the admin port) in real Chromium
against a real server: the page needs no token but its data does; with the
token it lists the NPCs of the files, a click in the list or on the map shows
that NPC's detail, "follow" puts it at the centre of the map (checked in a
screenshot: the selection ring is there), and each panel whose route the
server lacks (GET /npcs/{id}, /log, /clock, POST /npcs/{id}/talk) says so
instead of failing; where the route is there, the panel shows its data."""

from __future__ import annotations

import asyncio
import shutil
import urllib.request

import pytest

from support.browserhelp import HIGHLIGHT, count_near, screenshot
from support.chromium import CHROMIUM, chromium_page

pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")

MAP = ["#" * 30] + ["#" + "." * 28 + "#"] * 6 + ["#....s" + "." * 23 + "#"] + ["#" + "." * 28 + "#"] * 8 + ["#" * 30]
TAM = """
    id = "tam"
    name = "Old Tam"
    spawn = "spawn"
    [actions]
    allowed = ["idle"]
"""
IVO = """
    id = "ivo"
    name = "Ivo"
    spawn = [700, 380]
    [actions]
    allowed = ["idle"]
"""


def get_raw(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def panel_agrees(page, admin: str, token: str, panel: str, method: str, path: str, body=None) -> None:
    """The page's panel says 'unavailable' exactly when the server answers the route with 404 'no such endpoint'."""
    from support.npchelp import call

    status, answer = await asyncio.to_thread(call, admin + path.lstrip("/"), method, token, body)
    missing = status == 404 and "no such endpoint" in answer.get("error", "")
    want = "unavailable" if missing else "live"
    await page.wait_for_function(f"() => window.inspector.panels[{panel!r}] === {want!r}", timeout=15_000)


async def test_the_inspector_lists_shows_follows_and_degrades(launch, tmp_path):
    from support.maphelp import write_ascii_map
    from support.npchelp import admin_of, call, write

    folder = tmp_path / "npcs"
    folder.mkdir()
    write(folder / "tam.toml", TAM)
    write(folder / "ivo.toml", IVO)
    srv = launch("--map", str(write_ascii_map(tmp_path, MAP, "m.tmj", {"s": "spawn"})), "--npc-dir", str(folder),
                 "--npcs", "2")
    admin, token = admin_of(srv)

    # The page itself is public code with a strict policy; the data behind it is not.
    status, headers, html = await asyncio.to_thread(get_raw, admin + "inspector")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"inspector.js" in html
    assert "default-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    assert (await asyncio.to_thread(get_raw, admin + "npcs"))[0] == 401
    assert (await asyncio.to_thread(get_raw, admin + "inspector/admin.py"))[0] == 401  # not a page: the API's rules
    status, listing = await asyncio.to_thread(call, admin + "npcs", "GET", token)
    ids = {n["name"]: n["id"] for n in listing["npcs"]}
    assert set(ids) == {"Old Tam", "Ivo"}
    ivo_pos = next(n["position"] for n in listing["npcs"] if n["name"] == "Ivo")

    async with chromium_page(admin + "inspector#token=" + token, viewport=(1200, 700)) as (page, page_errors):
        await page.wait_for_function("() => window.inspector.listed", timeout=20_000)
        assert "token" not in page.url  # the token left the address bar (kept in sessionStorage)
        names = await page.locator("#npc-list li .name").all_text_contents()
        assert sorted(names) == ["Ivo", "Old Tam"]
        assert "2 generic wanderers" in await page.text_content("#wanderers")

        # Picked from the list: its detail (the file it comes from).
        await page.click("#npc-list li:has-text('Old Tam')")
        assert await page.evaluate("window.inspector.selected") == ids["Old Tam"]
        await page.wait_for_function("() => document.getElementById('detail').textContent.includes('tam.toml')",
                                     timeout=10_000)
        assert await page.text_content("#detail-title") == f"Old Tam #{ids['Old Tam']}"
        await panel_agrees(page, admin, token, "detail", "GET", f"/npcs/{ids['Old Tam']}")

        # Clicked on the map: Ivo, where the page drew him.
        await page.wait_for_function(f"() => window.inspector.screen()[{ids['Ivo']}]", timeout=10_000)
        box = await page.locator("#map").bounding_box()
        at = (await page.evaluate("window.inspector.screen()"))[str(ids["Ivo"])]
        await page.mouse.click(box["x"] + at["x"], box["y"] + at["y"] - 5)
        await page.wait_for_function(f"() => window.inspector.selected === {ids['Ivo']}", timeout=5_000)
        await page.wait_for_function("() => document.getElementById('detail').textContent.includes('ivo.toml')",
                                     timeout=10_000)

        # Follow: Ivo at the centre of the map, ringed.
        await page.check("#follow")
        await page.wait_for_function(
            f"() => Math.abs(window.inspector.camera.x - {ivo_pos[0]}) < 1 && Math.abs(window.inspector.camera.y - {ivo_pos[1]}) < 1",
            timeout=10_000)
        img = await screenshot(page)
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        assert count_near(img, (cx - 20, cy + 2, cx + 20, cy + 20), HIGHLIGHT, 30) >= 12, "no ring at the centre"

        # The reload log, the clock and talking: live where the server has the route, else said so.
        await panel_agrees(page, admin, token, "log", "GET", "/log?after=0")
        await panel_agrees(page, admin, token, "clock", "GET", "/clock")
        if await page.evaluate("window.inspector.panels.log") == "unavailable":
            assert "not on this server" in await page.text_content("#log-note")
        else:
            await page.wait_for_function("() => document.getElementById('log').textContent.includes('ivo.toml')",
                                         timeout=10_000)
        if await page.evaluate("window.inspector.panels.clock") == "unavailable":
            assert "not on this server" in await page.text_content("#clock-note")
            assert await page.locator("#clock-controls").is_hidden()
        await page.fill("#talk-text", "hello Ivo")
        await page.press("#talk-text", "Enter")
        await page.wait_for_function("() => window.inspector.panels.talk !== 'waiting'", timeout=30_000)
        if await page.evaluate("window.inspector.panels.talk") == "unavailable":
            assert "not on this server" in await page.text_content("#talk-note")
        else:
            await page.wait_for_function("() => document.getElementById('talk-out').childElementCount >= 2", timeout=30_000)
        assert page_errors == [] and await page.evaluate("window.inspector.errors") == 0


async def test_the_monitor_on_the_admin_port_shows_the_reload_log(launch, tmp_path):
    from support.npchelp import admin_of, write

    folder = tmp_path / "npcs"
    folder.mkdir()
    write(folder / "ivo.toml", IVO)
    srv = launch("--npc-dir", str(folder), "--npcs", "0")
    admin, token = admin_of(srv)
    async with chromium_page(admin + "monitor") as (page, page_errors):
        # metrics as on the game port; the log waits for the token
        await page.wait_for_selector("body[data-state=live]", timeout=20_000)
        await page.locator("#log-token").wait_for(state="visible", timeout=10_000)
        await page.fill("#log-token-input", token)
        await page.press("#log-token-input", "Enter")
        await panel_agrees_monitor(page, admin, token)
        assert page_errors == [] and await page.evaluate("window.monitor.errors") == 0


async def panel_agrees_monitor(page, admin: str, token: str) -> None:
    from support.npchelp import call

    status, answer = await asyncio.to_thread(call, admin + "log?after=0", "GET", token)
    if status == 404 and "no such endpoint" in answer.get("error", ""):
        await page.wait_for_function("() => window.monitor.log.state === 'unavailable'", timeout=10_000)
        assert "not on this server" in await page.text_content("#log-note")
    else:
        await page.wait_for_function("() => document.getElementById('log').textContent.includes('ivo.toml')",
                                     timeout=10_000)
