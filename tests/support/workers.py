"""The suite in pytest-xdist workers (scripts/test with NPCWORLD_TEST_WORKERS=N: `-n N --dist loadscope`):
each test module runs whole in one worker, in its order (its module-scoped servers start once), and the
modules whose tests share a costly session fixture (the default model: tests/conftest.py SHARED) run in
the same worker, so that it is loaded once.

xdist's own `--dist loadgroup` would do the second through `xdist_group` marks, but xdist 3.8 puts the
group into `item._nodeid`, which pytest 9.2 no longer reads (a node's id is `_id`): every test was then
its own group, and a module's tests were spread over both workers. So the workers write which module
goes with which group (`write_groups`, from their collection) into the run's folder, and the
controller's scheduler (`ModuleScheduling`, made by tests/conftest.py's pytest_xdist_make_scheduler)
reads it once every worker has collected."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_groups(folder: Path, groups: dict[str, str]) -> None:
    """A worker's {module path: group}; every worker collects the same tests, so writes the same."""
    tmp = folder / f"groups.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(groups))
    os.replace(tmp, folder / "groups.json")  # whole or not at all


def scheduler(config: Any, log: Any, folder: Path) -> Any:
    """xdist's LoadScopeScheduling with a module's scope its group's name where it has one."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # asked only once every worker has reported its collection
                path = folder / "groups.json"
                self.groups = json.loads(path.read_text()) if path.exists() else {}
            module = nodeid.split("::")[0]
            return self.groups.get(module, module)

    return ModuleScheduling(config, log)
