"""The plan of one load run: what every process needs to know, in one
picklable value (workers are started with multiprocessing "spawn")."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

from world.protocol import VERSION, VERSIONS

OPEN_TIMEOUT_S = 10.0  # TCP + WebSocket handshake + welcome, per bot
CLOSE_TIMEOUT_S = 2.0  # closing handshake per bot at the end; then the socket is dropped
SETTLE_S = 1.0  # after the ramp, before the steady window starts


class PlanError(ValueError):
    """An argument is out of range or malformed; the message says which and what was expected."""


@dataclass(frozen=True)
class Plan:
    url: str  # ws://HOST:PORT/ws
    clients: int
    ramp: float  # seconds over which the connections are opened, evenly spread
    duration: float  # seconds from the first connection attempt to closing them all
    scenario: str
    procs: int
    seed: int = 0
    protocol: int = VERSION  # the bots' hello version: 3 (the default) or 2 (a server that speaks no 3)

    def start_offset(self, k: int) -> float:
        """Seconds after the start at which bot k connects."""
        return k * self.ramp / self.clients

    @property
    def window(self) -> tuple[float, float]:
        """The steady window (seconds after the start): every bot has had its
        chance to connect and settle. Summaries of rates use this window; the
        timeline covers the whole run."""
        start = self.ramp + SETTLE_S
        if self.duration - start < 1.0:  # a short run: measure from the end of the ramp
            start = self.ramp
        return float(math.ceil(start)), float(self.duration)

    @property
    def metrics_url(self) -> str:
        """http(s)://HOST:PORT/metrics of the server that serves `url`."""
        parts = urlsplit(self.url)
        scheme = "https" if parts.scheme == "wss" else "http"
        return urlunsplit((scheme, parts.netloc, "/metrics", "", ""))

    def asdict(self) -> dict:
        return asdict(self)


def normalize_url(url: str) -> str:
    """Accept ws://HOST:PORT or ws://HOST:PORT/PATH; a missing path means /ws."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("ws", "wss"):
        raise PlanError(f"--url {url!r}: expected ws://HOST:PORT/ws (or wss://)")
    if not parts.hostname:
        raise PlanError(f"--url {url!r}: no host; expected ws://HOST:PORT/ws")
    try:
        parts.port
    except ValueError:
        raise PlanError(f"--url {url!r}: the port is not a number in 0..65535") from None
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def make_plan(
    url: str,
    clients: int,
    ramp: float,
    duration: float,
    scenario: str,
    procs: int | None,
    scenarios: tuple[str, ...],
    cpus: int,
    seed: int = 0,
    protocol: int = VERSION,
) -> Plan:
    url = normalize_url(url)
    if clients < 1:
        raise PlanError(f"--clients {clients}: expected at least 1")
    if not (ramp >= 0 and math.isfinite(ramp)):
        raise PlanError(f"--ramp {ramp}: expected seconds >= 0")
    if not (duration > 0 and math.isfinite(duration)):
        raise PlanError(f"--duration {duration}: expected seconds > 0")
    if ramp >= duration:
        raise PlanError(
            f"--ramp {ramp} is not shorter than --duration {duration}: "
            "the duration counts from the first connection and includes the ramp"
        )
    if scenario not in scenarios:
        raise PlanError(f"--scenario {scenario!r}: expected one of {', '.join(scenarios)}")
    if procs is None:
        # About 250 bots per process keeps each one well below a core at 20 Hz;
        # never more processes than cores, or they only fight each other.
        procs = max(1, min(cpus, math.ceil(clients / 250)))
    if procs < 1:
        raise PlanError(f"--procs {procs}: expected at least 1")
    if protocol not in VERSIONS or protocol < 2:
        raise PlanError(f"--protocol {protocol}: expected one of {', '.join(str(v) for v in VERSIONS if v >= 2)}")
    return Plan(url, clients, float(ramp), float(duration), scenario, min(procs, clients), seed, protocol)
