"""What one observer receives in one tick, as pre-encoded msgpack pieces (the byte layout is
world/protocol.py's).

A View holds two forms of the observer's cells: `cells`, every visible cell's whole block (a
keyframe: it stands alone), and `moves`, the same cells as deltas against the previous build
(None where the observer could not have that build: it is new, or it came from farther than
one cell's neighbourhood). Which one a connection gets depends on what it last received: the
outbox asks `body_after(build)` with the build of the last update it sent, and gets the deltas
only when they are against exactly that build (TCP delivers in order, so what was written is
what the client will have applied); else the keyframe.

Every piece is encoded once and shared: a cell block by every observer cell that sees it, a
View by every observer in the same cell, a record by every view it enters. The bodies only
concatenate bytes; they never re-encode; and a writer that can send pieces (writev) sends
`update_head` and the shared body without even that copy.

Three versions of the protocol, one View: `body_for(version, sent)` gives a version-1 session the
keyframe, a version-2 one the map form (`body`, `body_after`), a version-3 one the array form
(`body3`, `body3_after`: docs/protocol.md, "update, version 3"); `head_for` the matching head.
"""

from __future__ import annotations

from typing import Callable, cast

import numpy as np

from .protocol import array_header, encode_ids, update_head, update_head3, view_body, view_body3

NO_MOVES = array_header(0)
Moves = tuple[bytes, bytes]  # a delta form: (whole cells, move blocks), each an encoded msgpack array


class View:
    """One observer's update for one tick, less tick and ack. Treat as immutable:
    the same View object is handed to every observer of a cell.

    `cells` may be given as a function that makes them: the keyframe's cells (every visible cell
    whole, ~12 KB a View at 10,000 NPCs) are then joined only when a connection needs a keyframe (a
    new one, after a gap or a merge, a version-1 session), not for every View of every build.
    `enter_ids` and `leave` may be given as numpy arrays (the build's vectorised pass makes them so):
    each becomes a list only when it is asked for (coalescing, the gateway link), and the encoded
    `leave` can come with them (`leave_bin`, packed for all of a build's Views at once), so the body
    of a View nobody merges never touches a Python list of ids."""

    __slots__ = (
        "_cells",
        "enter",
        "_enter_ids",
        "_leave",
        "chat",
        "build",
        "_moves",
        "_leave_bin",
        "_keyframe",
        "_delta",
        "_cells3",
        "_moves3",
        "_keyframe3",
        "_delta3",
    )

    def __init__(
        self,
        cells: bytes | Callable[[], bytes],  # msgpack array of whole cell blocks, every visible non-empty cell
        enter: list[bytes],  # msgpack entity records, in the order of enter_ids
        enter_ids: list[int] | np.ndarray,
        leave: list[int] | np.ndarray,
        chat: list[bytes],  # msgpack chat records
        build: int = -1,  # the build this View comes from (0, 1, ... in a World)
        # the delta form, against build - 1: msgpack arrays `cells` (the cells whose entities are not
        # those of that build, whole) and `moves` (the others' move blocks), or a function that makes
        # them (asked only when a connection needs them); None: no delta form
        moves: Moves | Callable[[], Moves] | None = None,
        leave_bin: bytes | None = None,  # `leave` as a msgpack array, when the builder packed it
        cells3: bytes | Callable[[], bytes] | None = None,  # `cells` in version 3 (None: no version-3 form)
        moves3: Moves | Callable[[], Moves] | None = None,  # `moves` in version 3
    ) -> None:
        self._cells = cells
        self.enter = enter
        self._enter_ids = enter_ids
        self._leave = leave
        self.chat = chat
        self.build = build
        self._moves = moves
        self._leave_bin = leave_bin
        self._keyframe: bytes | None = None  # the bodies, each built the first time it is asked for
        self._delta: bytes | None = None
        self._cells3 = cells3
        self._moves3 = moves3
        self._keyframe3: bytes | None = None
        self._delta3: bytes | None = None

    @classmethod
    def make(
        cls,
        cells: bytes | Callable[[], bytes],
        enter: list[bytes],
        enter_ids: list[int] | np.ndarray,
        leave: list[int] | np.ndarray,
        chat: list[bytes],
        build: int = -1,
        moves: Moves | Callable[[], Moves] | None = None,
        leave_bin: bytes | None = None,
        cells3: bytes | Callable[[], bytes] | None = None,
        moves3: Moves | Callable[[], Moves] | None = None,
    ) -> View:
        return cls(cells, enter, enter_ids, leave, chat, build, moves, leave_bin, cells3, moves3)

    @property
    def moves(self) -> Moves | None:
        """The delta form (version 2): (whole cells, move blocks), or None."""
        m = self._moves
        if m is not None and type(m) is not tuple:
            m = self._moves = cast("Callable[[], Moves]", m)()
        return m

    @moves.setter
    def moves(self, value: Moves | None) -> None:
        self._moves = value

    @property
    def moves3(self) -> Moves | None:
        """The delta form in version 3, or None."""
        m = self._moves3
        if m is not None and type(m) is not tuple:
            m = self._moves3 = cast("Callable[[], Moves]", m)()
        return m

    @property
    def cells(self) -> bytes:
        c = self._cells
        if type(c) is not bytes:
            c = self._cells = cast("Callable[[], bytes]", c)()
        return c

    @property
    def cells3(self) -> bytes:
        """`cells` in version 3 (each block with its entities' steps)."""
        c = self._cells3
        if c is None:
            raise ValueError("this View has no version-3 form")
        if type(c) is not bytes:
            c = self._cells3 = cast("Callable[[], bytes]", c)()
        return c

    @property
    def has_v3(self) -> bool:
        return self._cells3 is not None

    @property
    def enter_ids(self) -> list[int]:
        ids = self._enter_ids
        if type(ids) is not list:
            ids = self._enter_ids = cast("np.ndarray", ids).tolist()
        return cast("list[int]", ids)

    @property
    def leave(self) -> list[int]:
        ids = self._leave
        if type(ids) is not list:
            ids = self._leave = cast("np.ndarray", ids).tolist()
        return cast("list[int]", ids)

    @property
    def leave_bin(self) -> bytes:
        """`leave` as an encoded msgpack array."""
        b = self._leave_bin
        if b is None:
            b = self._leave_bin = encode_ids(self.leave)
        return b

    @property
    def body(self) -> bytes:
        """The keyframe body (stands alone): pairs cells, moves (empty), enter, leave, chat."""
        b = self._keyframe
        if b is None:
            b = self._keyframe = view_body(self.cells, NO_MOVES, self.enter, self.leave_bin, self.chat)
        return b

    def body_after(self, sent: int | None) -> bytes:
        """The body for a connection whose last update sent was of build `sent` (None: none yet).
        Asked once per observer per tick: the common case (deltas, built already) is two tests."""
        if sent is None or sent != self.build - 1 or self._moves is None:
            return self.body
        b = self._delta
        if b is None:
            m = cast("Moves", self.moves)
            b = self._delta = view_body(m[0], m[1], self.enter, self.leave_bin, self.chat)
        return b

    @property
    def body3(self) -> bytes:
        """The version-3 keyframe body: items chat, enter, leave, cells (whole), moves (empty)."""
        b = self._keyframe3
        if b is None:
            b = self._keyframe3 = view_body3(self.chat, self.enter, self.leave_bin, self.cells3, NO_MOVES)
        return b

    def body3_after(self, sent: int | None) -> bytes:
        """body_after in version 3."""
        if sent is None or sent != self.build - 1 or self._moves3 is None:
            return self.body3
        b = self._delta3
        if b is None:
            m = cast("Moves", self.moves3)
            b = self._delta3 = view_body3(self.chat, self.enter, self.leave_bin, m[0], m[1])
        return b

    def body_for(self, version: int, sent: int | None) -> bytes:
        """The body a connection of protocol `version` gets after build `sent` (version 1: keyframes)."""
        if version >= 3:
            return self.body3_after(sent)
        if version == 2:
            return self.body_after(sent)
        return self.body


def head_for(version: int, tick: int, ack: int) -> bytes:
    """The observer's own start of an update in protocol `version`."""
    if version >= 3:
        return update_head3(tick, ack)
    return update_head(tick, ack)


def encode_update(tick: int, ack: int, view: View, sent: int | None = None, version: int = 2) -> bytes:
    """The complete 'update' message, for a connection of protocol `version` whose last update sent
    was of build `sent` (None: a keyframe): in version 2 {t, tick, ack, cells, moves, enter, leave,
    chat}, in version 3 [tick, ack, chat, enter, leave, cells, moves]."""
    if version >= 3:
        return update_head3(tick, ack) + view.body3_after(sent)
    return update_head(tick, ack) + (view.body_after(sent) if version == 2 else view.body)


def merge_views(older: View, newer: View) -> View:
    """Coalesce two consecutive updates into one (docs/protocol.md, "Coalescing").

    The client applies leave, then enter. Net effect of older then newer:
      leave = older.leave + newer.leave
      enter = (older.enter - newer.leave) + newer.enter
    so an entity that entered and then left appears only in `leave`, one that
    left and came back appears in both (leave, then enter again). Chat lines
    of both are kept in order; cells are the newer's (latest state wins), and so
    is its build: its deltas are against `older`, which was never sent, so the
    merged update goes out as a keyframe.
    """
    gone = set(newer.leave)
    enter: list[bytes] = []
    enter_ids: list[int] = []
    seen: set[int] = set()
    for eid, rec in zip(older.enter_ids, older.enter):
        if eid not in gone and eid not in seen:
            seen.add(eid)
            enter_ids.append(eid)
            enter.append(rec)
    for eid, rec in zip(newer.enter_ids, newer.enter):
        if eid not in seen:
            seen.add(eid)
            enter_ids.append(eid)
            enter.append(rec)
    leave = list(dict.fromkeys(older.leave + newer.leave))
    return View.make(
        newer._cells,
        enter,
        enter_ids,
        leave,
        older.chat + newer.chat,
        newer.build,
        newer._moves,
        None,
        newer._cells3,
        newer._moves3,
    )
