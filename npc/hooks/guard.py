"""Designer hooks: a Python module beside an NPC file, run contained.

Hooks (all optional, plain functions; docs/designers.md has the reference):

    on_spawn(npc)                the NPC entered the world
    on_decide(npc)               time to re-think (about every 0.5 s)
    on_hear(npc, speaker, text)  a player spoke to it (npc.spoken_to: its answer replaces the model's,
                                 npc/dialogue/service.py), or a line was said within its hearing
    on_event(npc, event)         something happened: arrived, noticed, lost, schedule, need_low

`npc` is a `Context`: what the NPC perceives, its stats and memory, and
methods that emit one intent (the last call wins). A hook never gets the
world: the runtime applies the intent after the hook returns, and only if the
action is in the NPC's allowed list (otherwise `NotAllowed` is raised in the
hook, which counts as a hook error).

Containment (`Guard`, one per NPC file):
- an exception in a hook is caught; the NPC falls back to its built-in
  behaviour for that decision and the error is reported with the NPC's id
  and the traceback;
- every call is timed (time.perf_counter); a call over `budget_s` is an
  overrun and is reported; `MAX_OVERRUNS` overruns among the last
  `OVERRUN_WINDOW` calls disable the file's hooks until the file (or its
  module) changes, or an admin reload;
- a hard cap stops a call that runs away (an infinite loop): on the main
  thread, SIGALRM (signal.setitimer) fires `cap_s` after the call began and
  raises `HookTimeout` inside the hook, then again every 10 ms until the hook
  gives up. HookTimeout derives from BaseException, so `except Exception` in
  a hook does not swallow it. Limits: a hook blocked inside C code that does
  not check for signals (a huge regex, a long numpy call, a C extension)
  is only stopped when that call returns; a bare `except:` inside a loop can
  swallow the timeout; off the main thread there is no hard cap (timing,
  reports and disabling still work). Any earlier SIGALRM timer (such as
  pytest-timeout's) is restored after each call. Many calls in a row (a
  tick's hearing: ~60 on_hear calls of one bard at 10,000 NPCs) share one
  `capping()` block: the handler is installed once for the block and each
  call only sets the timer (3.4 us a call instead of 12.6 us on this machine).
"""

from __future__ import annotations

import ast
import difflib
import logging
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from types import CodeType
from typing import TYPE_CHECKING, Any, Callable, Literal

from npc.files.schema import Definition, Problem

if TYPE_CHECKING:
    from npc.hooks.context import Context

log = logging.getLogger("npcworld.npc")

HOOKS: dict[str, tuple[str, ...]] = {
    "on_spawn": ("npc",),
    "on_decide": ("npc",),
    "on_hear": ("npc", "speaker", "text"),
    "on_event": ("npc", "event"),
}
MAX_OVERRUNS = 3  # overruns among the last OVERRUN_WINDOW calls that disable a file's hooks
OVERRUN_WINDOW = 20
CAP_FACTOR = 4  # the hard cap is this many budgets
REPEAT_S = 0.01  # after the cap, HookTimeout is raised again this often until the hook returns


class HookTimeout(BaseException):
    """Raised inside a hook that ran past the hard cap."""


class NotAllowed(Exception):
    """A hook asked for an action its NPC file does not allow."""


# -- the module: static check, then install --------------------------------------------


def check_source(path: str, text: str) -> tuple[CodeType | None, frozenset[str], list[Problem]]:
    """Compile a hooks module without running it: (code, hook names, problems)."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        col = f", column {e.offset}" if e.offset else ""
        return None, frozenset(), [Problem(path, e.lineno or 1, f"{e.msg}{col}", "valid Python")]
    problems: list[Problem] = []
    names = set()
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.name.startswith("on_"):
            continue
        if node.name not in HOOKS:
            close = difflib.get_close_matches(node.name, list(HOOKS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                Problem(path, node.lineno, f"unknown hook {node.name!r}{hint}", "one of " + ", ".join(HOOKS))
            )
            continue
        if isinstance(node, ast.AsyncFunctionDef):
            problems.append(Problem(path, node.lineno, f"{node.name} is async", f"a plain def {node.name}(...)"))
            continue
        a = node.args
        positional = len(a.posonlyargs) + len(a.args)
        want = HOOKS[node.name]
        required = positional - len(a.defaults)
        if not (required <= len(want) <= positional or (a.vararg and required <= len(want))):
            problems.append(
                Problem(
                    path,
                    node.lineno,
                    f"{node.name} takes {positional} parameter(s)",
                    f"def {node.name}({', '.join(want)})",
                )
            )
            continue
        names.add(node.name)
    if not names and not problems:
        problems.append(Problem(path, 1, "the module defines no hooks", "at least one of " + ", ".join(HOOKS)))
    if problems:
        return None, frozenset(), problems
    return compile(tree, path, "exec"), frozenset(names), []


def _traceback_line(exc: BaseException, path: str) -> int:
    tb = traceback.extract_tb(exc.__traceback__)
    lines = [f.lineno for f in tb if f.filename == path and f.lineno]
    return lines[-1] if lines else 1


def install(defn: Definition, cap_s: float) -> tuple[dict[str, Callable] | None, list[Problem]]:
    """Run a hooks module's top level (under the hard cap); its hook functions, or problems."""
    if defn.hooks_code is None:
        return {}, []
    path = defn.hooks_code.co_filename
    namespace: dict[str, Any] = {"__name__": f"npc_hooks.{defn.id}", "__file__": path}
    try:
        with hard_cap(cap_s):
            exec(defn.hooks_code, namespace)
    except HookTimeout:
        return None, [
            Problem(
                path,
                1,
                f"the module's top level ran longer than {cap_s * 1000:.0f} ms",
                "a module that only defines functions and constants",
            )
        ]
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        return None, [
            Problem(
                path,
                _traceback_line(e, path),
                f"the module raised {type(e).__name__}: {e}",
                "a module that imports without errors",
            )
        ]
    fns = {name: namespace[name] for name in defn.hook_names if callable(namespace.get(name))}
    return fns, []


# -- the hard cap --------------------------------------------------------------------


class hard_cap:
    """Raise HookTimeout in the block after `cap_s` seconds (main thread only; 0 = no cap).
    Inside an open `capping()` block it only starts and stops the timer: the handler is the block's."""

    def __init__(self, cap_s: float):
        self.cap_s = cap_s
        self.armed = False

    def _fire(self, signum, frame) -> None:
        # Never inside __exit__: a signal handled at its entry (before `armed = False`) would abort it,
        # leaving this handler armed and the timer repeating (HookTimeout later, anywhere).
        if self.armed and (frame is None or frame.f_code is not hard_cap.__exit__.__code__):
            raise HookTimeout()

    def __enter__(self):
        self.on = self.cap_s > 0 and threading.current_thread() is threading.main_thread()
        if self.on:
            self.t0 = time.monotonic()
            self.block = _open
            if self.block is not None:  # the block's handler calls ours (a cap inside a cap: the inner)
                self.outer, self.block.cap = self.block.cap, self
            else:
                self.old_handler = signal.signal(signal.SIGALRM, self._fire)
            self.old_timer = signal.setitimer(signal.ITIMER_REAL, self.cap_s, REPEAT_S)
            # Armed last: a signal handled before this line (the process descheduled past the cap right
            # after setitimer, seen on 2 cores at load 14) is ignored, and the repeat fires in the block.
            # Armed first, it raised in __enter__, so __exit__ never ran: the handler stayed armed and
            # the repeating timer raised HookTimeout later in unrelated code (a training rollout died).
            self.armed = True
        return self

    def __exit__(self, *exc: object) -> Literal[False]:  # an exception in the block goes on
        if self.on:
            self.armed = False  # first: a signal that lands from here on is ignored
            signal.setitimer(signal.ITIMER_REAL, 0)
            if self.block is not None:
                self.block.cap = self.outer
            else:
                signal.signal(signal.SIGALRM, self.old_handler)
            _restore_timer(self.old_timer, self.t0)
        return False


def _restore_timer(old: tuple[float, float], since: float) -> None:
    """Put back someone else's SIGALRM timer (e.g. pytest-timeout's), less the time passed since `since`."""
    delay, interval = old
    if delay > 0:
        left = delay - (time.monotonic() - since)
        signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), interval)


_open: capping | None = None  # the capping() block open on the main thread, if any


class capping:
    """Many capped calls in a row (a tick's hearing): one SIGALRM handler for the whole block.

    signal.signal costs ~5 us here and a call needs two (install, restore): a hard_cap took 12.6 us
    alone and 3.4 us in a block (timeit, this machine); each hard_cap in the block still gets its full `cap_s` from its
    own start. Between calls the timer is stopped, and someone else's timer (pytest-timeout's) is
    held back for the block and put back after it, as hard_cap does for one call. Not nested: an
    inner block (or one off the main thread) does nothing.
    """

    def __init__(self) -> None:
        self.cap: hard_cap | None = None  # the call running now

    def _fire(self, signum, frame) -> None:
        cap = self.cap
        if cap is not None:
            cap._fire(signum, frame)

    def __enter__(self):
        global _open
        self.on = _open is None and threading.current_thread() is threading.main_thread()
        if self.on:
            self.t0 = time.monotonic()
            self.old_handler = signal.signal(signal.SIGALRM, self._fire)
            self.old_timer = signal.setitimer(signal.ITIMER_REAL, 0)
            _open = self
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        global _open
        if self.on:
            _open = None
            self.cap = None
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old_handler)
            _restore_timer(self.old_timer, self.t0)
        return False


# -- containment ---------------------------------------------------------------------


@dataclass
class Report:
    """One thing that went wrong, for the log and the admin endpoint."""

    kind: str  # "load", "hook_error", "hook_slow", "hook_disabled", "intent"
    message: str
    file: str = ""
    npc: str = ""  # the NPC file's id
    entity: int | None = None
    hook: str = ""
    line: int | None = None
    traceback: str = ""
    at_s: float = 0.0  # world seconds

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in ("", None)}


class Guard:
    """Calls one NPC file's hooks: times them, contains errors, disables a file that keeps overrunning."""

    def __init__(self, defn: Definition, fns: dict[str, Callable], budget_s: float, report: Callable[[Report], None]):
        self.defn = defn
        self.fns = fns
        self.budget_s = budget_s
        self.cap_s = budget_s * CAP_FACTOR
        self.report = report
        self.calls = 0
        self.errors = 0
        self.overruns = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self.recent: deque[bool] = deque(maxlen=OVERRUN_WINDOW)  # overran, per call
        self.disabled = ""  # why, when disabled

    def has(self, name: str) -> bool:
        return name in self.fns and not self.disabled

    def status(self) -> dict:
        return {
            "state": "none" if not self.fns else ("disabled" if self.disabled else "ok"),
            "hooks": sorted(self.fns),
            "calls": self.calls,
            "errors": self.errors,
            "overruns": self.overruns,
            "mean_ms": round(self.total_s / self.calls * 1000, 3) if self.calls else 0.0,
            "max_ms": round(self.max_s * 1000, 3),
            "budget_ms": round(self.budget_s * 1000, 3),
            **({"disabled": self.disabled} if self.disabled else {}),
        }

    def call(self, name: str, ctx: "Context", *args) -> bool:
        """Run hook `name`; True when it returned normally (its intent, if any, may be used)."""
        fn = self.fns.get(name)
        if fn is None or self.disabled:
            return False
        eid, now = ctx.id, ctx.now_s
        error: BaseException | None = None
        t0 = time.perf_counter()
        try:
            with hard_cap(self.cap_s):
                fn(ctx, *args)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # a designer's bug (even sys.exit or a timeout): contained, reported
            error = e
        elapsed = time.perf_counter() - t0
        self.calls += 1
        self.total_s += elapsed
        self.max_s = max(self.max_s, elapsed)
        over = elapsed > self.budget_s or isinstance(error, HookTimeout)
        self.recent.append(over)
        file = self.defn.hooks or self.defn.file
        if isinstance(error, HookTimeout):
            self.errors += 1
            self.report(
                Report(
                    "hook_slow",
                    f"{name} was stopped after {elapsed * 1000:.1f} ms (hard cap {self.cap_s * 1000:.0f} ms)",
                    file,
                    self.defn.id,
                    eid,
                    name,
                    _traceback_line(error, file),
                    _format(error),
                    now,
                )
            )
        elif error is not None:
            self.errors += 1
            self.report(
                Report(
                    "hook_error",
                    f"{name} raised {type(error).__name__}: {error}",
                    file,
                    self.defn.id,
                    eid,
                    name,
                    _traceback_line(error, file),
                    _format(error),
                    now,
                )
            )
        elif over:
            self.report(
                Report(
                    "hook_slow",
                    f"{name} took {elapsed * 1000:.1f} ms (budget {self.budget_s * 1000:.1f} ms)",
                    file,
                    self.defn.id,
                    eid,
                    name,
                    at_s=now,
                )
            )
        if over:
            self.overruns += 1
            if sum(self.recent) >= MAX_OVERRUNS:
                self.disabled = (
                    f"{sum(self.recent)} overruns in the last {len(self.recent)} calls; "
                    "hooks off until the file changes"
                )
                self.report(
                    Report(
                        "hook_disabled",
                        f"hooks of {self.defn.id} disabled: {self.disabled}",
                        file,
                        self.defn.id,
                        eid,
                        name,
                        at_s=now,
                    )
                )
        return error is None


def _format(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))
