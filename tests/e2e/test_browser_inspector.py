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


async def test_the_inspector_lists_shows_follows_and_degrades(npc_server):
    from support.npchelp import admin_of, call

    srv, _ = npc_server({"tam.toml": TAM, "ivo.toml": IVO}, rows=MAP, wanderers=2)
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
        await page.wait_for_function(
            "() => document.getElementById('detail').textContent.includes('tam.toml')", timeout=10_000
        )
        assert await page.text_content("#detail-title") == f"Old Tam #{ids['Old Tam']}"
        await panel_agrees(page, admin, token, "detail", "GET", f"/npcs/{ids['Old Tam']}")

        # Clicked on the map: Ivo, where the page drew him.
        await page.wait_for_function(f"() => window.inspector.screen()[{ids['Ivo']}]", timeout=10_000)
        box = await page.locator("#map").bounding_box()
        at = (await page.evaluate("window.inspector.screen()"))[str(ids["Ivo"])]
        await page.mouse.click(box["x"] + at["x"], box["y"] + at["y"] - 5)
        await page.wait_for_function(f"() => window.inspector.selected === {ids['Ivo']}", timeout=5_000)
        await page.wait_for_function(
            "() => document.getElementById('detail').textContent.includes('ivo.toml')", timeout=10_000
        )

        # Follow: Ivo at the centre of the map, ringed.
        await page.check("#follow")
        await page.wait_for_function(
            f"() => Math.abs(window.inspector.camera.x - {ivo_pos[0]}) < 1 && Math.abs(window.inspector.camera.y - {ivo_pos[1]}) < 1",
            timeout=10_000,
        )
        img = await screenshot(page)
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        assert count_near(img, (cx - 20, cy + 2, cx + 20, cy + 20), HIGHLIGHT, 30) >= 12, "no ring at the centre"

        # The reload log, the clock and talking: live where the server has the route, else said so.
        await panel_agrees(page, admin, token, "log", "GET", "/log?after=0")
        await panel_agrees(page, admin, token, "clock", "GET", "/clock")
        if await page.evaluate("window.inspector.panels.log") == "unavailable":
            assert "not on this server" in await page.text_content("#log-note")
        else:
            await page.wait_for_function(
                "() => document.getElementById('log').textContent.includes('ivo.toml')", timeout=10_000
            )
        if await page.evaluate("window.inspector.panels.clock") == "unavailable":
            assert "not on this server" in await page.text_content("#clock-note")
            assert await page.locator("#clock-controls").is_hidden()
        await page.fill("#talk-text", "hello Ivo")
        await page.press("#talk-text", "Enter")
        await page.wait_for_function("() => window.inspector.panels.talk !== 'waiting'", timeout=30_000)
        if await page.evaluate("window.inspector.panels.talk") == "unavailable":
            assert "not on this server" in await page.text_content("#talk-note")
        else:
            await page.wait_for_function(
                "() => document.getElementById('talk-out').childElementCount >= 2", timeout=30_000
            )
        assert page_errors == [] and await page.evaluate("window.inspector.errors") == 0


async def test_the_monitor_on_the_admin_port_shows_the_reload_log(npc_server):
    from support.npchelp import admin_of

    srv, _ = npc_server({"ivo.toml": IVO}, rows=MAP)
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
        await page.wait_for_function(
            "() => document.getElementById('log').textContent.includes('ivo.toml')", timeout=10_000
        )


IDA = """
    id = "ida"
    name = "Ida"
    spawn = "spawn"
    hooks = "ida.py"
    [needs.energy]
    start = 70
    rate = -6
    low = 20
    full = 90
    relief = "idle"
    [[schedule]]
    from = "10:00"
    to = "12:00"
    do = "idle"
    at = "well"
    [[schedule]]
    from = "14:00"
    to = "16:00"
    do = "go_to"
    at = "well"
    [actions]
    allowed = ["idle", "go_to", "talk"]
"""
IDA_HOOKS = """
def on_hear(npc, speaker, text):
    if not npc.spoken_to:
        return
    if "boom" in text:
        return 1 / 0
    npc.talk(f"Hello, {speaker.name}.", to=speaker)
"""


async def keep_reading(p) -> None:
    """A player that stays connected: reads whatever comes (a client that reads nothing is closed)."""
    while True:
        await p.recv(timeout=30)


async def test_the_inspector_shows_what_the_admin_api_says_of_a_real_npc(npc_server, tmp_path):
    """The designer's views hold the values GET /npcs/<id> returns: file and version, who decided and the
    built-in's scores, needs and their trend, the schedule block now and next (after the page's own clock
    controls paused the clock and set it to 11:00), the nearest player, the lines and the hook error (made
    from the page's talk box) with its file:line. The page is opened at the URL the server prints."""
    from support.npchelp import call, write
    from support.wsclient import Player

    # two places: with 'spawn' alone, adding one changes the world's list of places (world/sim.py use_map
    # refuses that: a ValueError in the watcher, seen in this test)
    rows = [*MAP[:5], "#" + "." * 7 + "w" + "." * 20 + "#", *MAP[6:]]  # the well: 3 tiles from the spawn
    srv, _ = npc_server({"ida.toml": IDA, "ida.py": IDA_HOOKS}, rows=rows, pois={"w": "well"})
    printed = [line.split()[2] for line in srv.output if line.startswith("npcworld inspector ")]
    assert len(printed) == 1 and "/inspector#token=" in printed[0], srv.output
    url = printed[0]
    admin, token = url.split("inspector#token=")
    ann = await Player.join(srv.ws_url, "Ann")
    reader = asyncio.create_task(keep_reading(ann))
    try:
        for _ in range(100):  # bounded: 20 s
            status, listing = await asyncio.to_thread(call, admin + "npcs", "GET", token)
            if listing["npcs"]:
                break
            await asyncio.sleep(0.2)
        assert listing["npcs"], (await asyncio.to_thread(call, admin + "errors", "GET", token))[1]
        ida = listing["npcs"][0]["id"]
        async with chromium_page(url, viewport=(1300, 900)) as (page, page_errors):
            await page.wait_for_function("() => window.inspector.listed", timeout=20_000)
            await page.click("#npc-list li:has-text('Ida')")
            await page.wait_for_function("() => window.inspector.panels.clock === 'live'", timeout=15_000)
            await page.click("#clock-pause")
            await page.fill("#clock-time", "11:00")
            await page.click("#clock-set")
            status, clock = await asyncio.to_thread(call, admin + "clock", "GET", token)
            await page.wait_for_function(
                "() => document.getElementById('clock-state').textContent.includes('11:00')", timeout=10_000
            )
            status, clock = await asyncio.to_thread(call, admin + "clock", "GET", token)
            assert clock["paused"] is True and clock["time"] == "11:00"
            for i, text in enumerate(("boom", "hello")):
                await page.fill("#talk-text", text)
                await page.press("#talk-text", "Enter")
                await page.wait_for_function(f"() => window.inspector.talks === {i + 1}", timeout=60_000)
                assert await page.evaluate("window.inspector.panels.talk") == "live"
            await page.wait_for_function(
                "() => { const d = window.inspector.detail; return d && d.errors.length && d.nearest_player"
                " && d.schedule.block && d.lines.some((l) => l.text === 'Hello, designer.'); }",
                timeout=30_000,
            )
            status, api = await asyncio.to_thread(call, admin + f"npcs/{ida}", "GET", token)
            assert status == 200 and api["errors"] and api["lines"] and api["nearest_player"]["name"] == "Ann"
            # a second sample of the paused need, so that its sparkline has a line
            await page.wait_for_function(
                "() => document.querySelector('[data-view=needs] svg.spark polyline')", timeout=10_000
            )
            view = {
                v: await page.text_content(f"#detail [data-view={v}]")
                for v in ("file", "decision", "needs", "schedule", "player", "lines", "errors", "hooks")
            }
            shown = await page.evaluate("window.inspector.detail")

            # file: path, id, version
            assert api["file"] in view["file"] and f"version {api['version']}" in view["file"]
            assert api["hooks_file"] in view["file"]
            # who decided, and the built-in's top scores as bars (those of the answer the page shows)
            by = await page.text_content("#detail [data-view=decision] .badge")
            assert by == {"builtin": "built-in"}.get(shown["decided_by"], shown["decided_by"])
            assert shown["action"] in view["decision"] and shown["reason"] in view["decision"]
            rows = page.locator("#detail [data-view=decision] .bar-row")
            assert await rows.count() == len(shown["builtin"]["top"]) >= 1
            for i, c in enumerate(shown["builtin"]["top"]):
                assert await rows.nth(i).get_attribute("data-candidate") == c["candidate"]
                assert (await rows.nth(i).locator(".num").text_content()) == str(c["score"])
            # needs (the clock is paused: they stand still), falling: the arrow down
            need = api["needs"][0]
            row = page.locator("#detail [data-need=energy]")
            assert await row.locator(".value").text_content() == str(need["value"])
            assert await row.locator(".down").text_content() == "↓" and need["per_game_hour"] < 0
            assert "-6/h" in await row.text_content()
            # the schedule: now (11:00) and next
            assert api["schedule"]["block"]["from"] == "10:00" and api["schedule"]["next"]["from"] == "14:00"
            now = await page.text_content("#detail [data-block=now]")
            nxt = await page.text_content("#detail [data-block=next]")
            assert "10:00–12:00 idle at well" in now and f"line {api['schedule']['block']['line']}" in now
            assert "14:00–16:00 go_to at well" in nxt
            # the nearest player and what the NPC remembers of them (this server keeps no memory: it says why)
            assert "Ann" in view["player"]
            assert (api["nearest_player"].get("memory_note") or "") in view["player"]
            # its lines, and the hook error with file:line
            assert "Hello, designer." in view["lines"] and any(ln["text"] == "Hello, designer." for ln in api["lines"])
            err = api["errors"][0]
            assert err["file"].endswith("ida.py") and err["line"]
            assert f"ida.py:{err['line']}" in view["errors"] and "ZeroDivisionError" in view["errors"]
            assert "on_hear" in view["hooks"]
            talked = await page.text_content("#talk-out")
            assert "[on_hear] answers" in talked and "Hello, designer." in talked
            # a place added beside the map: the page's map gets it live, told by the reload log
            assert sorted(await page.evaluate("window.inspector.places")) == ["spawn", "well"]
            write(tmp_path / "small.places.toml", "[pier]\ntile = [3, 3]\n")
            try:
                await page.wait_for_function("() => window.inspector.places.includes('pier')", timeout=60_000)
            except Exception:
                log = (await asyncio.to_thread(call, admin + "log?after=0", "GET", token))[1]
                raise AssertionError(
                    f"no pier on the page's map; the server said {srv.output[-15:]}; the reload "
                    f"log: {log}; the page's places: {await page.evaluate('window.inspector.places')}"
                ) from None
            assert await page.evaluate("window.inspector.mapLoads") == 2
            assert page_errors == [] and await page.evaluate("window.inspector.errors") == 0
    finally:
        reader.cancel()
        await ann.close()
