"""The hooks' hard cap (npc/hooks/guard.py hard_cap) when the cap passes while the cap is
being set up (a busy machine descheduled the process right after the timer was started):
the block is still stopped, and afterwards no handler or timer is left behind."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from npc.hooks.guard import HookTimeout, hard_cap


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
