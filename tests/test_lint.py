"""The lint checks run with the suite: `ruff check` over every Python file of the repository, with
the rules pyproject.toml's [tool.ruff.lint] selects (pyflakes, syntax errors, and a few more), and
`ruff format --check` (the code is as `ruff format .` writes it; run that before committing)."""

import subprocess
import sys

from support.paths import ROOT


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_finds_nothing():
    out = ruff("check", "--output-format", "concise", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_code_is_formatted():
    out = ruff("format", "--check", ".")
    assert out.returncode == 0, out.stdout + out.stderr
