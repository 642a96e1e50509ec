"""Admin HTTP endpoints for designers and operators, on their own port.

websockets' HTTP handling (the game port) only serves GET, so the admin
endpoints run on a small separate HTTP/1.1 server (asyncio.start_server),
bound to loopback unless configured. One request per connection, JSON in and
out. Every request needs `Authorization: Bearer <admin token>`; a missing or
wrong token gets 401 and changes nothing.

    GET  /npcs                  NPCs of the NPC files: action, activity, stats, last utterance, hooks, errors
    GET  /npcs/<id>             one NPC in detail: why it does what it does (server/inspect.py)
    POST /npcs/<id>/talk        {"name": str, "text": str}: talk to it as a named player; NDJSON stream
    GET  /errors                files that failed to load (and why), recent hook and load reports
    GET  /log?after=SEQ         the reload log: loads, reloads, errors with file:line (npc/files/journal.py)
    GET  /clock, POST /clock    the game clock; pause, set the time, speed (server/clock_api.py)
    POST /npcs/spawn            {"npc": "<file id>", "at": "<place>"?} -> {"id": ...}
    POST /npcs/<id>/despawn     remove an NPC (of a file, or a generic wanderer)
    POST /reload                reload every NPC file now (re-enables disabled hooks)
    GET  /inspector, /monitor   the designers' pages (inspector.py): the pages, not their data, need no token

docs/designers.md describes every field. Responses are JSON, except
/npcs/<id>/talk: `application/x-ndjson`, one JSON object a line as the
conversation goes (heard, hook, say_start, say_delta, say_end, action, end),
the connection closed after "end"; an admin talk ends within TALK_S.

Bounds: the request line and headers together at most MAX_HEAD bytes (else
431), a body at most MAX_BODY bytes (else 413), the whole request within
READ_TIMEOUT_S (else the connection is dropped). Handlers run on the event
loop between ticks, so they see and change the game consistently.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from npc.dialogue.service import TalkRefused
from npc.files.reload import Watcher

from . import clock_api, inspector
from .inspect import npc_detail

if TYPE_CHECKING:
    from .game import Game

log = logging.getLogger("npcworld.admin")

MAX_HEAD = 16 * 1024  # bytes: request line + headers
MAX_BODY = 64 * 1024  # bytes
READ_TIMEOUT_S = 10.0
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
_ONE = re.compile(r"^/npcs/(\d+)(?:/(despawn|talk))?$")
# A talk's stream ends by then whatever happens: the dialogue's own bounds (a first token within 90 s,
# the whole reply 30 s after it) plus the action step.
TALK_S = 150.0
ROUTES = {
    "/": ("GET",),
    "/npcs": ("GET",),
    "/errors": ("GET",),
    "/npcs/spawn": ("POST",),
    "/reload": ("POST",),
    "/log": ("GET",),
    "/clock": ("GET", "POST"),
    "one": ("GET",),
    "despawn": ("POST",),
    "talk": ("POST",),
}
ENDPOINTS = [
    "GET /npcs",
    "GET /npcs/<id>",
    'POST /npcs/<id>/talk {"name": str, "text": str} (NDJSON stream)',
    "GET /errors",
    "GET /log?after=<seq>",
    "GET /clock",
    'POST /clock {"paused": bool?, "time": "HH:MM"?, "minute_of_day": int?, "day": int?, "speed": float?}',
    'POST /npcs/spawn {"npc": id, "at": place?}',
    "POST /npcs/<id>/despawn",
    "POST /reload",
]


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Admin:
    def __init__(self, game: "Game", watcher: Watcher, token: str):
        self.game = game
        self.watcher = watcher
        self.token = token.encode()
        self.server: asyncio.base_events.Server | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    # -- HTTP/1.1, one request per connection ------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await asyncio.wait_for(self._request(reader), READ_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except HttpError as e:
            status, body = e.status, {"error": str(e)}
        except Exception:
            log.exception("admin request failed")
            status, body = 500, {"error": "internal error; see the server log"}
        if isinstance(body, AsyncIterator):
            await self._stream(writer, body)
            return
        page = body if isinstance(body, inspector.Page) else None
        data = page.body if page else json.dumps(body, indent=1).encode() + b"\n"
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
            f"Content-Type: {page.content_type if page else 'application/json'}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\nCache-Control: no-store\r\n"
        )
        head += "".join(f"{k}: {v}\r\n" for k, v in (page.headers.items() if page else ()))
        if status == 401:
            head += 'WWW-Authenticate: Bearer realm="npcworld admin"\r\n'
        try:
            writer.write(head.encode() + b"\r\n" + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter, events: AsyncIterator[dict]) -> None:
        """200 and one JSON object a line until the events end (the end of the body is the close)."""
        try:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n"
                b"Cache-Control: no-store\r\n\r\n"
            )
            async for event in events:
                writer.write(json.dumps(event).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, object]:
        size = 0
        lines = []
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                raise HttpError(431, f"request line and headers over {MAX_HEAD} bytes") from None
            size += len(line)
            if size > MAX_HEAD:
                raise HttpError(431, f"request line and headers over {MAX_HEAD} bytes")
            if line in (b"\r\n", b"\n"):
                break
            lines.append(line.decode("latin-1").rstrip("\r\n"))
        if not lines:
            raise HttpError(400, "empty request")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400, "bad request line")
        method, target, _, query = parts[0], *parts[1].partition("?")
        headers = {}
        for h in lines[1:]:
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if length < 0 or length > MAX_BODY:
            raise HttpError(413, f"body over {MAX_BODY} bytes")
        body = await reader.readexactly(length) if length else b""
        if method == "GET" and (page := inspector.page(target, self.game)) is not None:
            return 200, page  # public code, no data: see inspector.py
        # Authorise before anything else happens (and before parsing the body).
        auth = headers.get("authorization", "")
        given = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else b""
        if not hmac.compare_digest(given, self.token):
            raise HttpError(401, "missing or wrong admin token (Authorization: Bearer <token>)")
        return await self._route(method, target, body, urllib.parse.parse_qs(query))

    # -- routes ------------------------------------------------------------------------------

    async def _route(self, method: str, path: str, body: bytes, query: dict | None = None) -> tuple[int, object]:
        cast = self.game.cast
        m = _ONE.match(path)
        key = path if path in ROUTES else ("one" if m.group(2) is None else m.group(2)) if m else None
        if key is None:
            raise HttpError(404, f"no such endpoint {path}; see GET /")
        allowed = ROUTES[key]
        if method not in allowed:
            raise HttpError(405, f"{path} takes {' or '.join(allowed)}")
        if path == "/":
            return 200, {"endpoints": ENDPOINTS}
        if path == "/npcs":
            return 200, cast.listing()
        if path == "/errors":
            return 200, cast.errors()
        if path == "/reload":
            return 200, await self.watcher.reload_all()
        if path == "/log":
            after = (query or {}).get("after", ["0"])[-1]
            if not after.lstrip("-").isdigit():
                raise HttpError(400, f"after must be a whole number (the last seq seen), got {after!r}")
            return 200, cast.journal.after(int(after))
        if path == "/clock":
            if method == "GET":
                return 200, clock_api.state(self.game.world)
            try:
                state = clock_api.change(self.game.world, _json(body, clock_api.USAGE))
            except ValueError as e:
                raise HttpError(400, str(e)) from None
            log.info(
                "admin: clock set to day %d %s, %s, %g game minutes per second",
                state["day"],
                state["time"],
                "paused" if state["paused"] else "running",
                state["speed"],
            )
            return 200, state
        if m and key == "one":
            try:
                return 200, await npc_detail(self.game, int(m.group(1)))
            except KeyError as e:
                raise HttpError(404, e.args[0]) from None
        if m and key == "talk":
            return 200, self._talk(int(m.group(1)), _json(body, _TALK_USAGE))
        if m:
            eid = int(m.group(1))
            try:
                cast.despawn(eid)
            except KeyError as e:
                raise HttpError(404, e.args[0]) from None
            self.game.npcs_changed()
            log.info("admin: despawned NPC %d", eid)
            return 200, {"despawned": eid}
        # /npcs/spawn
        try:
            req = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, 'body is not JSON; expected {"npc": "<file id>", "at": "<place>"?}') from None
        if (
            not isinstance(req, dict)
            or not isinstance(req.get("npc"), str)
            or not isinstance(req.get("at", ""), str)
            or set(req) - {"npc", "at"}
        ):
            raise HttpError(400, 'expected {"npc": "<file id>", "at": "<place>"?}')
        try:
            eid = cast.spawn(req["npc"], req.get("at"))
        except KeyError as e:
            raise HttpError(404, e.args[0]) from None
        except ValueError as e:
            raise HttpError(400, str(e)) from None
        self.game.npcs_changed()
        log.info("admin: spawned %s as NPC %d", req["npc"], eid)
        return 200, {
            "id": eid,
            "npc": req["npc"],
            "name": self.game.world.name_of(eid),
            "position": list(self.game.world.position(eid)),
        }

    def _talk(self, eid: int, req: object) -> AsyncIterator[dict]:
        """Start an admin talk now (or raise HttpError: 400 / 404 / 409), and the stream of its events."""
        if not isinstance(req, dict) or set(req) != {"name", "text"} or not all(isinstance(req[k], str) for k in req):
            raise HttpError(400, _TALK_USAGE)
        if not 1 <= len(req["name"]) <= 24 or not 1 <= len(req["text"]) <= 500:
            raise HttpError(400, "name must be 1..24 characters and text 1..500; " + _TALK_USAGE)
        queue: asyncio.Queue[dict | None] = asyncio.Queue()
        try:
            c = self.game.dialogue.talk_as(eid, req["name"], req["text"], queue.put_nowait)
        except TalkRefused as e:
            raise HttpError({"bad_target": 404, "busy": 409}.get(e.code, 400), e.message) from None
        log.info("admin: %s talks to NPC %d (conversation %d)", req["name"], eid, c.cid)

        async def events() -> AsyncIterator[dict]:
            loop = asyncio.get_running_loop()
            end = loop.time() + TALK_S
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), max(0.0, end - loop.time()))
                except TimeoutError:
                    yield {"event": "end", "why": f"no end within {TALK_S:g} s"}
                    return
                if event is None:
                    yield {"event": "end"}
                    return
                yield event

        return events()


_TALK_USAGE = 'expected {"name": "<who you are, 1..24 characters>", "text": "<what you say>"}'


def _json(body: bytes, usage: str) -> object:
    try:
        return json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, f"body is not JSON; {usage}") from None
