"""Admin HTTP endpoints for designers and operators, on their own port.

websockets' HTTP handling (the game port) only serves GET, so the admin
endpoints run on a small separate HTTP/1.1 server (asyncio.start_server),
bound to loopback unless configured. One request per connection, JSON in and
out. Every request needs `Authorization: Bearer <admin token>`; a missing or
wrong token gets 401 and changes nothing.

    GET  /npcs                  NPCs of the NPC files: action, activity, stats, last utterance, hooks, errors
    GET  /errors                files that failed to load (and why), recent hook and load reports
    POST /npcs/spawn            {"npc": "<file id>", "at": "<place>"?} -> {"id": ...}
    POST /npcs/<id>/despawn     remove an NPC (of a file, or a generic wanderer)
    POST /reload                reload every NPC file now (re-enables disabled hooks)
    GET  /inspector, /monitor   the designers' pages (inspector.py): the pages, not their data, need no token

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
from typing import TYPE_CHECKING

from npc.files.reload import Watcher

from . import inspector

if TYPE_CHECKING:
    from .game import Game

log = logging.getLogger("npcworld.admin")

MAX_HEAD = 16 * 1024      # bytes: request line + headers
MAX_BODY = 64 * 1024      # bytes
READ_TIMEOUT_S = 10.0
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           413: "Payload Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error"}
_DESPAWN = re.compile(r"^/npcs/(\d+)/despawn$")


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
        page = body if isinstance(body, inspector.Page) else None
        data = page.body if page else json.dumps(body, indent=1).encode() + b"\n"
        head = (f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
                f"Content-Type: {page.content_type if page else 'application/json'}\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\nCache-Control: no-store\r\n")
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
        method, target = parts[0], parts[1].split("?", 1)[0]
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
        return await self._route(method, target, body)

    # -- routes ------------------------------------------------------------------------------

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        cast = self.game.cast
        routes = {"/": ("GET",), "/npcs": ("GET",), "/errors": ("GET",), "/npcs/spawn": ("POST",),
                  "/reload": ("POST",)}
        m = _DESPAWN.match(path)
        if path not in routes and not m:
            raise HttpError(404, f"no such endpoint {path}; see GET /")
        allowed = routes.get(path, ("POST",))
        if method not in allowed:
            raise HttpError(405, f"{path} takes {' or '.join(allowed)}")
        if path == "/":
            return 200, {"endpoints": ["GET /npcs", "GET /errors", "POST /npcs/spawn {\"npc\": id, \"at\": place?}",
                                       "POST /npcs/<id>/despawn", "POST /reload"]}
        if path == "/npcs":
            return 200, cast.listing()
        if path == "/errors":
            return 200, cast.errors()
        if path == "/reload":
            return 200, await self.watcher.reload_all()
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
        if not isinstance(req, dict) or not isinstance(req.get("npc"), str) \
                or not isinstance(req.get("at", ""), str) or set(req) - {"npc", "at"}:
            raise HttpError(400, 'expected {"npc": "<file id>", "at": "<place>"?}')
        try:
            eid = cast.spawn(req["npc"], req.get("at"))
        except KeyError as e:
            raise HttpError(404, e.args[0]) from None
        except ValueError as e:
            raise HttpError(400, str(e)) from None
        self.game.npcs_changed()
        log.info("admin: spawned %s as NPC %d", req["npc"], eid)
        return 200, {"id": eid, "npc": req["npc"], "name": self.game.world.name_of(eid),
                     "position": list(self.game.world.position(eid))}
