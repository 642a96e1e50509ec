"""Every test file a comment or a document names is there: a path `tests/....py` written in any of
the project's text files (code, docs, the browser client, scripts) names a file that exists. Tests moved (issue 13:
tests mirror the tree) and comments kept naming the old paths; this keeps them pointing right."""

from __future__ import annotations

import os
import re
from pathlib import Path

from support.paths import ROOT

NAMED = re.compile(r"\btests/[\w/]*?\w+\.py\b")
TEXT = (".py", ".md", ".js", ".html", ".css", ".toml", ".txt", ".cfg", ".ini", ".sh")
SKIP = {"node_modules", "__pycache__", "var", "results"}  # installed, cached, written at run time
MADE_UP = {"tests/test_layers.py"}  # its own check's test writes a tree of made-up test files


def named_paths(root: Path) -> list[tuple[str, int, str]]:
    """(file, line, path) for each `tests/....py` named in the project's text files below root (not
    in hidden folders, installed packages, caches or what the server writes)."""
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP)
        for name in sorted(files):
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel in MADE_UP or not (name.endswith(TEXT) or "." not in name):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for n, line in enumerate(text.splitlines(), 1):
                out += [(rel, n, m.group(0)) for m in NAMED.finditer(line)]
    return out


def test_every_test_file_named_in_the_repository_exists():
    named = named_paths(ROOT)
    assert any(f == "server/frames.py" for f, _, _ in named)  # the reader finds what is there (frames.py names one)
    missing = [f"{f}:{n}: {path}" for f, n, path in named if not (ROOT / path).is_file()]
    assert not missing, "named test files that are not there (moved? point at the new path):\n" + "\n".join(missing)
