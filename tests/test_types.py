"""The type check runs with the suite: mypy over the modules pyproject.toml's [tool.mypy] lists
(`files`: world/, npc/, server/, bots/, charts/, less its `exclude`), strict where it says so
(all of world/), mypy's defaults elsewhere. A failure shows mypy's report."""

import subprocess
import sys

import pytest

from support.paths import ROOT

# With its cache (.mypy_cache/) mypy takes ~9 s here; without one, reading torch's and
# transformers' types (npc/dialogue, npc/inference import them) took 263 s on 2 busy cores.
COLD_S = 600


@pytest.mark.timeout(COLD_S + 30)
def test_mypy_finds_nothing():
    # no arguments: the files, the strict set and the flags all come from pyproject.toml
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=COLD_S)
    assert out.returncode == 0, out.stdout + out.stderr
