"""Server configuration: one typed place, defaults that work out of the box.

Precedence: built-in defaults < TOML file (`--config`) < command-line flags.
"""

from __future__ import annotations

import logging

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from npc.policy.weights import DEFAULT_WEIGHTS, weights_input

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MAP = ROOT / "assets" / "maps" / "default.tmj"
DEFAULT_NPC_DIR = ROOT / "assets" / "npcs"
DEFAULT_POLICY = DEFAULT_WEIGHTS
DECIDERS = ("auto", "policy", "builtin", "scripted")   # scripted: the old name of builtin
CLIENT_DIR = ROOT / "client_demo"

LOG_LEVELS = ("debug", "info", "warning", "error")
# Where new players appear: "spawn" (near the map's 'spawn' point, for play: everyone meets at the
# plaza) or "random" (uniformly over the free tiles reachable from it, from the world's seed: a load
# test whose players spread over the world like the Colyseus peer's, so interest management works).
SPAWNS = ("spawn", "random")


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
    spawn: str = "spawn"  # where new players appear: one of SPAWNS
    secret: str = ""  # HMAC key for session tokens; empty = a random key kept in the store (random per run without one)
    # permessage-deflate compresses every update once per connection, which
    # undoes sharing one encoding per cell: at 400 bots it was 63% of the
    # server's CPU (py-spy, bench/capacity.py). Off unless asked for.
    compression: bool = False
    # Updates written as WebSocket frames straight into the socket: per connection and flush one
    # writev of [frame head + the observer's update head, the cell's shared body, ...], instead of
    # websockets' send path (a Frame object, a copy and a write per message). Off: that path, as
    # before (it is also what a connection with permessage-deflate always uses).
    direct_writes: bool = True
    npc_dir: str = str(DEFAULT_NPC_DIR)  # NPC files (*.toml), hot-reloaded; "" = none
    day_length: float = 1440.0  # real seconds per game day (1440: a game minute per second)
    hook_budget_ms: float = 5.0  # per NPC hook call; the hard cap is 4x this
    admin_host: str = "127.0.0.1"  # admin HTTP endpoints: loopback unless configured
    admin_port: int = -1  # -1 = game port + 1 (a free port when the game port is 0 or it is taken); 0 = free
    admin_token: str = ""  # bearer token for the admin endpoints; empty = random per run, printed at start
    # NPC decisions (npc/policy/decider.py): each NPC re-thinks every think_ms; the policy (in the
    # inference pool's workers) decides the files its guard passed, its answer applied at the next tick;
    # an answer later than decision_budget_ms (0 = one tick) falls back to the built-in behaviour then.
    # "auto": the policy when its weights exist.
    decider: str = "auto"
    think_ms: float = 500.0
    decision_budget_ms: float = 0.0
    policy_weights: str = str(DEFAULT_POLICY)
    policy_module: str = "npc.policy.model:build_policy"  # any "module:factory(weights=, device=)" -> nn.Module
    policy_workers: int = 0  # 0 = one per GPU, else one CPU worker
    policy_devices: str = ""  # comma-separated, e.g. "cpu" or "cuda:0,cuda:1"; empty = automatic
    policy_guard: bool = True  # check the policy on each NPC file as it loads; the built-in decides below 95%

    # Dialogue (npc/dialogue/): a language model in an inference worker answers players who talk to NPCs.
    dialogue: bool = True
    dialogue_model: str = "default"  # "default" (SmolLM2-135M-Instruct GGUF), a .gguf file, a local HF dir, "tiny"
    dialogue_dtype: str = "auto"  # auto (bfloat16: measured fastest here, bench/dialogue.py), float32, bfloat16, float16
    dialogue_device: str = "auto"  # auto (cuda:0 when there is a GPU, else cpu), cpu, cuda:N
    dialogue_first_token_ms: float = 1500.0  # default first-token budget before the thinking line
    dialogue_max_new_tokens: int = 48  # tokens per reply
    dialogue_conversations: int = 64  # at once, over all NPCs; beyond it NPCs answer with fallback lines
    # torch threads of the dialogue worker on CPU; 0 = every core. The worker runs at a lower
    # priority (dialogue_nice), so the tick takes a core whenever it needs one: measured with
    # bench/dialogue.py, 2 threads at nice 10 leave the tick p99 as it was idle while 8
    # conversations run, and double the tokens/s of 1 thread (at nice 0 the tick p99 grew 1.7x).
    dialogue_threads: int = 0
    dialogue_nice: int = 10  # the worker's nice value (0..19): higher yields the CPU to the tick sooner
    dialogue_step_delay_ms: float = 0.0  # tests and demos: a pause before every model step (a slow model on purpose)
    dialogue_prefix_cache: int = 8192  # prompt tokens whose keys/values are kept for reuse (0 = off)
    # auto: the lean decode path (npc/dialogue/lean.py) for Llama-family models, else transformers' forward
    dialogue_engine: str = "auto"
    memory_db: str = str(ROOT / "var" / "memory.sqlite")  # what NPCs remember of players (SQLite; created)

    # Remote workers (docs/workers.md): decisions and dialogue also go to `npcworld worker` processes
    # on other machines through an MQTT 5 broker; "" = none (no broker on one machine).
    broker: str = ""  # mqtt://[user@]host:port or mqtts://...; the password may come from $NPCWORLD_BROKER_PASSWORD
    broker_ca: str = ""  # mqtts: a CA bundle instead of the system's
    local_workers: int = -1  # -1 = as without a broker; 0 = remote workers only; N = N local workers per kind
    # The store (server/store/): players' accounts, the token key and world checkpoints, in one SQLite file.
    store: str = str(ROOT / "var" / "world.sqlite")  # created on first start; "" = keep nothing across restarts
    checkpoint_s: float = 5.0  # seconds between world checkpoints (a crash loses at most this much)
    token_expiry_s: float = 7 * 24 * 3600.0  # seconds a session token stays valid (each resume issues a new one)

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
        "spawn": "where new players appear: spawn (near the map's spawn point) or random (uniformly over the "
                 "free tiles, from the seed: spread-out load tests)",
        "secret": "key that signs session tokens (default: a random key kept in the store)",
        "compression": "offer permessage-deflate (costs CPU per connection and update)",
        "direct_writes": "write updates as WebSocket frames straight into the socket, one writev per connection "
                         "and tick with the cell's shared bytes uncopied (off: websockets' send path per message)",
        "npc_dir": "folder of NPC files (*.toml), reloaded when they change; empty = none",
        "day_length": "real seconds per game day",
        "hook_budget_ms": "time budget of one NPC hook call, ms (the hard cap is 4x)",
        "admin_host": "interface for the admin HTTP endpoints",
        "admin_port": "admin HTTP port (-1 = the game port + 1; 0 = any free port)",
        "admin_token": "bearer token for the admin endpoints (default: random per run, printed at start)",
        "decider": "who decides NPC actions: auto (the policy if its weights exist), policy, builtin",
        "think_ms": "how often each NPC re-thinks, ms (spread over the ticks)",
        "decision_budget_ms": "how long a policy decision may take before the built-in behaviour decides instead, ms (0 = a tick)",
        "policy_weights": "decision policy weights (safetensors)",
        "policy_module": "module:factory building the policy (an nn.Module; see npc/policy/model.py)",
        "policy_workers": "inference worker processes for decisions (0 = one per GPU, else one)",
        "policy_devices": "comma-separated devices for the decision workers (cpu, cuda:N; empty = automatic)",
        "policy_guard": "check the policy's agreement with each NPC file's built-in behaviour when it loads; below "
                        "95 percent the built-in decides that file (--no-policy-guard: the policy decides every file)",
        "dialogue": "NPCs answer players with the dialogue model (off: fallback lines)",
        "dialogue_model": "default (SmolLM2-135M-Instruct), a .gguf file, a local Hugging Face model folder, or tiny",
        "dialogue_dtype": "dialogue model dtype: auto, float32, bfloat16, float16",
        "dialogue_device": "dialogue model device: auto, cpu, cuda, cuda:N",
        "dialogue_first_token_ms": "ms before an NPC shows its thinking line (an NPC file may set its own)",
        "dialogue_max_new_tokens": "most tokens in one NPC reply",
        "dialogue_conversations": "conversations at once; beyond it NPCs answer with fallback lines",
        "dialogue_threads": "torch threads of the dialogue worker on CPU (0 = every core)",
        "dialogue_nice": "nice value of the dialogue worker (0..19; the tick keeps priority)",
        "dialogue_step_delay_ms": "pause before every dialogue model step, to try slow replies and thinking lines (0 = none)",
        "dialogue_prefix_cache": "prompt tokens kept for reuse by later prompts with the same start (0 = off)",
        "dialogue_engine": "dialogue decode engine: auto (lean for Llama-family models), lean, transformers",
        "memory_db": "SQLite file of what NPCs remember of players (created on first start)",
        "broker": "MQTT 5 broker of remote workers, mqtt://HOST:PORT or mqtts://... (empty = local workers only)",
        "broker_ca": "CA bundle trusted for an mqtts:// broker (default: the system's)",
        "local_workers": "local worker processes per kind beside remote ones (-1 = as without a broker, 0 = none)",
        "store": "SQLite file of players' accounts and world checkpoints (created on first start; \"\" = none)",
        "checkpoint_s": "seconds between world checkpoints (a crash loses at most this much)",
        "token_expiry_s": "seconds a session token stays valid; every resume issues a fresh one",
    }

    def validate(self) -> "ServerConfig":
        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ConfigError(f"{name} = {getattr(self, name)!r}: expected {expected}")

        need(0 <= self.port <= 65535, "port", "0..65535")
        need(1 <= self.tick_rate <= 240, "tick_rate", "1..240 ticks per second")
        need(0 <= self.npcs <= 100_000, "npcs", "0..100000")
        need(self.spawn in SPAWNS, "spawn", "one of " + ", ".join(SPAWNS))
        need(self.log_level in LOG_LEVELS, "log_level", "one of " + ", ".join(LOG_LEVELS))
        need(self.grace >= 0, "grace", "seconds >= 0")
        need(self.max_players >= 1, "max_players", ">= 1")
        need(self.cell_size >= 32, "cell_size", ">= 32 world units")
        need(1 <= self.view_radius <= 8, "view_radius", "1..8 cells")
        need(Path(self.map).is_file(), "map", "an existing .tmj file")
        need(self.npc_dir == "" or Path(self.npc_dir).is_dir(), "npc_dir", "an existing folder, or \"\" for none")
        need(1 <= self.day_length <= 10_000_000, "day_length", "1..10000000 seconds")
        need(0.1 <= self.hook_budget_ms <= 10_000, "hook_budget_ms", "0.1..10000 ms")
        need(self.decider in DECIDERS, "decider", "one of " + ", ".join(DECIDERS))
        need(self.decider != "policy" or Path(self.policy_weights).is_file() or self.policy_weights == "",
             "policy_weights", "an existing .safetensors file (train one: npcworld train-policy)")
        need(10 <= self.think_ms <= 60_000, "think_ms", "10..60000 ms")
        need(0 <= self.decision_budget_ms <= 10_000, "decision_budget_ms", "0..10000 ms (0 = one tick)")
        need(":" in self.policy_module, "policy_module", '"package.module:factory"')
        need(0 <= self.policy_workers <= 64, "policy_workers", "0..64 (0 = automatic)")
        need(all(d.strip() == "cpu" or d.strip().startswith("cuda") for d in self.policy_devices.split(",") if d.strip()),
             "policy_devices", 'comma-separated "cpu" / "cuda:N", or empty')
        need(self.dialogue_dtype in ("auto", "float32", "bfloat16", "float16"), "dialogue_dtype",
             "auto, float32, bfloat16 or float16")
        need(self.dialogue_device in ("auto", "cpu") or self.dialogue_device.startswith("cuda"), "dialogue_device",
             "auto, cpu, cuda or cuda:N")
        need(self.dialogue_model in ("default", "tiny") or Path(self.dialogue_model).exists(), "dialogue_model",
             "default, tiny, an existing .gguf file or a local model folder")
        need(1 <= self.dialogue_first_token_ms <= 60_000, "dialogue_first_token_ms", "1..60000 ms")
        need(1 <= self.dialogue_max_new_tokens <= 512, "dialogue_max_new_tokens", "1..512 tokens")
        need(1 <= self.dialogue_conversations <= 4096, "dialogue_conversations", "1..4096")
        need(0 <= self.dialogue_threads <= 256, "dialogue_threads", "0 (auto) .. 256")
        need(0 <= self.dialogue_nice <= 19, "dialogue_nice", "0..19")
        need(0 <= self.dialogue_step_delay_ms <= 10_000, "dialogue_step_delay_ms", "0..10000 ms")
        need(0 <= self.dialogue_prefix_cache <= 1_000_000, "dialogue_prefix_cache", "0..1000000 tokens")
        need(0.05 <= self.checkpoint_s <= 3600, "checkpoint_s", "0.05..3600 seconds")
        need(60 <= self.token_expiry_s <= 10 * 365 * 86400, "token_expiry_s", "60 s .. 10 years, in seconds")
        need(self.store == "" or not Path(self.store).is_dir(), "store", "an SQLite file path (not a folder), or \"\"")
        need(self.dialogue_engine in ("auto", "lean", "transformers"), "dialogue_engine", "auto, lean or transformers")
        need(-1 <= self.admin_port <= 65535, "admin_port", "-1 (game port + 1), 0 (any free port) or 1..65535")
        if self.broker:
            from npc.inference.broker import BrokerError, parse_broker

            try:
                parse_broker(self.broker, self.broker_ca)
            except BrokerError as exc:
                raise ConfigError(str(exc)) from None
        need(-1 <= self.local_workers <= 64, "local_workers", "-1 (as without a broker), 0 (none) .. 64")
        need(self.local_workers != 0 or bool(self.broker), "local_workers", "a broker for remote workers when 0")
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


def use_policy(cfg: ServerConfig) -> bool:
    """Whether NPC decisions go to the policy (auto: when its weights file exists and was trained for
    today's observation layout; else the built-in behaviour decides, and the log says to retrain)."""
    if cfg.decider == "auto":
        if not (cfg.policy_weights and Path(cfg.policy_weights).is_file()):
            return False
        width = weights_input(cfg.policy_weights)
        from npc.policy.observe import OBS_DIM

        if cfg.policy_module == "npc.policy.model:build_policy" and width != OBS_DIM:
            logging.getLogger("npcworld").warning(
                "%s was trained for %s observation columns, not today's %d: the built-in behaviour decides "
                "(retrain with `npcworld train-policy`)", cfg.policy_weights, width, OBS_DIM)
            return False
        return True
    return cfg.decider == "policy"


def remote_workers(cfg: ServerConfig, kind: str, default_workers: int | None) -> dict:
    """Pool options for one kind of request ("decision", "dialogue"): remote workers through the
    broker, if one is configured, and how many local workers serve beside them."""
    workers = default_workers if cfg.local_workers == -1 else cfg.local_workers
    if not cfg.broker:
        return {"workers": workers}
    from npc.inference.broker import RemoteConfig

    return {"workers": workers, "remote": RemoteConfig(cfg.broker, kind, ca_file=cfg.broker_ca)}
