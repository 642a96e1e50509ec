"""Fixtures that start real servers: `npcworld serve` as a subprocess on a free
loopback port (support/servers.py), ended by its PID when the test is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.npchelp import small_map, write
from support.servers import RunningServer, start_server

E2E_DIR = Path(__file__).resolve().parent / "e2e"
SERVER_FIXTURES = {"server", "launch"}  # each starts `npcworld serve` (a test may also call start_server)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `e2e` every test of tests/e2e/ and every other test that starts a real server through
    a fixture, so that `pytest -m "not e2e"` runs the fast tests alone (tests/README.md)."""
    for item in items:
        if E2E_DIR in item.path.parents or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def server():
    srv = start_server("--npcs", "30", "--grace", "5")
    yield srv
    srv.stop()


@pytest.fixture
def launch():
    """Start servers with custom options; all are stopped after the test."""
    started: list[RunningServer] = []

    def _launch(*args: str) -> RunningServer:
        srv = start_server(*args)
        started.append(srv)
        return srv

    yield _launch
    for srv in started:
        srv.stop()


@pytest.fixture
def npc_server(launch, tmp_path):
    """A server on the small map (support/npchelp.py) with no generic wanderers and the NPC files
    given, in a folder of its own: `npc_server({"a.toml": text}, *more_args)` -> (server, folder)."""
    folder = tmp_path / "npcs"
    folder.mkdir()

    def start(files: dict[str, str], *args: str) -> tuple[RunningServer, Path]:
        for name, text in files.items():
            write(folder / name, text)
        srv = launch("--map", str(small_map(tmp_path)), "--npc-dir", str(folder), "--npcs", "0", *args)
        return srv, folder

    return start
