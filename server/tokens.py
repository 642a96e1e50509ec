"""Reconnect tokens: `<entity id>.<issued ms>.<hmac>` signed with the server's
secret, so a client can only resume the character it was given."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _sign(secret: bytes, payload: str) -> str:
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def issue(secret: bytes, entity_id: int, issued_ms: int) -> str:
    payload = f"{entity_id}.{issued_ms}"
    return f"{payload}.{_sign(secret, payload)}"


def verify(secret: bytes, token: str) -> int | None:
    """The entity id a genuine token names, or None for anything else."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(secret, payload), parts[2]):
        return None
    return int(parts[0])
