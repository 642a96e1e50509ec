"""The pool's scheduling policy, driven with plain numbers: no processes, no clock."""

from __future__ import annotations

import pytest

from npc.inference.devices import plan_devices
from npc.inference.scheduler import BatchLatency, Pending, Scheduler, size_bucket


def pending(deadline: float, seq: int, arrived: float = 0.0) -> Pending:
    return Pending(deadline, seq, arrived, item=f"r{seq}")


def test_earliest_deadline_first_and_ties_by_arrival():
    s = Scheduler(max_batch=10, max_wait_s=0.0)
    for seq, dl in enumerate([5.0, 1.0, 3.0, 1.0, 2.0]):
        s.add(pending(dl, seq))
    batch = s.decide(0.0, BatchLatency()).batch
    assert [(p.deadline, p.seq) for p in batch] == [(1.0, 1), (1.0, 3), (2.0, 4), (3.0, 2), (5.0, 0)]
    assert len(s) == 0


def test_batch_never_exceeds_the_limit_and_full_batches_go_at_once():
    s = Scheduler(max_batch=4, max_wait_s=10.0)  # a long wait: only a full batch may go now
    for seq in range(10):
        s.add(pending(100.0 + seq, seq))
    lat = BatchLatency(prior_s=0.001)
    sizes = []
    while True:
        d = s.decide(0.0, lat)
        if not d.batch:
            break
        sizes.append(len(d.batch))
    # The two full batches leave at once; the remaining two wait for company.
    assert sizes == [4, 4]
    assert len(s) == 2
    # ...but only for max_wait_s after the first of them arrived.
    assert s.decide(10.0, lat).batch and len(s) == 0


def test_waits_for_more_until_the_earliest_deadline_would_be_missed():
    s = Scheduler(max_batch=64, max_wait_s=1.0, margin_s=0.001)
    lat = BatchLatency(prior_s=0.010)
    s.add(pending(deadline=0.050, seq=0, arrived=0.0))
    d = s.decide(0.0, lat)
    # latest start = 50 ms - 10 ms estimated - 1 ms margin
    assert d.batch == [] and d.wake_at == pytest.approx(0.039)
    assert s.decide(0.0389, lat).batch == []
    s.add(pending(deadline=0.200, seq=1, arrived=0.030))
    batch = s.decide(0.039, lat).batch
    assert [p.seq for p in batch] == [0, 1]


def test_max_wait_bounds_the_wait_for_a_far_deadline():
    s = Scheduler(max_batch=64, max_wait_s=0.002)
    s.add(pending(deadline=10.0, seq=0, arrived=1.0))
    d = s.decide(1.0, BatchLatency())
    assert d.batch == [] and d.wake_at == pytest.approx(1.002)
    assert len(s.decide(1.002, BatchLatency()).batch) == 1


def test_a_slower_measured_batch_makes_the_scheduler_start_earlier():
    fast, slow = BatchLatency(prior_s=0.001), BatchLatency(prior_s=0.001)
    for _ in range(50):
        fast.observe(8, 0.002)
        slow.observe(8, 0.030)
    s = Scheduler(max_batch=64, max_wait_s=1.0, margin_s=0.0)
    for seq in range(8):
        s.add(pending(deadline=0.050, seq=seq))
    assert s.decide(0.0, fast).wake_at == pytest.approx(0.048)
    assert s.decide(0.0, slow).wake_at == pytest.approx(0.020)


def test_expire_removes_exactly_the_passed_deadlines():
    s = Scheduler(max_batch=8)
    for seq, dl in enumerate([1.0, 2.0, 3.0, 2.0]):
        s.add(pending(dl, seq))
    gone = s.expire(2.0)  # deadline <= now has passed
    assert sorted(p.seq for p in gone) == [0, 1, 3]
    assert len(s) == 1 and s.next_deadline() == 3.0


def test_cancelled_requests_are_skipped():
    s = Scheduler(max_batch=8, max_wait_s=0.0)
    ps = [pending(float(i), i) for i in range(4)]
    for p in ps:
        s.add(p)
    s.cancel(ps[0])
    s.cancel(ps[2])
    assert len(s) == 2 and s.next_deadline() == 1.0
    assert [p.seq for p in s.decide(0.0, BatchLatency()).batch] == [1, 3]


def test_queue_bound_refuses_beyond_max_queue():
    s = Scheduler(max_queue=2)
    assert s.add(pending(1.0, 0)) and s.add(pending(1.0, 1))
    assert not s.add(pending(1.0, 2))
    assert len(s) == 2


def test_latency_estimate_is_an_ewma_per_size_bucket_with_conservative_fallbacks():
    lat = BatchLatency(prior_s=0.005, alpha=0.5)
    assert lat.estimate(100) == 0.005  # nothing measured: the prior
    lat.observe(16, 0.010)
    lat.observe(16, 0.020)
    assert lat.estimate(16) == pytest.approx(0.015)  # 0.010 + 0.5 * (0.020 - 0.010)
    assert lat.estimate(9) == pytest.approx(0.015)  # same bucket (16)
    assert lat.estimate(2) == pytest.approx(0.015)  # smaller unmeasured: the nearest larger measured
    assert lat.estimate(64) == pytest.approx(0.060)  # larger unmeasured: scaled linearly from 16
    assert [size_bucket(n) for n in (1, 2, 3, 4, 5, 255, 256, 257)] == [1, 2, 4, 4, 8, 256, 256, 512]


def test_devices_one_worker_per_gpu_else_cpu():
    assert plan_devices(None, None, gpus=0) == ["cpu"]
    assert plan_devices(2, None, gpus=0) == ["cpu", "cpu"]
    assert plan_devices(None, None, gpus=2) == ["cuda:0", "cuda:1"]
    assert plan_devices(3, None, gpus=2) == ["cuda:0", "cuda:1", "cuda:0"]
    assert plan_devices(None, ["cuda:1", "cpu"], gpus=0) == ["cuda:1", "cpu"]


def test_higher_priority_first_then_earliest_deadline_within_a_level():
    s = Scheduler(max_batch=3, max_wait_s=0.0)
    for seq, (dl, prio) in enumerate([(1.0, 0), (5.0, 2), (3.0, 2), (0.5, 0), (9.0, 1)]):
        s.add(Pending(dl, seq, 0.0, item=seq, priority=prio))
    assert s.next_deadline() == 0.5  # the earliest over every level: what the batching wait is bounded by
    first = s.decide(0.0, BatchLatency()).batch
    assert [(p.priority, p.deadline) for p in first] == [(2, 3.0), (2, 5.0), (1, 9.0)]
    assert [p.deadline for p in s.decide(0.0, BatchLatency()).batch] == [0.5, 1.0]
    s.add(Pending(2.0, 9, 0.0, priority=5))
    s.add(Pending(4.0, 10, 0.0, priority=0))
    assert [p.seq for p in s.expire(3.0)] == [9]  # expiry looks at every level
    assert [p.seq for p in s.drain()] == [10] and len(s) == 0


class _S:
    def __init__(self, deadline=None):
        self.deadline, self.end = deadline, None


def test_stream_admission_is_first_come_first_served_into_the_room_there_is():
    from npc.inference.scheduler import StreamAdmission

    q = StreamAdmission(max_queue=4)
    streams = [_S(), _S(1.0), _S(), _S()]
    assert all(q.add(s) for s in streams) and not q.add(_S())  # bounded
    streams[2].end = "cancelled"  # ended while queued: forgotten
    assert q.expire(1.0) == [streams[1]]  # admission deadline passed
    assert q.next_deadline() is None
    placed = q.admit([("w0", 1), ("w1", 0), ("w2", 5)])
    assert placed == [("w0", streams[0]), ("w2", streams[3])] and len(q) == 0
