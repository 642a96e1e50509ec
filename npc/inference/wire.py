"""The bytes under the pool's messages: msgpack, with numpy arrays as an extension type.

The messages themselves (their tags and fields, one table) are in
messages.py; this module only turns values into bytes and back. msgpack is
self-delimiting, so a stream of messages (the local workers' Unix sockets)
needs no length prefix: each side feeds what it reads into a
`msgpack.Unpacker` and takes whole messages out; over MQTT each message is
one PUBLISH body.

Payloads and results are anything msgpack carries (None, bool, int, float,
str, bytes, lists, dicts) plus numpy arrays and scalars, which travel as an
extension type (code 1) holding dtype, shape and the raw bytes (C order).
A decoded array is a read-only view of the received bytes (no copy); copy
it to write.

A list of per-request values that are all numpy arrays of one dtype and
shape travels stacked into one array (`stack`/`unstack`): one extension
object per batch instead of one per request, which is most of the
per-request cost for small arrays.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import numpy as np

NDARRAY = 1  # msgpack extension code for a numpy array

# One message may not exceed this (msgpack.Unpacker's buffer bound). A batch
# is one message, so max_batch * payload size must stay below it.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("numpy arrays of Python objects cannot be sent to a worker")
        # Extension body: dtype string length (u8), dtype string, ndim (u8),
        # shape (u32 each, little-endian), then the C-order bytes.
        dt = obj.dtype.str.encode()
        head = struct.pack(f"<B{len(dt)}sB{obj.ndim}I", len(dt), dt, obj.ndim, *obj.shape)
        return msgpack.ExtType(NDARRAY, head + obj.tobytes())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    raise TypeError(f"cannot send a {type(obj).__name__} to a worker; expected msgpack types or numpy arrays")


_DTYPES: dict[bytes, np.dtype] = {}  # dtype strings seen so far (a handful)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == NDARRAY:
        n = data[0]
        key = data[1 : 1 + n]
        dtype = _DTYPES.get(key)
        if dtype is None:
            dtype = _DTYPES[key] = np.dtype(key.decode())
        ndim = data[1 + n]
        start = 2 + n + 4 * ndim
        arr = np.frombuffer(data, dtype=dtype, offset=start)
        if ndim == 1:
            return arr  # its length is the shape
        return arr.reshape(struct.unpack_from(f"<{ndim}I", data, 2 + n))
    return msgpack.ExtType(code, data)


def stack(values: list[Any]) -> Any:
    """values as one array (B, *shape) if they are arrays of one dtype and shape, else unchanged."""
    if not values:
        return values
    first = values[0]
    if type(first) is not np.ndarray or first.dtype.hasobject:
        return values
    shape, dtype = first.shape, first.dtype
    for v in values:
        if type(v) is not np.ndarray or v.shape != shape or v.dtype != dtype:
            return values
    return np.stack(values)


def unstack(values: Any) -> list[Any]:
    """The inverse of `stack`: a list with one entry per request (rows are views)."""
    return list(values) if isinstance(values, np.ndarray) else values


def pack(message: Any) -> bytes:
    return msgpack.packb(message, default=_default, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def unpacker() -> msgpack.Unpacker:
    """A streaming decoder: `feed(bytes)`, then iterate for whole messages."""
    return msgpack.Unpacker(ext_hook=_ext_hook, raw=False, strict_map_key=False, max_buffer_size=MAX_MESSAGE_BYTES)
