"""The worker loop without a pool: batches in over a socket, answers out."""

from __future__ import annotations

import socket
import threading

import numpy as np

from npc.inference import wire
from npc.inference.runners import EchoRunner
from npc.inference.testing import ScriptedRunner
from npc.inference.worker import run_batch, serve


def done(message: bytes) -> tuple[list[str], list]:
    kind, _batch_id, statuses, values, _compute_s = wire.unpack(message)
    assert kind == "done"
    return statuses, wire.unstack(values)


def test_expired_requests_never_reach_the_runner():
    runner = ScriptedRunner()
    statuses, values = done(run_batch(runner, 7, [9.0, 11.0, 10.0], [{"n": 1}, {"n": 2}, {"n": 3}],
                                      clock=lambda: 10.0))
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
    statuses, values = done(run_batch(EchoRunner(), 1, [9.0] * 4, wire.unpack(wire.pack(packed)),
                                      clock=lambda: 0.0))
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
    parent.sendall(wire.pack(["batch", 1, [10, 11], [1e12, 1e12], [obs, "hi"]]))
    seen = []
    parent.settimeout(10)
    while not any(m[0] == "done" for m in seen) or not any(m[0] == "hb" for m in seen):
        unpacker.feed(parent.recv(65536))
        seen.extend(unpacker)
    _, batch_id, statuses, values, _ = next(m for m in seen if m[0] == "done")
    assert (batch_id, statuses, values[1]) == (1, ["ok", "ok"], "hi")
    np.testing.assert_array_equal(values[0], obs)
    assert values[0].dtype == np.float32
    parent.sendall(wire.pack(["stop"]))
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
