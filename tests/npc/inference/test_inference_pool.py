"""The inference pool with real worker processes.

No sleeps and no timing assertions: tests wait on futures, latches (events
shared with the workers) and process exits, each with a generous timeout.
Workers are told what to do through ScriptedRunner payloads ("block" on a
gate, "hang", "raise").
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from npc.inference import Inbox, Outcome, Pool, PoolConfig, RequestDropped
from npc.inference.devices import gpu_count
from npc.inference.testing import Latch
from support.paths import ROOT

SCRIPTED = "npc.inference.testing:ScriptedRunner"
WAIT = 30.0  # seconds: the bound for anything a test waits on (never reached when all is well)
FAR = 60.0  # seconds: a deadline that does not pass during a test


def far() -> float:
    return time.monotonic() + FAR


@pytest.fixture
def gated():
    """A pool of one ScriptedRunner worker and its gate: a {"op": "block"}
    request sets `started` and holds the worker until `gate` is set."""
    gate, started = Latch(), Latch()
    pools = []

    def make(**cfg) -> Pool:
        config = PoolConfig(
            runner=SCRIPTED, runner_options={"gate": gate, "started": started}, workers=1, max_wait_s=0.0, **cfg
        )
        pool = Pool(config).start()
        pools.append(pool)
        assert pool.wait_ready(WAIT), pool.workers()
        return pool

    make.gate, make.started = gate, started
    yield make
    gate.set()
    for pool in pools:
        pool.close()
        # Every request ended exactly once.
        s = pool.stats
        assert s.submitted == s.on_time + s.late + s.dropped + s.failed, s.snapshot()


def block_worker(pool: Pool, gated) -> object:
    fut = pool.submit({"op": "block"}, far())
    assert gated.started.wait(WAIT)
    return fut


def test_echo_round_trip_with_numpy_and_inbox():
    with Pool(PoolConfig(workers=1)) as pool:
        inbox = Inbox()
        obs = np.random.default_rng(0).random((3, 5)).astype(np.float32)
        futs = pool.submit_many([obs, {"k": [1, 2]}, "text"], far(), inbox=inbox)
        assert all(f.wait(WAIT) for f in futs)
        assert [f.outcome for f in futs] == [Outcome.ON_TIME] * 3
        np.testing.assert_array_equal(futs[0].result(), obs)
        assert futs[1].result() == {"k": [1, 2]} and futs[2].result() == "text"
        polled = inbox.poll()
        assert sorted(map(id, polled)) == sorted(map(id, futs)) and inbox.poll() == []
        assert pool.stats.on_time == 3


def test_workers_run_at_the_configured_nice_value():
    # A positive nice value lets the tick process take the CPU first (PoolConfig.nice).
    with Pool(PoolConfig(workers=1, nice=5)) as pool:
        assert pool.wait_ready(WAIT)
        pid = pool.workers()[0].pid
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
    with pytest.raises(ValueError, match="nice"):
        PoolConfig(nice=25).validate()


def test_a_workers_library_progress_bar_stays_out_of_the_servers_log(capfd, monkeypatch):
    # transformers' GGUF loader draws a tqdm bar (272 redraws) in every dialogue worker; the
    # worker silences such bars before it imports anything (tqdm reads TQDM_DISABLE at import).
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with Pool(PoolConfig(runner=SCRIPTED, runner_options={"progress": 37}, workers=1)) as pool:
        assert pool.wait_ready(WAIT), pool.workers()
        assert pool.submit({"op": "echo"}, far()).wait(WAIT)
    err = capfd.readouterr().err
    assert "scripted loading" not in err and "37/37" not in err, err[-500:]


async def test_futures_are_awaitable():
    with Pool(PoolConfig(workers=1)) as pool:
        assert await pool.submit(41, far()) == 41


def test_expired_request_is_dropped_without_compute(gated):
    pool = gated(max_batch=8)
    before = pool.submit({"n": "already expired"}, time.monotonic() - 1.0)
    assert before.wait(WAIT) and before.outcome is Outcome.DROPPED
    blocker = block_worker(pool, gated)
    # Queued behind the blocked worker; its deadline passes while it waits.
    short = pool.submit({"n": "short"}, time.monotonic() + 0.2)
    assert short.wait(WAIT)
    assert short.outcome is Outcome.DROPPED and "deadline passed" in short.error
    with pytest.raises(RequestDropped):
        short.result()
    gated.gate.set()
    probe = pool.submit({"n": "probe"}, far())
    out = probe.result(WAIT)
    # The runner saw two requests in two calls: the blocker, then the probe.
    assert (out["call"], out["items"]) == (2, 2)
    assert blocker.result(WAIT)["call"] == 1
    assert pool.stats.dropped == 2


def test_earliest_deadline_first(gated):
    pool = gated(max_batch=1)
    block_worker(pool, gated)
    t = far()
    a = pool.submit({"n": "a"}, t + 3)
    b = pool.submit({"n": "b"}, t + 1)
    c = pool.submit({"n": "c"}, t + 2)
    gated.gate.set()
    calls = {name: f.result(WAIT)["call"] for name, f in (("a", a), ("b", b), ("c", c))}
    assert calls == {"b": 2, "c": 3, "a": 4}


def test_batches_fill_up_to_the_limit_in_deadline_order(gated):
    pool = gated(max_batch=4)
    block_worker(pool, gated)
    t = far()
    futs = pool.submit_many([{"i": i} for i in range(10)], [t + (9 - i) for i in range(10)])
    gated.gate.set()
    outs = [f.result(WAIT) for f in futs]
    batches: dict[int, list[int]] = {}
    for o in outs:
        batches.setdefault(o["call"], []).append(o["payload"]["i"])
    assert [len(v) for _, v in sorted(batches.items())] == [4, 4, 2]
    # EDF: the latest requests (earliest deadlines) go first, in deadline order within a batch.
    first = sorted(batches.items())[0][1]
    assert sorted(first) == [6, 7, 8, 9]
    assert all(o["size"] == len(batches[o["call"]]) for o in outs)
    assert max(f.batch_size for f in futs) == 4


def test_killed_worker_fails_its_requests_and_restarts(gated):
    pool = gated(max_batch=8)
    running = block_worker(pool, gated)
    queued_behind = pool.submit({"n": "queued"}, far())
    old_pid = pool.workers()[0].pid
    os.kill(old_pid, signal.SIGKILL)
    assert running.wait(WAIT)
    assert running.outcome is Outcome.FAILED and "exited" in running.error
    # A queued request was never sent: it waits for the restarted worker.
    out = queued_behind.result(WAIT)
    assert out["pid"] != old_pid and out["call"] == 1
    assert pool.wait_ready(WAIT)
    info = pool.workers()[0]
    assert info.starts == 2 and info.pid != old_pid
    assert pool.stats.worker_deaths == 1 and pool.stats.failed == 1


def test_a_warm_standby_takes_over_a_killed_worker_at_once(gated):
    # PoolConfig.standby: a second process per worker, loaded and sent nothing, takes over when the
    # worker dies (no start while requests wait); the lost slot loads a new standby later.
    from npc.inference.local import WorkerState, _can_renice

    pool = gated(max_batch=8, standby=True, standby_delay_s=0.0)
    ex = pool.executors[0]
    assert pool.wait_for(lambda: ex.spares[0].state is WorkerState.IDLE, WAIT), ex.spares
    old_pid, spare_pid = pool.workers()[0].pid, ex.spares[0].pid
    assert spare_pid not in (None, old_pid)
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    renice = _can_renice(mine)
    if renice:  # it loads at the lowest priority, not the worker's
        assert os.getpriority(os.PRIO_PROCESS, spare_pid) == min(19, mine + 19)
    assert pool.submit({"n": "before"}, far()).result(WAIT)["pid"] == old_pid  # the standby is sent nothing
    running = block_worker(pool, gated)
    os.kill(old_pid, signal.SIGKILL)
    assert running.wait(WAIT) and running.outcome is Outcome.FAILED
    # the next standby is at its low priority from the moment its process exists: a spawned child
    # re-imports the parent's main module before worker.main runs, and that must not run at the tick's
    assert pool.wait_for(lambda: ex.spares[0].pid not in (None, old_pid, spare_pid), WAIT), ex.spares
    if renice:
        assert os.getpriority(os.PRIO_PROCESS, ex.spares[0].pid) == min(19, mine + 19)
    out = pool.submit({"n": "after"}, far()).result(WAIT)
    assert out["pid"] == spare_pid and out["call"] == 1  # the standby's first batch
    info = pool.workers()[0]
    assert info.pid == spare_pid and info.starts == 2 and info.batches == 2
    if renice:  # every thread of it at the worker's priority now
        tids = [int(t) for t in os.listdir(f"/proc/{spare_pid}/task")]
        assert {os.getpriority(os.PRIO_PROCESS, t) for t in tids} == {mine}
    # a new standby in the lost worker's slot: a third process
    assert pool.wait_for(lambda: ex.spares[0].state is WorkerState.IDLE, WAIT), ex.spares
    assert ex.spares[0].pid not in (old_pid, spare_pid)
    assert pool.stats.worker_deaths == 1 and pool.stats.worker_starts == 3


def test_hung_worker_is_detected_by_heartbeat_and_restarted(gated):
    pool = gated(max_batch=8, heartbeat_s=0.05, hang_timeout_s=1.0)
    old_pid = pool.workers()[0].pid
    hung = pool.submit({"op": "hang"}, far())
    assert hung.wait(WAIT)
    assert hung.outcome is Outcome.FAILED and "stopped answering" in hung.error
    assert pool.stats.worker_hangs == 1
    after = pool.submit({"n": "after"}, far()).result(WAIT)
    assert after["pid"] != old_pid


def test_runner_error_fails_the_batch_and_the_worker_lives(gated):
    pool = gated(max_batch=8)
    pid = pool.workers()[0].pid
    bad = pool.submit({"op": "raise"}, far())
    assert bad.wait(WAIT) and bad.outcome is Outcome.FAILED and "scripted failure" in bad.error
    assert pool.submit({}, far()).result(WAIT)["pid"] == pid
    assert pool.stats.worker_deaths == 0


def test_cancel_drops_a_queued_request(gated):
    pool = gated(max_batch=8)
    block_worker(pool, gated)
    fut = pool.submit({"n": "cancel me"}, far())
    assert fut.cancel()
    assert fut.wait(WAIT) and fut.outcome is Outcome.DROPPED and fut.error == "cancelled"


def test_close_fails_queued_requests_and_later_submits():
    pool = Pool(PoolConfig(workers=1, max_wait_s=10.0, latency_prior_s=0.001)).start()
    assert pool.wait_ready(WAIT)
    waiting = pool.submit("held back by max_wait_s", far())
    pool.close()
    assert waiting.done() and waiting.outcome is Outcome.FAILED
    after = pool.submit("too late", far())
    assert after.outcome is Outcome.FAILED
    assert pool.stats.submitted == pool.stats.failed == 2


def test_cpu_path_runs_a_torch_module_factory():
    torch = pytest.importorskip("torch")
    from npc.inference.testing import tiny_mlp

    cfg = PoolConfig(
        runner="npc.inference.testing:tiny_mlp",
        runner_options={"in_dim": 16, "out_dim": 4, "seed": 3},
        devices=["cpu"],
        threads=1,
    )
    x = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    with Pool(cfg) as pool:
        futs = pool.submit_many(list(x), far())
        got = np.stack([f.result(WAIT) for f in futs])
        assert pool.workers()[0].device == "cpu"
    with torch.no_grad():
        want = tiny_mlp(16, 32, 4, seed=3)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(gpu_count() > 0, reason="needs a machine without a usable GPU")
def test_gpu_device_without_a_gpu_is_reported_not_hidden():
    cfg = PoolConfig(runner="npc.inference.testing:tiny_mlp", devices=["cuda:0"], restart_backoff_max_s=30.0)
    with Pool(cfg) as pool:
        fut = pool.submit(np.zeros(16, np.float32), time.monotonic() + 0.5)
        # The worker says why it cannot start...
        assert pool.wait_for(lambda: "CUDA" in (pool.workers()[0].last_error or ""), WAIT), pool.workers()
        assert pool.stats.workers_ready == 0
        # ...and requests, never run, fall back at their deadline.
        assert fut.wait(WAIT) and fut.outcome is Outcome.DROPPED


# -- process lifetime: run a pool in a child process and watch its workers ---------------

CHILD = """
import json, sys, time
import numpy as np
from npc.inference import Pool, PoolConfig
cfg = PoolConfig(runner=sys.argv[1], workers=2, threads=1)
pool = Pool(cfg).start()
assert pool.wait_ready(60), pool.workers()
out = pool.submit(np.ones(16, np.float32), time.monotonic() + 60).result(60)
print(json.dumps({"pids": [w.pid for w in pool.workers()], "torch": "torch" in sys.modules,
                  "out": np.asarray(out).tolist()}), flush=True)
if sys.argv[2] == "close":
    pool.close()
    print("closed", flush=True)
sys.stdin.read()
"""


def start_child(runner: str, mode: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, runner, mode], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    assert line, f"child exited with {proc.wait(WAIT)}"
    return proc, json.loads(line)


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until each process has exited (zombies count as exited); return those still running."""
    end = time.monotonic() + timeout
    alive = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                alive.append(pid)
        finally:
            os.close(fd)
    return alive


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_no_orphan_workers_after_the_parent_is_killed(sig):
    proc, info = start_child("npc.inference.runners:EchoRunner", "hold")
    pids = info["pids"]
    assert len(pids) == 2 and wait_gone(pids, 0) == pids  # running
    proc.send_signal(sig)
    proc.wait(WAIT)
    assert wait_gone(pids, WAIT) == []


def test_close_stops_workers_and_the_parent_never_imports_torch():
    proc, info = start_child("npc.inference.testing:tiny_mlp", "close")
    try:
        assert info["torch"] is False  # the pool's process ran a torch model without importing torch
        assert len(info["out"]) == 4
        assert proc.stdout.readline().strip() == "closed"
        assert wait_gone(info["pids"], WAIT) == []
    finally:
        proc.kill()
        proc.wait(WAIT)


def test_a_full_queue_drops_at_once_and_counters_render_for_metrics(gated):
    pool = gated(max_batch=8, max_queue=2)
    block_worker(pool, gated)
    kept = pool.submit_many([{"n": 1}, {"n": 2}], far())
    over = pool.submit({"n": 3}, far())
    assert over.wait(WAIT) and over.outcome is Outcome.DROPPED and "queue full" in over.error
    gated.gate.set()
    assert all(f.result(WAIT) for f in kept)
    families = {f.name: f for f in pool.collect()}
    requests = {s.labels["outcome"]: s.value for s in families["npcworld_inference_requests"].samples}
    assert requests["dropped"] == 1 and requests["on_time"] == 3
    assert families["npcworld_inference_requests"].type == "counter"
    assert families["npcworld_inference_queued"].type == "gauge"
