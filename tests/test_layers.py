"""The layers of DESIGN.md ("one direction of dependency"), checked by reading every import of
every module with `ast`: imports inside functions, under `if TYPE_CHECKING:` and
`importlib.import_module("...")` / `__import__("...")` with a literal name count as well.

Of the project's own packages (world, npc, server, bots, charts):
- world/ imports only world/ (nothing of npc/, server/, bots/): the pure core;
- npc/ imports only world/ and npc/ (never server/, nor bots/);
- bots/ import only bots/, the shared protocol module `world.protocol` (the wire's message
  types, limits, codes and update encoding) and `world.tilemap`, the pure reader of the map the
  server serves at /map.json (the talk scenario walks by it, as a browser draws it);
- charts/ (SVG charts as strings) imports nothing of the project: a leaf, like a library, so
  that npc/ (train-policy's loss curve) and bots/ (the report) may both draw with it;
- server/ may import any of them (it composes the parts; `npcworld bots` is one of its commands).

And of the tests (tests/README.md): a test module takes what it shares from the support package
(`support.*`), never from another test module (`test_*`) or from `conftest`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from support.paths import ROOT

PACKAGES = ("world", "npc", "server", "bots", "charts")
# package -> what of the project's packages its modules may import (a module, or any module in it)
MAY_IMPORT = {
    "world": ("world",),
    "npc": ("world", "npc", "charts"),
    "bots": ("bots", "world.protocol", "world.tilemap", "charts"),
    "charts": ("charts",),
}
# calls that import the module named by their first argument (pytest.importorskip too: a test module
# once imported another one that way, unseen)
DYNAMIC = {("importlib", "import_module"), (None, "import_module"), (None, "__import__"), ("pytest", "importorskip")}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _join(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


def imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str, list[list[str]]]]:
    """(line, statement as written, what it brings in) for every import in a module's tree.

    What it brings in is one entry per imported name, each a list of the modules that name may
    be: `from a import b` is `a.b` when b is a submodule, else a name defined in `a`. `module` is
    the module's dotted name, to resolve relative imports.
    """
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.append((node.lineno, ast.unparse(node), [[a.name] for a in node.names]))
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".") if node.level else []
            mod = _join(*parts[: max(len(parts) - node.level + 1, 0)], node.module)
            out.append(
                (
                    node.lineno,
                    ast.unparse(node),
                    [[mod] if a.name == "*" else [mod, _join(mod, a.name)] for a in node.names],
                )
            )
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            f = node.func
            name = (
                f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None,
                f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None,
            )
            if name in DYNAMIC:
                out.append((node.lineno, ast.unparse(node), [[node.args[0].value]]))
    return sorted(out)


def violations(path: Path, root: Path) -> list[str]:
    """'file:line: ...' for each import of `path` that its package's layer forbids."""
    rel = path.relative_to(root)
    package = rel.parts[0]
    allowed = MAY_IMPORT.get(package)
    if allowed is None:
        return []
    is_package = rel.name == "__init__.py"
    parts = rel.with_suffix("").parts
    module = ".".join(parts[:-1] if is_package else parts)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
    found = []
    for line, stmt, names in imports(tree, module, is_package):
        for may_be in names:
            ours = [m for m in may_be if m.split(".")[0] in PACKAGES]
            if ours and not any(_within(m, a) for m in ours for a in allowed):
                named = ours[0] if "." in ours[0] else ours[-1]  # from server.config import x: server.config
                found.append(f"{rel}:{line}: `{stmt}` imports {named}; {package}/ may import only {', '.join(allowed)}")
    return found


def test_each_package_imports_only_the_layers_below_it():
    found = []
    for package in MAY_IMPORT:
        for path in sorted((ROOT / package).rglob("*.py")):
            found += violations(path, ROOT)
    assert not found, "imports across the layers of DESIGN.md:\n" + "\n".join(found)


def imports_of_test_modules(root: Path) -> list[str]:
    """'file:line: `statement`' for each import, below root/tests, of a test module or of conftest."""
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        rel = path.relative_to(root)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
        for line, stmt, names in imports(tree, ".".join(rel.with_suffix("").parts), False):
            for may_be in names:
                last = [m.rpartition(".")[2] for m in may_be]
                if any(n == "conftest" or n.startswith("test_") for n in last):
                    found.append(f"{rel}:{line}: `{stmt}`")
    return found


def test_tests_share_helpers_only_through_the_support_package():
    found = imports_of_test_modules(ROOT)
    assert not found, (
        "test modules importing from other test modules or conftest "
        "(move what they share to tests/support/):\n" + "\n".join(found)
    )


def test_the_check_sees_every_kind_of_import(tmp_path):
    """The reader itself, on modules written to break each rule in each way it can be broken."""
    src = {
        "world/sim.py": "import numpy\nfrom . import intents\n\ndef late():\n    from server.config import Config\n",
        "world/__init__.py": "from .. import npc\n",
        "npc/minds/cast.py": (
            "from typing import TYPE_CHECKING\nfrom ..files import schema\nfrom world import sim\n"
            "if TYPE_CHECKING:\n    import server.game\n"
        ),
        "npc/hooks/load.py": "import importlib\nm = importlib.import_module('bots.bot')\nn = __import__('world')\n",
        "bots/bot.py": (
            "import msgpack\nfrom world import protocol\nfrom world.protocol import LIMITS\nfrom . import stats\n"
        ),
        "bots/run.py": "from world import sim, protocol\nimport world.snapshot\nfrom server import metrics\n",
        "bots/report.py": "from charts import svg\n",
        "charts/svg.py": "from html import escape\nfrom bots import stats\n",
    }
    for rel, text in src.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = {rel: [v.split(": ", 1)[0] for v in violations(tmp_path / rel, tmp_path)] for rel in src}
    assert found == {
        "world/sim.py": ["world/sim.py:5"],  # inside a function
        "world/__init__.py": ["world/__init__.py:1"],  # relative, above the package
        "npc/minds/cast.py": ["npc/minds/cast.py:5"],  # under TYPE_CHECKING
        "npc/hooks/load.py": ["npc/hooks/load.py:2"],  # by name, at run time
        "bots/bot.py": [],
        "bots/run.py": ["bots/run.py:1", "bots/run.py:2", "bots/run.py:3"],  # world.sim, world.snapshot, server
        "bots/report.py": [],
        "charts/svg.py": ["charts/svg.py:2"],  # a leaf imports nothing of the project
    }


def test_the_tests_check_sees_a_test_module_imported_in_any_way(tmp_path):
    (tmp_path / "tests" / "e2e").mkdir(parents=True)
    (tmp_path / "tests" / "e2e" / "test_a.py").write_text(
        "import pytest\nfrom support.npchelp import write\n\n"
        "def test_x():\n    b = pytest.importorskip('test_browser')\n    from conftest import server\n"
    )
    (tmp_path / "tests" / "test_b.py").write_text("from e2e import test_a\nimport support.paths\n")
    assert [f.split(": ", 1)[0] for f in imports_of_test_modules(tmp_path)] == [
        "tests/e2e/test_a.py:5",
        "tests/e2e/test_a.py:6",
        "tests/test_b.py:1",
    ]
