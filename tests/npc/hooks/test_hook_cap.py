"""The hooks' hard cap (npc/hooks/guard.py hard_cap) when the cap passes while the cap is
being set up (a busy machine descheduled the process right after the timer was started):
the block is still stopped, and afterwards no handler or timer is left behind."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from npc.hooks.guard import HookTimeout, capping, hard_cap


def test_a_cap_that_passes_while_it_is_set_up_leaves_nothing_behind(monkeypatch):
    before = signal.getsignal(signal.SIGALRM)
    setitimer = signal.setitimer

    spun = []

    def slow_setitimer(which, seconds, interval=0.0):
        old = setitimer(which, seconds, interval)
        if seconds > 0 and not spun:  # the cap passes before __enter__ returns
            spun.append(seconds)
            end = time.perf_counter() + 3 * seconds
            while time.perf_counter() < end:
                pass  # the signal is handled here, in __enter__
        return old

    monkeypatch.setattr(signal, "setitimer", slow_setitimer)
    with pytest.raises(HookTimeout):
        with hard_cap(0.005):
            while True:  # a runaway hook: stopped by the repeat
                pass
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGALRM) == before
    assert spun == [0.005]
    end = time.perf_counter() + 0.1  # nothing raises later, in unrelated code
    while time.perf_counter() < end:
        pass


def test_a_signal_handled_as_the_cap_exits_does_not_abort_the_exit():
    """The handler runs as __exit__ is entered (before it disarms), as a signal pending at that
    moment would: it must not raise there, or the handler stays armed with the timer repeating."""
    before = signal.getsignal(signal.SIGALRM)
    raised = []

    def at_exit_entry(frame, event, arg):
        if event == "call" and frame.f_code is hard_cap.__exit__.__code__:
            try:
                cap._fire(signal.SIGALRM, frame)
            except HookTimeout:
                raised.append(frame.f_code.co_name)
        return None

    cap = hard_cap(10.0)
    with cap:
        sys.settrace(at_exit_entry)
    sys.settrace(None)
    assert raised == []
    assert signal.getsignal(signal.SIGALRM) == before and not cap.armed


def test_many_calls_in_one_capping_block_install_the_handler_once_and_each_is_capped(monkeypatch):
    """Hearing's block (hooks.capping): one signal.signal to install and one to restore however many calls;
    a runaway call in it is still stopped, those after it run, and an earlier timer comes back after."""
    before = signal.getsignal(signal.SIGALRM)
    prior = signal.setitimer(signal.ITIMER_REAL, 100.0)  # someone else's timer (pytest-timeout's: put back)
    installs = []
    real_signal = signal.signal

    def counting(sig, handler):
        installs.append(handler)
        return real_signal(sig, handler)

    monkeypatch.setattr(signal, "signal", counting)
    ran, stopped = [], []
    try:
        with capping():
            for k in range(50):
                try:
                    with hard_cap(0.005):
                        if k == 20:
                            while True:  # a runaway hook
                                pass
                        ran.append(k)
                except HookTimeout:
                    stopped.append(k)
            end = time.perf_counter() + 0.03  # between calls no timer runs: nothing raises here
            while time.perf_counter() < end:
                pass
        left, _ = signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, *prior)
        monkeypatch.undo()
    assert stopped == [20] and ran == [k for k in range(50) if k != 20]
    assert len(installs) == 2 and installs[-1] == before  # the block's handler, then the one before it
    assert signal.getsignal(signal.SIGALRM) == before
    assert 90.0 < left <= 100.0


def test_a_cap_inside_a_cap_inside_a_block_gives_the_outer_its_cap_back():
    before = signal.getsignal(signal.SIGALRM)
    timer = signal.getitimer(signal.ITIMER_REAL)[0]  # pytest-timeout's, if it runs one
    with capping():
        with pytest.raises(HookTimeout):
            with hard_cap(0.02):  # the outer: its own timer again once the inner is done
                with hard_cap(5.0):
                    pass
                while True:
                    pass
        with capping():  # not nested: the inner block does nothing
            with pytest.raises(HookTimeout):
                with hard_cap(0.005):
                    while True:
                        pass
    assert signal.getsignal(signal.SIGALRM) == before
    left = signal.getitimer(signal.ITIMER_REAL)[0]
    assert left == 0.0 if timer == 0.0 else timer - 5.0 < left <= timer
