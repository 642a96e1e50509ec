"""Streaming runners in the inference pool: the step loop in a real worker process.

No sleeps, no timing assertions: tests wait for streams to end (pool.wait_for)
and on latches shared with the worker.
"""

from __future__ import annotations

import time

import pytest

from npc.inference import Pool, PoolConfig, StreamEnd
from npc.inference.testing import Latch

RUNNER = "npc.inference.testing:ScriptedStreamRunner"
WAIT = 30.0


@pytest.fixture
def pool():
    gate, started = Latch(), Latch()
    p = Pool(
        PoolConfig(
            runner=RUNNER,
            runner_options={"gate": gate, "started": started},
            workers=1,
            devices=["cpu"],
            threads=1,
            max_streams=4,
        )
    ).start()
    p.gate, p.started = gate, started
    assert p.wait_ready(WAIT), p.workers()
    yield p
    gate.set()
    p.close()


def drain(pool, streams):
    assert pool.wait_for(lambda: all(s.done() for s in streams), WAIT), streams
    return [s.take() for s in streams]


def test_pieces_arrive_in_order_and_the_stream_ends_ok(pool):
    s = pool.open_stream({"n": 5, "tag": "a"})
    (pieces,) = drain(pool, [s])
    assert [p["text"] for p in pieces] == [f"a:{i}" for i in range(1, 6)]
    assert s.end == StreamEnd.OK and s.first_at is not None
    assert pool.stats.streams_ended == {"ok": 1}


def test_streams_join_and_leave_the_running_batch(pool):
    # Hold the worker inside a step, so that b and c arrive while a runs.
    pool.gate, gate = None, pool.gate
    a = pool.open_stream({"n": 4, "tag": "a", "op": "gate"})
    assert pool.started.wait(WAIT)
    b = pool.open_stream({"n": 2, "tag": "b"})
    c = pool.open_stream({"n": 6, "tag": "c"})
    # Both handed to the worker (in its socket) before a's step ends: they join together.
    assert pool.wait_for(lambda: b.worker is not None and c.worker is not None, WAIT)
    gate.set()
    pa, pb, pc = drain(pool, [a, b, c])
    assert [p["text"] for p in pb] == ["b:1", "b:2"] and len(pc) == 6 and len(pa) == 4
    # b and c joined after a had started; b left before c finished.
    assert pa[0]["batch"] == 1
    assert pb[0]["joined"] > pa[0]["step"]
    assert max(p["batch"] for p in pc) == 3
    assert pc[-1]["batch"] == 1  # alone at the end: the others left the batch
    assert all(s.end == StreamEnd.OK for s in (a, b, c))


def test_max_streams_bounds_the_running_batch(pool):
    streams = [pool.open_stream({"n": 3}) for _ in range(9)]
    results = drain(pool, streams)
    assert max(p["batch"] for r in results for p in r) <= 4
    assert all(len(r) == 3 for r in results)


def test_cancel_frees_the_stream_at_the_worker(pool):
    pool.gate, gate = None, pool.gate
    a = pool.open_stream({"n": 1000, "op": "gate"})
    assert pool.started.wait(WAIT)
    assert a.cancel()
    gate.set()
    b = pool.open_stream({"n": 1})
    (pb,) = drain(pool, [b])
    assert a.end == StreamEnd.CANCELLED
    assert a.sid in pb[0]["cancelled"]  # the runner dropped it before b's step
    assert not a.cancel()


def test_cancel_while_queued_never_starts():
    p = Pool(PoolConfig(runner=RUNNER, workers=1, devices=["cpu"], threads=1)).start()
    try:
        s = p.open_stream({"n": 3})
        assert s.cancel()  # before the worker is even ready
        assert p.wait_ready(WAIT)
        t = p.open_stream({"n": 1})
        drain(p, [t])
        assert s.end == StreamEnd.CANCELLED and s.pieces == 0
    finally:
        p.close()


def test_a_raising_step_fails_its_batch_and_the_worker_carries_on(pool):
    s = pool.open_stream({"op": "raise"})
    bad = pool.open_stream({"op": "bad"})
    drain(pool, [s, bad])
    assert s.end == StreamEnd.FAILED and "scripted failure" in s.error
    assert bad.end == StreamEnd.FAILED and "scripted bad request" in bad.error
    ok = pool.open_stream({"n": 2})
    drain(pool, [ok])
    assert ok.end == StreamEnd.OK


def test_a_dying_worker_fails_its_streams_and_restarts(pool):
    a = pool.open_stream({"n": 10**9})  # runs until the crash
    crash = pool.open_stream({"op": "crash"})
    drain(pool, [a, crash])
    assert a.end == StreamEnd.FAILED and crash.end == StreamEnd.FAILED
    assert "exited" in crash.error
    after = pool.open_stream({"n": 2})
    drain(pool, [after])
    assert after.end == StreamEnd.OK
    assert pool.stats.worker_deaths == 1


def test_an_expired_stream_is_dropped_without_compute(pool):
    s = pool.open_stream({"n": 2}, deadline=time.monotonic() - 1)
    drain(pool, [s])
    assert s.end == StreamEnd.DROPPED and s.pieces == 0


def test_close_fails_what_is_left():
    p = Pool(PoolConfig(runner=RUNNER, workers=1, devices=["cpu"], threads=1)).start()
    s = p.open_stream({"n": 10**9})
    p.close()
    assert s.end == StreamEnd.FAILED
    late = p.open_stream({"n": 1})
    assert late.end == StreamEnd.FAILED
