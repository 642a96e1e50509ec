"""RFC 6455 frames and frame heads for what the server writes itself (server/gateway.py's direct writes).

A server's frames are never masked (RFC 6455 5.1), so a whole binary message
in one frame is this head followed by the payload bytes, which can then be
handed to the socket as separate pieces (writev) instead of being copied into
one buffer. Byte for byte what `websockets` writes for `send(bytes)` with no
extension (tests/server/test_frames.py checks it against websockets' own Frame).
"""

from __future__ import annotations

import struct

FIN_BINARY = 0x82  # FIN set, opcode 2 (binary), RSV bits clear: no extension touched this frame
FIN_PING = 0x89  # FIN set, opcode 9 (ping): a control frame, never fragmented, payload <= 125 bytes


# One head per size class: a table for the 7-bit lengths, one struct for each longer one. Asked once
# per message written (an update per observer per tick): ~50 ns (table) or ~125 ns (struct) a head,
# where building it from bytes((...)) + n.to_bytes(...) cost ~500 ns.
_HEAD7 = tuple(bytes((FIN_BINARY, n)) for n in range(126))
_HEAD16 = struct.Struct(">BBH").pack
_HEAD64 = struct.Struct(">BBQ").pack


def binary_frame_head(n: int) -> bytes:
    """The head of one final, unmasked binary frame carrying `n` payload bytes (7, 16 or 64-bit length)."""
    if n < 126:
        return _HEAD7[n]
    if n < 0x10000:
        return _HEAD16(FIN_BINARY, 126, n)
    return _HEAD64(FIN_BINARY, 127, n)


def ping_frame(payload: bytes) -> bytes:
    """One unmasked ping frame (RFC 6455 5.5.2) carrying `payload` (125 bytes at most: a control frame)."""
    if len(payload) > 125:
        raise ValueError(f"a ping's payload is at most 125 bytes, got {len(payload)}")
    return bytes((FIN_PING, len(payload))) + payload
