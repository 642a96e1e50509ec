"""A connection's outbound queue: what the tick hands over without ever awaiting
the socket, and what the connection's writer task sends when the socket drains.

Two parts:
- `control`: welcome, pong and error messages, sent in order. Bounded at
  MAX_CONTROL messages; past it, pongs and errors are dropped (counted), since a
  client that far behind is about to be closed as too slow anyway.
- one pending world update. A newer update replaces an unsent one, merged by
  `world.snapshot.merge_views` so that enters, leaves and chat lines are never
  lost; only stale positions are. So the queue holds at most one update and its
  memory is bounded by one view plus the merged events.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable

from world.snapshot import View, encode_update, merge_views, update_head

from .metrics import Metrics

MAX_CONTROL = 256  # messages


class Outbox:
    __slots__ = ("control", "update", "ready", "metrics", "on_update")

    def __init__(self, metrics: Metrics, on_update: Callable[[], None] = lambda: None) -> None:
        self.control: deque[bytes] = deque()
        self.update: tuple[int, int, View] | None = None  # (tick, ack, view) not yet sent
        self.ready = asyncio.Event()  # wakes the writer task: control messages, or a congested socket
        self.metrics = metrics
        self.on_update = on_update  # called when an update is queued and none was pending

    def push(self, data: bytes) -> bool:
        """Queue a control message; False when the queue is full and it was dropped."""
        if len(self.control) >= MAX_CONTROL:
            self.metrics.control_dropped += 1
            return False
        self.control.append(data)
        self.ready.set()
        return True

    def push_update(self, tick: int, ack: int, view: View) -> None:
        if self.update is not None:
            view = merge_views(self.update[2], view)
            self.metrics.updates_coalesced += 1
            self.update = (tick, ack, view)
        else:
            self.update = (tick, ack, view)
            self.on_update()

    def take_pieces(self) -> list[tuple[bytes, ...]]:
        """As `take`, each message as the pieces it is made of: an update as its own head and the
        View's body, which is shared by every observer of a cell and so is not copied here."""
        out: list[tuple[bytes, ...]] = [(data,) for data in self.control]
        self.control.clear()
        if self.update is not None:
            tick, ack, view = self.update
            self.update = None
            out.append((update_head(tick, ack), view.body))
        self.ready.clear()
        return out

    def take(self) -> list[bytes]:
        """Everything queued, in send order (control first, then the update)."""
        out = list(self.control)
        self.control.clear()
        if self.update is not None:
            tick, ack, view = self.update
            self.update = None
            out.append(encode_update(tick, ack, view))
        self.ready.clear()
        return out
