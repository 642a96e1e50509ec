"""Wire protocol codec (docs/protocol.md): decode and validate what clients send,
encode what the server sends. Pure functions; no sockets.

Every inbound problem becomes a `ProtocolError` carrying the error code of the
protocol, so the gateway answers it and the tick never sees bad data.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import msgpack

VERSION = 1
MAX_FRAME = 4096  # bytes; larger inbound frames are closed with 1009 by websockets
MAX_CHAT = 200  # characters
MAX_NAME = 24  # characters
MAX_TALK = 200  # characters of a line said to an NPC
MAX_SEQ = 2**32 - 1

# Close codes (docs/protocol.md, "Close codes").
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_BAD_HELLO = 4000
CLOSE_VERSION = 4001
CLOSE_TOO_SLOW = 4002
CLOSE_REPLACED = 4003
CLOSE_FULL = 4004


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None, ref: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.ref = ref


@dataclass(slots=True)
class Hello:
    version: int
    name: str | None
    token: str | None


@dataclass(slots=True)
class Input:
    seq: int
    dx: float
    dy: float


@dataclass(slots=True)
class Ping:
    id: int


@dataclass(slots=True)
class Chat:
    text: str


@dataclass(slots=True)
class Talk:
    npc: int  # entity id
    text: str


def clean_text(text: str) -> str:
    """Drop control and format characters (newlines included) and trim."""
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()


# Angle brackets open every control-token string of the chat formats we load (ChatML's "<|im_start|>",
# SmolLM2's "<repo_name>", Llama's "<|begin_of_text|>", "<s>"). The dialogue tokenizes names as text anyway
# (npc/dialogue/tokens.py); refusing them at hello also keeps them out of every NPC line and chat log.
NAME_FORBIDDEN = "<>"


def name_problem(name: str) -> str | None:
    """Why a (cleaned) player name is refused, or None."""
    if not 1 <= len(name) <= MAX_NAME:
        return f"name must be 1..{MAX_NAME} characters"
    bad = sorted({ch for ch in name if ch in NAME_FORBIDDEN})
    if bad:
        return "name may not hold " + " or ".join(repr(ch) for ch in bad) + " (they open a model's control tokens)"
    return None


def _field(msg: dict, key: str, kind: str, ref: str, *, optional: bool = False):
    if key not in msg:
        if optional:
            return None
        raise ProtocolError("bad_field", f"{ref}: missing field {key!r}", key, ref)
    value = msg[key]
    if optional and value is None:
        return None
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "num": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
    }[kind]
    if not ok:
        expected = {"int": "an integer", "num": "a number", "str": "a string"}[kind]
        raise ProtocolError(
            "bad_field", f"{ref}: field {key!r} is {type(value).__name__}, expected {expected}", key, ref
        )
    return value


def _decode_hello(msg: dict) -> Hello:
    version = _field(msg, "v", "int", "hello")
    name = _field(msg, "name", "str", "hello", optional=True)
    token = _field(msg, "token", "str", "hello", optional=True)
    if token is not None and len(token) > 512:
        raise ProtocolError("bad_field", "hello: token longer than 512 characters", "token", "hello")
    return Hello(version, name, token)


def _decode_input(msg: dict) -> Input:
    seq = _field(msg, "seq", "int", "input")
    if not 0 <= seq <= MAX_SEQ:
        raise ProtocolError("bad_field", f"input: seq {seq} outside 0..2^32-1", "seq", "input")
    out = []
    for key in ("dx", "dy"):
        v = float(_field(msg, key, "num", "input"))
        if not math.isfinite(v) or not -1.0 <= v <= 1.0:
            raise ProtocolError("bad_field", f"input: {key} = {v} outside [-1, 1]", key, "input")
        out.append(v)
    return Input(seq, out[0], out[1])


def _decode_ping(msg: dict) -> Ping:
    pid = _field(msg, "id", "int", "ping")
    if not -(2**63) <= pid < 2**63:
        raise ProtocolError("bad_field", "ping: id outside 64-bit range", "id", "ping")
    return Ping(pid)


def _decode_chat(msg: dict) -> Chat:
    text = clean_text(_field(msg, "text", "str", "chat"))
    if not 1 <= len(text) <= MAX_CHAT:
        raise ProtocolError(
            "bad_field", f"chat: text must be 1..{MAX_CHAT} characters after trimming, got {len(text)}", "text", "chat"
        )
    return Chat(text)


def _decode_talk(msg: dict) -> Talk:
    npc = _field(msg, "npc", "int", "talk")
    if not 0 <= npc < 2**32:
        raise ProtocolError("bad_field", f"talk: npc {npc} outside 0..2^32-1", "npc", "talk")
    text = clean_text(_field(msg, "text", "str", "talk"))
    if not 1 <= len(text) <= MAX_TALK:
        raise ProtocolError(
            "bad_field", f"talk: text must be 1..{MAX_TALK} characters after trimming, got {len(text)}", "text", "talk")
    return Talk(npc, text)


_DECODERS = {"hello": _decode_hello, "input": _decode_input, "ping": _decode_ping, "chat": _decode_chat, "talk": _decode_talk}


def decode(frame: bytes | str) -> Hello | Input | Ping | Chat | Talk:
    """One inbound frame to a typed message, or ProtocolError."""
    if isinstance(frame, str):
        raise ProtocolError("bad_frame", "text frames are not accepted; send binary msgpack")
    try:
        msg = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises several types for garbage input
        raise ProtocolError("bad_frame", "frame is not valid msgpack") from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_frame", f"message is a msgpack {type(msg).__name__}, expected a map")
    kind = msg.get("t")
    if not isinstance(kind, str):
        raise ProtocolError("bad_frame", "message has no string field 't'")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError("unknown_type", f"unknown message type {kind[:32]!r}", ref=kind[:32])
    return decoder(msg)


_packb = msgpack.Packer(use_bin_type=True).pack


def encode_error(err: ProtocolError) -> bytes:
    msg = {"t": "error", "code": err.code, "message": err.message}
    if err.field:
        msg["field"] = err.field
    if err.ref:
        msg["ref"] = err.ref
    return _packb(msg)


def encode_pong(pid: int, tick: int) -> bytes:
    return _packb({"t": "pong", "id": pid, "tick": tick})


def encode(msg: dict) -> bytes:
    return _packb(msg)
