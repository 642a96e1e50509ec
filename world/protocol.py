"""The wire protocol (docs/protocol.md) as one pure module: message types, limits, close and
error codes, the byte layout of `update` and the reader of its head. The server (server/),
the world's view builder (world/interest.py, world/snapshot.py) and the bots (bots/) all take
these from here, so each number and each byte of the layout is written once.

Every inbound problem becomes a `ProtocolError` carrying the error code of the protocol, so the
gateway answers it and the tick never sees bad data. Pure functions; no sockets, no clock.

`update` layout (docs/protocol.md, "update"), as the server writes it and the bots read it:
  fixmap of 8 pairs: "t" "update", "tick" <int>, "ack" <int>, "cells" [...], "moves" [...],
  "enter" [...], "leave" [...], "chat" [...]
  cell block    [cell, ids: bin of uint32 LE, pos: bin of uint16 LE x0,y0,x1,y1...]
  move block    [cell, d: bin of int8 dx0,dy0,dx1,dy1... (or empty: nobody moved),
                 fix: bin of MOVE_FIX records (index u16, x u16, y u16) LE]
                or, when entities left or came into the cell, those three and
                [..., gone: bin of uint16 LE indices, ids: bin of uint32 LE, pos: bin of uint16 LE]
  A cell's entities are in ascending id order, in whole blocks and after every move block.
  entity record [id, kind, name, color, talks]
  chat record   [from, name, text, tick]

Version 3 (the default; docs/protocol.md, "update, version 3"):
  fixarray of 7: [tick, ack, chat [...], enter [...], leave [...], cells [...], moves [...]]
  cell block    [cell, ids, pos, steps: bin of int16 LE sx0,sy0,... (each one's move over the last tick)]
  move block    [cell, changes: bin, a nibble an entity (low half first; bits 0-1 x, 2-3 y: 0, +1, -1,
                 or 2: wide, an int8 after the nibbles), empty: no change] [+ fix] [+ gone, came:
                 bin of CAME3 records (id u32, x u16, y u16, sx i16, sy i16) LE]
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

VERSION = 3  # what this page and this server speak
VERSIONS = (1, 2, 3)  # accepted in hello; version 1 gets keyframes only (no `moves`), 2 the map form of update

# -- limits on what a client sends (docs/protocol.md, "Limits") -------------------------------
MAX_FRAME = 4096  # bytes; larger inbound messages are closed with 1009 by the WebSocket edge (--ws, either library)
MAX_CHAT = 200  # characters
MAX_NAME = 24  # characters
MAX_TALK = 200  # characters of a line said to an NPC
MAX_TOKEN = 512  # characters of a session token
MAX_SEQ = 2**32 - 1
RATE_PER_S, RATE_BURST = 40.0, 80.0  # messages; a browser sends ~21/s (inputs at the tick rate + pings)
STRIKES_PER_S, STRIKES = 5.0, 50.0  # bad or dropped messages tolerated before closing with 1008
RATE_ERROR_EVERY_S = 1.0  # at most one rate_limited error per second
HELLO_TIMEOUT_S = 10.0  # the first message must be a hello within this, else close 4000
SLOW_CLIENT_S = 5.0  # a connection whose socket accepted nothing for this long is closed (4002)

# -- close codes (docs/protocol.md, "Close codes") --------------------------------------------
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_BAD_HELLO = 4000
CLOSE_VERSION = 4001
CLOSE_TOO_SLOW = 4002
CLOSE_REPLACED = 4003
CLOSE_FULL = 4004

# -- error codes (docs/protocol.md, "error") --------------------------------------------------
ERRORS = (
    "bad_frame",
    "unknown_type",
    "bad_field",
    "rate_limited",
    "bad_token",
    "not_expected",
    "bad_target",
    "too_far",
    "busy",
)


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


_EXPECTED = {"int": "an integer", "num": "a number", "str": "a string"}


def _field(msg: dict[str, Any], key: str, kind: str, ref: str, *, optional: bool = False) -> Any:
    if key not in msg:
        if optional:
            return None
        raise ProtocolError("bad_field", f"{ref}: missing field {key!r}", key, ref)
    value = msg[key]
    if optional and value is None:
        return None
    t = type(value)  # bool is an int to isinstance, not to the protocol
    if kind == "int":
        ok = t is not bool and isinstance(value, int)
    elif kind == "num":
        ok = t is not bool and isinstance(value, (int, float))
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ProtocolError("bad_field", f"{ref}: field {key!r} is {t.__name__}, expected {_EXPECTED[kind]}", key, ref)
    return value


def _decode_hello(msg: dict[str, Any]) -> Hello:
    version = _field(msg, "v", "int", "hello")
    name = _field(msg, "name", "str", "hello", optional=True)
    token = _field(msg, "token", "str", "hello", optional=True)
    if token is not None and len(token) > MAX_TOKEN:
        raise ProtocolError("bad_field", f"hello: token longer than {MAX_TOKEN} characters", "token", "hello")
    return Hello(version, name, token)


def _decode_input(msg: dict[str, Any]) -> Input:
    seq, dx, dy = msg.get("seq"), msg.get("dx"), msg.get("dy")
    # what a client sends ~10 times a second (an int seq, two floats in range), checked in one test;
    # anything else (ints for dx or dy, NaN, a missing or bad field) takes the checks that say what is wrong
    if type(seq) is int and type(dx) is float and type(dy) is float and 0 <= seq <= MAX_SEQ:
        if -1.0 <= dx <= 1.0 and -1.0 <= dy <= 1.0:  # False for NaN
            return Input(seq, dx, dy)
    seq = _field(msg, "seq", "int", "input")
    if not 0 <= seq <= MAX_SEQ:
        raise ProtocolError("bad_field", f"input: seq {seq} outside 0..2^32-1", "seq", "input")
    out: list[float] = []
    for key in ("dx", "dy"):
        v = float(_field(msg, key, "num", "input"))
        if not math.isfinite(v) or not -1.0 <= v <= 1.0:
            raise ProtocolError("bad_field", f"input: {key} = {v} outside [-1, 1]", key, "input")
        out.append(v)
    return Input(seq, out[0], out[1])


def _decode_ping(msg: dict[str, Any]) -> Ping:
    pid = msg.get("id")
    if type(pid) is not int:
        pid = _field(msg, "id", "int", "ping")
    if not -(2**63) <= pid < 2**63:
        raise ProtocolError("bad_field", "ping: id outside 64-bit range", "id", "ping")
    return Ping(pid)


def _decode_chat(msg: dict[str, Any]) -> Chat:
    text = clean_text(_field(msg, "text", "str", "chat"))
    if not 1 <= len(text) <= MAX_CHAT:
        raise ProtocolError(
            "bad_field", f"chat: text must be 1..{MAX_CHAT} characters after trimming, got {len(text)}", "text", "chat"
        )
    return Chat(text)


def _decode_talk(msg: dict[str, Any]) -> Talk:
    npc = _field(msg, "npc", "int", "talk")
    if not 0 <= npc < 2**32:
        raise ProtocolError("bad_field", f"talk: npc {npc} outside 0..2^32-1", "npc", "talk")
    text = clean_text(_field(msg, "text", "str", "talk"))
    if not 1 <= len(text) <= MAX_TALK:
        raise ProtocolError(
            "bad_field", f"talk: text must be 1..{MAX_TALK} characters after trimming, got {len(text)}", "text", "talk"
        )
    return Talk(npc, text)


_DECODERS: dict[str, Any] = {
    "hello": _decode_hello,
    "input": _decode_input,
    "ping": _decode_ping,
    "chat": _decode_chat,
    "talk": _decode_talk,
}


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
    message: Hello | Input | Ping | Chat | Talk = decoder(msg)
    return message


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


def encode(msg: dict[str, Any]) -> bytes:
    return _packb(msg)


def encode_ids(ids: list[int]) -> bytes:
    """A msgpack array of ints (entity ids: an update's `leave`)."""
    return _packb(ids)


def encode_entity_record(eid: int, kind: int, name: str, color: str, talks: bool) -> bytes:
    return _packb([eid, kind, name, color, talks])


def encode_chat_record(eid: int, name: str, text: str, tick: int) -> bytes:
    return _packb([eid, name, text, tick])


# -- update ---------------------------------------------------------------------------------


def array_header(n: int) -> bytes:
    """msgpack array header for n elements."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


K_TICK, K_ACK, K_CELLS, K_MOVES = _packb("tick"), _packb("ack"), _packb("cells"), _packb("moves")
K_ENTER, K_LEAVE, K_CHAT = _packb("enter"), _packb("leave"), _packb("chat")
UPDATE_PAIRS = 8  # t, tick, ack, cells, moves, enter, leave, chat
# Every update starts with these bytes, then the tick (a msgpack int), K_ACK, the ack, K_CELLS.
UPDATE_PREFIX = bytes((0x80 | UPDATE_PAIRS,)) + _packb("t") + _packb("update") + K_TICK
EMPTY_CHAT_TAIL = K_CHAT + b"\x90"  # the last pair of an update whose chat is []

# A move block's deltas: int8 per coordinate, in quantised units (1/quant world units). A
# player at full speed moves speed * quant / tick_rate = 160 * 16 / 20 = 128 units a tick
# along an axis: one more than int8 holds, so such moves (and any jump) travel as a fix.
MOVE_MAX = 127
MOVE_FIX = np.dtype([("i", "<u2"), ("x", "<u2"), ("y", "<u2")])  # an entity's absolute position


def encode_cell_block(cell: int, ids_le_u32: bytes, pos_le_u16: bytes) -> bytes:
    return _packb([cell, ids_le_u32, pos_le_u16])


def encode_move_block(
    cell: int, d_i8: bytes, fix: bytes, gone: bytes | None = None, ids: bytes = b"", pos: bytes = b""
) -> bytes:
    """A move block: moves and fixes, and (when `gone` is given) who left and who came."""
    if gone is None:
        return _packb([cell, d_i8, fix])
    return _packb([cell, d_i8, fix, gone, ids, pos])


# msgpack's unsigned ints, by size class: positive fixint (< 128, the byte itself), uint8, 16, 32, 64
_UINT_FROM = np.array([128, 0x100, 0x10000, 0x100000000], np.uint64)  # the smallest value of classes 1..4
_UINT_TAG = np.array([0, 0xCC, 0xCD, 0xCE, 0xCF], np.uint8)
_UINT_SIZE = np.array([1, 2, 3, 5, 9], np.int64)
_UINT_BE = (None, ">u1", ">u2", None, ">u4", None, None, None, ">u8")  # [size - 1]: the class's payload
# [w]: in a row of w bytes (tag, payload big-endian, right-aligned), byte j is written for a value of
# `size` bytes when size > _UINT_AFTER[w][j]: the tag always, the payload's last size - 1 bytes
_UINT_AFTER = {w: np.array([0, *range(w - 1, 0, -1)], np.int8) for w in _UINT_SIZE.tolist()}


def pack_uints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Each value (unsigned, < 2**64) as msgpack packs an int, back to back (no array header), in one
    numpy pass, and each one's end offset in those bytes: values[i] is packed[ends[i - 1]:ends[i]]. Byte
    for byte `b"".join(msgpack.packb(v) for v in values)`; a build's leave ids for all its Views at
    once, then sliced per View, instead of a list and one msgpack call per View (~5,000 ids a tick
    at 10,000 NPCs and 1,000 observers). Rows are as wide as the widest class present (3 bytes for
    ids under 65,536), and when every value is of one class they are the bytes as they stand."""
    v = np.asarray(values)
    n = len(v)
    if not n:
        return b"", np.zeros(0, np.int64)
    k: np.ndarray  # each value's class
    if int(v.max()) < 0x10000:  # entity ids as they are: fixint, uint8 or uint16, by two tests, in int8
        mid, big = v >= 128, v >= 256
        if not big.all() and mid.any():
            return _pack_small(v, mid, big)
        k = mid.view(np.int8) + big.view(np.int8)
        size = k + np.int8(1)  # (classes 0, 1, 2 are 1, 2, 3 bytes)
    else:
        k = np.searchsorted(_UINT_FROM, v.astype(np.uint64), side="right")
        size = _UINT_SIZE[k].astype(np.int8)
    ends = np.cumsum(size, dtype=np.int64)
    top = int(k.max())
    w = int(_UINT_SIZE[top])
    rows = np.empty((n, w), np.uint8)
    if w > 1:
        rows[:, 1:] = v.astype(_UINT_BE[w - 1]).view(np.uint8).reshape(n, w - 1)
    rows[:, 0] = np.where(k == 0, v.astype(np.uint8), _UINT_TAG[k])
    if int(k.min()) == top:
        return rows.tobytes(), ends
    return rows[size[:, None] > _UINT_AFTER[w]].tobytes(), ends


def _pack_small(v: np.ndarray, mid: np.ndarray, big: np.ndarray) -> tuple[bytes, np.ndarray]:
    """pack_uints of values under 65,536 of more than one size class (`mid`: >= 128, `big`: >= 256):
    each value's bytes written where they go (its tag or fixint at its start, its low byte last, a
    uint16's high byte before it), instead of (n, 3) rows and a mask of the bytes to keep: ~0.5x
    of that (7,300 ids a tick, the leave of 19 moves at 10,000 NPCs and 1,000 observers). Tried, not
    kept: a table of every id's bytes, right-aligned in 3, gathered and masked (no faster)."""
    size = mid.view(np.int8) + big.view(np.int8)
    size += 1
    ends = np.cumsum(size, dtype=np.int64)
    out = np.empty(int(ends[-1]), np.uint8)
    low = v.astype(np.uint8)
    out[ends - size] = np.where(big, np.uint8(0xCD), np.where(mid, np.uint8(0xCC), low))
    m = np.flatnonzero(mid)
    out[ends[m] - 1] = low[m]
    b = np.flatnonzero(big)
    out[ends[b] - 2] = (v[b] >> 8).astype(np.uint8)
    return out.tobytes(), ends


def view_body(cells: bytes, moves: bytes, enter: list[bytes], leave: bytes, chat: list[bytes]) -> bytes:
    """The pairs of an update after its ack: `cells`, `moves` and `leave` are encoded msgpack arrays."""
    return b"".join(
        (
            K_CELLS,
            cells,
            K_MOVES,
            moves,
            K_ENTER,
            array_header(len(enter)),
            *enter,
            K_LEAVE,
            leave,
            K_CHAT,
            array_header(len(chat)),
            *chat,
        )
    )


_tick_head: tuple[int | None, bytes] = (None, b"")  # the head up to "ack", for the last tick seen


def update_head(tick: int, ack: int) -> bytes:
    """The observer's own start of an 'update' (up to and with its ack); a view body follows it."""
    global _tick_head
    last, head = _tick_head
    if last != tick or type(tick) is not int:
        head = UPDATE_PREFIX + _packb(tick) + K_ACK
        _tick_head = (tick, head)
    return head + _packb(ack)


def read_int(b: bytes, i: int) -> tuple[int | None, int]:
    """A msgpack integer at b[i]: (value, index after it), or (None, i) if there is none."""
    c = b[i]
    if c < 0x80:
        return c, i + 1
    if c == 0xCD:
        return (b[i + 1] << 8) | b[i + 2], i + 3
    if c == 0xCE:
        return int.from_bytes(b[i + 1 : i + 5], "big"), i + 5
    if c == 0xCC:
        return b[i + 1], i + 2
    if c >= 0xE0:
        return c - 0x100, i + 1
    if c == 0xCF:
        return int.from_bytes(b[i + 1 : i + 9], "big"), i + 9
    if 0xD0 <= c <= 0xD3:
        size = 1 << (c - 0xD0)
        return int.from_bytes(b[i + 1 : i + 1 + size], "big", signed=True), i + 1 + size
    return None, i


_PREFIX_LEN = len(UPDATE_PREFIX)


def read_update_head(b: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(tick, ack) of an update message b[start:end] in the layout above, read without decoding
    the rest (a bot needs no more), or None when it is laid out otherwise (then decode it in full)."""
    if not b.startswith(UPDATE_PREFIX, start):
        return None
    try:
        tick, i = read_int(b, start + _PREFIX_LEN)
        if tick is None or not b.startswith(K_ACK, i):
            return None
        ack, i = read_int(b, i + len(K_ACK))
        if ack is None or not b.startswith(K_CELLS, i) or i + len(K_CELLS) >= end:
            return None
    except IndexError:
        return None
    return tick, ack


Cells = dict[int, tuple[np.ndarray, np.ndarray]]  # cell -> (ids (n,) uint32, positions (n, 2) uint16, quantised)


def apply_cells(held: Cells, cells: list[list[Any]], moves: list[list[Any]]) -> Cells:
    """What a client sees after an update: every visible non-empty cell, from its `cells` (whole)
    and `moves` (applied to the same cell in `held`, what the previous update left). Cells in
    neither are no longer visible (or empty) and are dropped. Positions stay quantised."""
    out: Cells = {}
    for cell, ids, pos in cells:
        out[cell] = (np.frombuffer(ids, "<u4"), np.frombuffer(pos, "<u2").reshape(-1, 2))
    for block in moves:
        cell, d, fix = block[:3]
        ids, pos = held[cell]
        if d:
            pos = (pos.astype(np.int32) + np.frombuffer(d, np.int8).reshape(-1, 2)).astype(np.uint16)
        if fix:
            f = np.frombuffer(fix, MOVE_FIX)
            pos = pos.copy()
            pos[f["i"], 0], pos[f["i"], 1] = f["x"], f["y"]
        if len(block) > 3:  # entities gone and come: drop, append, back into id order
            gone, new_ids, new_pos = block[3:6]
            keep = np.ones(len(ids), bool)
            keep[np.frombuffer(gone, "<u2")] = False
            ids = np.concatenate((ids[keep], np.frombuffer(new_ids, "<u4")))
            pos = np.concatenate((pos[keep], np.frombuffer(new_pos, "<u2").reshape(-1, 2)))
            order = np.argsort(ids, kind="stable")
            ids, pos = ids[order], pos[order]
        out[cell] = (ids, pos)
    return out


# -- update, version 3 ------------------------------------------------------------------------
# An array, not a map: [tick, ack, chat, enter, leave, cells, moves] (docs/protocol.md, "update,
# version 3"). Cell blocks carry each entity's step (its last move, quantised units a tick, int16
# pairs), and move blocks the change of each step in 2 bits a coordinate instead of the step: an
# entity that keeps its step (walks straight) costs half a byte a tick instead of two. Steps are 16-bit
# because a player at full speed along an axis moves 128 units a tick, one more than int8 holds: in
# version 2 such a move is a 6-byte fix every tick, for 1 player in 6 (cos of its heading > 0.992).
UPDATE3_ITEMS = 7  # tick, ack, chat, enter, leave, cells, moves
UPDATE3_PREFIX = bytes((0x90 | UPDATE3_ITEMS,))
STEP_MAX = 0x7FFF  # a step beyond this on either coordinate (a jump over half the map) is (0, 0), after a fix
WIDE_MAX = 127  # a step's change beyond this on a coordinate (a turn about) travels as a fix
# who came into a cell in a version-3 move block: one record each
CAME3 = np.dtype([("id", "<u4"), ("x", "<u2"), ("y", "<u2"), ("sx", "<i2"), ("sy", "<i2")])


def encode_cell_block3(cell: int, ids_le_u32: bytes, pos_le_u16: bytes, steps_le_i16: bytes) -> bytes:
    return _packb([cell, ids_le_u32, pos_le_u16, steps_le_i16])


def encode_move_block3(cell: int, changes: bytes, fix: bytes, gone: bytes | None = None, came: bytes = b"") -> bytes:
    """A version-3 move block: [cell, changes] (nobody fixed), [cell, changes, fix], or with who left
    and who came (CAME3 records) [cell, changes, fix, gone, came]."""
    if gone is None:
        return _packb([cell, changes, fix] if fix else [cell, changes])
    return _packb([cell, changes, fix, gone, came])


_tick_head3: tuple[int | None, bytes] = (None, b"")  # the head up to the tick, for the last tick seen


def update_head3(tick: int, ack: int) -> bytes:
    """The observer's own start of a version-3 update (the array's head, tick, ack); a view body follows."""
    global _tick_head3
    last, head = _tick_head3
    if last != tick or type(tick) is not int:
        head = UPDATE3_PREFIX + _packb(tick)
        _tick_head3 = (tick, head)
    return head + _packb(ack)


def view_body3(chat: list[bytes], enter: list[bytes], leave: bytes, cells: bytes, moves: bytes) -> bytes:
    """A version-3 update after its ack: `leave`, `cells` and `moves` are encoded msgpack arrays."""
    return b"".join((array_header(len(chat)), *chat, array_header(len(enter)), *enter, leave, cells, moves))


def read_update3_head(b: bytes, start: int, end: int) -> tuple[int, int, int] | None:
    """(tick, ack, chat lines) of a version-3 update b[start:end], read from its first bytes without
    decoding the rest (a bot needs no more), or None when b[start:end] is not one."""
    if end - start < 5 or b[start] != UPDATE3_PREFIX[0]:
        return None
    try:
        tick, i = read_int(b, start + 1)
        if tick is None:
            return None
        ack, i = read_int(b, i)
        if ack is None or i >= end:
            return None
        c = b[i]
        if 0x90 <= c <= 0x9F:
            return tick, ack, c - 0x90
        if c == 0xDC:
            return tick, ack, (b[i + 1] << 8) | b[i + 2]
        if c == 0xDD:
            return tick, ack, int.from_bytes(b[i + 1 : i + 5], "big")
    except IndexError:
        pass
    return None


def update3_as_map(msg: list[Any]) -> dict[str, Any]:
    """A decoded version-3 update as the keys of version 2 name its parts ("t" "update" included),
    for a reader that handles every message by its `t`."""
    tick, ack, chat, enter, leave, cells, moves = msg
    return {
        "t": "update",
        "v": 3,
        "tick": tick,
        "ack": ack,
        "cells": cells,
        "moves": moves,
        "enter": enter,
        "leave": leave,
        "chat": chat,
    }


def changes_of(changes: bytes, n: int) -> np.ndarray:
    """A move block's `changes` as (n, 2) int32 (empty: all 0). Entity i's nibble is the low (even i) or
    high (odd i) half of byte i // 2 of the first ceil(n / 2) bytes: x in its bits 0-1, y in 2-3, each 0
    (no change), 1 (+1), 3 (-1) or 2 (wide: the change is the next int8 after the nibbles, taken in
    order of entity, x before y)."""
    out = np.zeros((n, 2), np.int32)
    if changes:
        nb = (n + 1) // 2
        b = np.frombuffer(changes[:nb], np.uint8).astype(np.int32)
        nib = np.stack((b & 15, b >> 4), axis=1).ravel()[:n]
        code = np.stack((nib & 3, nib >> 2), axis=1)
        out[:] = np.where(code == 3, -1, code)
        out[code == 2] = np.frombuffer(changes[nb:], np.int8)
    return out


Cells3 = dict[
    int, tuple[np.ndarray, np.ndarray, np.ndarray]
]  # cell -> (ids, positions (n, 2) uint16, steps (n, 2) int16)


def _stepped(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Each entity's step from `old` to `new` positions (n, 2), (0, 0) where either coordinate is beyond STEP_MAX."""
    s = new.astype(np.int32) - old
    s[(np.abs(s) > STEP_MAX).any(axis=1)] = 0
    out: np.ndarray = s.astype("<i2")
    return out


def apply_cells3(held: Cells3, cells: list[list[Any]], moves: list[list[Any]]) -> Cells3:
    """apply_cells for a version-3 update: every visible non-empty cell with its entities' positions
    and steps, from its `cells` (whole) and `moves` (applied to the same cell in `held`)."""
    out: Cells3 = {}
    for cell, ids, pos, steps in cells:
        out[cell] = (
            np.frombuffer(ids, "<u4"),
            np.frombuffer(pos, "<u2").reshape(-1, 2),
            np.frombuffer(steps, "<i2").reshape(-1, 2),
        )
    for block in moves:
        cell, changes = block[:2]
        fix = block[2] if len(block) > 2 else b""
        ids, pos, steps = held[cell]
        step = steps.astype(np.int32) + changes_of(changes, len(ids))
        now = pos.astype(np.int32) + step
        if fix:
            f = np.frombuffer(fix, MOVE_FIX)
            now[f["i"], 0], now[f["i"], 1] = f["x"], f["y"]
        new_pos = now.astype(np.uint16)
        new_steps = _stepped(now, pos)
        if len(block) > 3:  # entities gone and come: drop, append, back into id order
            gone, came = block[3:5]
            c = np.frombuffer(came, CAME3)
            keep = np.ones(len(ids), bool)
            keep[np.frombuffer(gone, "<u2")] = False
            ids = np.concatenate((ids[keep], c["id"]))
            new_pos = np.concatenate((new_pos[keep], np.stack((c["x"], c["y"]), axis=1)))
            new_steps = np.concatenate((new_steps[keep], np.stack((c["sx"], c["sy"]), axis=1)))
            order = np.argsort(ids, kind="stable")
            ids, new_pos, new_steps = ids[order], new_pos[order], new_steps[order]
        out[cell] = (ids, new_pos, new_steps)
    return out


def apply_update(held: dict[int, Any], msg: dict[str, Any]) -> dict[int, Any]:
    """The cells held after a decoded update of either form: apply_cells3 for a version-3 one (as
    update3_as_map gives it, `v` 3), else apply_cells (a version-1 one has no `moves`)."""
    if msg.get("v") == 3:
        return apply_cells3(held, msg["cells"], msg["moves"])
    return apply_cells(held, msg["cells"], msg.get("moves", []))
