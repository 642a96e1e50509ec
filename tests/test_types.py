"""The type check runs with the suite: mypy over the modules pyproject.toml's [tool.mypy] lists
(`files`: world/, npc/, server/, bots/, charts/, less its `exclude`), strict where it says so
(all of world/), mypy's defaults elsewhere. A failure shows mypy's report."""

import subprocess
import sys

from conftest import ROOT


def test_mypy_finds_nothing():
    # no arguments: the files, the strict set and the flags all come from pyproject.toml
    out = subprocess.run([sys.executable, "-m", "mypy"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
