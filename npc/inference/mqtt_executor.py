"""The MQTT executor: the pool's requests go to remote workers through a broker.

A second implementation of the engine's Executor seam (engine.py); the local
one is local.py. Two halves, one queue each way:
- the broker connection (link.py) runs on its own thread: it connects (and
  reconnects with backoff, saying so in the log), subscribes to this pool's
  reply topic and the workers' status topics, hands every received message
  to the engine (a deque, then a wake-up byte), and publishes what the
  engine queued;
- the engine thread does everything else (`poll`, this file): presence,
  replies, futures, streams, deadlines. It never waits on the network.

What a request becomes (docs/workers.md has the wire contract): a batch is
one PUBLISH on {prefix}/req/{kind} whose body is a Batch message, with this
pool's reply topic as response topic, correlation data naming the batch, and
the budget (ms, net of the expected transit) and priority in user
properties. The worker that takes it answers Took, then Done; a stream is an
Add answered by Took, then Pieces (sequence numbers from 0) until the last.

Deadlines and clocks: only budgets travel. Transit is measured per worker as
round trip minus the time the worker says it held the request (held-ms), the
median of the last few; a request's budget is sent net of the
largest transit among the workers present (the broker picks which one).

Failures, each counted, none raising into the tick:
- the broker goes away: every request in flight fails at once (their NPCs
  fall back), the client reconnects with backoff; meanwhile this executor
  offers no places, so local workers (if any) serve, else requests drop at
  their deadlines;
- a worker's will (or its offline status) arrives: what it took fails at once;
- no answer by deadline + reply_grace_s (a batch), or no piece for silence_s
  (a stream): it fails;
- a malformed or oversized message on any topic is counted and ignored;
- an answer for a request already finished is counted (late_replies) and ignored.
"""

from __future__ import annotations

import collections
import json
import logging
import statistics
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from . import broker as b
from . import messages as m
from .engine import Engine, encode_batch, feed_piece, finish_batch
from .future import InferenceFuture, Outcome
from .link import Link
from .scheduler import BatchLatency, Pending
from .stats import WorkerInfo
from .stream import Stream, StreamEnd

log = logging.getLogger("npcworld.inference.mqtt")

# Transit per worker is the median of its last TRANSIT_WINDOW measurements: robust to the
# first round trips (imports, warm-up: 80 ms seen where the steady state is 2 ms), which an
# average would carry for many requests, each sent with too small a budget and dropped.
TRANSIT_WINDOW = 15


@dataclass
class RemoteWorker:
    """What this server knows of one remote worker (its presence, and counters)."""

    name: str
    device: str = "?"
    kinds: list[str] = field(default_factory=list)
    capacity: dict[str, int] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    online: bool = False
    transits: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TRANSIT_WINDOW))
    requests: int = 0  # batches and streams it took
    outcomes: dict[str, int] = field(default_factory=dict)  # request outcome -> count
    latency_sum_s: float = 0.0  # round trips of its answered batches
    latency_count: int = 0
    batches: int = 0
    last_error: str | None = None

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n

    @property
    def transit_s(self) -> float | None:
        """Round trip minus the time the worker held the request (seconds): the median of the last few."""
        return statistics.median(self.transits) if self.transits else None


@dataclass
class _Batch:
    batch_id: int
    futures: list[InferenceFuture]
    sent_at: float
    expires_at: float  # fails unanswered at this time
    worker: str | None = None  # set by its Took


@dataclass
class _RemoteStream:
    stream: Stream
    sent_at: float
    expires_at: float  # untaken by then, or silent since: fails
    worker: str | None = None


class MqttExecutor:
    name = "mqtt"

    def __init__(self, config, remote: b.RemoteConfig):
        self.config = config
        self.remote = remote.validate()
        self.address = b.parse_broker(remote.broker, remote.ca_file)
        self.kind = remote.kind
        self.client_id = remote.client_id or b.new_client_id(remote.kind)
        prefix = remote.prefix
        self.request_topic = b.request_topic(prefix, self.kind)
        self.reply_topic = b.reply_topic(prefix, self.client_id)
        self._engine: Engine | None = None
        self.workers: dict[str, RemoteWorker] = {}
        self.connected = False
        self.latency = BatchLatency(config.latency_prior_s, config.latency_alpha)
        self.batches: dict[bytes, _Batch] = {}
        self.streams: dict[bytes, _RemoteStream] = {}
        # counters for /metrics
        self.connects = 0
        self.disconnects = 0
        self.malformed: dict[str, int] = {}  # topic kind -> messages ignored
        self.late_replies = 0
        self._link: Link | None = None  # the broker connection, on its own thread (link.py)

    @property
    def engine(self) -> Engine:
        """The engine this executor runs in: set by `start`, before the engine calls anything else."""
        assert self._engine is not None, "the executor was not started"
        return self._engine

    @property
    def link(self) -> Link:
        """The broker connection: made by `start`."""
        assert self._link is not None, "the executor was not started"
        return self._link

    # -- the seam -----------------------------------------------------------------------

    def start(self, engine: Engine, now: float) -> None:
        self._engine = engine
        r = self.remote
        self._link = Link(
            self.address,
            self.client_id,
            [(self.reply_topic, 0), (b.status_wildcard(r.prefix), 1)],
            engine.intake.wake,
            f"inference {self.kind}",
            r.keepalive_s,
            r.reconnect_max_s,
        )
        self.link.start()

    def on_event(self, data: Any, mask: int, now: float) -> None:
        pass  # nothing registered in the engine's selector: the I/O thread wakes the engine

    def poll(self, now: float) -> None:
        inbox = self.link.inbox
        while inbox:
            event = inbox.popleft()
            try:
                if event[0] == "msg":
                    self._on_message(event[1], event[2], event[3], now)
                elif event[0] == "up":
                    self._on_up(now)
                elif event[0] == "down":
                    self._on_down(event[1], now)
            except Exception:
                log.exception("remote message handling failed (ignored)")
        self._expire(now)

    def next_wake(self, now: float) -> float | None:
        t = None
        items: list[_Batch | _RemoteStream] = [*self.batches.values(), *self.streams.values()]
        for item in items:
            t = item.expires_at if t is None else min(t, item.expires_at)
        return t

    def _capacity(self, kind_key: str) -> int:
        if not self.connected:
            return 0
        return sum(w.capacity.get(kind_key, 0) for w in self.workers.values() if w.online and self.kind in w.kinds)

    def slots(self):
        # One place per batch the workers present can still take (their capacity,
        # less what this pool has in flight); other servers' load is theirs to
        # refuse ("busy", answered without compute).
        for _ in range(self._capacity(self.kind) - len(self.batches)):
            yield None, self.latency

    def transit_s(self) -> float:
        """The round-trip transit to expect: the largest among the workers present."""
        known = [w.transit_s for w in self.workers.values() if w.online and w.transit_s is not None]
        return max(known) if known else self.remote.transit_prior_s

    def send_batch(self, place: Any, batch: list[Pending], now: float) -> None:
        engine = self.engine
        batch_id = engine.next_batch_id()
        transit = self.transit_s()
        data, batch = encode_batch(batch, batch_id, now, engine.finish, transit)
        if data is None:
            return
        if len(data) > b.MAX_MESSAGE_BYTES:
            for p in batch:
                engine.finish(
                    p.item,
                    Outcome.FAILED,
                    now,
                    error=f"batch of {len(data)} bytes is over the {b.MAX_MESSAGE_BYTES}-byte message limit",
                )
            return
        futures = []
        for p in batch:
            fut = p.item
            fut._pending = None
            fut.batch_size = len(batch)
            futures.append(fut)
        deadline = min(f.deadline for f in futures)
        budget_ms = (deadline - now - transit) * 1000.0
        corr = b"b%d" % batch_id
        self.batches[corr] = _Batch(batch_id, futures, now, deadline + self.remote.reply_grace_s)
        engine.stats.count_batch(len(futures))
        props = b.properties(
            "publish",
            self.reply_topic,
            corr,
            {"budget-ms": f"{budget_ms:.3f}", "priority": self.remote.priority},
            expiry_s=max(0.0, deadline - now) + self.remote.reply_grace_s,
        )
        self.link.publish(self.request_topic, data, props)

    def stream_rooms(self):
        if self.connected:
            yield None, self._capacity(self.kind) - len(self.streams)

    def send_stream(self, place: Any, stream: Stream, now: float) -> None:
        transit = self.transit_s()
        budget = None if stream.deadline is None else stream.deadline - now - transit
        try:
            data = m.encode(m.Add(stream.sid, budget, stream.request))
        except (TypeError, ValueError, OverflowError) as exc:
            self.engine.end_stream(stream, StreamEnd.FAILED, f"request cannot be sent to a worker: {exc}")
            return
        corr = b"s%d" % stream.sid
        stream.executor, stream.place = self, corr
        wait = stream.deadline - now if stream.deadline is not None else self.remote.silence_s
        self.streams[corr] = _RemoteStream(stream, now, now + max(0.0, wait) + self.remote.reply_grace_s)
        user: dict[str, Any] = {"priority": self.remote.priority}
        if budget is not None:
            user["budget-ms"] = f"{budget * 1000.0:.3f}"
        props = b.properties(
            "publish",
            self.reply_topic,
            corr,
            user,
            expiry_s=None if stream.deadline is None else wait + self.remote.reply_grace_s,
        )
        self.link.publish(self.request_topic, data, props)

    def cancel_stream(self, stream: Stream) -> None:
        rs = self.streams.pop(stream.place, None)
        if rs is not None and rs.worker is not None and self.connected:
            props = b.properties("publish", self.reply_topic, stream.place)
            self.link.publish(b.cancel_topic(self.remote.prefix, rs.worker), m.encode(m.Cancel(stream.sid)), props)

    def begin_close(self, now: float) -> None:
        self._fail_all(now, "the inference pool closed")
        self.link.stop()

    def closed(self) -> bool:
        return self._link is None or self._link.closed.is_set()

    def shutdown(self, now: float) -> None:
        self._fail_all(now, "the inference pool closed")
        if self._link is not None:
            self._link.stop(join_s=3.0)

    def gauges(self) -> tuple[int, int]:
        ready = sum(1 for w in self.workers.values() if w.online and self.kind in w.kinds) if self.connected else 0
        return ready, sum(len(x.futures) for x in self.batches.values()) + len(self.streams)

    def infos(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(
                i,
                w.device,
                "ready" if w.online and self.connected else "offline",
                w.pid,
                1,
                w.batches,
                {},
                w.last_error,
                name=w.name,
                executor="mqtt",
            )
            for i, w in enumerate(sorted(self.workers.values(), key=lambda w: w.name))
        ]

    # -- what arrives -----------------------------------------------------------------------

    def _bad(self, where: str, why: str) -> None:
        n = self.malformed[where] = self.malformed.get(where, 0) + 1
        if n <= 3 or n % 1000 == 0:
            log.warning("ignored a malformed message on the %s topic (%d so far): %s", where, n, why)

    def _on_up(self, now: float) -> None:
        self.connected = True
        self.connects += 1
        log.info(
            "inference %s: connected to the broker at %s (reply topic %s)",
            self.kind,
            self.address.url,
            self.reply_topic,
        )
        self.engine.notify()

    def _on_down(self, reason: str, now: float) -> None:
        was = self.connected
        self.connected = False
        if was:
            self.disconnects += 1
        self._fail_all(now, f"lost the broker at {self.address.url}: {reason}")
        for w in self.workers.values():
            w.online = False  # presence is re-read (retained) on reconnect
        self.engine.notify()

    def _on_message(self, topic: str, payload: bytes, props: tuple, now: float) -> None:
        if topic == self.reply_topic:
            self._on_reply(payload, props, now)
            return
        name = b.worker_of_status(self.remote.prefix, topic)
        if name is not None:
            self._on_status(name, payload, now)
        else:
            self._bad("unknown", f"unexpected topic {topic[:80]!r}")

    def _on_status(self, name: str, payload: bytes, now: float) -> None:
        if not payload:
            status: dict = {"state": "offline"}  # a cleared retained status
        else:
            try:
                status = json.loads(payload)
                if not isinstance(status, dict) or status.get("state") not in ("online", "offline"):
                    raise ValueError('expected a JSON object with "state": "online" or "offline"')
            except ValueError as exc:
                self._bad("status", f"{name}: {exc}")
                return
        w = self.workers.get(name)
        if w is None:
            kinds = status.get("kinds")
            if status["state"] == "offline" or not isinstance(kinds, list) or self.kind not in kinds:
                return  # not one of ours (it serves other kinds), or gone before we knew it
            w = self.workers[name] = RemoteWorker(name)
        if status["state"] == "offline":
            if w.online:
                log.warning(
                    "remote worker %s went offline%s", name, f" ({status['reason']})" if status.get("reason") else ""
                )
            w.online = False
            self._fail_worker(name, now, f"remote worker {name} went offline")
        else:
            try:
                kinds = [str(k) for k in status.get("kinds", [])]
                capacity = {str(k): max(0, int(v)) for k, v in dict(status.get("capacity", {})).items()}
            except (TypeError, ValueError) as exc:
                self._bad("status", f"{name}: kinds/capacity: {exc}")
                return
            if not w.online and self.kind in kinds:
                log.info(
                    "remote worker %s online: %s on %s, capacity %s",
                    name,
                    ", ".join(kinds),
                    status.get("device"),
                    capacity.get(self.kind),
                )
            w.online = True
            w.kinds, w.capacity = kinds, capacity
            w.device = str(status.get("device", "?"))
            w.models = {str(k): str(v) for k, v in dict(status.get("models") or {}).items()}
            pid = status.get("pid")
            w.pid = pid if isinstance(pid, int) else None
        self.engine.notify()

    def _on_reply(self, payload: bytes, props: tuple, now: float) -> None:
        _response, corr, user = props
        if not corr:
            self._bad("reply", "no correlation data")
            return
        try:
            msg = m.decode(payload)
        except m.BadMessage as exc:
            self._bad("reply", str(exc))
            return
        name = user.get("worker") or "?"
        if corr in self.batches:
            self._on_batch_reply(corr, msg, name, user, now)
        elif corr in self.streams:
            self._on_stream_reply(corr, msg, name, now)
        else:
            self.late_replies += 1  # finished already (failed at its grace, or cancelled)
            if isinstance(msg, m.Took) and corr[:1] == b"s" and corr[1:].isdigit() and b.valid_name(msg.worker):
                # A stream cancelled before any worker had taken it: stop it there too, or it runs to its end.
                props = b.properties("publish", self.reply_topic, corr)
                self.link.publish(
                    b.cancel_topic(self.remote.prefix, msg.worker), m.encode(m.Cancel(int(corr[1:]))), props
                )

    def _worker(self, name: str) -> RemoteWorker:
        w = self.workers.get(name)
        if w is None:
            w = self.workers[name] = RemoteWorker(name)
        return w

    def _on_batch_reply(self, corr: bytes, msg: m.Message, name: str, user: dict, now: float) -> None:
        batch = self.batches[corr]
        if isinstance(msg, m.Took):
            batch.worker = msg.worker
            self._worker(msg.worker).requests += 1
            return
        if not isinstance(msg, m.Done):
            self._bad("reply", f"a {msg.TAG} message answering a batch")
            return
        del self.batches[corr]
        w = self._worker(batch.worker or name)
        rtt = now - batch.sent_at
        try:
            held = b.number(user, "held-ms", None)
        except ValueError:
            held = None
        if held is not None and 0 <= held / 1000.0 <= rtt:
            w.transits.append(rtt - held / 1000.0)
        self.latency.observe(len(batch.futures), rtt)
        w.latency_sum_s += rtt
        w.latency_count += 1
        w.batches += 1
        self.engine.stats.compute_s += msg.compute_s if msg.compute_s >= 0 else 0.0
        for fut in batch.futures:
            fut.worker = w.name
        finish_batch(self.engine, batch.futures, msg, now)
        for fut in batch.futures:
            assert fut.outcome is not None  # finish_batch ended every one
            w.count(fut.outcome.value)

    def _on_stream_reply(self, corr: bytes, msg: m.Message, name: str, now: float) -> None:
        rs = self.streams[corr]
        stream = rs.stream
        if isinstance(msg, m.Took):
            rs.worker = msg.worker
            stream.worker = msg.worker
            self._worker(msg.worker).requests += 1
            rs.expires_at = now + self.remote.silence_s
            return
        if not isinstance(msg, m.Pieces):
            self._bad("reply", f"a {msg.TAG} message answering a stream")
            return
        rs.expires_at = now + self.remote.silence_s
        w = self._worker(rs.worker or name)
        for piece in msg.pieces:
            if not (isinstance(piece, list) and len(piece) == 4 and isinstance(piece[1], int)):
                self._bad("reply", "a piece is not [sid, seq, value, end]")
                continue
            _sid, seq, value, end = piece
            if seq < stream.seq:
                continue  # a duplicate
            if seq > stream.seq:
                self.streams.pop(corr, None)
                w.count("failed")
                self.engine.end_stream(
                    stream,
                    StreamEnd.FAILED,
                    f"pieces lost between worker {w.name} and here (got {seq}, expected {stream.seq})",
                )
                return
            stream.seq += 1
            if feed_piece(self.engine, stream, value, end, now):
                self.streams.pop(corr, None)
                w.count({"ok": "on_time", "dropped": "dropped", "busy": "dropped"}.get(end, "failed"))
                return

    # -- failing ------------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        for corr, batch in list(self.batches.items()):
            if now >= batch.expires_at:
                del self.batches[corr]
                who = f"remote worker {batch.worker}" if batch.worker else "no remote worker took it"
                self._fail_batch(batch, now, f"no answer by its deadline + {self.remote.reply_grace_s:g} s ({who})")
        for corr, rs in list(self.streams.items()):
            if now >= rs.expires_at:
                del self.streams[corr]
                why = (
                    f"remote worker {rs.worker} sent nothing for {self.remote.silence_s:g} s"
                    if rs.worker
                    else "no remote worker took it in time"
                )
                self._fail_stream(rs, now, why)

    def _fail_batch(self, batch: _Batch, now: float, reason: str) -> None:
        w = self.workers.get(batch.worker) if batch.worker else None
        if w is not None:
            w.count("failed", len(batch.futures))
            w.last_error = reason
        for fut in batch.futures:
            if fut.outcome is None:
                self.engine.finish(fut, Outcome.FAILED, now, error=reason)

    def _fail_stream(self, rs: _RemoteStream, now: float, reason: str) -> None:
        w = self.workers.get(rs.worker) if rs.worker else None
        if w is not None:
            w.count("failed")
            w.last_error = reason
        self.engine.end_stream(rs.stream, StreamEnd.FAILED, reason)

    def _fail_worker(self, name: str, now: float, reason: str) -> None:
        for corr, batch in list(self.batches.items()):
            if batch.worker == name:
                del self.batches[corr]
                self._fail_batch(batch, now, reason)
        for corr, rs in list(self.streams.items()):
            if rs.worker == name:
                del self.streams[corr]
                self._fail_stream(rs, now, reason)

    def _fail_all(self, now: float, reason: str) -> None:
        batches, self.batches = self.batches, {}
        for batch in batches.values():
            self._fail_batch(batch, now, reason)
        streams, self.streams = self.streams, {}
        for rs in streams.values():
            self._fail_stream(rs, now, reason)

    # -- /metrics ------------------------------------------------------------------------------

    def families(self) -> list[Metric]:
        # One family set per kind (npcworld_remote_decision_..., npcworld_remote_dialogue_...):
        # the decision and dialogue pools both report, and a family may appear only once.
        kind = self.kind
        p = f"npcworld_remote_{kind}"
        ws = sorted(self.workers.values(), key=lambda w: w.name)
        malformed = CounterMetricFamily(
            f"{p}_malformed_total", "Messages ignored as malformed, by topic.", labels=["topic"]
        )
        for t, n in sorted(self.malformed.items()):
            malformed.add_metric([t], n)
        up = GaugeMetricFamily(
            f"{p}_worker_up", "Remote workers present (retained status online, broker connected).", labels=["worker"]
        )
        requests = CounterMetricFamily(
            f"{p}_worker_requests_total", "Batches and streams each remote worker took.", labels=["worker"]
        )
        outcomes = CounterMetricFamily(
            f"{p}_worker_outcomes_total", "Requests by remote worker and outcome.", labels=["worker", "outcome"]
        )
        latency = SummaryMetricFamily(
            f"{p}_worker_latency_seconds", "Round trips of batches answered by each remote worker.", labels=["worker"]
        )
        transit = GaugeMetricFamily(
            f"{p}_worker_transit_seconds",
            "Measured transit (round trip minus time held) per worker.",
            labels=["worker"],
        )
        for w in ws:
            up.add_metric([w.name], int(w.online and self.connected))
            requests.add_metric([w.name], w.requests)
            for o, n in sorted(w.outcomes.items()):
                outcomes.add_metric([w.name, o], n)
            latency.add_metric([w.name], count_value=w.latency_count, sum_value=w.latency_sum_s)
            if w.transit_s is not None:
                transit.add_metric([w.name], w.transit_s)
        return [
            GaugeMetricFamily(
                f"{p}_broker_connected",
                f"Whether the {kind} pool is connected to its broker.",
                value=int(self.connected),
            ),
            CounterMetricFamily(
                f"{p}_broker_disconnects_total",
                "Connections to the broker lost (each reconnects with backoff).",
                value=self.disconnects,
            ),
            malformed,
            CounterMetricFamily(
                f"{p}_late_replies_total", "Replies for requests already finished (ignored).", value=self.late_replies
            ),
            up,
            requests,
            outcomes,
            latency,
            transit,
        ]
