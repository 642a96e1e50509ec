"""The log's throttle (npc/minds/throttle.py), on a clock the test moves."""

from __future__ import annotations

from npc.minds import throttle
from npc.minds.throttle import Throttle


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_one_line_per_key_a_window_with_the_count_held_back():
    clock = Clock()
    t = Throttle(60.0, clock)
    assert t.admit("a") == 0  # the first is logged
    held = [t.admit("a") for _ in range(250)]
    assert held == [None] * 250
    assert t.admit("b") == 0  # another key is its own
    clock.t += 59.9
    assert t.admit("a") is None
    clock.t += 0.1  # a window after the last logged one
    assert t.admit("a") == 251  # logged, with what was held back since
    assert t.admit("a") is None
    clock.t += 60
    assert t.admit("a") == 1
    clock.t += 600
    assert t.admit("a") == 0  # nothing held back in between


def test_the_keys_are_bounded(monkeypatch):
    monkeypatch.setattr(throttle, "MAX_KEYS", 10)
    clock = Clock()
    t = Throttle(60.0, clock)
    for k in range(11):
        assert t.admit(k) == 0
    assert len(t.last) <= 10 and 10 in t.last  # the oldest went first
    assert t.admit(0) == 0  # forgotten: logged again
    assert t.admit(10) is None  # remembered
