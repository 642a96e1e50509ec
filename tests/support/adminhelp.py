"""The admin API from a test's event loop: one call, and polling until the answer says so."""

from __future__ import annotations

import asyncio

from .npchelp import call


async def admin(url: str, path: str, token: str | None, method: str = "GET", body=None):
    """`call` from a test's event loop (in a thread): (status, body)."""
    return await asyncio.to_thread(call, url + path.lstrip("/"), method, token, body)


async def wait_admin(p, url: str, token: str, path: str, pred, timeout: float = 20, what: str = ""):
    """Poll an admin endpoint until pred(body); between polls, read a few updates (no sleeping)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        status, body = await admin(url, path, token)
        assert status == 200, body
        if pred(body):
            return body
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what or path}: {body}")
        for _ in range(4):
            await p.recv()
