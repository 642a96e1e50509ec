"""The configuration (server/config.py): sections declared once, read from TOML tables and flags."""

from __future__ import annotations

import argparse

import pytest

from server import cli, config
from server.config import OPTIONS, SECTIONS, ConfigError, ServerConfig, build, flat


def parse_serve(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    cli._serve_parser(parser.add_subparsers(dest="command"))
    args = vars(parser.parse_args(["serve", *argv]))
    return {k: v for k, v in args.items() if k not in ("command", "config")}


def test_every_option_is_declared_once_with_help_and_a_flag():
    for name, opt in OPTIONS.items():
        assert opt.meta["help"], name
        assert hasattr(getattr(ServerConfig(), opt.section), opt.field)
    assert set(parse_serve()) == set(OPTIONS)  # one flag per option, nothing else
    assert sum(len(cls.__dataclass_fields__) for cls, _ in SECTIONS.values()) == len(OPTIONS)
    # the flags the README, the docs and the tests use keep their names
    for legacy in (
        "npcs",
        "npc_dir",
        "tick_rate",
        "decision_budget_ms",
        "dialogue",
        "memory_db",
        "store",
        "secret",
        "admin_port",
        "local_workers",
        "policy_guard",
        "dialogue_max_new_tokens",
    ):
        assert legacy in OPTIONS


def test_flags_land_in_their_sections():
    cfg = build(
        None,
        parse_serve(
            "--npcs",
            "3",
            "--tick-rate",
            "10",
            "--no-dialogue",
            "--dialogue-max-new-tokens",
            "9",
            "--store",
            "",
            "--admin-port",
            "0",
            "--decision-budget-ms",
            "20",
        ),
    )
    assert (cfg.npcs.wanderers, cfg.world.tick_rate, cfg.dialogue.enabled, cfg.dialogue.max_new_tokens) == (
        3,
        10,
        False,
        9,
    )
    assert (cfg.store.path, cfg.admin.port, cfg.policy.budget_ms) == ("", 0, 20.0)
    assert cfg.net == config.NetSection()  # untouched sections keep their defaults


def test_toml_tables_of_sections_and_the_flat_server_table(tmp_path):
    path = tmp_path / "server.toml"
    path.write_text(
        "[server]\nnpcs = 7\ntick-rate = 10\n\n[dialogue]\nmax-new-tokens = 32\nenabled = false\n\n"
        '[world]\ngrace = 2\n\n[store]\npath = ""\ncheckpoint_s = 1.5\n'
    )
    cfg = build(str(path), parse_serve("--tick-rate", "30"))  # a flag wins over the file
    assert (cfg.npcs.wanderers, cfg.world.tick_rate, cfg.world.grace) == (7, 30, 2.0)
    assert (cfg.dialogue.max_new_tokens, cfg.dialogue.enabled, cfg.store.path, cfg.store.checkpoint_s) == (
        32,
        False,
        "",
        1.5,
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("[dialogue]\ncolour = 1\n", "unknown option 'colour' in [dialogue]; expected one of enabled, model"),
        ("[painting]\nx = 1\n", "unknown table [painting]"),
        ("[world]\ntick_rate = 'fast'\n", "[world] tick_rate = 'fast': expected int"),
        ("[world]\ntick_rate = 1000\n", "tick_rate ([world]) = 1000: expected 1..240 Hz"),
        ("[npcs]\nwanderers = -1\n", "npcs ([npcs] wanderers) = -1: expected 0..100000"),
        ("[net]\nlog_level = 'loud'\n", "log_level ([net]) = 'loud': expected one of debug, info, warning, error"),
        ("[net]\nws = 'tornado'\n", "ws ([net]) = 'tornado': expected one of picows, websockets"),
        (
            "[net]\nws = 'picows'\ncompression = true\n",
            "compression ([net]) = True: expected --ws websockets (picows has no permessage-deflate)",
        ),
        (
            "[net]\nws = 'websockets'\ngateways = 2\n",
            "gateways ([net]) = 2: expected 1 with --ws websockets (gateway processes serve picows)",
        ),
        ("[net]\ngateways = 0\n", "gateways ([net]) = 0: expected 1..64"),
        ("[store]\npath = '.'\n", "store ([store] path) = '.': expected an SQLite file path (not a folder)"),
    ],
)
def test_a_bad_file_says_what_and_where(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        build(str(path), {})
    assert message in str(err.value)


def test_relative_paths_in_a_file_are_relative_to_it(tmp_path):
    (tmp_path / "npcs").mkdir()
    path = tmp_path / "server.toml"
    path.write_text('[npcs]\ndir = "npcs"\n')
    assert build(str(path), {}).npcs.dir == str(tmp_path / "npcs")


def test_flat_names_build_a_config_and_unknown_ones_are_refused():
    assert flat(port=0, dialogue_model="tiny").dialogue.model == "tiny"
    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        flat(colour=1)


def test_the_readme_lists_every_option_in_its_section_and_its_example_file_builds(tmp_path):
    import re

    readme = (config.ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| `(\[\w+\] \w+)` \|", readme, re.M))
    assert rows == {name: f"[{o.section}] {o.field}" for name, o in OPTIONS.items()}
    example = next(b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if b.startswith("[server]\nnpcs"))
    path = tmp_path / "server.toml"
    path.write_text(example)
    cfg = build(str(path), {})
    assert (cfg.net.port, cfg.npcs.wanderers, cfg.world.spawn, cfg.dialogue.max_new_tokens) == (9000, 500, "random", 32)
