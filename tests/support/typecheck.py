"""mypy over the repository as a subprocess that a test can start early and read later.

tests/test_types.py checks that mypy finds nothing. Cold (a fresh clone, as CI's: no .mypy_cache/)
it reads torch's and transformers' types and takes ~90 s of one core; the rest of the suite mostly
waits on servers and sleeps with a core to spare. So tests/conftest.py starts it as soon as the
collection holds that test (`pytest_collection_finish`) and the test waits for the result; run alone,
the test starts it itself. Under pytest-xdist the worker that runs the test starts it (the others
would each start one of their own at collection)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from .paths import ROOT

NODE = "tests/test_types.py::test_mypy_finds_nothing"  # the one test that reads it


class MypyRun:
    """`python -m mypy` with no arguments (pyproject's [tool.mypy] names the files and flags), in the
    repository root; its output goes to a temporary file (a pipe would block it past 64 KiB unread)."""

    def __init__(self) -> None:
        self.out = tempfile.TemporaryFile(mode="w+")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mypy"], cwd=ROOT, stdout=self.out, stderr=subprocess.STDOUT, text=True
        )

    def wait(self, timeout: float) -> tuple[int, str]:
        """(exit status, what it printed), waiting at most `timeout` seconds from its start."""
        left = max(1.0, timeout - (time.monotonic() - self.started))
        try:
            code = self.proc.wait(left)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        self.out.seek(0)
        return code, self.out.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
