"""The worker loop without a pool: batches in over a socket, answers out."""

from __future__ import annotations

import socket
import threading

import numpy as np

from npc.inference import messages as m
from npc.inference import wire
from npc.inference.runners import EchoRunner
from npc.inference.testing import ScriptedRunner
from npc.inference.worker import run_batch, serve


def done(message: bytes) -> tuple[list[str], list]:
    msg = m.decode(message)
    assert isinstance(msg, m.Done)
    return msg.statuses, wire.unstack(msg.values)


def test_expired_requests_never_reach_the_runner():
    runner = ScriptedRunner()
    statuses, values = done(run_batch(runner, 7, [9.0, 11.0, 10.0], [{"n": 1}, {"n": 2}, {"n": 3}], clock=lambda: 10.0))
    assert statuses == ["dropped", "ok", "dropped"]  # deadline <= now is expired
    assert values[1]["payload"] == {"n": 2}
    assert runner.items == 1 and runner.calls == 1

    runner = ScriptedRunner()
    statuses, _ = done(run_batch(runner, 8, [1.0, 2.0], [{}, {}], clock=lambda: 5.0))
    assert statuses == ["dropped", "dropped"]
    assert runner.calls == 0  # no compute at all


def test_a_raising_runner_fails_its_batch_only():
    runner = ScriptedRunner()
    statuses, values = done(run_batch(runner, 1, [9.0, 9.0], [{"op": "raise"}, {}], clock=lambda: 0.0))
    assert statuses == ["error", "error"] and values == ["RuntimeError: scripted failure"] * 2
    statuses, _ = done(run_batch(runner, 2, [9.0], [{}], clock=lambda: 0.0))
    assert statuses == ["ok"]


def test_output_that_cannot_travel_fails_cleanly():
    class Bad:
        def run(self, batch):
            return [object() for _ in batch]

    statuses, values = done(run_batch(Bad(), 1, [9.0], [0], clock=lambda: 0.0))
    assert statuses == ["error"] and "cannot be sent" in values[0]


def test_uniform_arrays_travel_stacked_and_arrive_as_rows():
    rows = [np.full(3, i, np.float32) for i in range(4)]
    packed = wire.stack(rows)
    assert isinstance(packed, np.ndarray) and packed.shape == (4, 3)
    statuses, values = done(run_batch(EchoRunner(), 1, [9.0] * 4, wire.unpack(wire.pack(packed)), clock=lambda: 0.0))
    assert statuses == ["ok"] * 4
    for got, want in zip(values, rows):
        np.testing.assert_array_equal(got, want)
    mixed = [np.zeros(3, np.float32), np.zeros(4, np.float32)]
    assert wire.stack(mixed) is mixed and wire.stack([1, 2]) == [1, 2]


def test_serve_answers_batches_heartbeats_and_stops():
    parent, child = socket.socketpair()
    t = threading.Thread(target=serve, args=(child, EchoRunner(), 0.01), daemon=True)
    t.start()
    unpacker = wire.unpacker()
    obs = np.arange(6, dtype=np.float32).reshape(2, 3)
    parent.sendall(m.encode(m.Batch(1, [1e6, 1e6], [obs, "hi"])))  # budgets: seconds left
    seen = []
    parent.settimeout(10)
    while not any(isinstance(x, m.Done) for x in seen) or not any(isinstance(x, m.Heartbeat) for x in seen):
        unpacker.feed(parent.recv(65536))
        seen.extend(m.from_list(raw) for raw in unpacker)
    done_ = next(x for x in seen if isinstance(x, m.Done))
    values = done_.values
    assert (done_.batch_id, done_.statuses, values[1]) == (1, ["ok", "ok"], "hi")
    np.testing.assert_array_equal(values[0], obs)
    assert values[0].dtype == np.float32
    parent.sendall(m.encode(m.Stop()))
    t.join(10)
    assert not t.is_alive()
    parent.close()
    child.close()


def test_serve_returns_when_the_pool_end_closes():
    parent, child = socket.socketpair()
    t = threading.Thread(target=serve, args=(child, EchoRunner(), 10.0), daemon=True)
    t.start()
    parent.close()  # EOF: what a worker sees when the pool's process is gone
    t.join(10)
    assert not t.is_alive()
    child.close()


def test_a_batch_whose_budget_ran_out_on_the_way_is_dropped_without_compute():
    parent, child = socket.socketpair()
    runner = ScriptedRunner()
    t = threading.Thread(target=serve, args=(child, runner, 10.0), daemon=True)
    t.start()
    parent.sendall(m.encode(m.Batch(5, [0.0, 1e6], [{"n": 1}, {"n": 2}])))
    unpacker = wire.unpacker()
    parent.settimeout(10)
    got = []
    while not got:
        unpacker.feed(parent.recv(65536))
        got = [x for x in map(m.from_list, unpacker) if isinstance(x, m.Done)]
    assert got[0].statuses == ["dropped", "ok"] and got[0].values[1]["items"] == 1
    parent.sendall(m.encode(m.Stop()))
    t.join(10)
    parent.close()
    child.close()


def test_typed_messages_round_trip_and_garbage_is_refused_with_a_reason():
    msg = m.Pieces([[3, 0, "hi", None]], 0.5)
    assert m.decode(m.encode(msg)) == msg
    for raw, why in [
        (b"\xc1", "not a msgpack"),
        (wire.pack({"a": 1}), "first element"),
        (wire.pack(["nope"]), "unknown message tag"),
        (wire.pack(["cancel"]), "0 fields"),
        (wire.pack(["cancel", "x"]), "cancel.sid"),
        (wire.pack(["cancel", True]), "cancel.sid"),
    ]:
        try:
            m.decode(raw)
        except m.BadMessage as exc:
            assert why in str(exc), (raw, exc)
        else:
            raise AssertionError(f"{raw!r} decoded")
