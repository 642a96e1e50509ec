"""`npcworld worker`: the command line of a remote model worker (mqtt_worker.py).

    npcworld worker --broker mqtt://10.0.0.5:1883 --serve decision,dialogue --device cuda:0 --name gpu-a

Builds one local pool per kind served (the same runners as `npcworld serve`
runs, with the same model options), waits until every model is loaded, then
serves through the broker until SIGINT or SIGTERM (going offline cleanly).
docs/workers.md has every option and the wire contract.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys

from . import broker as b
from .config import PoolConfig
from .mqtt_worker import MqttWorker


def add_parser(sub) -> argparse.ArgumentParser:
    from npc.policy.weights import DEFAULT_WEIGHTS as DEFAULT_POLICY

    p = sub.add_parser(
        "worker",
        help="run a remote model worker that serves game servers through an MQTT broker",
        description="Run model workers for game servers on other machines: requests arrive "
        "through an MQTT 5 broker (docs/workers.md).",
    )
    p.add_argument(
        "--broker",
        required=True,
        metavar="URL",
        help=f"mqtt://[USER@]HOST:PORT or mqtts://... (TLS); the password may come from ${b.PASSWORD_ENV}",
    )
    p.add_argument("--broker-ca", default="", metavar="FILE", help="CA bundle for mqtts:// (default: the system's)")
    p.add_argument("--serve", required=True, metavar="KINDS", help="comma-separated: decision, dialogue")
    p.add_argument("--device", default="auto", help="auto (cuda:0 when there is a GPU, else cpu), cpu, cuda:N")
    p.add_argument("--name", default="", help="this worker's name in status topics and metrics (default: HOST-PID)")
    p.add_argument("--prefix", default="npcworld", help="topic prefix shared with the servers (default: npcworld)")
    p.add_argument(
        "--capacity",
        action="append",
        default=[],
        metavar="KIND=N",
        help="requests in hand per kind before answering busy (default: decision 2 batches per "
        "local worker, dialogue its streams)",
    )
    p.add_argument("--workers", type=int, default=1, help="local worker processes per kind (default: 1)")
    p.add_argument("--policy-weights", default=str(DEFAULT_POLICY), help="decision policy weights (safetensors)")
    p.add_argument("--policy-module", default="npc.policy.model:build_policy", help="module:factory of the policy")
    p.add_argument("--dialogue-model", default="default", help="default, a .gguf file, a local model folder, or tiny")
    p.add_argument("--dialogue-dtype", default="auto", help="auto, float32, bfloat16, float16")
    p.add_argument("--dialogue-max-new-tokens", type=int, default=48)
    p.add_argument("--dialogue-prefix-cache", type=int, default=8192)
    p.add_argument("--dialogue-streams", type=int, default=16, help="conversations one dialogue worker runs at once")
    p.add_argument("--dialogue-threads", type=int, default=0, help="torch threads on CPU (0 = every core)")
    p.add_argument("--dialogue-step-delay-ms", type=float, default=0.0, help="tests and demos: pause before each step")
    p.add_argument(
        "--runner",
        action="append",
        default=[],
        metavar="KIND=SPEC",
        help="run this module:attr for a kind instead of the built-in runner (its protocol must match)",
    )
    p.add_argument(
        "--runner-options",
        action="append",
        default=[],
        metavar="KIND=JSON",
        help="keyword arguments (JSON object) for --runner",
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        kind, sep, value = item.partition("=")
        if not sep or kind not in b.KINDS:
            raise b.BrokerError(f"{what} {item!r}: expected KIND=VALUE with KIND one of {', '.join(b.KINDS)}")
        out[kind] = value
    return out


def pool_configs(args) -> tuple[dict[str, PoolConfig], dict[str, str], str]:
    """The local pool of each kind served, the model each runs, and the device."""
    from .devices import gpu_count

    kinds = [k.strip() for k in args.serve.split(",") if k.strip()]
    bad = [k for k in kinds if k not in b.KINDS]
    if not kinds or bad:
        raise b.BrokerError(f"--serve {args.serve!r}: expected a comma-separated list of {', '.join(b.KINDS)}")
    device = args.device
    if device == "auto":
        device = "cuda:0" if gpu_count() else "cpu"
    runners = _pairs(args.runner, "--runner")
    options = {k: json.loads(v) for k, v in _pairs(args.runner_options, "--runner-options").items()}
    pools, models = {}, {}
    for kind in kinds:
        if kind == "decision":
            spec = runners.get(kind, "npc.policy.model:PolicyRunner")
            opts = options.get(kind, {"module": args.policy_module, "weights": args.policy_weights or None})
            # max_wait_s 0: the server batched already; waiting here only adds to the round trip
            pools[kind] = PoolConfig(
                runner=spec, runner_options=opts, workers=args.workers, devices=[device], max_wait_s=0.0
            )
            models[kind] = (
                f"{args.policy_module} {os.path.basename(args.policy_weights)}" if kind not in runners else spec
            )
        else:
            spec = runners.get(kind, "npc.dialogue.runner:DialogueRunner")
            opts = options.get(
                kind,
                {
                    "model": args.dialogue_model,
                    "dtype": args.dialogue_dtype,
                    "max_new_tokens": args.dialogue_max_new_tokens,
                    "prefix_cache_tokens": args.dialogue_prefix_cache,
                    "step_delay_s": args.dialogue_step_delay_ms / 1000.0,
                },
            )
            pools[kind] = PoolConfig(
                runner=spec,
                runner_options=opts,
                workers=args.workers,
                devices=[device],
                max_streams=args.dialogue_streams,
                threads=args.dialogue_threads or None,
                hang_timeout_s=60.0,
                heartbeat_s=0.5,
                start_timeout_s=300.0,
            )
            models[kind] = args.dialogue_model if kind not in runners else spec
    return pools, models, device


def main(args) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        address = b.parse_broker(args.broker, args.broker_ca)
        pools, models, device = pool_configs(args)
        capacity = {k: int(v) for k, v in _pairs(args.capacity, "--capacity").items()}
        name = args.name or f"{socket.gethostname()}-{os.getpid()}"
        worker = MqttWorker(address, name, pools, device, prefix=args.prefix, capacity=capacity, models=models)
    except (b.BrokerError, ValueError) as exc:
        print(f"npcworld worker: {exc}", file=sys.stderr)
        return 2
    worker.start_pools()
    try:
        print(f"npcworld worker {name}: loading {', '.join(pools)} on {device} ...", flush=True)
        if not worker.wait_ready():
            print(
                f"npcworld worker {name}: the models did not load: "
                f"{[w.last_error for p in worker.pools.values() for w in p.workers()]}",
                file=sys.stderr,
            )
            return 1

        async def amain() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            print(
                f"npcworld worker {name} ready: serving {', '.join(pools)} on {device} through {address.url}",
                flush=True,
            )
            await worker.run(stop)

        asyncio.run(amain())
        return 0
    finally:
        worker.close_pools()
