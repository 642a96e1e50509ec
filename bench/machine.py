"""The "machine" block of every bench script's results JSON (what its figures were taken on), and the
writing of that JSON. One
place, so that every results file says the same things under the same keys (it was written out in
each script, with `cores` in some and `cpus` in others, the load in a few).

The load averages are there because other work on a shared machine skews every figure: a ratio
measured side by side in one run is what to compare, and the load says how busy the machine was.
`save` writes a results file; `stop` ends the servers a bench started. Import them as
`from machine import describe, save` (a bench script's own folder is on sys.path).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path


def describe(load_at_start: tuple[float, float, float] | None = None, **more: object) -> dict:
    """{cpus, platform, arch, python, load_average_at_end (1, 5, 15 min) [, load_average_at_start], **more}.
    Call it when the run is done; pass os.getloadavg() taken at the start for both ends."""
    block: dict = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "arch": platform.machine(),
        "python": platform.python_version(),
    }
    if load_at_start is not None:
        block["load_average_at_start"] = list(load_at_start)
    block["load_average_at_end"] = list(os.getloadavg())
    return {**block, **more}


def save(path: str | Path, result: dict, indent: int = 1) -> None:
    """Write a bench's results as JSON (its folder made if need be; what JSON cannot hold as its str)
    and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent, default=str) + "\n")
    print(f"\nwrote {path}")


def stop(*procs: subprocess.Popen, wait: float = 15.0) -> None:
    """End processes this bench started: SIGTERM to each, then SIGKILL to any still running `wait`
    seconds after."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
