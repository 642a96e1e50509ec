"""A broker connection on its own thread, for code that must never wait on the network.

`Link` runs one aiomqtt client (MQTT 5) in an asyncio loop on a thread of
its own: it connects, subscribes, and on any loss reconnects with backoff
(broker.Backoff), saying so in the log. Between it and its owner (the pool's
engine thread) there are two queues and no shared state:
- what arrives goes into `inbox` as events, ("up",), ("down", reason) and
  ("msg", topic, payload, (response topic, correlation data, user
  properties)), and `wake()` is called so the owner looks;
- `publish()` queues a PUBLISH and returns at once; what is queued while the
  broker is down is dropped at the next connect (its requests have failed
  already: the owner saw "down").
A message over broker.MAX_MESSAGE_BYTES never reaches the owner as data:
it arrives as a message on the topic "" (counted there as malformed).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from typing import Any, Callable

from . import broker as b

log = logging.getLogger("npcworld.inference.mqtt")


class Link:
    def __init__(
        self,
        address: b.BrokerAddress,
        client_id: str,
        subscriptions: list[tuple[str, int]],
        wake: Callable[[], None],
        what: str,
        keepalive_s: int = 5,
        reconnect_max_s: float = 2.0,
    ):
        self.address = address
        self.client_id = client_id
        self.subscriptions = subscriptions  # (topic filter, QoS), subscribed at every connect
        self.wake = wake
        self.what = what  # for the log: whose connection this is
        self.keepalive_s = keepalive_s
        self.reconnect_max_s = reconnect_max_s
        self.inbox: collections.deque = collections.deque()
        self._outbox: collections.deque = collections.deque()  # (topic, payload, props, qos, retain)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.closed = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"npcworld-mqtt-{self.what}", daemon=True)
        self._thread.start()

    def publish(self, topic: str, payload: bytes, props: Any, qos: int = 0, retain: bool = False) -> None:
        """Any thread: queue a PUBLISH (never waits)."""
        self._outbox.append((topic, payload, props, qos, retain))
        self._poke()

    def stop(self, join_s: float = 0.0) -> None:
        self._stopping = True
        self._poke()
        if join_s and self._thread is not None:
            self._thread.join(join_s)

    def _poke(self) -> None:
        loop, kick = self._loop, self._kick
        if loop is not None and kick is not None:
            try:
                loop.call_soon_threadsafe(kick.set)
            except RuntimeError:
                pass  # the loop has closed: stopping

    def _hand(self, event: tuple) -> None:
        self.inbox.append(event)
        self.wake()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception:
            log.exception("the MQTT I/O thread of %s failed", self.what)
        finally:
            if not self._stopping:
                self._hand(("down", "the MQTT I/O thread stopped"))
            self.closed.set()
            self.wake()

    async def _run(self) -> None:
        import aiomqtt

        self._loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        backoff = b.Backoff(self.reconnect_max_s)
        while not self._stopping:
            try:
                async with b.client(self.address, self.client_id, self.keepalive_s) as client:
                    for topic, qos in self.subscriptions:
                        await client.subscribe(topic, qos=qos)
                    backoff.reset()
                    self._outbox.clear()  # queued while down: their requests have failed already
                    self._hand(("up",))
                    tasks = {asyncio.create_task(self._read(client)), asyncio.create_task(self._write(client))}
                    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    for t in pending:
                        t.cancel()
                    for t in done:
                        if (exc := t.exception()) is not None:
                            raise exc
                    if self._stopping:
                        return
            except aiomqtt.MqttError as exc:
                if self._stopping:
                    return
                delay = backoff.delay()
                log.warning(
                    "%s: broker %s unreachable (%s); retrying in %.1f s", self.what, self.address.url, exc, delay
                )
                self._hand(("down", str(exc)))
                self._kick.clear()
                try:
                    await asyncio.wait_for(self._kick.wait(), delay)  # set early by stop()
                except asyncio.TimeoutError:
                    pass

    async def _read(self, client: Any) -> None:
        async for msg in client.messages:
            payload = msg.payload if isinstance(msg.payload, (bytes, bytearray)) else str(msg.payload or "").encode()
            if len(payload) > b.MAX_MESSAGE_BYTES:
                self._hand(("msg", "", b"", (None, None, {})))
                continue
            self._hand(("msg", str(msg.topic), bytes(payload), b.read_properties(msg)))

    async def _write(self, client: Any) -> None:
        kick, out = self._kick, self._outbox
        assert kick is not None  # made by run() before the writer starts
        while not self._stopping:
            await kick.wait()
            kick.clear()
            while out:
                topic, payload, props, qos, retain = out.popleft()
                await client.publish(topic, payload, qos=qos, retain=retain, properties=props)
