"""Screenshots of a Playwright page as numpy arrays, for tests that check what
a player sees (pixels), not what the page says about itself.

The PNG is decoded by the browser itself (an <img> drawn to a canvas): no image
library is needed in Python. Coordinates are CSS pixels of the viewport (the
tests run at devicePixelRatio 1)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os

import numpy as np

from .wsclient import Player

CHROMIUM = os.environ.get("NPCWORLD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
HIGHLIGHT = (0xFF, 0xD2, 0x4A)  # the ring under the selected NPC, or the one you talk to (client_demo/figures.js)

DECODE = """async (b64) => {
  const img = new Image();
  img.src = "data:image/png;base64," + b64;
  await img.decode();
  const c = document.createElement("canvas");
  c.width = img.width;
  c.height = img.height;
  const g = c.getContext("2d");
  g.drawImage(img, 0, 0);
  const data = g.getImageData(0, 0, c.width, c.height).data;
  let s = "";
  for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return {w: c.width, h: c.height, rgba: btoa(s)};
}"""


async def screenshot(page) -> np.ndarray:
    """The viewport as shown, shape (height, width, 3), uint8 RGB."""
    png = await page.screenshot()
    out = await page.evaluate(DECODE, base64.b64encode(png).decode())
    rgba = np.frombuffer(base64.b64decode(out["rgba"]), np.uint8).reshape(out["h"], out["w"], 4)
    return rgba[:, :, :3].copy()


def rgb(css: str) -> tuple[int, int, int]:
    """'#d08040' -> (208, 128, 64)."""
    h = css.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def count_near(img: np.ndarray, box: tuple[float, float, float, float], colour: tuple[int, int, int],
               tol: int = 24) -> int:
    """Pixels inside box (x0, y0, x1, y1, CSS px, clipped to the image) within tol of colour on every channel."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    h, w = img.shape[:2]
    patch = img[max(0, y0):min(h, y1), max(0, x0):min(w, x1)].astype(int)
    return int((np.abs(patch - np.array(colour)).max(axis=2) <= tol).sum())


class Observer:
    """A Python player that keeps reading its updates in the background."""

    def __init__(self, player: Player):
        self.player = player
        self.received = asyncio.Condition()  # notified after every message the pump applies
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            while True:
                await self.player.recv(timeout=30)
                async with self.received:
                    self.received.notify_all()
        finally:
            async with self.received:
                self.received.notify_all()  # waiters see the pump stopped

    def position(self, eid: int) -> tuple[float, float] | None:
        return self.player.positions.get(eid)

    async def _until(self, predicate):
        """predicate(), re-checked after every message, once it is truthy."""
        async with self.received:
            while not (value := predicate()):
                if self.task.done():
                    self.task.result()  # re-raise what stopped the pump
                    raise AssertionError("the observer's connection ended")
                await self.received.wait()
            return value

    async def wait(self, predicate, timeout: float, what: str):
        try:
            return await asyncio.wait_for(self._until(predicate), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None

    async def settled(self, eid: int, timeout: float = 10) -> tuple[float, float]:
        """The entity's position once it is the same in two updates 5 ticks apart."""
        async def loop():
            while True:
                before = self.position(eid)
                start = self.player.last_tick
                await self._until(lambda: self.player.last_tick >= start + 5)
                if before is not None and self.position(eid) == before:
                    return before
        return await asyncio.wait_for(loop(), timeout)

    async def close(self) -> None:
        self.task.cancel()
        await self.player.close()


@contextlib.asynccontextmanager
async def chromium_page(url: str, viewport: tuple[int, int] = (1000, 700)):
    """A real Chromium page at `url` (viewport: width, height in CSS px, devicePixelRatio 1),
    and the list of uncaught page errors it collects."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page_errors: list[str] = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            await page.goto(url)
            yield page, page_errors
        finally:
            await browser.close()


async def wait_connected(page) -> None:
    await page.wait_for_selector("body[data-state=connected]", timeout=20_000)
