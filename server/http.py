"""Plain HTTP on the game's port: the browser client, the map, /healthz,
/metrics and /monitor (a page that plots /metrics live). `Routes.page(path)` answers a request's
path with a `Page`, or None for /ws: the WebSocket handshake goes on. Each edge turns a Page into its
library's response (websockets' `process_request` hook; picows' listener factory), on the same port."""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import CLIENT_DIR

WS_PATH = "/ws"
VENDOR_DIR = CLIENT_DIR / "node_modules"
MAX_STATIC = 8 * 1024 * 1024  # bytes; bigger files are not served


@dataclass(frozen=True)
class Page:
    """One HTTP response: its status, the headers but Content-Length (each edge adds it), the body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


def respond(status: int, body: bytes, content_type: str, reason: str = "") -> Page:
    headers = {"Content-Type": content_type, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return Page(status, reason or {200: "OK", 404: "Not Found", 403: "Forbidden"}.get(status, ""), headers, body)


def _static(root: Path, rel: str) -> Page:
    root = root.resolve()
    target = (root / rel.lstrip("/")).resolve()
    if target.is_dir():
        target = target / "index.html"
    inside = target.is_relative_to(root)
    if not inside or (root == CLIENT_DIR.resolve() and target.relative_to(root).parts[:1] == ("node_modules",)):
        return respond(403, b"forbidden\n", "text/plain; charset=utf-8")
    if not target.is_file() or target.stat().st_size > MAX_STATIC:
        return respond(404, b"not found\n", "text/plain; charset=utf-8")
    kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        kind += "; charset=utf-8"
    return respond(200, target.read_bytes(), kind)


IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def map_for_browsers(raw: dict) -> dict:
    """The map as served at /map.json: tileset images point at /map/<file>,
    which is served from the map's own folder (Tiled paths are relative to it)."""
    served = dict(raw)
    served["tilesets"] = [
        {**ts, "image": "/map/" + Path(ts["image"]).name} if "image" in ts else ts for ts in raw.get("tilesets", [])
    ]
    return served


class Routes:
    """`map_raw()` is the world's map as it is now (a Tiled dict): the places file's live reload replaces it
    (npc/files/reload.py), and /map.json follows. It is encoded again only when it is another object."""

    def __init__(
        self,
        map_path: str | Path,
        map_raw: Callable[[], dict],
        health: Callable[[], dict],
        metrics_text: Callable[[], str],
    ):
        self.map_dir = Path(map_path).resolve().parent
        self.map_raw = map_raw
        self._map: tuple[dict, bytes] | None = None  # (the raw map encoded, its /map.json)
        self.health = health
        self.metrics_text = metrics_text

    def map_json(self) -> bytes:
        raw = self.map_raw()
        if self._map is None or self._map[0] is not raw:
            self._map = (raw, json.dumps(map_for_browsers(raw)).encode())
        return self._map[1]

    def page(self, target: str) -> Page | None:
        """The answer to a GET of `target` (a path, maybe with a query); None: /ws, the WebSocket."""
        path = target.split("?", 1)[0]
        if path == WS_PATH:
            return None
        if path == "/healthz":
            return respond(200, json.dumps(self.health()).encode(), "application/json")
        if path == "/metrics":
            return respond(200, self.metrics_text().encode(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/monitor":
            return _static(CLIENT_DIR, "monitor.html")  # the live view of /metrics, for operators
        if path == "/map.json":
            return respond(200, self.map_json(), "application/json")
        if path.startswith("/map/") and path.lower().endswith(IMAGE_TYPES):
            return _static(self.map_dir, path[len("/map/") :])
        if path.startswith("/vendor/"):
            return _static(VENDOR_DIR, path[len("/vendor/") :])
        return _static(CLIENT_DIR, path)
