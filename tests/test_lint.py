"""The lint check runs with the suite: `ruff check` over every Python file of the repository, with
the rules pyproject.toml's [tool.ruff.lint] selects (pyflakes, syntax errors, and a few more)."""

import subprocess
import sys

from support.paths import ROOT


def test_ruff_finds_nothing():
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
