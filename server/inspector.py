"""The designers' pages served by the admin server itself: the inspector and a
copy of /monitor with the reload log (same origin as the admin API, so no CORS
is opened and the API stays on its own port).

The pages and their scripts are public code (the same files as in client_demo/)
and carry no data, so they are served without the token; everything they show
comes from the token-protected admin endpoints, with the token the designer
types into the page (or puts in the URL fragment, `#token=...`, which browsers
never send to a server). The map and /metrics are public on the game port
already, and served here too for these pages. A strict Content-Security-Policy
keeps the pages to their own scripts; they may not be framed.

    GET /inspector      the inspector (client_demo/inspector.html)
    GET /monitor        the monitor, with the reload log (client_demo/monitor.html)
    GET /<file>         their scripts and styles: only the files in FILES
    GET /map.json       the game's map, as the game port serves it
    GET /metrics        the game's metrics, as the game port serves them
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import CLIENT_DIR
from .http import map_for_browsers

if TYPE_CHECKING:
    from .game import Game

JS = "application/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
HTML = "text/html; charset=utf-8"
# URL path -> (file in client_demo/, content type). Nothing else of client_demo/ is served here.
FILES = {
    "/inspector": ("inspector.html", HTML),
    "/monitor": ("monitor.html", HTML),
    **{
        f"/{name}": (name, JS)
        for name in (
            "inspector.js",
            "inspector_panels.js",
            "inspector_detail.js",
            "admin_api.js",
            "reload_log.js",
            "map.js",
            "figures.js",
            "monitor.js",
        )
    },
    **{f"/{name}": (name, CSS) for name in ("inspector.css", "monitor.css")},
    "/sprites.png": ("sprites.png", "image/png"),  # the figures' sheet (figures.js)
}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Page:
    """A response that is not the admin API's JSON: bytes with their content type and headers."""

    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=lambda: dict(HEADERS))


def page(path: str, game: "Game") -> Page | None:
    """The page or file at a GET path, or None when the path is not one of them (then it is the API's)."""
    if path == "/map.json":
        return Page(json.dumps(map_for_browsers(game.world.map.raw)).encode(), "application/json")
    if path == "/metrics":
        return Page(game.metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8")
    if path not in FILES:
        return None
    name, kind = FILES[path]
    return Page((CLIENT_DIR / name).read_bytes(), kind)
