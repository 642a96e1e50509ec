"""A connection's outbound queue: what the tick and the gateway hand over without
ever awaiting the socket. Whatever makes it non-empty calls `on_ready` once (the
gateway's Flusher then writes it all straight into the socket after the current
callback, one writev); the connection's writer task sends it instead, woken by
`ready`, only while the socket is congested.

Two parts:
- `control`: welcome, pong and error messages, sent in order. Bounded at
  MAX_CONTROL messages; past it, pongs and errors are dropped (counted), since a
  client that far behind is about to be closed as too slow anyway.
- one pending world update. A newer update replaces an unsent one, merged by
  `world.snapshot.merge_views` so that enters, leaves and chat lines are never
  lost; only stale positions are. So the queue holds at most one update and its
  memory is bounded by one view plus the merged events.

Deltas: `sent` is the build of the last update handed to the socket (TCP then
delivers it, in order, before anything written later). An update goes out as
deltas against that build when it has them, else as a keyframe: the first one,
one merged from two (its deltas are against an update never sent), one after
a gap. A version-1 session gets keyframes only; `version` picks the form (2: the map, 3: the
array with steps and their changes: world/snapshot.py `View.body_for`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable

from world.snapshot import View, head_for, merge_views

from .frames import binary_frame_head
from .metrics import Metrics

MAX_CONTROL = 256  # messages


class Outbox:
    __slots__ = ("control", "update", "ready", "metrics", "on_ready", "version", "sent")

    def __init__(self, metrics: Metrics, on_ready: Callable[[], None] = lambda: None) -> None:
        self.control: deque[bytes] = deque()
        self.update: tuple[int, int, View] | None = None  # (tick, ack, view) not yet sent
        self.ready = asyncio.Event()  # wakes the writer task: set by the gateway for a congested socket
        self.metrics = metrics
        # called when a message is queued and nothing was pending: once per flush, not per message
        # (a pong through the writer task instead was a task wake-up and a frame copy each, 6% of the
        # server's samples at 1,200 clients: bench/capacity.py --profile, README "Capacity")
        self.on_ready = on_ready
        self.version = 2  # the session's protocol version: its form of updates (1: keyframes only)
        self.sent: int | None = None  # the build of the last update taken for sending; None: none yet

    def push(self, data: bytes) -> bool:
        """Queue a control message; False when the queue is full and it was dropped."""
        control = self.control
        if len(control) >= MAX_CONTROL:
            self.metrics.control_dropped += 1
            return False
        if not control and self.update is None:
            self.on_ready()
        control.append(data)
        return True

    def push_update(self, tick: int, ack: int, view: View) -> None:
        if self.update is not None:
            view = merge_views(self.update[2], view)
            self.metrics.updates_coalesced += 1
            self.update = (tick, ack, view)
        else:
            if not self.control:
                self.on_ready()
            self.update = (tick, ack, view)

    def take_pieces(self) -> list[tuple[bytes, ...]]:
        """As `take`, each message as the pieces it is made of: an update as its own head and the
        View's body, which is shared by every observer of a cell and so is not copied here."""
        out: list[tuple[bytes, ...]] = [(data,) for data in self.control]
        self.control.clear()
        update = self._take_update()
        if update is not None:
            out.append(update)
        self.ready.clear()
        return out

    def take_frames(self) -> tuple[list[bytes], int, int]:
        """Everything queued as WebSocket frames for one writev (the gateway's direct writes): each
        message's frame head (an update's with the observer's own update head on it), then the shared
        View body uncopied; the payload bytes; the messages. The pieces of `take_pieces`, framed here
        in one pass: that list of tuples, re-walked to frame it, was most of the flush's Python.
        Once per connection and tick: the update is taken inline (not through `_take_update`), and
        its frame head and update head are one bytes object."""
        frames: list[bytes] = []
        size = 0
        control = self.control
        count = len(control)
        if count:
            for data in control:
                frames.append(binary_frame_head(len(data)) + data)
                size += len(data)
            control.clear()
        update = self.update
        if update is not None:
            tick, ack, view = update
            self.update = None
            version = self.version
            body = view.body_for(version, self.sent)
            self.sent = view.build
            head = head_for(version, tick, ack)
            n = len(head) + len(body)
            frames.append(binary_frame_head(n) + head)
            frames.append(body)
            size += n
            count += 1
        self.ready.clear()
        return frames, size, count

    def take(self) -> list[bytes]:
        """Everything queued, in send order (control first, then the update)."""
        out = list(self.control)
        self.control.clear()
        update = self._take_update()
        if update is not None:
            out.append(update[0] + update[1])
        self.ready.clear()
        return out

    def _take_update(self) -> tuple[bytes, bytes] | None:
        """The pending update as (its head, the body this connection can apply), taken as sent; or None."""
        if self.update is None:
            return None
        tick, ack, view = self.update
        self.update = None
        return head_for(self.version, tick, ack), self._body(view)

    def _body(self, view: View) -> bytes:
        """The view as this connection can apply it, deltas or keyframe; it is then taken as sent."""
        body = view.body_for(self.version, self.sent)
        self.sent = view.build
        return body
