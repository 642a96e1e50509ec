"""The messages between the pool and its workers: one table of typed messages.

Every executor speaks these: the local one over a Unix socket (one message
after another, msgpack is self-delimiting), the MQTT one as the body of one
MQTT message each (docs/workers.md). On the wire a message is a msgpack
array, its tag first, then its fields in the order declared here:

    Batch(batch_id=3, budgets=[0.04, 0.04], payloads=[...])  ->  ["batch", 3, [0.04, 0.04], [...]]

Times on the wire are remaining budgets in seconds, never absolute times:
the sender's clock means nothing to a worker on another machine. A worker
turns a budget into a deadline on its own clock when the message arrives
(`deadline = received_at + budget`).

`decode` checks the tag, the number of fields and each field's type, and
raises BadMessage saying what was wrong: a worker or a server that receives
garbage counts it and carries on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from . import wire


class BadMessage(ValueError):
    """A message that is not one of the table's, or whose fields have the wrong types."""


_NUM = (int, float)
_ANY = (object,)
_OPT_NUM = (int, float, type(None))


@dataclass(slots=True)
class Batch:
    """Pool -> worker: requests to run as one batch (a batch runner)."""

    TAG: ClassVar[str] = "batch"
    TYPES: ClassVar[tuple] = ((int,), (list,), _ANY)
    batch_id: int
    budgets: list[float]  # seconds left per request when sent; <= 0 on arrival: dropped, not computed
    payloads: Any  # a list, one per request, or one stacked array (wire.stack)


@dataclass(slots=True)
class Done:
    """Worker -> pool: a batch's answer, one status and value per request, in order."""

    TAG: ClassVar[str] = "done"
    TYPES: ClassVar[tuple] = ((int,), (list,), _ANY, _NUM)
    batch_id: int
    statuses: list[str]  # "ok" | "dropped" (never computed) | "error" (value: the message) | "busy"
    values: Any  # a list, or one stacked array
    compute_s: float  # time inside the runner


@dataclass(slots=True)
class Add:
    """Pool -> worker: a stream joins the streaming runner's running batch."""

    TAG: ClassVar[str] = "add"
    TYPES: ClassVar[tuple] = ((int,), _OPT_NUM, _ANY)
    sid: int
    budget: float | None  # seconds left to start it; None: no admission deadline
    payload: Any


@dataclass(slots=True)
class Cancel:
    """Pool -> worker: a stream leaves (its compute is freed before the next step)."""

    TAG: ClassVar[str] = "cancel"
    TYPES: ClassVar[tuple] = ((int,),)
    sid: int


@dataclass(slots=True)
class Pieces:
    """Worker -> pool: one decode step's pieces, each [sid, seq, value, end].

    seq counts a stream's pieces from 0; end is None (more follows), "ok" (the
    last piece), "dropped" (never started) or "error" (value: the message)."""

    TAG: ClassVar[str] = "pieces"
    TYPES: ClassVar[tuple] = ((list,), _NUM)
    pieces: list[list]
    compute_s: float


@dataclass(slots=True)
class Ready:
    """Worker -> pool: the runner is loaded; info says what runs where."""

    TAG: ClassVar[str] = "ready"
    TYPES: ClassVar[tuple] = ((dict,),)
    info: dict  # pid, device, runner, threads, nice, torch, streaming


@dataclass(slots=True)
class Heartbeat:
    """Worker -> pool, while idle: still alive."""

    TAG: ClassVar[str] = "hb"
    TYPES: ClassVar[tuple] = ()


@dataclass(slots=True)
class Fatal:
    """Worker -> pool: the worker could not start (the traceback), and exits."""

    TAG: ClassVar[str] = "fatal"
    TYPES: ClassVar[tuple] = ((str,),)
    message: str


@dataclass(slots=True)
class Stop:
    """Pool -> worker: finish the batch in hand and exit."""

    TAG: ClassVar[str] = "stop"
    TYPES: ClassVar[tuple] = ()


@dataclass(slots=True)
class Took:
    """Remote worker -> server: it has taken a request (a batch or a stream), so
    the server knows whose will message fails it."""

    TAG: ClassVar[str] = "took"
    TYPES: ClassVar[tuple] = ((str,),)
    worker: str


MESSAGES = {cls.TAG: cls for cls in (Batch, Done, Add, Cancel, Pieces, Ready, Heartbeat, Fatal, Stop, Took)}
_FIELDS = {tag: tuple(f.name for f in dataclasses.fields(cls)) for tag, cls in MESSAGES.items()}

Message = Batch | Done | Add | Cancel | Pieces | Ready | Heartbeat | Fatal | Stop | Took


def encode(msg: Message) -> bytes:
    """The message as bytes (raises TypeError for a field msgpack cannot carry)."""
    return wire.pack([msg.TAG, *(getattr(msg, name) for name in _FIELDS[msg.TAG])])


def from_list(raw: Any) -> Message:
    """A decoded msgpack value -> its typed message; BadMessage if it is not one."""
    if not isinstance(raw, (list, tuple)) or not raw or not isinstance(raw[0], str):
        raise BadMessage(f"expected an array whose first element is a message tag, got {type(raw).__name__}")
    cls = MESSAGES.get(raw[0])
    if cls is None:
        raise BadMessage(f"unknown message tag {raw[0][:40]!r}; expected one of {', '.join(MESSAGES)}")
    fields = raw[1:]
    if len(fields) != len(cls.TYPES):
        raise BadMessage(f"{cls.TAG}: {len(fields)} fields; expected {len(cls.TYPES)} ({', '.join(_FIELDS[cls.TAG])})")
    for name, value, types in zip(_FIELDS[cls.TAG], fields, cls.TYPES):
        if not isinstance(value, types) or (type(value) is bool and types is not _ANY and bool not in types):
            raise BadMessage(
                f"{cls.TAG}.{name}: got {type(value).__name__}; expected {' or '.join(t.__name__ for t in types)}"
            )
    return cls(*fields)


def decode(data: bytes) -> Message:
    """Bytes -> a typed message; BadMessage for anything else (not msgpack, wrong shape)."""
    try:
        raw = wire.unpack(data)
    except Exception as exc:  # msgpack raises several types for broken input
        raise BadMessage(f"not a msgpack message: {type(exc).__name__}: {exc}") from None
    return from_list(raw)
