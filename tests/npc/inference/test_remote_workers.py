"""Remote workers over MQTT 5, with a real Mosquitto started by each test on a
free loopback port and real `npcworld worker` processes (ended by PID).

The pool-level tests drive a Pool whose only executor is the MQTT one, with
scripted runners in the workers (so a test can see which requests were
computed); the server-level tests run real servers, the real policy runner
and the tiny dialogue model, seen by real WebSocket clients. No sleeps and
no timing assertions: tests wait on futures, presence, metrics and process
exits, each with a generous bound.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from support import mqtthelp
from support.mqtthelp import WAIT
from npc.inference import Outcome, Pool, PoolConfig, StreamEnd
from npc.inference import messages as m
from npc.inference.broker import RemoteConfig, properties, read_properties, reply_topic, request_topic, status_topic
from support.npchelp import TAM
from support.decisionhelp import STAYS, WANDERS, decisions, metrics, until_metrics, walker, walker_at_b
from support.talkhelp import check_stream, conversation, find_npc, walk_to
from support.wsclient import Player

broker, workers = mqtthelp.broker, mqtthelp.workers  # the fixtures
SCRIPTED = ["--runner", "decision=npc.inference.testing:ScriptedRunner", "--runner-options", "decision={}"]
FAR = 30.0  # seconds: a deadline that does not pass during a test


def remote_pool(url: str, kind: str = "decision", **remote) -> Pool:
    return Pool(PoolConfig(workers=0, max_wait_s=0.0, remote=RemoteConfig(url, kind, **remote))).start()


def ready(pool: Pool, n: int = 1) -> None:
    assert pool.wait_for(lambda: pool.stats.workers_ready >= n, WAIT), pool.workers()


def run_one(pool: Pool, payload, budget: float = FAR):
    fut = pool.submit(payload, time.monotonic() + budget)
    assert fut.wait(WAIT)
    return fut


async def raw_client(url: str, body):
    """A bare MQTT 5 client (a foreign server, or garbage): `body(client)` runs connected."""
    from npc.inference import broker as b

    async with b.client(b.parse_broker(url), f"test-{time.monotonic_ns()}", 5) as c:
        return await body(c)


def worker_status(url: str, name: str, pred) -> dict:
    """The first status of worker `name` (retained, then refreshed every few seconds) for which pred holds."""

    async def status(c):
        await c.subscribe(status_topic("npcworld", name), qos=1)
        async for msg in c.messages:
            st = json.loads(msg.payload)
            if pred(st):
                return st

    return asyncio.run(asyncio.wait_for(raw_client(url, status), WAIT))


def test_batches_run_on_a_remote_worker_and_two_workers_share_the_load(broker, workers):
    a = workers("wa", "--serve", "decision", *SCRIPTED)
    b_ = workers("wb", "--serve", "decision", *SCRIPTED)
    a.wait_ready()
    b_.wait_ready()
    pool = remote_pool(broker.url)
    try:
        ready(pool, 2)
        seen = set()
        for i in range(200):  # the broker's shared subscription deals them out; both serve some
            fut = run_one(pool, {"n": i})
            assert fut.outcome is Outcome.ON_TIME, fut.error
            assert fut.value["payload"] == {"n": i}
            seen.add(fut.worker)
            if seen == {"wa", "wb"}:
                break
        assert seen == {"wa", "wb"}
        samples = {(s.name, tuple(s.labels.values())): s.value for f in pool.collect() for s in f.samples}
        assert samples[("npcworld_remote_decision_worker_up", ("wa",))] == 1
        assert samples[("npcworld_remote_decision_worker_outcomes_total", ("wb", "on_time"))] >= 1
        s = pool.stats
        assert s.submitted == s.on_time + s.late + s.dropped + s.failed
    finally:
        pool.close()


def test_expired_requests_are_dropped_by_the_worker_without_compute(broker, workers):
    w = workers("wx", "--serve", "decision", *SCRIPTED)
    w.wait_ready()
    pool = remote_pool(broker.url)
    try:
        ready(pool)

        async def send(c):
            # A request whose budget is spent on arrival: the worker must answer "dropped", never compute it.
            me = reply_topic("npcworld", "test-expired")
            await c.subscribe(me)
            req = m.encode(m.Batch(1, [0.0, 0.0], [{"n": 1}, {"n": 2}]))
            await c.publish(
                request_topic("npcworld", "decision"),
                req,
                properties=properties("publish", me, b"x1", {"budget-ms": "0", "priority": "0"}),
            )
            async for msg in c.messages:
                return m.decode(msg.payload), read_properties(msg)

        done, (_, corr, user) = asyncio.run(raw_client(broker.url, send))
        assert isinstance(done, m.Done) and done.statuses == ["dropped", "dropped"]
        assert corr == b"x1" and user["worker"] == "wx"
        # The runner never saw them: the next request is the first it computes.
        fut = run_one(pool, {"n": 3})
        assert fut.outcome is Outcome.ON_TIME and fut.value["items"] == 1 and fut.value["call"] == 1
    finally:
        pool.close()


def test_malformed_messages_are_counted_and_ignored(broker, workers):
    w = workers("wm", "--serve", "decision", *SCRIPTED)
    w.wait_ready()
    pool = remote_pool(broker.url, client_id="victim")
    try:
        ready(pool)

        async def garbage(c):
            req, me = request_topic("npcworld", "decision"), reply_topic("npcworld", "victim")
            await c.publish(req, b"\xc1\xc1 not msgpack", properties=properties("publish", me, b"b1", {}))
            await c.publish(req, m.encode(m.Stop()), properties=properties("publish", me, b"b2", {}))
            await c.publish(req, m.encode(m.Batch(1, [1.0], [1])))  # no response topic: cannot be answered
            await c.publish(me, b"\x00garbage", properties=properties("publish", None, b"b9", {}))
            await c.publish(me, m.encode(m.Took("x")))  # no correlation data
            await c.publish(status_topic("npcworld", "ghost"), b"{not json", retain=False)
            await c.publish(req, b"x" * 100, properties=properties("publish", me, b"b3", {"budget-ms": "nan"}))

        asyncio.run(raw_client(broker.url, garbage))
        ex = pool.executors[0]
        assert pool.wait_for(lambda: sum(ex.malformed.values()) >= 3, WAIT), ex.malformed
        assert ex.malformed.get("reply", 0) >= 2 and ex.malformed.get("status", 0) >= 1

        # the worker's retained status counts what it ignored
        st = worker_status(broker.url, "wm", lambda st: st["counters"]["malformed"] >= 4)
        assert st["state"] == "online" and st["kinds"] == ["decision"] and st["capacity"]["decision"] >= 1
        fut = run_one(pool, {"n": 1})  # and both still serve
        assert fut.outcome is Outcome.ON_TIME and fut.value["items"] == 1
    finally:
        pool.close()


def test_a_flood_beyond_capacity_is_answered_busy_without_compute(broker, workers):
    w = workers("wf", "--serve", "decision", "--capacity", "decision=1", *SCRIPTED)
    w.wait_ready()
    pool = remote_pool(broker.url)
    try:
        ready(pool)
        stuck = pool.submit({"op": "hang"}, time.monotonic() + FAR)  # holds the worker's one place
        ex = pool.executors[0]
        assert pool.wait_for(lambda: any(x.worker == "wf" for x in ex.batches.values()), WAIT)

        async def flood(c):
            me = reply_topic("npcworld", "flooder")
            await c.subscribe(me)
            for i in range(20):
                await c.publish(
                    request_topic("npcworld", "decision"),
                    m.encode(m.Batch(i, [60.0], [{"n": i}])),
                    properties=properties("publish", me, b"f%d" % i, {"budget-ms": "60000"}),
                )
            got = []
            async for msg in c.messages:
                got.append(m.decode(msg.payload))
                if len(got) == 20:
                    return got

        replies = asyncio.run(asyncio.wait_for(raw_client(broker.url, flood), WAIT))
        assert all(isinstance(r, m.Done) and r.statuses == ["busy"] for r in replies)
        # The hung runner is the worker's local pool's business: killed at its hang timeout, the request fails.
        assert stuck.wait(WAIT) and stuck.outcome is Outcome.FAILED and "runner failed" in stuck.error
        st = worker_status(broker.url, "wf", lambda st: st["counters"]["busy"] >= 20)
        assert st["counters"]["busy"] == 20 and st["capacity"] == {"decision": 1}
        fut = run_one(pool, {"n": 1})  # and it serves again
        assert fut.outcome is Outcome.ON_TIME
    finally:
        pool.close()


def test_local_workers_serve_while_no_remote_worker_has_room(broker, workers):
    pool = Pool(
        PoolConfig(
            runner="npc.inference.testing:ScriptedRunner",
            workers=1,
            max_wait_s=0.0,
            remote=RemoteConfig(broker.url, "decision"),
        )
    ).start()
    try:
        assert pool.wait_ready(WAIT, count=1)
        fut = run_one(pool, {"n": 1})
        assert fut.outcome is Outcome.ON_TIME and fut.worker == 0  # no remote worker yet: the local one
        w = workers("wr", "--serve", "decision", *SCRIPTED)
        w.wait_ready()
        ready(pool, 2)
        fut = run_one(pool, {"n": 2})
        assert fut.outcome is Outcome.ON_TIME and fut.worker == "wr"  # remote first while it has room
        assert {i.executor for i in pool.workers()} == {"local", "mqtt"}
    finally:
        pool.close()


def test_broker_addresses_and_options_are_checked_with_a_reason(monkeypatch):
    from npc.inference.broker import BrokerError, parse_broker
    from server.config import ConfigError, flat

    a = parse_broker("mqtts://npc:s%40cret@broker.lan")
    assert (a.host, a.port, a.tls, a.username, a.password) == ("broker.lan", 8883, True, "npc", "s@cret")
    monkeypatch.setenv("NPCWORLD_BROKER_PASSWORD", "from-env")
    assert parse_broker("mqtt://npc@10.0.0.5:1884").password == "from-env" and "from-env" not in a.url
    for bad, why in [
        ("http://h:1", "expected mqtt://"),
        ("mqtt://h:99999", "port"),
        ("mqtt://:1883", "no host"),
        ("mqtt://h:1/x", "path"),
    ]:
        with pytest.raises(BrokerError, match=why):
            parse_broker(bad)
    with pytest.raises(ConfigError, match="expected mqtt://"):
        flat(broker="http://h").validate()
    with pytest.raises(ConfigError, match="local_workers"):
        flat(local_workers=0).validate()
    with pytest.raises(BrokerError, match="kind"):
        RemoteConfig("mqtt://h", "painting").validate()


def test_a_worker_written_from_the_docs_alone_serves_a_pool(broker):
    """docs/workers.md as the only contract: plain msgpack and MQTT 5, none of our worker code."""
    import msgpack

    async def foreign_worker(c, served: list, stop: asyncio.Event):
        status = {
            "name": "foreign",
            "state": "online",
            "device": "cpu",
            "kinds": ["decision"],
            "capacity": {"decision": 1},
            "models": {},
        }
        await c.subscribe("$share/npcworld-decision/npcworld/req/decision")
        await c.publish("npcworld/workers/foreign/status", json.dumps(status), qos=1, retain=True)
        async for msg in c.messages:
            got = time.monotonic()
            response, corr, user = (
                msg.properties.ResponseTopic,
                msg.properties.CorrelationData,
                dict(msg.properties.UserProperty),
            )
            tag, batch_id, budgets, payloads = msgpack.unpackb(msg.payload)
            assert tag == "batch" and float(user["budget-ms"]) > 0 and 0 <= int(user["priority"]) <= 9

            async def reply(body):
                held = f"{(time.monotonic() - got) * 1000:.3f}"
                await c.publish(
                    response,
                    msgpack.packb(body),
                    properties=properties("publish", None, corr, {"worker": "foreign", "held-ms": held}),
                )

            await reply(["took", "foreign"])
            await reply(["done", batch_id, ["ok"] * len(payloads), [p * 2 for p in payloads], 0.0])
            served.append(batch_id)
            if len(served) == 3:
                await c.publish(
                    "npcworld/workers/foreign/status", json.dumps({**status, "state": "offline"}), qos=1, retain=True
                )
                stop.set()
                return

    async def scenario():
        served: list = []
        stop = asyncio.Event()
        pool = remote_pool(broker.url)
        try:
            worker = asyncio.create_task(raw_client(broker.url, lambda c: foreign_worker(c, served, stop)))
            await asyncio.to_thread(ready, pool)
            for i in range(3):
                fut = pool.submit(21 + i, time.monotonic() + FAR)
                assert await asyncio.to_thread(fut.wait, WAIT)
                assert fut.outcome is Outcome.ON_TIME and fut.value == 2 * (21 + i) and fut.worker == "foreign"
            await asyncio.wait_for(worker, WAIT)
            assert await asyncio.to_thread(pool.wait_for, lambda: pool.stats.workers_ready == 0, WAIT)
            assert any(s.labels.get("worker") == "foreign" for f in pool.collect() for s in f.samples)
        finally:
            await pool.aclose()

    asyncio.run(scenario())


def test_a_broker_with_passwords_admits_servers_and_workers_that_have_one(tmp_path, monkeypatch):
    guarded = mqtthelp.Mosquitto(tmp_path, users={"npc": "s3cret"}).start()
    w = mqtthelp.Worker(
        f"mqtt://npc@127.0.0.1:{guarded.port}",
        "wp",
        "--serve",
        "decision",
        *SCRIPTED,
        env={"NPCWORLD_BROKER_PASSWORD": "s3cret"},
    )  # kept off the command line
    wrong = remote_pool(f"mqtt://npc:wrong@127.0.0.1:{guarded.port}")
    right = remote_pool(f"mqtt://npc:s3cret@127.0.0.1:{guarded.port}")
    try:
        w.wait_ready()
        ready(right)
        assert run_one(right, {"n": 1}).outcome is Outcome.ON_TIME
        # The wrong password never connects: its requests drop at their deadlines, nothing raises.
        fut = run_one(wrong, {"n": 2}, budget=0.2)
        assert fut.outcome is Outcome.DROPPED and not wrong.executors[0].connected
    finally:
        wrong.close()
        right.close()
        w.stop()
        guarded.stop()


def test_a_worker_killed_mid_stream_fails_its_streams_at_once(broker, workers):
    w = workers(
        "ws",
        "--serve",
        "dialogue",
        "--runner",
        "dialogue=npc.inference.testing:ScriptedStreamRunner",
        "--runner-options",
        'dialogue={"n": 100000, "step_s": 0.05}',
    )
    w.wait_ready()
    # A silence bound far beyond the test's: only the worker's will can end these streams in time.
    pool = remote_pool(broker.url, "dialogue", silence_s=3600.0)
    try:
        ready(pool)
        streams = [pool.open_stream({"tag": f"s{i}"}) for i in range(2)]
        assert pool.wait_for(lambda: all(s.pieces >= 2 for s in streams), WAIT), streams
        got = streams[0].take()
        assert [p["text"] for p in got[:2]] == ["s0:1", "s0:2"]  # in order, none lost
        w.kill()
        assert pool.wait_for(lambda: all(s.end is not None for s in streams), WAIT), streams
        for s in streams:
            assert s.end == StreamEnd.FAILED and "ws went offline" in s.error, s.error
        assert pool.stats.workers_ready == 0
        # With no worker left, a new stream waits; its admission deadline drops it without compute.
        late = pool.open_stream({"tag": "late"}, deadline=time.monotonic() + 0.2)
        assert pool.wait_for(lambda: late.end is not None, WAIT)
        assert late.end == StreamEnd.DROPPED
    finally:
        pool.close()


def test_a_cancelled_remote_stream_stops_on_the_worker(broker, workers):
    w = workers(
        "wc",
        "--serve",
        "dialogue",
        "--runner",
        "dialogue=npc.inference.testing:ScriptedStreamRunner",
        "--runner-options",
        'dialogue={"n": 100000, "step_s": 0.02}',
    )
    w.wait_ready()
    pool = remote_pool(broker.url, "dialogue")
    try:
        ready(pool)
        first = pool.open_stream({"tag": "a"})
        assert pool.wait_for(lambda: first.pieces >= 1, WAIT)
        assert first.cancel()
        assert pool.wait_for(lambda: first.end is not None, WAIT) and first.end == StreamEnd.CANCELLED
        second = pool.open_stream({"tag": "b", "n": 2})
        assert pool.wait_for(lambda: second.end is not None, WAIT)
        pieces = second.take()
        assert second.end == StreamEnd.OK and [p["text"] for p in pieces] == ["b:1", "b:2"]
        assert first.sid in pieces[-1]["cancelled"]  # the worker's runner dropped the cancelled stream
    finally:
        pool.close()


# -- real servers -----------------------------------------------------------------------------


@pytest.fixture
def remote_server(npc_server, broker):
    """tests/conftest.py's npc_server with one walker file, whose workers are remote only (through the broker)."""
    return lambda npc, *args: npc_server({"walker.toml": npc}, "--broker", broker.url, "--local-workers", "0", *args)[0]


def remote_outcome(mm: dict, kind: str, worker: str, outcome: str) -> float:
    return mm.get(f'npcworld_remote_{kind}_worker_outcomes_total{{outcome="{outcome}",worker="{worker}"}}', 0.0)


async def test_decisions_from_a_remote_worker_move_an_npc_in_a_real_server(remote_server, workers):
    w = workers("policy-1", "--serve", "decision", "--policy-module", "tests.support.policy_modules:go_to_need")
    srv = remote_server(STAYS, "--decider", "policy", "--no-policy-guard")
    w.wait_ready()
    p = await Player.join(srv.ws_url, name="watcher")
    try:
        await p.until(walker_at_b, timeout=WAIT, what="the walker to go to b on the remote policy's word")
        mm = await asyncio.to_thread(metrics, srv.http_url)
        assert decisions(mm, "on_time") > 0
        assert remote_outcome(mm, "decision", "policy-1", "on_time") > 0
        assert mm['npcworld_remote_decision_worker_up{worker="policy-1"}'] == 1
    finally:
        await p.close()


async def test_the_broker_killed_and_restarted_the_server_ticks_on_and_remote_work_resumes(
    remote_server, workers, broker
):
    w = workers("policy-2", "--serve", "decision", "--policy-module", "tests.support.policy_modules:wander")
    srv = remote_server(WANDERS, "--decider", "policy", "--no-policy-guard")
    w.wait_ready()
    p = await Player.join(srv.ws_url, name="watcher")
    try:
        ok = lambda mm: remote_outcome(mm, "decision", "policy-2", "on_time")  # noqa: E731
        await until_metrics(p, srv.http_url, lambda mm: ok(mm) > 0, "remote on-time decisions", WAIT)
        broker.stop()
        down = await until_metrics(
            p,
            srv.http_url,
            lambda mm: mm["npcworld_remote_decision_broker_connected"] == 0,
            "the server to see the broker gone",
            WAIT,
        )
        # The tick goes on without the broker: no worker is ready, so nothing is asked of the policy
        # (what was in flight failed at once) and the built-in behaviour decides: the walker moves.
        assert down["npcworld_inference_workers_ready"] == 0
        eid = walker(p)
        first = p.positions.get(eid)
        await p.until(
            lambda p, msg: p.positions.get(eid) not in (None, first), timeout=WAIT, what="the walker to keep moving"
        )
        broker.start()
        back = await until_metrics(
            p,
            srv.http_url,
            lambda mm: mm["npcworld_remote_decision_broker_connected"] == 1 and ok(mm) > ok(down),
            "remote decisions to resume",
            WAIT,
        )
        assert back["npcworld_remote_decision_broker_disconnects_total"] >= 1
        assert srv.proc.poll() is None and w.proc.poll() is None
        assert any("unreachable" in line for line in srv.output), srv.output[-20:]
    finally:
        await p.close()


@pytest.mark.timeout(240)
async def test_a_dialogue_reply_streams_from_a_remote_worker_to_a_player(npc_server, tmp_path, broker, workers):
    # A slow model on purpose (a pause before each step), so the second reply is still streaming when its worker dies.
    w = workers(
        "talker",
        "--serve",
        "dialogue",
        "--dialogue-model",
        "tiny",
        "--dialogue-max-new-tokens",
        "12",
        "--dialogue-step-delay-ms",
        "150",
    )
    srv, _ = npc_server(
        {"tam.toml": TAM},
        "--dialogue",
        "--dialogue-model",
        "tiny",
        "--dialogue-max-new-tokens",
        "12",
        "--memory-db",
        str(tmp_path / "memory.sqlite"),
        "--broker",
        broker.url,
        "--local-workers",
        "0",
    )
    w.wait_ready(120)
    tam, ana, bo, end = await conversation(srv, "Hello! What do you sell?", timeout=120)
    text = check_stream(tam, ana, end)
    assert bo.says[-1]["text"] == text
    mm = await asyncio.to_thread(metrics, srv.http_url)
    assert remote_outcome(mm, "dialogue", "talker", "on_time") >= 1

    # The worker killed mid-reply (it has taken the request; 12 steps of 150 ms are still to come): a reply
    # is shown whole once checked, so nothing of it was shown and the NPC says a fallback line instead
    # ("fallback"; "cut" where text had been shown), the server ticks on.
    cy = await Player.join(srv.ws_url, "Cy")
    try:
        await walk_to(cy, await find_npc(cy, "Old Tam"))
        taken = lambda mm: mm.get('npcworld_remote_dialogue_worker_requests_total{worker="talker"}', 0.0)  # noqa: E731
        before = taken(await asyncio.to_thread(metrics, srv.http_url))
        await cy.send({"t": "talk", "npc": tam, "text": "And the weather?"})
        await until_metrics(cy, srv.http_url, lambda mm: taken(mm) > before, "the worker to take the reply", WAIT)
        w.kill()
        end = await cy.until(lambda me, msg: msg["t"] == "say_end", timeout=WAIT, what="say_end after the kill")
        assert end["reason"] in ("fallback", "cut"), end
        mm = await until_metrics(
            cy,
            srv.http_url,
            lambda mm: mm['npcworld_remote_dialogue_worker_up{worker="talker"}'] == 0,
            "the worker's will",
            WAIT,
        )
        assert remote_outcome(mm, "dialogue", "talker", "failed") >= 1 and srv.proc.poll() is None
    finally:
        await cy.close()
