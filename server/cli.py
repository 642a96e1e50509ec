"""`npcworld`: the one command-line entry point, with subcommands."""

from __future__ import annotations

import argparse
import logging
import sys

from bots import cli as bots_cli
from npc.files import check as npc_check
from npc.inference import worker_cli
from npc.policy import train as train_policy  # imports torch only when the command runs

from . import config, talk_cli
from .store import ops as store_ops


def _serve_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="run the game server and its browser client",
        description="Run the game server: HTTP and WebSocket on one port. "
        "Options come from the defaults, then --config FILE (TOML: a [server] table with these "
        "names, underscores or dashes, and/or the sections' tables [net], [world], [npcs], [policy], "
        "[dialogue], [admin], [store], [workers]; see the README), then these flags.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML config file")
    groups = {
        s: p.add_argument_group(f"[{s}]", (cls.__doc__ or "").split("\n")[0].removeprefix(f"[{s}]: "))
        for s, (cls, _) in config.SECTIONS.items()
    }
    for name, opt in config.OPTIONS.items():  # every flag from its option's declaration
        g = groups[opt.section]
        flag = "--" + name.replace("_", "-")
        if opt.kind is bool:
            g.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=opt.help())
        else:
            g.add_argument(flag, dest=name, type=opt.kind, default=None, metavar=name.upper(), help=opt.help())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="npcworld", description="npcworld: a real-time game server whose NPCs think")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(sub)
    bots_parser = bots_cli.add_parser(sub)
    npc_parser = npc_check.add_parser(sub)
    talk_cli.add_parser(npc_parser.npc_sub)  # type: ignore[attr-defined]  # set by npc_check.add_parser
    train_policy.add_parser(sub)
    worker_cli.add_parser(sub)
    store_parser = store_ops.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "bots":
        return bots_cli.main(args, bots_parser)
    if args.command == "npc" and getattr(args, "npc_command", None) == "talk":
        return talk_cli.main(args)
    if args.command == "npc":
        return npc_check.main(args, npc_parser)
    if args.command == "store":
        return store_ops.main(args, store_parser)
    if args.command == "train-policy":
        return train_policy.main(args)
    if args.command == "worker":
        return worker_cli.main(args)
    if args.command == "serve":
        overrides = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
        try:
            cfg = config.build(args.config, overrides)
        except config.ConfigError as exc:
            print(f"npcworld serve: {exc}", file=sys.stderr)
            return 2
        logging.basicConfig(level=cfg.net.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from . import app  # imported late: keeps --help fast

        try:
            return app.main(cfg)
        except Exception as exc:  # e.g. the map is broken or the port is taken
            logging.getLogger("npcworld").debug("startup failed", exc_info=True)
            print(f"npcworld serve: {exc}", file=sys.stderr)
            return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
