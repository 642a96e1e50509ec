"""The "machine" block of every bench script's results JSON: what its figures were taken on. One
place, so that every results file says the same things under the same keys (it was written out in
each script, with `cores` in some and `cpus` in others, the load in a few).

The load averages are there because other work on a shared machine skews every figure: a ratio
measured side by side in one run is what to compare, and the load says how busy the machine was.
Import it as `from machine import describe` (a bench script's own folder is on sys.path).
"""

from __future__ import annotations

import os
import platform


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
