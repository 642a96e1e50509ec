"""What each test costs: wall time against CPU time, the test's own process and its children (servers,
workers, mypy, bots runs are subprocesses), written as a table at the end of the run. Opt-in:
`NPCWORLD_TEST_COSTS=costs.tsv .venv/bin/python -m pytest ...` (tests/conftest.py registers it then);
under pytest-xdist each worker writes its own file (`costs.tsv.gw0`, ...).

A test's figures cover its setup, call and teardown: a module-scoped server's start-up goes to the
module's first test, its stop (and the CPU of the server and its workers, counted by the kernel when
the process is reaped) to the last. `wait` is wall - own CPU - children's CPU: where it is large, the
test mostly waits (sleeps, timeouts, another process's start) and a second worker would overlap it;
where it is near 0 the test keeps a core busy. The children's CPU is known only for children already
reaped (RUSAGE_CHILDREN): a server still running at the end of a test counts where it is stopped."""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict
from pathlib import Path

import pytest

from .servers import STARTS

ENV = "NPCWORLD_TEST_COSTS"


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


class Costs:
    """The pytest plugin: one row per test (wall, own CPU, children's CPU), written at the session's end."""

    def __init__(self, path: str) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        self.path = Path(f"{path}.{worker}" if worker else path)
        self.rows: list[tuple[str, float, float, float, int, float]] = []
        self.started = time.monotonic()
        self.cpu = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)
        self.load = os.getloadavg()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        wall, own, kids = time.monotonic(), _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
        starts = len(STARTS)
        yield
        self.rows.append(
            (
                item.nodeid,
                time.monotonic() - wall,
                _cpu(resource.RUSAGE_SELF) - own,
                _cpu(resource.RUSAGE_CHILDREN) - kids,
                len(STARTS) - starts,
                sum(STARTS[starts:]),
            )
        )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        wall = time.monotonic() - self.started
        cpu = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN) - self.cpu
        load = os.getloadavg()
        by_module: dict[str, list[float]] = defaultdict(lambda: [0.0] * 6)
        for nodeid, *figures in self.rows:
            m = by_module[nodeid.split("::")[0]]
            for i, v in enumerate((1, *figures)):
                m[i] += v
        total = [sum(r[i] for r in self.rows) for i in range(1, 6)]
        lines = [
            f"# session wall {wall:.1f} s, CPU {cpu:.1f} s (this process and its reaped children); tests' wall {total[0]:.1f} s, own CPU {total[1]:.1f} s, "
            f"children's CPU {total[2]:.1f} s, wait {total[0] - total[1] - total[2]:.1f} s; "
            f"{total[3]:.0f} servers started in {total[4]:.1f} s; "
            f"load at start {self.load[0]:.1f}, at end {load[0]:.1f} (1-min)",
            "kind\tname\ttests\twall_s\town_cpu_s\tchildren_cpu_s\twait_s\tservers\tserver_start_s",
        ]

        def row(kind: str, name: str, n: float, w: float, own: float, kids: float, srv: float, srv_s: float) -> str:
            return (
                f"{kind}\t{name}\t{n:.0f}\t{w:.2f}\t{own:.2f}\t{kids:.2f}\t{w - own - kids:.2f}\t{srv:.0f}\t{srv_s:.2f}"
            )

        for name, m in sorted(by_module.items(), key=lambda kv: -kv[1][1]):
            lines.append(row("module", name, *m))
        for nodeid, *figures in sorted(self.rows, key=lambda r: -r[1]):
            lines.append(row("test", nodeid, 1, *figures))
        self.path.write_text("\n".join(lines) + "\n")


def register(config: pytest.Config) -> None:
    """Add the plugin when NPCWORLD_TEST_COSTS names the file to write."""
    path = os.environ.get(ENV)
    if path:
        config.pluginmanager.register(Costs(path), "npcworld-costs")
