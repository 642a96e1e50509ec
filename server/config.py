"""Server configuration: one typed place, defaults that work out of the box.

Precedence: built-in defaults < TOML file (`--config`) < command-line flags.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MAP = ROOT / "assets" / "maps" / "default.tmj"
DEFAULT_NPC_DIR = ROOT / "assets" / "npcs"
CLIENT_DIR = ROOT / "client_demo"

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """A configuration value or file is wrong; the message says where and what was expected."""


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080  # 0 picks a free port; the printed URL shows which
    tick_rate: int = 20  # ticks per second
    map: str = str(DEFAULT_MAP)  # a Tiled .tmj file
    npcs: int = 50  # wandering NPCs spawned at start
    log_level: str = "info"
    grace: float = 30.0  # seconds a disconnected player's character stays, resumable
    max_players: int = 2000  # further hellos are closed with 4004
    cell_size: int = 256  # interest cell size, world units
    view_radius: int = 1  # cells seen around one's own (1 = 3 x 3)
    seed: int = 0  # world RNG seed (NPC placement and wandering)
    secret: str = ""  # HMAC key for reconnect tokens; empty = random per run
    # permessage-deflate compresses every update once per connection, which
    # undoes sharing one encoding per cell: at 400 bots it was 63% of the
    # server's CPU (py-spy, bench/capacity.py). Off unless asked for.
    compression: bool = False
    npc_dir: str = str(DEFAULT_NPC_DIR)  # NPC files (*.toml), hot-reloaded; "" = none
    day_length: float = 1440.0  # real seconds per game day (1440: a game minute per second)
    hook_budget_ms: float = 5.0  # per NPC hook call; the hard cap is 4x this
    admin_host: str = "127.0.0.1"  # admin HTTP endpoints: loopback unless configured
    admin_port: int = -1  # -1 = game port + 1 (a free port when the game port is 0 or it is taken); 0 = free
    admin_token: str = ""  # bearer token for the admin endpoints; empty = random per run, printed at start

    # Help text per option, shown by `npcworld serve --help`.
    HELP = {
        "host": "interface to listen on (0.0.0.0 for all)",
        "port": "TCP port for HTTP and WebSocket (0 = any free port)",
        "tick_rate": "world ticks per second",
        "map": "Tiled JSON map (.tmj)",
        "npcs": "number of wandering NPCs",
        "log_level": "one of " + ", ".join(LOG_LEVELS),
        "grace": "seconds a disconnected character can be resumed",
        "max_players": "most players connected at once",
        "cell_size": "interest-management cell size in world units",
        "view_radius": "cells visible around the player's cell",
        "seed": "world random seed",
        "secret": "key that signs reconnect tokens (default: random per run)",
        "compression": "offer permessage-deflate (costs CPU per connection and update)",
        "npc_dir": "folder of NPC files (*.toml), reloaded when they change; empty = none",
        "day_length": "real seconds per game day",
        "hook_budget_ms": "time budget of one NPC hook call, ms (the hard cap is 4x)",
        "admin_host": "interface for the admin HTTP endpoints",
        "admin_port": "admin HTTP port (-1 = the game port + 1; 0 = any free port)",
        "admin_token": "bearer token for the admin endpoints (default: random per run, printed at start)",
    }

    def validate(self) -> "ServerConfig":
        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ConfigError(f"{name} = {getattr(self, name)!r}: expected {expected}")

        need(0 <= self.port <= 65535, "port", "0..65535")
        need(1 <= self.tick_rate <= 240, "tick_rate", "1..240 ticks per second")
        need(0 <= self.npcs <= 100_000, "npcs", "0..100000")
        need(self.log_level in LOG_LEVELS, "log_level", "one of " + ", ".join(LOG_LEVELS))
        need(self.grace >= 0, "grace", "seconds >= 0")
        need(self.max_players >= 1, "max_players", ">= 1")
        need(self.cell_size >= 32, "cell_size", ">= 32 world units")
        need(1 <= self.view_radius <= 8, "view_radius", "1..8 cells")
        need(Path(self.map).is_file(), "map", "an existing .tmj file")
        need(self.npc_dir == "" or Path(self.npc_dir).is_dir(), "npc_dir", "an existing folder, or \"\" for none")
        need(1 <= self.day_length <= 10_000_000, "day_length", "1..10000000 seconds")
        need(0.1 <= self.hook_budget_ms <= 10_000, "hook_budget_ms", "0.1..10000 ms")
        need(-1 <= self.admin_port <= 65535, "admin_port", "-1 (game port + 1), 0 (any free port) or 1..65535")
        return self


def option_names() -> list[str]:
    return [f.name for f in fields(ServerConfig)]


def load_toml(path: str | Path) -> dict:
    """Read the `[server]` table of a TOML file (or its top level when it has none)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("server", data)
    known = {f.name: f for f in fields(ServerConfig)}
    out = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{path}: unknown option {key!r}; expected one of {', '.join(known)}")
        want = type(getattr(ServerConfig, name))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not want:
            raise ConfigError(f"{path}: {key} = {value!r}: expected {want.__name__}")
        out[name] = value
    return out


def build(toml_path: str | None, overrides: dict) -> ServerConfig:
    values = load_toml(toml_path) if toml_path else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = dataclasses.replace(ServerConfig(), **values)
    if toml_path and not Path(cfg.map).is_absolute():
        # A relative map in a config file is relative to that file.
        candidate = Path(toml_path).resolve().parent / cfg.map
        if candidate.is_file() and "map" not in {k for k, v in overrides.items() if v is not None}:
            cfg.map = str(candidate)
    if toml_path and cfg.npc_dir and not Path(cfg.npc_dir).is_absolute():
        # so is a relative npc_dir
        candidate = Path(toml_path).resolve().parent / cfg.npc_dir
        if candidate.is_dir() and overrides.get("npc_dir") is None:
            cfg.npc_dir = str(candidate)
    return cfg.validate()
