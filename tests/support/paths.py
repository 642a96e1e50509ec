"""Where things are, for every test: the repository root and what the tests read from it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # tests/support/paths.py -> the repository
DEFAULT_MAP = ROOT / "assets" / "maps" / "default.tmj"
CLIENT_DIR = ROOT / "client_demo"  # the browser client's static files
