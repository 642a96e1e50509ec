"""The designers' inspector page, served by the admin server itself (same origin
as the admin API, so no CORS is opened and the API stays on its own port).

The page and its scripts are public code (the same files as in client_demo/)
and carry no data, so they are served without the token; everything they show
comes from the token-protected admin endpoints, with the token the designer
types into the page (or puts in the URL fragment, `#token=...`, which browsers
never send to a server). A strict Content-Security-Policy keeps the page to its
own scripts; it may not be framed.

    GET /inspector                 the page (client_demo/inspector.html)
    GET /inspector/<file>          its scripts and styles: a fixed list from client_demo/
    GET /inspector/map.json        the game's map, as the game port serves /map.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import CLIENT_DIR
from .http import map_for_browsers

if TYPE_CHECKING:
    from .game import Game

# URL path under /inspector/ -> (file in client_demo/, content type). Nothing else is served.
FILES = {
    "": ("inspector.html", "text/html; charset=utf-8"),
    "inspector.js": ("inspector.js", "application/javascript; charset=utf-8"),
    "inspector.css": ("inspector.css", "text/css; charset=utf-8"),
    "panels.js": ("inspector_panels.js", "application/javascript; charset=utf-8"),
    "map.js": ("map.js", "application/javascript; charset=utf-8"),
    "figures.js": ("figures.js", "application/javascript; charset=utf-8"),
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
    """The inspector's file at a GET path, or None when the path is not one of them (the API's)."""
    if path in ("/inspector", "/inspector/"):
        rel = ""
    elif path.startswith("/inspector/"):
        rel = path[len("/inspector/"):]
    else:
        return None
    if rel == "map.json":
        return Page(json.dumps(map_for_browsers(game.tilemap.raw)).encode(), "application/json")
    if rel not in FILES:
        return None
    name, kind = FILES[rel]
    return Page((CLIENT_DIR / name).read_bytes(), kind)
