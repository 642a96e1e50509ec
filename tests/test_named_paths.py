"""Every test file a comment or a document names is there: a path `tests/....py` written in any file
the repository tracks (code, docs, the browser client) names a file that exists. Tests moved (issue 13:
tests mirror the tree) and comments kept naming the old paths; this keeps them pointing right."""

from __future__ import annotations

import re
import subprocess

from support.paths import ROOT

NAMED = re.compile(r"\btests/[\w/]*?\w+\.py\b")
TEXT = (".py", ".md", ".js", ".html", ".css", ".toml", ".txt", ".cfg", ".ini", ".sh")
MADE_UP = {"tests/test_layers.py"}  # its own check's test writes a tree of made-up test files


def named_paths(root) -> list[tuple[str, int, str]]:
    """(file, line, path) for each `tests/....py` named in the text files git tracks below root."""
    listed = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    out = []
    for rel in listed.splitlines():
        if rel in MADE_UP or (not rel.endswith(TEXT) and "/" in rel and not rel.startswith("scripts/")):
            continue
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            out += [(rel, n, m.group(0)) for m in NAMED.finditer(line)]
    return out


def test_every_test_file_named_in_the_repository_exists():
    named = named_paths(ROOT)
    assert any(path == "tests/server/test_frames.py" for _, _, path in named)  # the reader finds what is there
    missing = [f"{f}:{n}: {path}" for f, n, path in named if not (ROOT / path).is_file()]
    assert not missing, "named test files that are not there (moved? point at the new path):\n" + "\n".join(missing)
