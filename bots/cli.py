"""`npcworld bots`: the subcommand's arguments, checked, then handed to bots.run.
Imports nothing heavy, so that `npcworld --help` stays fast."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from world.protocol import VERSION

from .plan import PlanError, make_plan
from .scenarios import SCENARIOS

DEFAULT_REPORT_DIR = "bots-report"


def add_parser(sub) -> argparse.ArgumentParser:
    scenarios = "\n".join(f"  {name:<8} {cls.__doc__}" for name, cls in SCENARIOS.items())
    p = sub.add_parser(
        "bots",
        help="load-test a server with headless bots",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Open N WebSocket connections to a server (spread over P processes, ramped up evenly),\n"
        "play a scenario, and report what the bots and the server's /metrics saw: a live\n"
        "progress line, a table, DIR/report.json and DIR/report.html.",
        epilog=f"scenarios:\n{scenarios}\n\n"
        "exit status: 0 as planned; 1 the run saw problems (failed connects, connections closed\n"
        "by the server, server gone); 2 bad arguments; 3 server unreachable; 130 interrupted.\n\n"
        "example: npcworld bots --url ws://127.0.0.1:8080/ws --clients 200 --ramp 10 --duration 60",
    )
    p.add_argument(
        "--url",
        required=True,
        metavar="URL",
        help="the server's WebSocket URL, ws://HOST:PORT/ws (a missing path means /ws)",
    )
    p.add_argument("--clients", type=int, default=10, metavar="N", help="bots to connect (default: 10)")
    p.add_argument(
        "--ramp",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds over which the bots connect, evenly spread (default: 5)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds from the first connection to closing them all, ramp included (default: 30)",
    )
    p.add_argument("--scenario", choices=list(SCENARIOS), default="wander", help="what each bot does (default: wander)")
    p.add_argument(
        "--procs",
        type=int,
        default=None,
        metavar="P",
        help="bot processes (default: one per 250 bots, at most one per CPU core)",
    )
    p.add_argument(
        "--report",
        default=DEFAULT_REPORT_DIR,
        metavar="DIR",
        help=f"directory for report.json and report.html (default: {DEFAULT_REPORT_DIR})",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the bots' choices (default: 0)")
    p.add_argument(
        "--protocol",
        type=int,
        default=VERSION,
        metavar="V",
        help=f"the protocol version the bots speak (default: {VERSION}; 2 for a server that speaks no {VERSION})",
    )
    return p


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        plan = make_plan(
            args.url,
            args.clients,
            args.ramp,
            args.duration,
            args.scenario,
            args.procs,
            tuple(SCENARIOS),
            os.cpu_count() or 1,
            args.seed,
            args.protocol,
        )
    except PlanError as exc:
        parser.error(str(exc))  # usage and the message on stderr, exit status 2
    report_dir = Path(args.report)
    existing = next(p for p in (report_dir, *report_dir.absolute().parents) if p.exists())  # created at the end
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        parser.error(f"--report {args.report}: cannot write there ({existing} is not a writable directory)")
    from . import run  # imported late: keeps --help fast

    try:
        return run.run(plan, report_dir)
    except KeyboardInterrupt:
        return run.EXIT_INTERRUPTED
    except Exception as exc:  # never a traceback for the operator; the detail is in the debug log
        logging.getLogger("npcworld.bots").debug("run failed", exc_info=True)
        print(f"npcworld bots: the run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return run.EXIT_PROBLEMS
