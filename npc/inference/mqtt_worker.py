"""A remote model worker, serving game servers through an MQTT 5 broker (its command line: worker_cli.py).

    npcworld worker --broker mqtt://10.0.0.5:1883 --serve decision,dialogue --device cuda:0 --name gpu-a

It runs the same runners as a server's local workers, in the same worker
processes (a local Pool per kind, with their heartbeat and restart), and puts
an MQTT client in front of them. docs/workers.md is the contract; in short:
- requests arrive through shared subscriptions ($share/...), so the broker
  hands each to one of the workers serving that kind;
- each request's budget (user property budget-ms) becomes a deadline on this
  machine's clock when it arrives; one that has run out is answered
  "dropped" without compute, and the local pool drops what expires in its
  queue (the scheduler's rule: never compute a request whose deadline passed);
- beyond `capacity` requests in hand per kind, a request is answered "busy"
  at once, without compute: a flooding server cannot queue unbounded work
  here, and the others' requests keep their places;
- it answers Took first (so the server knows whose will fails the request),
  then Done for a batch, or Pieces with sequence numbers for a stream;
  a Cancel on its cancel topic stops a stream before the next decode step;
- presence: a retained JSON status (name, device, kinds, capacity, models,
  counters), refreshed every `status_every_s`, and the same status with
  state "offline" as its will, so servers know within seconds that it is gone;
- a malformed or oversized message is counted (in the status) and ignored;
  the broker going away: it reconnects with backoff, saying so in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from . import broker as b
from . import messages as m
from . import wire
from .config import PoolConfig
from .future import Outcome
from .pool import Pool
from .stream import Stream, StreamEnd

log = logging.getLogger("npcworld.worker")

STATUS_EVERY_S = 5.0  # how often the retained status (with counters) is refreshed
READY_TIMEOUT_S = 600.0  # model load and warm-up of every kind before going online


@dataclass
class _Held:
    """A stream this worker runs for a server."""

    stream: Stream
    response: str
    corr: bytes
    sid: int
    seq: int = 0
    received: float = 0.0
    scheduled: bool = False
    sent_end: bool = False


@dataclass
class Counters:
    received: int = 0  # request messages (batches and streams)
    requests: int = 0  # requests in them
    took: int = 0
    expired: int = 0  # requests dropped on arrival, their budget spent: no compute
    busy: int = 0  # requests refused at capacity: no compute
    malformed: int = 0
    oversized: int = 0
    ok: int = 0
    dropped: int = 0  # expired in the local queue
    failed: int = 0
    cancelled: int = 0
    reconnects: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def _stream_capacity(cfg: PoolConfig) -> int:
    return cfg.max_streams * max(1, cfg.workers or 1)


class MqttWorker:
    """The MQTT front of a set of local pools, one per kind it serves."""

    def __init__(
        self,
        address: b.BrokerAddress,
        name: str,
        pools: dict[str, PoolConfig],
        device: str,
        prefix: str = "npcworld",
        capacity: dict[str, int] | None = None,
        keepalive_s: int = 5,
        models: dict[str, str] | None = None,
        status_every_s: float = STATUS_EVERY_S,
        reconnect_max_s: float = 2.0,
    ):
        if not b.valid_name(name):
            raise b.BrokerError(f"worker name {name!r}: expected letters, digits, '-', '_', '.' (at most 64)")
        self.address, self.name, self.device, self.prefix = address, name, device, prefix
        self.configs = pools
        self.pools: dict[str, Pool] = {}
        self.streaming = {k: k == "dialogue" for k in pools}
        self.capacity = {
            k: (capacity or {}).get(k) or (_stream_capacity(c) if self.streaming[k] else 2 * max(1, c.workers or 1))
            for k, c in pools.items()
        }
        self.models = models or {}
        self.keepalive_s = keepalive_s
        self.status_every_s = status_every_s
        self.reconnect_max_s = reconnect_max_s
        self.counters = Counters()
        self.in_hand = {k: 0 for k in pools}
        self.held: dict[tuple[str, bytes], _Held] = {}
        self.client: Any = None
        self.started = time.time()
        self.status_topic = b.status_topic(prefix, name)
        self.cancel_topic = b.cancel_topic(prefix, name)
        self.request_topics = {b.request_topic(prefix, k): k for k in pools}
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- presence ------------------------------------------------------------------------

    def status(self, state: str, reason: str = "") -> bytes:
        c = self.counters
        body = {
            "name": self.name,
            "state": state,
            "device": self.device,
            "kinds": sorted(self.pools or self.configs),
            "capacity": self.capacity if state == "online" else {k: 0 for k in self.capacity},
            "models": self.models,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": round(self.started, 3),
            "in_hand": dict(self.in_hand),
            "counters": {k: v for k, v in vars(c).items()},
        }
        if reason:
            body["reason"] = reason
        return json.dumps(body, separators=(",", ":")).encode()

    # -- running -------------------------------------------------------------------------

    def start_pools(self) -> None:
        for kind, cfg in self.configs.items():
            self.pools[kind] = Pool(cfg).start()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        return all(p.wait_ready(timeout) for p in self.pools.values())

    def close_pools(self) -> None:
        for pool in self.pools.values():
            pool.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set: connect, reconnect with backoff, go offline cleanly."""
        import aiomqtt

        self._loop = asyncio.get_running_loop()
        backoff = b.Backoff(self.reconnect_max_s)
        first = True
        while not stop.is_set():
            try:
                async with b.client(
                    self.address,
                    f"worker-{self.name}",
                    self.keepalive_s,
                    will=b.will(self.status_topic, self.status("offline", "connection lost")),
                ) as c:
                    self.client = c
                    for topic, kind in self.request_topics.items():
                        await c.subscribe(b.shared_request_topic(self.prefix, kind), qos=0)
                    await c.subscribe(self.cancel_topic, qos=0)
                    await c.publish(self.status_topic, self.status("online"), qos=1, retain=True)
                    if not first:
                        self.counters.reconnects += 1
                    first = False
                    backoff.reset()
                    log.info(
                        "worker %s online at %s: serving %s on %s (capacity %s)",
                        self.name,
                        self.address.url,
                        ", ".join(self.pools),
                        self.device,
                        self.capacity,
                    )
                    tasks = [
                        asyncio.create_task(self._read(c)),
                        asyncio.create_task(self._refresh(c)),
                        asyncio.create_task(stop.wait()),
                    ]
                    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    for t in pending:
                        t.cancel()
                    for t in done:
                        if (exc := t.exception()) is not None:
                            raise exc
                    if stop.is_set():
                        await c.publish(self.status_topic, self.status("offline", "stopped"), qos=1, retain=True)
                        return
            except aiomqtt.MqttError as exc:
                self.client = None
                self._drop_held("lost the broker")
                delay = backoff.delay()
                log.warning(
                    "worker %s: broker %s unreachable (%s); retrying in %.1f s", self.name, self.address.url, exc, delay
                )
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            finally:
                self.client = None

    async def _refresh(self, c: Any) -> None:
        while True:
            await asyncio.sleep(self.status_every_s)
            await c.publish(self.status_topic, self.status("online"), qos=1, retain=True)

    async def _read(self, c: Any) -> None:
        async for msg in c.messages:
            try:
                self.on_message(str(msg.topic), msg.payload, msg)
            except Exception:
                log.exception("worker %s: handling a message failed (ignored)", self.name)

    def _drop_held(self, why: str) -> None:
        held, self.held = self.held, {}
        for h in held.values():
            h.stream.cancel()  # the server has failed it already (it lost us too)

    # -- requests ----------------------------------------------------------------------------

    def _bad(self, why: str) -> None:
        self.counters.malformed += 1
        if self.counters.malformed <= 3 or self.counters.malformed % 1000 == 0:
            log.warning(
                "worker %s: ignored a malformed message (%d so far): %s", self.name, self.counters.malformed, why
            )

    def on_message(self, topic: str, payload: Any, msg: Any) -> None:
        received = time.monotonic()
        if not isinstance(payload, (bytes, bytearray)):
            self._bad("payload is not bytes")
            return
        if len(payload) > b.MAX_MESSAGE_BYTES:
            self.counters.oversized += 1
            return
        response, corr, user = b.read_properties(msg)
        if topic == self.cancel_topic:
            h = self.held.pop((response or "", corr or b""), None)
            if h is not None:
                self.counters.cancelled += 1
                self.in_hand["dialogue"] = max(0, self.in_hand.get("dialogue", 0) - 1)
                h.sent_end = True
                h.stream.cancel()
            return
        kind = self.request_topics.get(topic)
        if kind is None:
            self._bad(f"unexpected topic {topic[:80]!r}")
            return
        if not response or not corr or "#" in response or "+" in response:
            self._bad("a request without a response topic and correlation data")
            return
        try:
            budget = b.number(user, "budget-ms", None)
            priority = min(9, max(0, int(b.number(user, "priority", 0) or 0)))
            req = m.decode(bytes(payload))
        except (ValueError, m.BadMessage) as exc:
            self._bad(str(exc))
            return
        budget_s = None if budget is None else budget / 1000.0
        self.counters.received += 1
        if self.streaming[kind]:
            if not isinstance(req, m.Add):
                self._bad(f"a {req.TAG} message on the {kind} topic (expected add)")
                return
            self._take_stream(kind, req, response, corr, budget_s, priority, received)
        else:
            if not isinstance(req, m.Batch):
                self._bad(f"a {req.TAG} message on the {kind} topic (expected batch)")
                return
            self._take_batch(kind, req, response, corr, budget_s, priority, received)

    def _reply(self, response: str, corr: bytes, msg: m.Message, received: float) -> None:
        c = self.client
        if c is None:
            return  # the broker is gone: the server has failed this request already
        held_ms = (time.monotonic() - received) * 1000.0
        props = b.properties("publish", None, corr, {"worker": self.name, "held-ms": f"{held_ms:.3f}"})
        try:
            data = m.encode(msg)
        except (TypeError, ValueError, OverflowError) as exc:
            log.warning("worker %s: a reply cannot be encoded: %s", self.name, exc)
            return
        asyncio.ensure_future(self._publish(c, response, data, props))

    async def _publish(self, c: Any, topic: str, data: bytes, props: Any) -> None:
        import aiomqtt

        try:
            await c.publish(topic, data, qos=0, properties=props)
        except aiomqtt.MqttError:
            pass  # the connection dropped; the reconnect loop says so

    def _take_batch(
        self,
        kind: str,
        req: m.Batch,
        response: str,
        corr: bytes,
        budget_s: float | None,
        priority: int,
        received: float,
    ) -> None:
        payloads = wire.unstack(req.payloads)
        n = len(payloads)
        self.counters.requests += n
        if len(req.budgets) != n or not all(isinstance(x, (int, float)) for x in req.budgets):
            self._bad(f"batch: {len(req.budgets)} budgets for {n} requests")
            return
        deadlines = [received + (x if budget_s is None else min(x, budget_s)) for x in req.budgets]
        now = time.monotonic()
        if all(d <= now for d in deadlines):
            self.counters.expired += n
            self._reply(response, corr, m.Done(req.batch_id, ["dropped"] * n, [None] * n, 0.0), received)
            return
        if self.in_hand[kind] >= self.capacity[kind]:
            self.counters.busy += n
            self._reply(response, corr, m.Done(req.batch_id, ["busy"] * n, [None] * n, 0.0), received)
            return
        self.counters.took += 1
        self.counters.by_kind[kind] = self.counters.by_kind.get(kind, 0) + 1
        self._reply(response, corr, m.Took(self.name), received)
        self.in_hand[kind] += 1
        futures = self.pools[kind].submit_many(payloads, deadlines, priority=priority)
        loop = self._loop
        assert loop is not None  # set when the worker's loop started, before any request
        left = [n]

        def one_done(_f: Any) -> None:  # on the local pool's engine thread
            loop.call_soon_threadsafe(count_down)

        def count_down() -> None:
            left[0] -= 1
            if left[0] == 0:
                self._batch_done(kind, req.batch_id, futures, response, corr, received)

        for fut in futures:
            fut.add_done_callback(one_done)

    def _batch_done(self, kind: str, batch_id: int, futures: list, response: str, corr: bytes, received: float) -> None:
        self.in_hand[kind] -= 1
        statuses, values = [], []
        c = self.counters
        for fut in futures:
            if fut.outcome in (Outcome.ON_TIME, Outcome.LATE):
                statuses.append("ok")
                values.append(fut.value)
                c.ok += 1
            elif fut.outcome is Outcome.DROPPED:
                statuses.append("dropped")
                values.append(None)
                c.dropped += 1
            else:
                statuses.append("error")
                values.append(fut.error or "failed")
                c.failed += 1
        packed = wire.stack(values) if all(s == "ok" for s in statuses) else values
        self._reply(response, corr, m.Done(batch_id, statuses, packed, 0.0), received)

    def _take_stream(
        self, kind: str, req: m.Add, response: str, corr: bytes, budget_s: float | None, priority: int, received: float
    ) -> None:
        self.counters.requests += 1
        budgets = [x for x in (req.budget, budget_s) if x is not None]
        deadline = received + min(budgets) if budgets else None
        if deadline is not None and deadline <= time.monotonic():
            self.counters.expired += 1
            self._reply(response, corr, m.Pieces([[req.sid, 0, None, "dropped"]], 0.0), received)
            return
        if self.in_hand[kind] >= self.capacity[kind]:
            self.counters.busy += 1
            self._reply(response, corr, m.Pieces([[req.sid, 0, None, "busy"]], 0.0), received)
            return
        key = (response, corr)
        if key in self.held:
            self._bad("a stream opened twice")
            return
        self.counters.took += 1
        self.counters.by_kind[kind] = self.counters.by_kind.get(kind, 0) + 1
        self._reply(response, corr, m.Took(self.name), received)
        self.in_hand[kind] += 1
        stream = self.pools[kind].open_stream(req.payload, deadline, priority=priority)
        h = self.held[key] = _Held(stream, response, corr, req.sid, received=received)
        loop = self._loop
        assert loop is not None  # set when the worker's loop started, before any request

        def listener(_s: Stream) -> None:  # on the local pool's engine thread
            if not h.scheduled:
                h.scheduled = True
                loop.call_soon_threadsafe(self._forward, h)

        stream.listener = listener
        if stream.end is not None or stream.pieces:
            listener(stream)

    def _forward(self, h: _Held) -> None:
        """The pieces a local stream made since the last call -> one Pieces message."""
        h.scheduled = False
        if h.sent_end:
            return
        stream = h.stream
        end = stream.end  # read before take(): pieces queued before the end are all taken
        out = []
        for value in stream.take():
            out.append([h.sid, h.seq, value, None])
            h.seq += 1
        if end is not None:
            code = {StreamEnd.OK: "ok", StreamEnd.DROPPED: "dropped"}.get(end, "error")
            out.append([h.sid, h.seq, None if code != "error" else (stream.error or end), code])
            h.sent_end = True
            self.held.pop((h.response, h.corr), None)
            self.in_hand["dialogue"] = max(0, self.in_hand.get("dialogue", 0) - 1)
            c = self.counters
            if end == StreamEnd.OK:
                c.ok += 1
            elif end == StreamEnd.DROPPED:
                c.dropped += 1
            elif end != StreamEnd.CANCELLED:
                c.failed += 1
            if end == StreamEnd.CANCELLED:
                return  # the server asked for it; it needs no answer
        if out:
            self._reply(h.response, h.corr, m.Pieces(out, 0.0), h.received)
