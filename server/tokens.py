"""Session tokens: `<account>.<generation>.<expires>.<hmac>`, signed with the server's key.

A token names a player's account (server/store/accounts.py), the generation it was issued at and
when it expires (Unix seconds: wall clock, so that it means the same after a restart). The key is
configured (`--secret`) or kept in the store, so tokens outlive restarts. Every resume issues the
next generation; a token older than the account's generation was used and replaced, and is
refused (the game checks it: it holds the generations). Forged or malformed: refused here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

MAX_LEN = 128  # characters; longer is malformed without hashing it


@dataclass(frozen=True, slots=True)
class Claim:
    account: int
    gen: int
    expires: int  # Unix seconds


def _sign(secret: bytes, payload: str) -> str:
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def issue(secret: bytes, account: int, gen: int, expires: int) -> str:
    payload = f"{account}.{gen}.{int(expires)}"
    return f"{payload}.{_sign(secret, payload)}"


def verify(secret: bytes, token: str, now: float) -> tuple[Claim | None, str]:
    """(the claim of a genuine, unexpired token, "") or (None, why not: "malformed", "forged", "expired")."""
    parts = token.split(".") if isinstance(token, str) and len(token) <= MAX_LEN else []
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts[:3]) or not parts[3].isascii():
        return None, "malformed"
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(_sign(secret, payload), parts[3]):
        return None, "forged"
    claim = Claim(int(parts[0]), int(parts[1]), int(parts[2]))
    if claim.expires <= now:
        return None, "expired"
    return claim, ""
