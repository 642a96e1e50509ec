"""Server configuration: one typed place, defaults that work out of the box.

The server's options are nested sections (net, world, npcs, policy, dialogue, admin, store,
workers), each a dataclass whose fields declare, once, their default, help text, unit and
bounds (`option`). From these declarations come: the TOML tables of `--config`, the flags of
`npcworld serve` (server/cli.py), and the checks of `validate`. Each section is handed whole to
the part it configures (server/app.py).

Every option also has a flat name, its flag's (`--tick-rate` is `tick_rate`), unique over all
sections: the flags keep the names they always had, and a TOML file may use them in a
`[server]` table (or at its top level) as well as the sections' own tables:

    [server]                 # flat names, as the flags
    npcs = 7
    [dialogue]               # a section's own field names (dashes or underscores)
    max-new-tokens = 32

Precedence: built-in defaults < TOML file (`--config`) < command-line flags.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from npc.policy.weights import DEFAULT_WEIGHTS, weights_input

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MAP = ROOT / "assets" / "maps" / "default.tmj"
DEFAULT_NPC_DIR = ROOT / "assets" / "npcs"
DEFAULT_POLICY = DEFAULT_WEIGHTS
DECIDERS = ("auto", "policy", "builtin", "scripted")  # scripted: the old name of builtin
CLIENT_DIR = ROOT / "client_demo"

LOG_LEVELS = ("debug", "info", "warning", "error")
# Where new players appear: "spawn" (near the map's 'spawn' point, for play: everyone meets at the
# plaza) or "random" (uniformly over the free tiles reachable from it, from the world's seed: a load
# test whose players spread over the world like the Colyseus peer's, so interest management works).
SPAWNS = ("spawn", "random")
WS_EDGES = ("picows", "websockets")  # --ws, the default first: server/edge_picows.py, server/edge_websockets.py


class ConfigError(Exception):
    """A configuration value or file is wrong; the message says where and what was expected."""


def option(
    default: Any,
    help: str,
    *,
    unit: str = "",
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] = (),
    flag: str = "",
    expected: str = "",
    secret: bool = False,
) -> Any:
    """A section's field with its declaration: `help` for --help and the README; `unit` (ms, seconds,
    world units, ...); `low`/`high` (inclusive bounds) or `choices`, checked by `validate`; `flag`: the
    flat name (the flag without its dashes) when it is not the section's prefix + the field's name;
    `expected`: what an error says was expected, where the bounds alone would not say it well;
    `secret`: its default is not shown."""
    return field(
        default=default,
        metadata={
            "help": help,
            "unit": unit,
            "low": low,
            "high": high,
            "choices": choices,
            "flag": flag,
            "expected": expected,
            "secret": secret,
        },
    )


@dataclass
class NetSection:
    """[net]: the game port (HTTP + WebSocket) and its connections (server/app.py, server/gateway.py)."""

    host: str = option("127.0.0.1", "interface to listen on (0.0.0.0 for all)")
    port: int = option(
        8080, "TCP port for HTTP and WebSocket (0 = any free port; the printed URL shows which)", low=0, high=65535
    )
    max_players: int = option(
        2000, "most players connected at once; further hellos are closed with 4004", low=1, high=1_000_000
    )
    # permessage-deflate compresses every update once per connection, which
    # undoes sharing one encoding per cell: at 400 bots it was 63% of the
    # server's CPU (py-spy, bench/capacity.py). Off unless asked for.
    compression: bool = option(False, "offer permessage-deflate (costs CPU per connection and update)")
    # Updates written as WebSocket frames straight into the socket: per connection and flush one
    # writev of [frame head + the observer's update head, the cell's shared body, ...], instead of
    # websockets' send path (a Frame object, a copy and a write per message). Off: that path, as
    # before (it is also what a connection with permessage-deflate always uses).
    direct_writes: bool = option(
        True,
        "write updates as WebSocket frames straight into the socket, one writev per "
        "connection and tick with the cell's shared bytes uncopied (off: websockets' send "
        "path per message)",
    )
    # The WebSocket library under the gateway (server/gateway.py PlayerSocket): both serve the same
    # wire, HTTP routes and limits (docs/protocol.md); see README "Capacity" for what each costs.
    ws: str = option(
        "picows",
        "WebSocket library of the game port: picows (Cython frame parser; no compression), or websockets",
        choices=WS_EDGES,
    )
    # Gateway processes (server/gateways.py): each serves its share of the port's sockets (SO_REUSEPORT)
    # and the tick process ships each one the updates of its players, every distinct View once:
    # bench/gateway_ipc.py measured 0.06-0.09x the tick process's CPU of flushing them itself.
    gateways: int = option(
        1,
        "processes serving the game port's sockets, with the room in this one (1: all in this process)",
        low=1,
        high=64,
    )
    # The read check (server/gateway.py READ_CHECK_S): a ping every 0.4 of this, a client that answers
    # none for this long is closed. docs/protocol.md's figure is the default; the tests of the close and
    # of an idle reader that stays set 1 s, to show the same in a fifth of the time.
    slow_client_s: float = option(
        5.0,
        "a client that reads nothing for this long is closed with 4002 (docs/protocol.md, Limits)",
        unit="seconds",
        low=0.5,
        high=600.0,
    )
    log_level: str = option("info", "log level", choices=LOG_LEVELS)


@dataclass
class WorldSection:
    """[world]: the map, the tick and the room's rules (world/sim.py WorldConfig, server/game.py)."""

    map: str = option(
        str(DEFAULT_MAP),
        "Tiled JSON map (.tmj); in a config file, relative to that file",
        expected="an existing .tmj file",
    )
    tick_rate: int = option(20, "world ticks per second", unit="Hz", low=1, high=240)
    cell_size: int = option(256, "interest-management cell size", unit="world units", low=32, high=1_000_000)
    view_radius: int = option(1, "cells visible around the player's cell (1 = 3 x 3)", unit="cells", low=1, high=8)
    seed: int = option(0, "world random seed (NPC placement and wandering, --spawn random)")
    spawn: str = option(
        "spawn",
        "where new players appear: spawn (near the map's spawn point) or random (uniformly "
        "over the free tiles, from the seed: spread-out load tests)",
        choices=SPAWNS,
    )
    grace: float = option(
        30.0, "how long a disconnected character stays, resumable", unit="seconds", low=0, high=10 * 365 * 86400
    )
    day_length: float = option(
        1440.0, "real time per game day (1440: a game minute per second)", unit="seconds", low=1, high=10_000_000
    )


@dataclass
class NpcsSection:
    """[npcs]: who lives in the world (server/app.py build_room, npc/minds/cast.py)."""

    wanderers: int = option(
        50, "generic wandering NPCs spawned at start (no file: they only wander)", low=0, high=100_000, flag="npcs"
    )
    dir: str = option(
        str(DEFAULT_NPC_DIR),
        'folder of NPC files (*.toml), reloaded when they change; "" = none; in a config file, relative to that file',
        flag="npc_dir",
        expected='an existing folder, or "" for none',
    )
    think_ms: float = option(
        500.0, "how often each NPC re-thinks (spread over the ticks)", unit="ms", low=10, high=60_000, flag="think_ms"
    )
    hook_budget_ms: float = option(
        5.0,
        "time budget of one NPC hook call (the hard cap is 4x)",
        unit="ms",
        low=0.1,
        high=10_000,
        flag="hook_budget_ms",
    )


@dataclass
class PolicySection:
    """[policy]: NPC decisions (npc/policy/decider.py). Each NPC re-thinks every think_ms; the policy (in
    the inference pool's workers) decides the files its guard passed, its answer applied at the next
    tick; an answer later than budget_ms (0 = one tick) falls back to the built-in behaviour then."""

    decider: str = option(
        "auto",
        "who decides NPC actions: auto (the policy if its weights exist), policy, builtin",
        choices=DECIDERS,
        flag="decider",
    )
    budget_ms: float = option(
        0.0,
        "how long a policy decision may take before the built-in behaviour decides instead (0 = a tick)",
        unit="ms",
        low=0,
        high=10_000,
        flag="decision_budget_ms",
    )
    weights: str = option(str(DEFAULT_POLICY), "decision policy weights (safetensors)")
    module: str = option(
        "npc.policy.model:build_policy",
        "module:factory building the policy (an nn.Module; see npc/policy/model.py)",
        expected='"package.module:factory"',
    )
    workers: int = option(0, "inference worker processes for decisions (0 = one per GPU, else one)", low=0, high=64)
    devices: str = option(
        "",
        "comma-separated devices for the decision workers (cpu, cuda:N; empty = automatic)",
        expected='comma-separated "cpu" / "cuda:N", or empty',
    )
    guard: bool = option(
        True,
        "check the policy's agreement with each NPC file's built-in behaviour when it loads; "
        "below 95 percent the built-in decides that file (--no-policy-guard: the policy decides "
        "every file)",
    )


@dataclass
class DialogueSection:
    """[dialogue]: a language model in an inference worker answers players who talk to NPCs
    (npc/dialogue/service.py `start` takes this section whole)."""

    enabled: bool = option(True, "NPCs answer players with the dialogue model (off: fallback lines)", flag="dialogue")
    model: str = option(
        "default",
        "default (SmolLM2-135M-Instruct), a .gguf file, a local Hugging Face model folder, or tiny",
        expected="default, tiny, an existing .gguf file or a local model folder",
    )
    dtype: str = option(
        "auto",
        "dialogue model dtype (auto: bfloat16, measured fastest here, bench/dialogue.py)",
        choices=("auto", "float32", "bfloat16", "float16"),
    )
    device: str = option(
        "auto",
        "dialogue model device: auto (cuda:0 when there is a GPU, else cpu), cpu, cuda, cuda:N",
        expected="auto, cpu, cuda or cuda:N",
    )
    first_token_ms: float = option(
        1500.0,
        "time before an NPC shows its thinking line (an NPC file may set its own)",
        unit="ms",
        low=1,
        high=60_000,
    )
    max_new_tokens: int = option(48, "most tokens in one NPC reply", unit="tokens", low=1, high=512)
    conversations: int = option(
        64, "conversations at once, over all NPCs; beyond it NPCs answer with fallback lines", low=1, high=4096
    )
    # The worker runs at a lower priority (nice), so the tick takes a core whenever it needs one:
    # measured with bench/dialogue.py, 2 threads at nice 10 leave the tick p99 as it was idle while 8
    # conversations run, and double the tokens/s of 1 thread (at nice 0 the tick p99 grew 1.7x).
    threads: int = option(0, "torch threads of the dialogue worker on CPU (0 = every core)", low=0, high=256)
    nice: int = option(
        10, "nice value of the dialogue worker (higher yields the CPU to the tick sooner)", low=0, high=19
    )
    step_delay_ms: float = option(
        0.0,
        "pause before every dialogue model step, to try slow replies and thinking lines (tests and demos; 0 = none)",
        unit="ms",
        low=0,
        high=10_000,
    )
    prefix_cache: int = option(
        8192,
        "prompt tokens whose keys/values are kept for reuse by later prompts with the same start (0 = off)",
        unit="tokens",
        low=0,
        high=1_000_000,
    )
    engine: str = option(
        "auto",
        "dialogue decode engine: auto (lean for Llama-family models), lean, transformers",
        choices=("auto", "lean", "transformers"),
    )
    memory_db: str = option(
        str(ROOT / "var" / "memory.sqlite"),
        'SQLite file of what NPCs remember of players (created on first start; "" = none)',
        flag="memory_db",
    )


@dataclass
class AdminSection:
    """[admin]: the admin HTTP endpoints, on their own port (server/admin.py)."""

    host: str = option("127.0.0.1", "interface for the admin HTTP endpoints (loopback unless configured)")
    port: int = option(
        -1,
        "admin HTTP port (-1 = the game port + 1, or a free one when that is taken or the game "
        "port is 0; 0 = any free port)",
        low=-1,
        high=65535,
    )
    token: str = option(
        "", "bearer token for the admin endpoints (default: random per run, printed at start)", secret=True
    )


@dataclass
class StoreSection:
    """[store]: players' accounts, the token key and world checkpoints, in one SQLite file (server/store/)."""

    path: str = option(
        str(ROOT / "var" / "world.sqlite"),
        "SQLite file of players' accounts and world checkpoints "
        '(created on first start; "" = keep nothing across restarts)',
        flag="store",
        expected='an SQLite file path (not a folder), or ""',
    )
    checkpoint_s: float = option(
        5.0,
        "time between world checkpoints (a crash loses at most this much)",
        unit="seconds",
        low=0.05,
        high=3600,
        flag="checkpoint_s",
    )
    token_expiry_s: float = option(
        7 * 24 * 3600.0,
        "how long a session token stays valid (each resume issues a fresh one)",
        unit="seconds",
        low=60,
        high=10 * 365 * 86400,
        flag="token_expiry_s",
    )
    secret: str = option(
        "",
        "key that signs session tokens (default: a random key kept in the store; random per run without one)",
        secret=True,
        flag="secret",
    )


@dataclass
class WorkersSection:
    """[workers]: remote inference workers (docs/workers.md): decisions and dialogue also go to
    `npcworld worker` processes on other machines through an MQTT 5 broker."""

    broker: str = option(
        "",
        "MQTT 5 broker of remote workers, mqtt://[user@]HOST:PORT or mqtts://... (the password "
        "may come from $NPCWORLD_BROKER_PASSWORD; empty = local workers only)",
        flag="broker",
    )
    broker_ca: str = option("", "CA bundle trusted for an mqtts:// broker (default: the system's)", flag="broker_ca")
    local: int = option(
        -1,
        "local worker processes per kind beside remote ones (-1 = as without a broker, 0 = remote workers only)",
        low=-1,
        high=64,
        flag="local_workers",
    )


# Section name (its attribute, its TOML table) -> (its class, the flag prefix of its fields)
SECTIONS: dict[str, tuple[type, str]] = {
    "net": (NetSection, ""),
    "world": (WorldSection, ""),
    "npcs": (NpcsSection, "npc_"),
    "policy": (PolicySection, "policy_"),
    "dialogue": (DialogueSection, "dialogue_"),
    "admin": (AdminSection, "admin_"),
    "store": (StoreSection, "store_"),
    "workers": (WorkersSection, ""),
}


@dataclass
class ServerConfig:
    net: NetSection = field(default_factory=NetSection)
    world: WorldSection = field(default_factory=WorldSection)
    npcs: NpcsSection = field(default_factory=NpcsSection)
    policy: PolicySection = field(default_factory=PolicySection)
    dialogue: DialogueSection = field(default_factory=DialogueSection)
    admin: AdminSection = field(default_factory=AdminSection)
    store: StoreSection = field(default_factory=StoreSection)
    workers: WorkersSection = field(default_factory=WorkersSection)

    def validate(self) -> "ServerConfig":
        for name, f in OPTIONS.items():  # the declared bounds and choices
            value = getattr(getattr(self, f.section), f.field)
            m = f.meta
            if m["choices"] and value not in m["choices"]:
                _fail(name, value, "one of " + ", ".join(m["choices"]))
            if (m["low"] is not None and value < m["low"]) or (m["high"] is not None and value > m["high"]):
                _fail(
                    name,
                    value,
                    m["expected"] or f"{_num(m['low'])}..{_num(m['high'])}" + (f" {m['unit']}" if m["unit"] else ""),
                )

        def need(ok: bool, name: str) -> None:  # the checks bounds cannot say
            if not ok:
                f = OPTIONS[name]
                _fail(name, getattr(getattr(self, f.section), f.field), f.meta["expected"])

        w, n, p, d, s, k = self.world, self.npcs, self.policy, self.dialogue, self.store, self.workers
        if self.net.compression and self.net.ws != "websockets":
            _fail("compression", True, "--ws websockets (picows has no permessage-deflate)")
        if self.net.gateways > 1 and self.net.ws != "picows":
            _fail("gateways", self.net.gateways, "1 with --ws websockets (gateway processes serve picows)")
        need(Path(w.map).is_file(), "map")
        need(n.dir == "" or Path(n.dir).is_dir(), "npc_dir")
        if p.decider == "policy" and p.weights and not Path(p.weights).is_file():
            _fail("policy_weights", p.weights, "an existing .safetensors file (train one: npcworld train-policy)")
        need(":" in p.module, "policy_module")
        need(
            all(x.strip() == "cpu" or x.strip().startswith("cuda") for x in p.devices.split(",") if x.strip()),
            "policy_devices",
        )
        need(d.device in ("auto", "cpu") or d.device.startswith("cuda"), "dialogue_device")
        need(d.model in ("default", "tiny") or Path(d.model).exists(), "dialogue_model")
        need(s.path == "" or not Path(s.path).is_dir(), "store")
        if k.broker:
            from npc.inference.broker import BrokerError, parse_broker

            try:
                parse_broker(k.broker, k.broker_ca)
            except BrokerError as exc:
                raise ConfigError(str(exc)) from None
        if k.local == 0 and not k.broker:
            _fail("local_workers", 0, "a broker for remote workers when 0")
        return self


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _fail(name: str, value: object, expected: str) -> None:
    f = OPTIONS[name]
    where = f"{name} ([{f.section}] {f.field})" if name != f.field else f"{name} ([{f.section}])"
    raise ConfigError(f"{where} = {value!r}: expected {expected}")


@dataclass(frozen=True)
class Option:
    """One option as the flags and the [server] table name it: where it lives and its declaration."""

    section: str
    field: str
    default: Any
    meta: dict[str, Any]

    @property
    def kind(self) -> type:
        return type(self.default)

    def help(self) -> str:
        """As --help shows it: the help, then [unit, bounds or choices], then the default."""
        m = self.meta
        lo, hi = m["low"], m["high"]
        what = [m["unit"]] if m["unit"] else []
        if lo is not None or hi is not None:
            what.append(f"{'' if lo is None else _num(lo)}..{'' if hi is None else _num(hi)}")
        if m["choices"]:
            what.append("one of " + ", ".join(m["choices"]))
        return (
            str(m["help"])
            + (f" [{', '.join(what)}]" if what else "")
            + ("" if m["secret"] else f" (default: {self.default})")
        )


def _options() -> dict[str, Option]:
    out: dict[str, Option] = {}
    for section, (cls, prefix) in SECTIONS.items():
        for f in fields(cls):
            name = f.metadata["flag"] or prefix + f.name
            assert name not in out, f"two options named {name}"
            out[name] = Option(section, f.name, f.default, dict(f.metadata))
    return out


OPTIONS = _options()  # flat name (the flag's) -> Option, in declaration order


def option_names() -> list[str]:
    return list(OPTIONS)


def flat(**values: Any) -> ServerConfig:
    """A config from flat option names (the flags'), unvalidated: `flat(port=0, npcs=3).validate()`."""
    cfg = ServerConfig()
    for name, value in values.items():
        if name not in OPTIONS:
            raise ConfigError(f"unknown option {name!r}; expected one of {', '.join(OPTIONS)}")
        f = OPTIONS[name]
        setattr(getattr(cfg, f.section), f.field, value)
    return cfg


def _typed(path: Path, key: str, value: Any, want: type) -> Any:
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not want:
        raise ConfigError(f"{path}: {key} = {value!r}: expected {want.__name__}")
    return value


def load_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file's options by flat name: its `[server]` table (or top-level keys) by flat name, and
    the sections' tables (`[dialogue]`, `[policy]`, ...) by their fields' names."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    by_field = {(o.section, o.field): name for name, o in OPTIONS.items()}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in SECTIONS:
            cls = SECTIONS[key][0]
            for k, v in value.items():
                name = by_field.get((key, k.replace("-", "_")))
                if name is None:
                    raise ConfigError(
                        f"{path}: unknown option {k!r} in [{key}]; expected one of "
                        f"{', '.join(f.name for f in fields(cls))}"
                    )
                out[name] = _typed(path, f"[{key}] {k}", v, OPTIONS[name].kind)
            continue
        table = value if isinstance(value, dict) and key == "server" else {key: value}
        if isinstance(value, dict) and key != "server":
            raise ConfigError(
                f"{path}: unknown table [{key}]; expected [server] or one of "
                f"{', '.join('[' + s + ']' for s in SECTIONS)}"
            )
        for k, v in table.items():
            name = k.replace("-", "_")
            if name not in OPTIONS:
                raise ConfigError(f"{path}: unknown option {k!r}; expected one of {', '.join(OPTIONS)}")
            out[name] = _typed(path, k, v, OPTIONS[name].kind)
    return out


def build(toml_path: str | None, overrides: dict[str, Any]) -> ServerConfig:
    """Defaults, then the TOML file, then the flags given (`overrides` by flat name; None = not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    values = load_toml(toml_path) if toml_path else {}
    if toml_path:
        # A relative map or npc_dir in a config file is relative to that file (when it is there).
        here = Path(toml_path).resolve().parent
        for name, exists in (("map", Path.is_file), ("npc_dir", Path.is_dir)):
            v = values.get(name)
            if v and name not in given and not Path(v).is_absolute() and exists(here / v):
                values[name] = str(here / v)
    values.update(given)
    return flat(**values).validate()


def use_policy(p: PolicySection) -> bool:
    """Whether NPC decisions go to the policy (auto: when its weights file exists and was trained for
    today's observation layout; else the built-in behaviour decides, and the log says to retrain)."""
    if p.decider == "auto":
        if not (p.weights and Path(p.weights).is_file()):
            return False
        width = weights_input(p.weights)
        from npc.policy.observe import OBS_DIM

        if p.module == "npc.policy.model:build_policy" and width != OBS_DIM:
            logging.getLogger("npcworld").warning(
                "%s was trained for %s observation columns, not today's %d: the built-in behaviour decides "
                "(retrain with `npcworld train-policy`)",
                p.weights,
                width,
                OBS_DIM,
            )
            return False
        return True
    return p.decider == "policy"


def remote_workers(w: WorkersSection, kind: str, default_workers: int | None) -> dict[str, Any]:
    """Pool options for one kind of request ("decision", "dialogue"): remote workers through the
    broker, if one is configured, and how many local workers serve beside them."""
    workers = default_workers if w.local == -1 else w.local
    if not w.broker:
        return {"workers": workers}
    from npc.inference.broker import RemoteConfig

    return {"workers": workers, "remote": RemoteConfig(w.broker, kind, ca_file=w.broker_ca)}
