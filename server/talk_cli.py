"""`npcworld npc talk NPC`: talk to an NPC of a running server as a named player, without walking.

It uses the admin API (POST /npcs/<id>/talk, docs/designers.md): NPC is an
entity id, a file id or a name as GET /npcs lists them (the first match).
Each line (the arguments, else every line read from stdin) is sent in turn;
the streamed events are printed as they come: the hook's decision, the reply
word by word, the action taken. Exit status: 0, 1 when the server refused a
line, 2 when the server cannot be reached or the NPC is unknown.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

DEFAULT_ADMIN = "http://127.0.0.1:8081/"


def add_parser(npc_sub) -> None:
    t = npc_sub.add_parser(
        "talk",
        help="talk to an NPC of a running server (admin API) and print its reply",
        description="Send lines to an NPC as a named player, through the admin API of a "
        "running server; prints the streamed reply, the hook's decision and the action taken.",
    )
    t.add_argument("npc", metavar="NPC", help="entity id, file id or name of the NPC (GET /npcs lists them)")
    t.add_argument("text", nargs="*", metavar="TEXT", help="what to say (default: each line of stdin in turn)")
    t.add_argument("--name", default="designer", help="who you are to the NPC (default: designer)")
    t.add_argument(
        "--admin",
        default=os.environ.get("NPCWORLD_ADMIN", DEFAULT_ADMIN),
        metavar="URL",
        help=f"the admin URL the server printed (default: $NPCWORLD_ADMIN or {DEFAULT_ADMIN})",
    )
    t.add_argument(
        "--token",
        default=os.environ.get("NPCWORLD_ADMIN_TOKEN", ""),
        help="the admin token the server printed (default: $NPCWORLD_ADMIN_TOKEN)",
    )
    t.add_argument("--json", action="store_true", help="print the events as they come, one JSON object a line")


def _request(url: str, token: str, data: dict | None = None):
    req = urllib.request.Request(
        url, data=json.dumps(data).encode() if data is not None else None, method="POST" if data is not None else "GET"
    )
    req.add_header("Authorization", f"Bearer {token}")
    return urllib.request.urlopen(req, timeout=180)


def _resolve(base: str, token: str, npc: str) -> int | None:
    if npc.isdigit():
        return int(npc)
    with _request(base + "npcs", token) as resp:
        listing = json.loads(resp.read())
    for m in listing["npcs"]:
        if npc in (m["npc"], m["name"]) or npc.lower() == m["name"].lower():
            return int(m["id"])
    return None


def show(event: dict, out) -> None:
    """One event, for a person."""
    kind = event.get("event")
    if kind == "heard":
        print(f"{event['from']} -> {event['name']} ({event['npc']}): {event['text']}", file=out)
    elif kind == "hook":
        if not event.get("called"):
            print("  [on_hear] none in this file: the model answers", file=out)
        else:
            intent = event.get("intent")
            what = {
                "answered": "answers",
                "action": "adds an action after the reply",
                "none": "decided nothing: the model answers",
            }[event["result"]]
            print(f"  [on_hear] {what}" + (f": {json.dumps(intent)}" if intent else ""), file=out)
    elif kind == "say_start" and event.get("thinking"):
        print(f"  ({event['thinking']})", file=out)
    elif kind == "say_end":
        print(f"{event.get('text') or '(nothing said)'}", file=out)
        print(f"  [reply] by {event.get('by')}, {event.get('reason')}", file=out)
    elif kind == "action":
        applied = "done" if event.get("applied") else f"not done ({event.get('why', 'refused')})"
        chosen = f" chose {event['chosen']!r} of {event.get('options')}" if "chosen" in event else ""
        print(f"  [action] {event.get('by')}{chosen}: {event.get('action') or 'none'} - {applied}", file=out)
    elif kind == "end" and event.get("why"):
        print(f"  [end] {event['why']}", file=out)


def main(args, out=None) -> int:
    out = out or sys.stdout
    base = args.admin if args.admin.endswith("/") else args.admin + "/"
    try:
        eid = _resolve(base, args.token, args.npc)
        if eid is None:
            print(f"npcworld npc talk: no NPC {args.npc!r} on {base} (GET /npcs lists them)", file=sys.stderr)
            return 2
        lines = args.text and [" ".join(args.text)] or (ln.strip() for ln in sys.stdin)
        status = 0
        for line in lines:
            if not line:
                continue
            try:
                with _request(f"{base}npcs/{eid}/talk", args.token, {"name": args.name, "text": line}) as resp:
                    for raw in resp:
                        if raw.strip():
                            event = json.loads(raw)
                            print(json.dumps(event), file=out) if args.json else show(event, out)
                            out.flush()
            except urllib.error.HTTPError as e:
                body = json.loads(e.read() or b"{}")
                print(f"npcworld npc talk: {e.code}: {body.get('error', '')}", file=sys.stderr)
                status = 1
        return status
    except urllib.error.HTTPError as e:
        print(
            f"npcworld npc talk: {e.code} from {base}: {json.loads(e.read() or b'{}').get('error', '')}",
            file=sys.stderr,
        )
        return 2
    except (urllib.error.URLError, OSError) as e:
        print(f"npcworld npc talk: cannot reach the admin API at {base}: {getattr(e, 'reason', e)}", file=sys.stderr)
        return 2
