"""The MQTT 5 side shared by servers and remote workers: the broker's address
and credentials, the topic table, the properties, and the aiomqtt client.

docs/workers.md is the contract this module implements; the two must move
together. Topics (prefix "npcworld" unless configured):

    {prefix}/req/{kind}               requests of one kind ("decision", "dialogue");
                                      workers subscribe $share/{prefix}-{kind}/{prefix}/req/{kind}
                                      so the broker hands each request to one of them
    {prefix}/reply/{client}           one server's replies (its requests' response topic)
    {prefix}/workers/{name}/status    a worker's presence: retained JSON, and its will
    {prefix}/workers/{name}/cancel    cancellations of the streams that worker runs

User properties (strings, as MQTT 5 carries them):
    budget-ms   on a request: milliseconds left when it was sent, already net
                of the expected transit; the worker drops it without compute
                once that much time has passed since it arrived
    priority    on a request: 0..9, higher served first
    worker      on a reply: the worker's name
    held-ms     on a reply: milliseconds between the request's arrival at the
                worker and this reply (the server subtracts it from the round
                trip to measure transit, with no clock shared between them)

The message expiry interval (whole seconds, rounded up) is set on requests as
the broker's backstop only: the deadline is budget-ms.
"""

from __future__ import annotations

import math
import os
import socket
import ssl
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

KINDS = ("decision", "dialogue")  # request kinds: what a worker can --serve
PASSWORD_ENV = "NPCWORLD_BROKER_PASSWORD"  # keeps the password off the command line (ps shows it)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # the most a client accepts from the broker (MQTT 5 Maximum Packet Size)


class BrokerError(ValueError):
    """A broker address or option is wrong; the message says what was expected."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str = ""  # TLS: a CA bundle to trust instead of the system's

    @property
    def url(self) -> str:
        """The address without credentials, for logs."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker(url: str, ca_file: str = "") -> BrokerAddress:
    """ "mqtt://[user[:password]@]host[:port]" (1883) or "mqtts://..." (TLS, 8883).
    A password may come from the NPCWORLD_BROKER_PASSWORD environment variable instead."""
    parts = urlsplit(url if "://" in url else "mqtt://" + url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise BrokerError(f"broker {url!r}: expected mqtt://HOST:PORT or mqtts://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        raise BrokerError(f"broker {url!r}: the port must be a number 1..65535") from None
    if not parts.hostname:
        raise BrokerError(f"broker {url!r}: no host; expected mqtt://HOST:PORT")
    if parts.path not in ("", "/") or parts.query:
        raise BrokerError(f"broker {url!r}: unexpected path or query; expected mqtt://HOST:PORT")
    tls = parts.scheme == "mqtts"
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else os.environ.get(PASSWORD_ENV) or None
    if ca_file and not os.path.isfile(ca_file):
        raise BrokerError(f"broker CA file {ca_file!r} does not exist")
    return BrokerAddress(parts.hostname, port or (8883 if tls else 1883), tls, username, password, ca_file)


@dataclass
class RemoteConfig:
    """Remote workers for one pool (PoolConfig.remote)."""

    broker: str  # see parse_broker
    kind: str  # what this pool's requests are: one of KINDS
    prefix: str = "npcworld"  # topic prefix: servers and workers of one game share it
    priority: int = 0  # 0..9, in every request's user properties
    ca_file: str = ""
    client_id: str = ""  # "" = random per run; names the reply topic
    keepalive_s: int = 5  # the broker notices a silent client within 1.5x this
    # Reconnects back off 0.5 s doubling up to this. 2 s, not more: a broker back after a 5 s
    # outage was reached 7.5 s in with a 10 s cap (bench/remote.py), and a refused connect costs nothing.
    reconnect_max_s: float = 2.0
    transit_prior_s: float = 0.002  # one round trip's transit assumed before one is measured
    reply_grace_s: float = 1.0  # a request unanswered this long after its deadline fails
    silence_s: float = 60.0  # a taken stream that sends nothing this long fails

    def validate(self) -> "RemoteConfig":
        parse_broker(self.broker, self.ca_file)
        if self.kind not in KINDS:
            raise BrokerError(f"remote kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not 0 <= self.priority <= 9:
            raise BrokerError(f"priority = {self.priority!r}: expected 0..9")
        if not valid_name(self.prefix):
            raise BrokerError(f"topic prefix {self.prefix!r}: expected letters, digits, '-', '_', '.'")
        return self


def valid_name(name: str) -> bool:
    """A topic level we build from a name: no wildcards, separators or empties."""
    return bool(name) and len(name) <= 64 and all(c.isalnum() or c in "-_." for c in name)


def new_client_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


# -- the topic table ------------------------------------------------------------------


def request_topic(prefix: str, kind: str) -> str:
    return f"{prefix}/req/{kind}"


def shared_request_topic(prefix: str, kind: str) -> str:
    return f"$share/{prefix}-{kind}/{request_topic(prefix, kind)}"


def reply_topic(prefix: str, client: str) -> str:
    return f"{prefix}/reply/{client}"


def status_topic(prefix: str, name: str) -> str:
    return f"{prefix}/workers/{name}/status"


def cancel_topic(prefix: str, name: str) -> str:
    return f"{prefix}/workers/{name}/cancel"


def status_wildcard(prefix: str) -> str:
    return f"{prefix}/workers/+/status"


def worker_of_status(prefix: str, topic: str) -> str | None:
    parts = topic.split("/")
    base = prefix.split("/")
    if len(parts) == len(base) + 3 and parts[: len(base)] == base and parts[-1] == "status":
        return parts[-2]
    return None


# -- properties -------------------------------------------------------------------------


def properties(
    packet: str,
    response_topic: str | None = None,
    correlation: bytes | None = None,
    user: dict[str, Any] | None = None,
    expiry_s: float | None = None,
) -> Any:
    """paho Properties for a PUBLISH (packet="publish") or CONNECT."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH if packet == "publish" else PacketTypes.CONNECT)
    if response_topic is not None:
        props.ResponseTopic = response_topic
    if correlation is not None:
        props.CorrelationData = correlation
    if user:
        props.UserProperty = [(k, str(v)) for k, v in user.items()]
    if expiry_s is not None:
        # whole seconds, rounded up, at least 1: the broker's backstop, never the deadline
        props.MessageExpiryInterval = max(1, math.ceil(expiry_s))
    return props


def read_properties(msg: Any) -> tuple[str | None, bytes | None, dict[str, str]]:
    """(response topic, correlation data, user properties) of a received message."""
    props = getattr(msg, "properties", None)
    if props is None:
        return None, None, {}
    response = getattr(props, "ResponseTopic", None)
    correlation = getattr(props, "CorrelationData", None)
    user: dict[str, str] = {}
    for pair in getattr(props, "UserProperty", None) or ():
        if isinstance(pair, (tuple, list)) and len(pair) == 2:
            user[str(pair[0])] = str(pair[1])
    return response, correlation, user


def number(user: dict[str, str], key: str, default: float | None = None) -> float | None:
    """A numeric user property, or default when absent; ValueError when it is not a finite number."""
    raw = user.get(key)
    if raw is None:
        return default
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"{key} = {raw!r}: not a finite number")
    return value


# -- the client -------------------------------------------------------------------------


def client(
    address: BrokerAddress, identifier: str, keepalive_s: int, will: Any = None, max_queued: int = 10_000
) -> Any:
    """An aiomqtt client for MQTT 5 (to use as `async with`). Incoming messages
    beyond `max_queued` are discarded by aiomqtt: a flooding peer costs memory
    up to that bound, never more."""
    import aiomqtt

    tls_context = None
    if address.tls:
        tls_context = ssl.create_default_context(cafile=address.ca_file or None)
    connect = properties("connect")
    connect.MaximumPacketSize = MAX_MESSAGE_BYTES  # the broker drops anything larger addressed to us
    return aiomqtt.Client(
        address.host,
        address.port,
        username=address.username,
        password=address.password,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        will=will,
        keepalive=keepalive_s,
        clean_start=True,
        properties=connect,
        tls_context=tls_context,
        timeout=10,
        max_queued_incoming_messages=max_queued,
        # Nagle's algorithm held small replies back ~40 ms (against the peer's delayed ACK):
        # bench/remote.py measured a 50 ms dialogue TTFT through the broker before this, 5 ms locally.
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )


def will(topic: str, payload: bytes) -> Any:
    import aiomqtt

    return aiomqtt.Will(topic, payload, qos=1, retain=True)


class Backoff:
    """Reconnect delays: 0.5 s, doubling, up to `max_s`; reset once connected."""

    def __init__(self, max_s: float = 2.0, first_s: float = 0.5):
        self.max_s, self.first_s = max_s, first_s
        self.next_s = first_s

    def delay(self) -> float:
        d = self.next_s
        self.next_s = min(self.max_s, self.next_s * 2)
        return d

    def reset(self) -> None:
        self.next_s = self.first_s
