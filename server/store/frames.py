"""A world checkpoint (world/checkpoint.Frame) as rows of `checkpoint_columns`, and back.

Each column is one row: its dtype, shape and raw bytes (numeric arrays), or a msgpack list
(object columns: activity labels, NPC keys). One blob per column keeps the writer's Python work
(which holds the GIL the tick needs) to a few dozen calls however many entities there are.
"""

from __future__ import annotations

import json

import msgpack
import numpy as np

from world.checkpoint import COLUMNS, Frame

OBJECT = "msgpack"


def _row(name: str, arr: np.ndarray) -> tuple[str, str, str, bytes]:
    if arr.dtype == object:
        return name, OBJECT, json.dumps([len(arr)]), msgpack.packb(arr.tolist())
    arr = np.ascontiguousarray(arr)
    return name, arr.dtype.str, json.dumps(list(arr.shape)), arr.tobytes()


def _array(dtype: str, shape: str, data: bytes) -> np.ndarray:
    if dtype == OBJECT:
        out = np.empty(json.loads(shape)[0], object)
        out[:] = msgpack.unpackb(data)
        return out
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(json.loads(shape)).copy()


EXTRA = "extra."  # name prefix of columns that are not the world's (the NPC minds' state), any length


def rows(frame: Frame, keys: np.ndarray, extra: dict | None = None) -> list[tuple[str, str, str, bytes]]:
    """The column rows of a frame; keys (n,) object: each entity's stable key ("" for players);
    extra: more named arrays to keep with it (returned by `frame` as they were)."""
    out = [
        _row("eid", frame.eid),
        _row("kind", frame.kind),
        _row("key", keys),
        _row("activity", frame.activity),
        _row("stats", frame.stats),
        _row("stat_rate", frame.stat_rate),
        _row("stat_has", frame.stat_has),
    ]
    out += [_row(c, frame.columns[c]) for c in COLUMNS]
    out += [_row(EXTRA + name, arr) for name, arr in (extra or {}).items()]
    return out


def frame(head: tuple, column_rows: list[tuple]) -> tuple[Frame, np.ndarray, dict]:
    """(Frame, keys, extra) from the checkpoint row (tick, time_s, rng, stat_names JSON) and its column rows.
    ValueError when a column is missing or its length disagrees with the others."""
    tick, time_s, rng, stat_names = head
    cols = {name: _array(dtype, shape, data) for name, dtype, shape, data in column_rows}
    need = ("eid", "kind", "key", "activity", "stats", "stat_rate", "stat_has", *COLUMNS)
    missing = [c for c in need if c not in cols]
    if missing:
        raise ValueError(f"checkpoint lacks the columns {', '.join(missing)}")
    n = len(cols["eid"])
    wrong = [c for c in need if len(cols[c]) != n]
    if wrong:
        raise ValueError(f"checkpoint columns {', '.join(wrong)} do not have {n} rows")
    f = Frame(
        tick=int(tick),
        time_s=float(time_s),
        rng=rng,
        eid=cols["eid"],
        kind=cols["kind"],
        columns={c: cols[c] for c in COLUMNS},
        activity=cols["activity"],
        stat_names=tuple(json.loads(stat_names)),
        stats=cols["stats"],
        stat_rate=cols["stat_rate"],
        stat_has=cols["stat_has"],
    )
    return f, cols["key"], {c[len(EXTRA) :]: a for c, a in cols.items() if c.startswith(EXTRA)}
