"""A paho-mqtt client driven from async tests (paho 1.x: the vendor device SDKs need it).

paho runs its network loop in its own thread, so every wait on it goes through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

HOST = "127.0.0.1"
WAIT = 5.0


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class Device:
    """A paho-mqtt client driven from async tests."""

    port: int
    client_id: str = ""
    clean: bool = True
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    will: tuple[str, bytes, int] | None = None
    messages: queue.Queue[Message] = field(default_factory=queue.Queue)
    connected: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    subacks: dict[int, list[int]] = field(default_factory=dict)
    suback_seen: threading.Condition = field(default_factory=threading.Condition)
    connack: int | None = None
    session_present: bool | None = None

    def __post_init__(self) -> None:
        c = self.client = mqtt.Client(client_id=self.client_id, clean_session=self.clean, protocol=mqtt.MQTTv311,
                                      reconnect_on_failure=False)
        if self.username is not None:
            c.username_pw_set(self.username, self.password)
        if self.will is not None:
            c.will_set(self.will[0], self.will[1], self.will[2])
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self.disconnected.set()
        c.on_message = lambda _c, _u, m: self.messages.put(Message(m.topic, m.payload, m.qos, bool(m.retain)))
        c.on_subscribe = self._on_subscribe

    def _on_connect(self, _c: Any, _u: Any, flags: dict[str, Any], rc: int) -> None:
        self.connack = rc
        self.session_present = bool(flags.get("session present"))
        self.connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, granted: tuple[int, ...]) -> None:
        with self.suback_seen:
            self.subacks[mid] = list(granted)
            self.suback_seen.notify_all()

    async def connect(self) -> int:
        self.client.connect_async(HOST, self.port, self.keepalive)
        self.client.loop_start()
        assert await asyncio.to_thread(self.connected.wait, WAIT), "no CONNACK"
        assert self.connack is not None
        return self.connack

    async def subscribe(self, *filters: tuple[str, int]) -> list[int]:
        _, mid = self.client.subscribe(list(filters))
        assert mid is not None

        def wait() -> list[int]:
            with self.suback_seen:
                assert self.suback_seen.wait_for(lambda: mid in self.subacks, WAIT), "no SUBACK"
                return self.subacks[mid]

        return await asyncio.to_thread(wait)

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos, retain)
        await asyncio.to_thread(info.wait_for_publish, WAIT)
        assert info.is_published()

    async def receive(self, timeout: float = WAIT) -> Message:
        return await asyncio.to_thread(self.messages.get, True, timeout)

    async def nothing_more(self, wait: float = 0.3) -> None:
        await asyncio.sleep(wait)
        assert self.messages.empty(), self.messages.get_nowait()

    async def wait_disconnected(self) -> bool:
        return await asyncio.to_thread(self.disconnected.wait, WAIT)

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


