"""mypy over the repository as a subprocess that a test can start early and read later.

tests/test_types.py checks that mypy finds nothing. Cold (a fresh clone, as CI's: no .mypy_cache/)
it reads torch's and transformers' types and takes ~90 s of one core; the rest of the suite mostly
waits on servers and sleeps with a core to spare. So tests/conftest.py starts it as soon as the
collection holds that test (`pytest_collection_finish`) and the test waits for the result; run alone,
the test starts it itself. Under pytest-xdist (scripts/test's `-n`) the controller starts it once the
workers' collection holds the test, writing its report into a folder every worker is told of
(`MypyRun(report=...)`); the worker that runs the test reads it there (`MypyReport`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .paths import ROOT

NODE = "tests/test_types.py::test_mypy_finds_nothing"  # the one test that reads it


def holds_node(nodeids) -> bool:
    """Whether the test ids hold NODE."""
    return NODE in nodeids


class MypyRun:
    """`python -m mypy` with no arguments (pyproject's [tool.mypy] names the files and flags), in the
    repository root; its output goes to a temporary file (a pipe would block it past 64 KiB unread)."""

    def __init__(self, report: Path | None = None) -> None:
        """report: a folder to write the output to (`out`) and, once mypy is done, its exit status
        (`status`), for a MypyReport in another process."""
        self.out = open(report / "out", "w+") if report else tempfile.TemporaryFile(mode="w+")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mypy"], cwd=ROOT, stdout=self.out, stderr=subprocess.STDOUT, text=True
        )
        if report:
            threading.Thread(target=self._report, args=(report,), daemon=True).start()

    def _report(self, folder: Path) -> None:
        code = self.proc.wait()
        (folder / "status.tmp").write_text(str(code))
        os.replace(folder / "status.tmp", folder / "status")  # whole or not at all

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


class MypyReport:
    """A MypyRun of another process (the xdist controller's), read from its report folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def started(folder: Path) -> bool:
        return (folder / "out").exists()

    def wait(self, timeout: float) -> tuple[int, str]:
        """(exit status, what it printed), waiting at most `timeout` seconds from now."""
        end = time.monotonic() + timeout
        while not (self.folder / "status").exists():
            if time.monotonic() > end:
                raise subprocess.TimeoutExpired("mypy", timeout)
            time.sleep(0.5)
        return int((self.folder / "status").read_text()), (self.folder / "out").read_text()

    def stop(self) -> None:
        pass  # the controller stops its run
