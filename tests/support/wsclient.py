"""A small real WebSocket client for tests, speaking docs/protocol.md."""

from __future__ import annotations

import asyncio
import itertools

import msgpack
import websockets
from websockets.exceptions import ConnectionClosed

from world.protocol import VERSION, apply_update, update3_as_map


class Player:
    """One connected test player: keeps what it has seen the way a client must."""

    def __init__(self, ws, welcome: dict):
        self.ws = ws
        self.welcome = welcome
        self.id = welcome["id"]
        self.quant = welcome["quant"]
        self.known: dict[int, list] = {}  # id -> entity record, from enter/leave
        self.positions: dict[int, tuple[float, float]] = {}
        self.cells: dict = {}  # cell -> (ids, quantised positions): what the updates so far left
        self.keyframes = 0  # updates without moves (standing alone)
        self.chat: list[list] = []
        self.errors: list[dict] = []
        self.pongs: list[dict] = []
        self.says: list[dict] = []  # say_start / say_delta / say_end, as received
        self.items: list[str] = list(welcome.get("items", []))  # what NPCs gave us, from welcome and `items`
        self.updates = 0
        self.last_tick = -1
        self.ack = -1
        self.seq = itertools.count(1)

    @classmethod
    async def join(
        cls, url: str, name: str | None = None, token: str | None = None, version: int = VERSION, **kw
    ) -> "Player":
        ws = await websockets.connect(url, max_size=None, **kw)
        hello = {"t": "hello", "v": version}
        if name:
            hello["name"] = name
        if token:
            hello["token"] = token
        await ws.send(msgpack.packb(hello))
        errors = []
        while True:
            msg = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 10))
            if msg["t"] == "welcome":
                break
            errors.append(msg)
        p = cls(ws, msg)
        p.errors.extend(errors)
        return p

    async def send(self, msg: dict) -> None:
        await self.ws.send(msgpack.packb(msg))

    async def move(self, dx: float, dy: float) -> int:
        seq = next(self.seq)
        await self.send({"t": "input", "seq": seq, "dx": dx, "dy": dy})
        return seq

    def apply(self, msg: dict) -> None:
        kind = msg["t"]
        if kind == "update":
            assert msg["tick"] > self.last_tick, "ticks must increase"
            self.last_tick = msg["tick"]
            self.ack = msg["ack"]
            self.updates += 1
            for eid in msg["leave"]:
                self.known.pop(eid, None)
                self.positions.pop(eid, None)
            for rec in msg["enter"]:
                self.known[rec[0]] = rec
            self.keyframes += not msg.get("moves")  # a version-1 session has none
            self.cells = apply_update(self.cells, msg)
            self.positions = {}
            for ids, pos, *_ in self.cells.values():
                for eid, (x, y) in zip(ids.tolist(), (pos / self.quant).tolist()):
                    self.positions[eid] = (x, y)
            self.chat.extend(msg["chat"])
        elif kind == "error":
            self.errors.append(msg)
        elif kind == "pong":
            self.pongs.append(msg)
        elif kind.startswith("say_"):
            self.says.append(msg)
        elif kind == "items":
            self.items = list(msg["items"])

    async def recv(self, timeout: float = 10) -> dict:
        msg = msgpack.unpackb(await asyncio.wait_for(self.ws.recv(), timeout))
        if type(msg) is list:  # a version-3 update
            msg = update3_as_map(msg)
        self.apply(msg)
        return msg

    async def until(self, predicate, timeout: float = 10, what: str = "condition") -> dict:
        """Read messages until predicate(self, msg) holds; fail after `timeout` seconds."""

        async def loop():
            while True:
                msg = await self.recv(timeout)
                if predicate(self, msg):
                    return msg

        try:
            return await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None

    def me(self) -> tuple[float, float]:
        return self.positions[self.id]

    async def close(self) -> None:
        await self.ws.close()


async def close_code(ws, timeout: float = 10) -> int:
    """Read until the connection closes; return the close code received (1006: none, it dropped)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else 1006
