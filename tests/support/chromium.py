"""Real Chromium for the browser tests (tests/e2e/test_browser*.py): a page at a URL, and a
Python player that watches the same world in the background."""

from __future__ import annotations

import asyncio
import contextlib
import os

from .wsclient import Player

CHROMIUM = os.environ.get("NPCWORLD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


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
