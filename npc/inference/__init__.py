"""The inference pool: model workers in separate processes, fed batches under deadlines.

Public API (none of it imports torch; only worker processes do):

    Pool, PoolConfig          the pool and its configuration
    InferenceFuture, Outcome  what submit returns, and how a request ended
    Inbox                     where finished futures land for a polling tick
    RequestDropped, RequestFailed
    PoolStats                 counters for /metrics
    Stream, StreamEnd         what open_stream returns (streaming runners), and how it ended
    RemoteConfig              remote workers through an MQTT 5 broker (PoolConfig.remote)

See pool.py for the model of operation and the parts (client, engine,
scheduler, executors, messages, workers, runners); docs/workers.md for
remote workers over MQTT.
"""

from .broker import RemoteConfig
from .config import PoolConfig
from .future import Inbox, InferenceError, InferenceFuture, Outcome, RequestDropped, RequestFailed
from .pool import Pool
from .stats import PoolStats, WorkerInfo
from .stream import Stream, StreamEnd

__all__ = [
    "Pool",
    "PoolConfig",
    "InferenceFuture",
    "Outcome",
    "Inbox",
    "InferenceError",
    "RequestDropped",
    "RequestFailed",
    "PoolStats",
    "WorkerInfo",
    "Stream",
    "StreamEnd",
    "RemoteConfig",
]
