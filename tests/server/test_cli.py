"""The command line: help, config files, and clear errors."""

import json
import subprocess
import sys
import urllib.request

import pytest

from support.paths import ROOT
from support.servers import start_server

CLI = [sys.executable, "-m", "server.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_serve_help_lists_every_option():
    out = run("serve", "--help")
    assert out.returncode == 0
    for flag in ("--host", "--port", "--tick-rate", "--map", "--npcs", "--log-level", "--config", "--grace"):
        assert flag in out.stdout


@pytest.mark.e2e  # it starts a real server
def test_options_come_from_a_toml_file(tmp_path):
    cfg = tmp_path / "server.toml"
    cfg.write_text('[server]\nnpcs = 7\ntick-rate = 10\nlog_level = "warning"\nnpc_dir = ""\n')
    srv = start_server("--config", str(cfg))
    try:
        with urllib.request.urlopen(srv.http_url + "healthz", timeout=10) as resp:
            assert json.loads(resp.read())["npcs"] == 7
    finally:
        srv.stop()


def test_bad_configuration_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nnpcs = 'many'\n")
    out = run("serve", "--config", str(bad))
    assert out.returncode == 2 and "npcs" in out.stderr and "expected int" in out.stderr
    bad.write_text("[server]\ncolour = 1\n")
    out = run("serve", "--config", str(bad))
    assert out.returncode == 2 and "unknown option 'colour'" in out.stderr
    bad.write_text("this is not toml [")
    out = run("serve", "--config", str(bad))
    assert out.returncode == 2 and "not valid TOML" in out.stderr
    out = run("serve", "--log-level", "loud")
    assert out.returncode == 2 and "log_level" in out.stderr
    out = run("serve", "--spawn", "anywhere")
    assert out.returncode == 2 and "spawn" in out.stderr and "random" in out.stderr
    out = run("serve", "--map", str(tmp_path / "missing.tmj"))
    assert out.returncode == 2 and "map" in out.stderr
    broken = tmp_path / "broken.tmj"
    broken.write_text("{not json")
    out = run("serve", "--map", str(broken), "--port", "0")
    assert out.returncode == 1 and "broken.tmj" in out.stderr and "Traceback" not in out.stderr
