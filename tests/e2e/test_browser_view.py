"""What a player sees in the browser client, checked by screenshots in real
Chromium against a real server: figures where the server says they are, a
speech bubble wholly inside the view even for a speaker near its top edge, the
minimap with you on it, and a far player's name only when hovered. A Python player
gives the server's view of the positions; the page's own hook
(window.npcworld) says only where it drew things, and the pixels of the
screenshot must agree."""

from __future__ import annotations

import os
import shutil

import pytest

from support.browserhelp import count_near, rgb, screenshot
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

# 40 x 24 tiles of open floor: players appear at "s" (world (656, 400)).
MAP = (
    ["#" * 40]
    + ["#" + "." * 38 + "#"] * 11
    + ["#" + "." * 19 + "s" + "." * 18 + "#"]
    + ["#" + "." * 38 + "#"] * 10
    + ["#" * 40]
)
LONG = "a line long enough to wrap over several lines of a speech bubble, said {} times by the player"
WIDE = (1200, 300)
NEXT_FRAMES = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => requestAnimationFrame(r))))"  # px: a short view, so a bubble over the player's head would not fit above it


def torso(screen: dict, radius: float) -> tuple[float, float, float, float]:
    """The box (x0, y0, x1, y1) of a figure's torso around where the page drew its entity."""
    x, y = screen["x"], screen["y"]
    return x - 4, y - radius * 0.75, x + 4, y - radius * 0.15


async def test_figures_minimap_and_a_bubble_inside_the_view(npc_server):
    srv, _ = npc_server(None, rows=MAP)
    async with chromium_page(srv.http_url, viewport=WIDE) as (page, page_errors):
        await wait_connected(page)
        me = await page.evaluate("window.npcworld.myId")
        radius = await page.evaluate("window.npcworld.welcome.radius")
        observer = Observer(await Player.join(srv.ws_url, name="observer"))
        try:
            await observer.wait(
                lambda: observer.position(me) and observer.player.known.get(me), 10, "the browser player in view"
            )
            # The observer walks 5 tiles left of the browser's player, then stands.
            await observer.player.move(-1.0, 0.0)
            mx = (await observer.settled(me))[0]
            await observer.wait(
                lambda: observer.position(observer.player.id)[0] < mx - 160, 20, "the observer to walk left"
            )
            await observer.player.move(0.0, 0.0)
            ox, oy = await observer.settled(observer.player.id)
            mx, my = await observer.settled(me)
            my_colour = rgb(observer.player.known[me][3])
            obs_id = observer.player.id
            await page.wait_for_function(
                f"""() => {{ const s = window.npcworld.screen()[{obs_id}], m = window.npcworld.screen()[{me}];
                    return s && m && Math.abs((s.x - m.x) - ({ox - mx})) < 0.5 && Math.abs((s.y - m.y) - ({oy - my})) < 0.5; }}""",
                timeout=10_000,
            )
            screen = await page.evaluate("window.npcworld.screen()")
            img = await screenshot(page)

            # Your figure is at the centre of the view, in your colour.
            mine = screen[str(me)]
            assert abs(mine["x"] - WIDE[0] / 2) < 1 and abs(mine["y"] - WIDE[1] / 2) < 1, mine
            assert count_near(img, torso(mine, radius), my_colour) >= 15, "your figure is not drawn at the centre"
            # The observer's figure is where the server says: offset from yours by the server's difference.
            obs_colour = rgb(observer.player.known[obs_id][3])
            at = {"x": mine["x"] + (ox - mx), "y": mine["y"] + (oy - my)}
            assert count_near(img, torso(at, radius), obs_colour) >= 15, (
                "the observer's figure is not where the server says"
            )
            # Its name shows only when hovered (it is more than 160 units away): white text under its feet.
            name_box = (at["x"] - 40, at["y"] + radius, at["x"] + 40, at["y"] + radius + 22)
            assert count_near(img, name_box, (255, 255, 255), 20) == 0, "a far player's name is shown"
            await page.mouse.move(at["x"], at["y"] - radius * 0.5)
            await page.wait_for_function(f"window.npcworld.hovered === {obs_id}", timeout=5_000)
            await page.evaluate(NEXT_FRAMES)  # the frame that drew the name (hovering is found in a frame)
            assert count_near(await screenshot(page), name_box, (255, 255, 255), 20) >= 10, (
                "the hovered name is not shown"
            )
            await page.mouse.move(5, WIDE[1] - 5)

            # The minimap: the map's picture in a corner, you as a white dot where the server says.
            mm = await page.evaluate("window.npcworld.minimap()")
            world_w, world_h = await page.evaluate("window.npcworld.welcome.world")
            assert mm and mm["x"] + mm["w"] <= WIDE[0] and mm["y"] >= 0
            scale = mm["w"] / world_w
            dot = (mm["x"] + mx * scale, mm["y"] + my * scale)
            assert count_near(img, (dot[0] - 3, dot[1] - 3, dot[0] + 4, dot[1] + 4), (255, 255, 255), 30) >= 4
            inside = img[int(mm["y"]) : int(mm["y"] + mm["h"]), int(mm["x"]) : int(mm["x"] + mm["w"])]
            assert len({tuple(p) for p in inside.reshape(-1, 3)[::7].tolist()}) >= 3, "the minimap is blank"

            # Three long lines from a speaker at the middle of a 300 px high view: a bubble that would not fit
            # above its head. It is drawn wholly inside the view, clear of the HUD panels.
            for i in range(3):
                await page.click("#chat-input")
                await page.keyboard.type(LONG.format(i + 1))
                await page.keyboard.press("Enter")
            await observer.wait(lambda: sum(c[0] == me for c in observer.player.chat) >= 3, 10, "the three lines")
            await page.wait_for_function(
                f"window.npcworld.bubbles()[{me}]?.length === 3 && window.npcworld.bubbleBoxes().some(b => b.id === {me})",
                timeout=10_000,
            )
            await page.evaluate(NEXT_FRAMES)  # bubbleBoxes() is the last frame's: one drawn with all three lines
            box = next(b for b in await page.evaluate("window.npcworld.bubbleBoxes()") if b["id"] == me)
            assert (
                box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["w"] <= WIDE[0] and box["y"] + box["h"] <= WIDE[1]
            ), box
            assert box["h"] > WIDE[1] / 2 - radius * 2.5, ("the bubble is small enough to fit above: no test", box)
            img = await screenshot(page)
            inner = (box["x"] + 3, box["y"] + 3, box["x"] + box["w"] - 3, box["y"] + box["h"] - 3)
            area = (inner[2] - inner[0]) * (inner[3] - inner[1])
            # what the screenshot shows there is the bubble (white, with dark text), not a panel or the floor
            assert count_near(img, inner, (255, 255, 255), 12) > area * 0.6
            assert count_near(img, inner, (17, 17, 17), 60) > 20, "no text in the bubble"
            for panel in ("#panel", "#chat"):
                r = await page.locator(panel).bounding_box()
                assert (
                    box["x"] >= r["x"] + r["width"]
                    or box["x"] + box["w"] <= r["x"]
                    or box["y"] >= r["y"] + r["height"]
                    or box["y"] + box["h"] <= r["y"]
                ), (panel, box, r)
            assert page_errors == []
        finally:
            await observer.close()


HAIR = (96, 60, 34)  # a player's hair in the sprite sheet (scripts/make_sprites.py)
SKIN = (240, 200, 160)


def head_sides(img, at: dict, radius: float, colour) -> tuple[int, int]:
    """Pixels of `colour` in the left and right halves of a figure's head band (the sheet's rows 4..6:
    its hair behind the face, seen from the side), around where the page drew its entity."""
    s = radius / 8  # world units (CSS px) per sheet pixel, as figures.js draws
    feet = at["y"] + radius * 0.9
    y0, y1 = feet - (23 - 4) * s, feet - (23 - 7) * s
    return (
        count_near(img, (at["x"] - 8 * s, y0, at["x"], y1), colour, 6),
        count_near(img, (at["x"], y0, at["x"] + 8 * s, y1), colour, 6),
    )


async def test_figures_come_from_the_sheet_face_their_way_and_walk(npc_server):
    """A player walking left, then right, seen by the browser: the page draws it from the sprite sheet as a
    player where the server says, it steps through walking frames, and it faces its way: seen from the side
    its hair is behind its face (the right half of its head when it walks left, the left half when right)."""
    srv, _ = npc_server(None, rows=MAP)
    async with chromium_page(srv.http_url, viewport=WIDE) as (page, page_errors):
        await wait_connected(page)
        me = await page.evaluate("window.npcworld.myId")
        radius = await page.evaluate("window.npcworld.welcome.radius")
        observer = Observer(await Player.join(srv.ws_url, name="walker"))
        try:
            obs = observer.player.id
            await page.wait_for_function(f"() => window.npcworld.screen()[{obs}]?.sprite", timeout=10_000)
            seen = {}
            for dx, facing, hair_behind in ((-1.0, "left", 1), (1.0, "right", 0)):
                await observer.player.move(dx, 0.0)
                frames = set()
                for _ in range(20):  # bounded: while it walks, the frames the page draws it with
                    d = (await page.evaluate("window.npcworld.screen()")).get(str(obs))
                    if d and d["facing"] == facing:
                        frames.add(d["frame"])
                    await page.evaluate(NEXT_FRAMES)
                assert len(frames - {0}) >= 2, (facing, frames)
                await observer.player.move(0.0, 0.0)
                ox, oy = await observer.settled(obs)
                mx, my = await observer.settled(me)
                await page.wait_for_function(
                    f"""() => {{ const s = window.npcworld.screen()[{obs}], m = window.npcworld.screen()[{me}];
                        return s && m && s.frame === 0 && Math.abs((s.x - m.x) - ({ox - mx})) < 0.5
                            && Math.abs((s.y - m.y) - ({oy - my})) < 0.5; }}""",
                    timeout=10_000,
                )
                drawn = (await page.evaluate("window.npcworld.screen()"))[str(obs)]
                assert drawn["variant"] == "player" and drawn["facing"] == facing and drawn["sprite"] is True
                img = await screenshot(page)
                colour = rgb(observer.player.known[obs][3])
                assert count_near(img, torso(drawn, radius), colour) >= 15, "the figure is not where the server says"
                hair, skin = head_sides(img, drawn, radius, HAIR), head_sides(img, drawn, radius, SKIN)
                assert hair[hair_behind] > hair[1 - hair_behind] and skin[1 - hair_behind] > skin[hair_behind], (
                    facing,
                    hair,
                    skin,
                )
                seen[facing] = (hair, skin)
            assert page_errors == []
        finally:
            await observer.close()


# Runs client_demo/bubbles.js's layout in the page on made-up speakers; returns what went wrong, per case.
LAYOUT_CASES = """async () => {
  const { layoutBubbles } = await import("/bubbles.js");
  const view = {w: 800, h: 400};
  const minimap = {x: 640, y: 10, w: 150, h: 150};
  const panel = {x: 10, y: 10, w: 260, h: 100};
  const inside = (b) => b.x >= 0 && b.y >= 0 && b.x + b.w <= view.w && b.y + b.h <= view.h;
  const overlap = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  const problems = [];
  const check = (name, wanted, avoid) => {
    const out = layoutBubbles(wanted, view, avoid);
    if (out.length !== wanted.length) problems.push(`${name}: ${out.length} of ${wanted.length} placed`);
    for (const b of out) {
      if (!inside(b)) problems.push(`${name}: ${JSON.stringify(b)} leaves the view`);
      for (const a of avoid) if (overlap(a, b)) problems.push(`${name}: ${JSON.stringify(b)} over a panel`);
      for (const c of out) if (c !== b && overlap(b, c)) problems.push(`${name}: ${b.id} over ${c.id}`);
    }
  };
  check("a tall bubble at the top edge", [{id: 1, ax: 400, ay: 12, w: 200, h: 180}], [panel, minimap]);
  check("two speakers in one place", [{id: 1, ax: 400, ay: 300, w: 150, h: 40}, {id: 2, ax: 402, ay: 301, w: 150, h: 40}],
        [panel, minimap]);
  check("a speaker above the view, by the minimap", [{id: 1, ax: 650, ay: -40, w: 200, h: 50}], [panel, minimap]);
  check("a speaker off the right edge", [{id: 1, ax: 900, ay: 250, w: 200, h: 50}], [panel, minimap]);
  // A short view, crowded by the HUD (as at 500 x 300 px): no place is free, the bubble takes the least covered one.
  const small = {w: 500, h: 300};
  const hud = [{x: 10, y: 10, w: 268, h: 100}, {x: 338, y: 8, w: 152, h: 154}, {x: 10, y: 170, w: 440, h: 120}];
  const [b] = layoutBubbles([{id: 1, ax: 420, ay: -30, w: 200, h: 60}], small, hud);
  const covered = hud.reduce((s, r) => s + Math.max(0, Math.min(b.x + b.w, r.x + r.w) - Math.max(b.x, r.x))
    * Math.max(0, Math.min(b.y + b.h, r.y + r.h) - Math.max(b.y, r.y)), 0);
  if (covered > 0.1 * b.w * b.h) problems.push(`crowded HUD: ${JSON.stringify(b)} is ${covered} px² under panels`);
  // Crowds: every bubble inside the view, whatever else happens.
  let seed = 7;
  const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  for (let i = 0; i < 300; i++) {
    const wanted = Array.from({length: 1 + Math.floor(rnd() * 8)}, (_, id) =>
      ({id, ax: rnd() * 1000 - 100, ay: rnd() * 600 - 100, w: 30 + rnd() * 400, h: 20 + rnd() * 500}));
    for (const b of layoutBubbles(wanted, view, [panel, minimap]))
      if (!inside(b)) problems.push(`crowd ${i}: ${JSON.stringify(b)} leaves the view`);
  }
  return problems;
}"""


# client_demo/figures.js's Motion on made-up positions (times in ms given, not read from a clock).
MOTION = """async () => {
  const { Motion } = await import("/figures.js");
  const m = new Motion();
  const seen = [];
  const at = (x, y, now) => { m.update([{id: 1, x, y}], now); const p = m.of(1, now); seen.push([p.facing, p.walking]); };
  at(100, 100, 0);      // first sight: standing, facing down
  at(97, 100, 16);      // walking left
  at(97, 104, 32);      // walking down
  at(97, 104, 48);      // not moved for 16 ms: still walking
  at(97, 104, 400);     // not moved for 368 ms: standing, facing where it last went
  at(97, 600, 416);     // a jump of ~500 units (a respawn) is not a step
  const phase = m.of(1, 416).phase;
  at(101, 600, 432);    // walking right: the legs' phase moves on
  return {seen, phaseMoved: m.of(1, 432).phase !== phase};
}"""


async def test_bubble_layout_and_figure_motion(server):
    async with chromium_page(server.http_url) as (page, page_errors):
        assert await page.evaluate(LAYOUT_CASES) == []
        motion = await page.evaluate(MOTION)
        assert motion["seen"] == [
            ["down", False],
            ["left", True],
            ["down", True],
            ["down", True],
            ["down", False],
            ["down", False],
            ["right", True],
        ]
        assert motion["phaseMoved"]
        assert page_errors == []
