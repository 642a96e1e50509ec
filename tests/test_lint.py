"""The lint check runs with the suite: ruff's pyflakes rules (undefined names, unused imports and
variables) and syntax errors, over every Python file of the repository."""

import subprocess
import sys

from conftest import ROOT


def test_ruff_finds_nothing():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F,E9", "--output-format", "concise",
                          "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
