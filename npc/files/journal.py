"""The reload log: every load, reload and error of the NPC files, in order, for GET /log.

Entries are numbered from 1 (`seq`, never reused while the server runs); a
reader polls with the last seq it saw and gets what came after it. Kinds:

    load     a file's NPC was loaded for the first time (message: how many in the world)
    reload   a running NPC's file (or its hooks module) was loaded again, or a file was removed
    error    a problem: a file that failed to load (one entry per problem, with its line), or a
             hook error, slow or disabled hook of the running version (the first of each kind,
             hook and line per version: a hook that raises at every think is one entry, not thousands)

Bound: the newest MAX_ENTRIES entries are kept (~200 bytes each); a reader
that fell further behind sees a gap in seq (and `next` tells it where to go
on). Times are Unix seconds (the wall clock: for people reading the log).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

MAX_ENTRIES = 1000
MAX_PAGE = 500  # entries returned per request at most; `next` continues
KINDS = ("load", "reload", "error")


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    t: float  # Unix seconds
    kind: str  # KINDS
    file: str
    line: int | None
    message: str

    def as_dict(self) -> dict:
        return {
            "seq": self.seq,
            "t": round(self.t, 3),
            "kind": self.kind,
            "file": self.file,
            "line": self.line,
            "message": self.message,
        }


class Journal:
    def __init__(self, wall: Callable[[], float] = time.time, size: int = MAX_ENTRIES):
        self.wall = wall
        self.entries: deque[Entry] = deque(maxlen=size)
        self.seq = 0  # the last seq given

    def add(self, kind: str, file: str, line: int | None, message: str) -> Entry:
        if kind not in KINDS:
            raise ValueError(f"journal kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.seq += 1
        e = Entry(self.seq, self.wall(), kind, file, line, message)
        self.entries.append(e)
        return e

    def after(self, seq: int, limit: int = MAX_PAGE) -> dict:
        """{"entries": those with seq > `seq` (oldest first, at most `limit`), "next": the seq to poll with}.
        A seq beyond the newest (a server restarted under a reader) gives "next" = the newest seq."""
        out = [e for e in self.entries if e.seq > seq][:limit]
        return {"entries": [e.as_dict() for e in out], "next": out[-1].seq if out else min(max(seq, 0), self.seq)}
