"""The designers' admin API on a real server with real WebSocket clients: one NPC in detail
(GET /npcs/<id>), the reload log (GET /log), the game clock (GET/POST /clock), talking without
walking (POST /npcs/<id>/talk, NDJSON), and on_hear as the one path of "a player spoke to this NPC"."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import urllib.request


from support.servers import NPCWORLD

from support.adminhelp import admin, wait_admin
from support.npchelp import admin_of, small_map, write
from support.paths import ROOT
from support.wsclient import Player

BAKER = """
    name = "Bram"
    color = "#e0b070"
    spawn = "spawn"
    hooks = "baker.py"

    [needs.energy]
    start = 80
    rate = -6

    [[schedule]]
    from = "12:00"
    to = "13:00"
    do = "go_to"
    at = "b"

    [actions]
    allowed = ["idle", "talk", "give_item", "go_to", "follow"]
    [actions.give_item]
    items = ["roll"]
    [actions.talk]
    cooldown = 600
    [weights]
    talk = 0
    give_item = 0
"""

HOOKS = """
def on_hear(npc, speaker, text):
    key = "spoken" if npc.spoken_to else "overheard"
    npc.memory[key] = npc.memory.get(key, 0) + 1
    if not npc.spoken_to:
        return
    if "bread" in text:
        npc.talk(f"Bread for you, {speaker.name}.", to=speaker)
    elif "apple" in text:
        npc.give_item(speaker, "apple")
    elif "follow" in text:
        npc.follow(speaker)
"""


def talk_stream(url: str, token: str, eid: int, body: dict) -> tuple[int, list[dict]]:
    req = urllib.request.Request(f"{url}npcs/{eid}/talk", data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    except urllib.error.HTTPError as e:
        return e.code, [json.loads(e.read() or b"{}")]


async def baker(npc_server):
    srv, folder = npc_server({"baker.toml": BAKER, "baker.py": HOOKS})
    url, token = admin_of(srv)
    p = await Player.join(srv.ws_url, "Ann")
    body = await wait_admin(p, url, token, "/npcs", lambda b: b["npcs"], what="the baker")
    return srv, folder, url, token, p, body["npcs"][0]["id"]


async def test_a_player_speaking_to_an_npc_reaches_on_hear_once_and_the_hook_answers(npc_server):
    srv, folder, url, token, p, bram = await baker(npc_server)
    # as the browser does: the line as public chat, and as a talk to the NPC next to the player
    await p.send({"t": "chat", "text": "some bread please"})
    await p.send({"t": "talk", "npc": bram, "text": "some bread please"})
    end = await p.until(lambda p, m: m["t"] == "say_end", what="the reply")
    assert end["text"] == "Bread for you, Ann." and end["reason"] == "done"
    for _ in range(10):  # ticks pass: the chat line would have been heard by now
        await p.recv()
    status, body = await admin(url, f"/npcs/{bram}", token)
    assert status == 200, body
    assert body["hook_memory"] == {"spoken": 1}, body["hook_memory"]  # heard once, as spoken to it
    assert body["decided_by"] == "hook" and "Bread for you, Ann." in [ln["text"] for ln in body["lines"]]
    # only one reply: no chat line of the baker's repeats it, and no second say_end came
    assert not [c for c in p.chat if c[0] == bram], p.chat
    assert sum(1 for s in p.says if s["t"] == "say_end") == 1

    # a hook that decides nothing leaves the reply to the model (here: no model, the fallback line)
    await asyncio.sleep(0)
    await p.send({"t": "talk", "npc": bram, "text": "nice weather"})
    end = await p.until(lambda p, m: m["t"] == "say_end" and m["text"] != "Bread for you, Ann.", what="a reply")
    assert end["reason"] == "fallback"

    # a hook that gives answers with the give line, and the player holds the item
    while True:  # the talk rate: wait until a talk is accepted
        await p.send({"t": "talk", "npc": bram, "text": "an apple?"})
        msg = await p.until(lambda p, m: m["t"] in ("say_end", "error"), what="the gift or an error")
        if msg["t"] == "say_end":
            break
        assert msg["code"] in ("rate_limited", "busy"), msg
        for _ in range(5):
            await p.recv()
    await p.until(lambda p, m: m["t"] == "items", what="the apple")
    assert "apple" in p.items and "apple" in msg["text"]


async def test_the_inspector_shows_why_an_npc_does_what_it_does(npc_server):
    srv, folder, url, token, p, bram = await baker(npc_server)
    body = await wait_admin(
        p, url, token, f"/npcs/{bram}", lambda b: b["nearest_player"] is not None, what="the player noticed"
    )
    assert body["file"].endswith("baker.toml") and body["number"] == 1 and body["extra"] is False
    assert body["nearest_player"]["name"] == "Ann"
    assert body["hooks_file"].endswith("baker.py") and body["hooked"] == ["on_hear"]
    assert body["builtin"]["top"] and body["builtin"]["would"]["action"] in ("idle", "go_to")
    assert [c["candidate"] for c in body["builtin"]["top"]][0] in ("idle", "schedule")
    need = body["needs"][0]
    assert need["name"] == "energy" and need["per_game_hour"] == -6.0 and 0 < need["value"] <= 80
    assert body["schedule"]["block"] is None and body["time"]["clock"] < "12:00"
    assert body["schedule"]["next"]["from"] == "12:00" and body["schedule"]["next"]["at"] == "b"
    assert (await admin(url, "/npcs/999999", token))[0] == 404
    assert (await admin(url, f"/npcs/{p.id}", token))[0] == 404  # a player is not an NPC of a file


async def test_the_clock_can_be_paused_set_and_sped_up_and_schedules_follow(npc_server):
    srv, folder, url, token, p, bram = await baker(npc_server)
    status, clock = await admin(url, "/clock", token)
    assert status == 200 and clock["paused"] is False and clock["speed"] == 1.0 and clock["time"] == "08:00"
    status, clock = await admin(url, "/clock", token, "POST", {"time": "12:00", "paused": True})
    assert status == 200 and clock["time"] == "12:00" and clock["paused"] is True
    body = await wait_admin(p, url, token, f"/npcs/{bram}", lambda b: b["place"] == "b", what="the 12:00 block")
    assert body["schedule"]["block"]["at"] == "b" and body["schedule"]["block"]["from"] == "12:00"
    before = body["needs"][0]["value"]
    for _ in range(20):
        await p.recv()
    status, clock = await admin(url, "/clock", token)
    assert clock["time"] == "12:00" and clock["minute_of_day"] == 720  # paused: time stands still...
    status, body = await admin(url, f"/npcs/{bram}", token)
    assert body["needs"][0]["value"] == before  # ...and so do needs
    # out of range: 400, nothing changed
    for bad in (
        {"speed": 1000},
        {"time": "25:00"},
        {"paused": "yes"},
        {"colour": 1},
        {"time": "10:00", "minute_of_day": 3},
    ):
        status, err = await admin(url, "/clock", token, "POST", bad)
        assert status == 400, (bad, err)
    status, clock = await admin(url, "/clock", token, "POST", {"paused": False, "speed": 120, "day": 3})
    assert clock["speed"] == 120 and clock["day"] == 3 and clock["day_length_s"] == 12.0
    await wait_admin(p, url, token, "/clock", lambda c: c["time"] >= "13:00" or c["day"] > 3, what="time flies")


async def test_talking_without_walking_streams_the_reply_hook_and_action(npc_server):
    srv, folder, url, token, p, bram = await baker(npc_server)
    status, events = await asyncio.to_thread(talk_stream, url, token, bram, {"name": "Cora", "text": "bread?"})
    assert status == 200, events
    kinds = [e["event"] for e in events]
    assert kinds[0] == "heard" and kinds[-1] == "end" and "say_end" in kinds, kinds
    hook = next(e for e in events if e["event"] == "hook")
    assert hook["called"] and hook["result"] == "answered" and hook["intent"]["action"] == "talk"
    said = next(e for e in events if e["event"] == "say_end")
    assert said["text"] == "Bread for you, Cora." and said["by"] == "hook"

    status, events = await asyncio.to_thread(talk_stream, url, token, bram, {"name": "Cora", "text": "follow me"})
    hook = next(e for e in events if e["event"] == "hook")
    assert hook["result"] == "action" and hook["intent"]["action"] == "follow"
    said = next(e for e in events if e["event"] == "say_end")
    assert said["by"] == "fallback"  # no model on this server: its fallback line
    action = next(e for e in events if e["event"] == "action")
    assert action["by"] == "hook" and action["applied"] is False and "no character" in action["why"]

    assert (await asyncio.to_thread(talk_stream, url, token, 999999, {"name": "C", "text": "hi"}))[0] == 404
    assert (await asyncio.to_thread(talk_stream, url, token, bram, {"name": "C"}))[0] == 400
    status, _ = await admin(url, f"/npcs/{bram}/talk", None, "POST", {"name": "C", "text": "hi"})
    assert status == 401


async def test_the_reload_log_lists_loads_reloads_and_errors_with_their_line(npc_server):
    srv, folder, url, token, p, bram = await baker(npc_server)
    status, log = await admin(url, "/log", token)
    assert status == 200
    first = [e for e in log["entries"] if e["file"].endswith("baker.toml")]
    assert first and first[0]["kind"] == "load" and isinstance(first[0]["t"], float)
    seq = log["next"]
    write(folder / "baker.toml", BAKER.replace('at = "b"', 'at = "nowhere"'))
    body = await wait_admin(p, url, token, f"/log?after={seq}", lambda b: b["entries"], what="the error")
    err = body["entries"][0]
    assert err["kind"] == "error" and err["line"] == 14 and "nowhere" in err["message"]
    write(folder / "baker.toml", BAKER.replace("rate = -6", "rate = -5"))
    body = await wait_admin(p, url, token, f"/log?after={body['next']}", lambda b: b["entries"], what="the fix")
    assert body["entries"][0]["kind"] == "reload" and body["entries"][0]["line"] is None
    status, empty = await admin(url, f"/log?after={body['next']}", token)
    assert empty == {"entries": [], "next": body["next"]}
    assert (await admin(url, "/log?after=x", token))[0] == 400


RAISING = """
def on_decide(npc):
    raise ValueError("{why}")
"""


async def test_a_repeating_hook_error_is_logged_once_per_version_and_fixed_errors_go(npc_server):
    mover = BAKER.replace('hooks = "baker.py"', 'hooks = "mover.py"')
    srv, folder = npc_server({"mover.toml": mover, "mover.py": RAISING.replace("{why}", "first")})
    url, token = admin_of(srv)
    p = await Player.join(srv.ws_url, "Ann")
    body = await wait_admin(
        p, url, token, "/npcs", lambda b: b["npcs"] and b["npcs"][0]["hooks"]["errors"] >= 3, what="the hook raising"
    )
    eid = body["npcs"][0]["id"]
    assert body["npcs"][0]["errors"] and all("first" in r["message"] for r in body["npcs"][0]["errors"])
    write(folder / "mover.py", RAISING.replace("{why}", "second"))
    body = await wait_admin(
        p, url, token, f"/npcs/{eid}", lambda b: b["version"] == 2 and b["errors"], what="the new version raising"
    )
    assert all("second" in r["message"] for r in body["errors"]), body["errors"]  # the fixed version's are gone
    tracebacks = [ln for ln in srv.output if ln.startswith("ValueError:")]
    assert tracebacks == ["ValueError: first", "ValueError: second"], tracebacks
    write(folder / "mover.py", "def on_decide(npc):\n    pass\n")
    body = await wait_admin(p, url, token, f"/npcs/{eid}", lambda b: b["version"] == 3, what="the fixed version")
    assert body["errors"] == [] and body["hooks"]["state"] == "ok"


# -- the command line (subprocesses, as a designer runs it) ---------------------------------------------


def npcworld(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*NPCWORLD, *args], cwd=ROOT, capture_output=True, text=True, input=stdin, timeout=180)


def test_npc_new_writes_a_template_that_passes_npc_check(tmp_path):
    r = npcworld("npc", "new", "Fisher Finn", "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    path = tmp_path / "fisher_finn.toml"
    assert 'name = "Fisher Finn"' in path.read_text()
    r = npcworld("npc", "check", str(path), "--no-policy")
    assert r.returncode == 0, r.stdout + r.stderr
    r = npcworld("npc", "new", "Fisher Finn", "--dir", str(tmp_path))
    assert r.returncode == 1 and "not overwritten" in r.stderr


def test_places_beside_the_map_are_listed_and_usable_by_npc_files(tmp_path):
    m = small_map(tmp_path)
    write(
        tmp_path / "small.places.toml",
        """
        [pier]
        tile = [13, 2]

        [hut]
        x = 100
        y = 420
    """,
    )
    r = npcworld("npc", "places", "--map", str(m))
    assert r.returncode == 0, r.stderr
    assert "pier" in r.stdout and "tile=[13, 2]" in r.stdout and "hut" in r.stdout and "small.places.toml" in r.stdout
    npc = write(
        tmp_path / "fisher.toml",
        'name = "Finn"\nspawn = "pier"\nspeed = 30\n'
        '[actions]\nallowed = ["idle", "go_to"]\n[[schedule]]\nfrom = "00:00"\nto = "24:00"\n'
        'do = "go_to"\nat = "hut"\n',
    )
    assert npcworld("npc", "check", str(npc), "--map", str(m), "--no-policy").returncode == 0
    write(tmp_path / "small.places.toml", "[wall]\ntile = [0, 0]\n")
    r = npcworld("npc", "places", "--map", str(m))
    assert r.returncode == 2 and "wall" in r.stderr and "blocked" in r.stderr


async def test_npc_talk_prints_the_hook_the_reply_and_the_action(npc_server):
    srv, folder, url, token, p, bram = await baker(npc_server)
    r = await asyncio.to_thread(
        npcworld,
        "npc",
        "talk",
        "Bram",
        "--admin",
        url,
        f"--token={token}",
        "--name",
        "Dee",
        stdin="bread?\nfollow me\n",
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Dee -> Bram" in out and "[on_hear] answers" in out and "Bread for you, Dee." in out, out
    assert "[reply] by hook" in out and "[on_hear] adds an action" in out and "[action] hook" in out, out
    r = await asyncio.to_thread(npcworld, "npc", "talk", "nobody", "hi", "--admin", url, f"--token={token}")
    assert r.returncode == 2 and "no NPC 'nobody'" in r.stderr
    r = await asyncio.to_thread(npcworld, "npc", "talk", "Bram", "hi", "--admin", url, "--token", "wrong")
    assert r.returncode == 2 and "401" in r.stderr


async def test_an_npc_walks_at_its_files_speed(npc_server):
    walker = """
        name = "{name}"
        spawn = "a"
        speed = {speed}
        [[schedule]]
        from = "00:00"
        to = "24:00"
        do = "go_to"
        at = "b"
        [actions]
        allowed = ["idle", "go_to"]
    """
    srv, folder = npc_server(
        {"slow.toml": walker.format(name="Slow", speed=20), "fast.toml": walker.format(name="Fast", speed=120)}
    )
    url, token = admin_of(srv)
    p = await Player.join(srv.ws_url, "Ann")
    await wait_admin(p, url, token, "/npcs", lambda b: len(b["npcs"]) == 2, what="both walkers")
    start = {m["name"]: m["position"] for m in (await admin(url, "/npcs", token))[1]["npcs"]}
    for _ in range(30):
        await p.recv()
    now = {m["name"]: m["position"] for m in (await admin(url, "/npcs", token))[1]["npcs"]}
    moved = {n: math.dist(start[n], now[n]) for n in now}
    assert moved["Fast"] > 2 * moved["Slow"] > 0, moved


async def test_a_place_added_beside_the_map_is_picked_up_live(npc_server, tmp_path):
    fisher = """
        name = "Finn"
        spawn = "a"
        [[schedule]]
        from = "00:00"
        to = "24:00"
        do = "go_to"
        at = "pier"
        [actions]
        allowed = ["idle", "go_to"]
    """
    srv, _ = npc_server({"fisher.toml": fisher})  # names a place the map does not have yet
    url, token = admin_of(srv)
    p = await Player.join(srv.ws_url, "Ann")
    await wait_admin(p, url, token, "/errors", lambda b: b["files"], what="the unknown place reported")
    assert "pier" not in await served_places(srv.http_url)
    write(tmp_path / "small.places.toml", "[pier]\ntile = [13, 2]\n")
    # the reload waits two polls for the file to settle, then builds the navigation off the tick and
    # loads the file again (its policy check included): seconds on a loaded 2-core machine
    body = await wait_admin(
        p, url, token, "/npcs", lambda b: b["npcs"], timeout=60, what="Finn loaded once the pier exists"
    )
    assert body["npcs"][0]["place"] == "pier"
    status, log = await admin(url, "/log", token)
    assert any(
        e["kind"] == "reload" and "pier" in e["message"] and e["file"].endswith("small.places.toml")
        for e in log["entries"]
    ), log
    await wait_admin(p, url, token, "/npcs", lambda b: b["npcs"][0]["at"] == "pier", what="Finn at the pier")
    # what browsers draw follows without a restart: /map.json on the game port and on the admin port
    assert (await served_places(srv.http_url))["pier"] == [13.5 * 32, 2.5 * 32]
    assert (await served_places(url))["pier"] == [13.5 * 32, 2.5 * 32]
    write(tmp_path / "small.places.toml", "[pier]\ntile = [0, 0]\n")  # a blocked tile: reported, nothing changes
    await wait_admin(
        p,
        url,
        token,
        "/log",
        lambda b: any(e["kind"] == "error" and "blocked" in e["message"] for e in b["entries"]),
        what="the bad place reported",
    )


async def served_places(base: str) -> dict[str, list[float]]:
    """The places of the poi layer of the /map.json a server serves now: {name: [x, y]}."""

    def get() -> dict:
        with urllib.request.urlopen(base + "map.json", timeout=10) as resp:
            return json.loads(resp.read())

    raw = await asyncio.to_thread(get)
    layer = next((lay for lay in raw["layers"] if lay.get("type") == "objectgroup" and lay.get("name") == "poi"), {})
    return {o["name"]: [o["x"], o["y"]] for o in layer.get("objects", [])}
