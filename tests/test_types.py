"""The type check runs with the suite: mypy over the modules pyproject.toml's [tool.mypy] lists
(`files`: world/, npc/, server/, bots/, charts/, less its `exclude`), strict where it says so
(all of world/), mypy's defaults elsewhere. A failure shows mypy's report. mypy is started at
collection (tests/conftest.py, support/typecheck.py): it runs beside the other tests."""

import pytest

# With its cache (.mypy_cache/) mypy takes ~9 s here; without one, reading torch's and
# transformers' types (npc/dialogue, npc/inference import them) took 263 s on 2 busy cores.
COLD_S = 600


@pytest.mark.timeout(COLD_S + 30)
def test_mypy_finds_nothing(mypy_run):
    # no arguments: the files, the strict set and the flags all come from pyproject.toml
    code, report = mypy_run.wait(COLD_S)
    assert code == 0, report
