"""A small asyncio MQTT 3.1.1 client on the broker's own codec.

For what Thingport itself connects with: the device simulator, the connect-storm benchmark and the
privileged client of the external-broker mode. Why not a library: the maintained asyncio client
(aiomqtt) needs paho-mqtt 2, while the vendor device SDKs the tests drive need paho-mqtt 1, and
the codec is already here. QoS 0 and 1 only; no session resumption; keep-alive pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from thingport.connect.mqtt import codec
from thingport.connect.mqtt.codec import Connack, Connect, Puback, Publish, Suback, Subscribe

MessageHandler = Callable[[str, bytes], Awaitable[None] | None]


class ConnectRefused(Exception):
    def __init__(self, return_code: int) -> None:
        super().__init__(f"CONNACK return code {return_code}")
        self.return_code = return_code


class MqttClient:
    def __init__(self, client_id: str, *, username: str | None = None, password: str | None = None,
                 keep_alive: int = 60, clean_session: bool = True, on_message: MessageHandler | None = None) -> None:
        self.connect_packet = Connect(client_id, clean_session, keep_alive, None, username,
                                      password.encode() if password is not None else None)
        self.on_message = on_message
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: dict[tuple[type, int], asyncio.Future[Any]] = {}
        self._next_id = 0
        self.closed = asyncio.Event()

    async def connect(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                      timeout: float = 10.0) -> None:
        """Connect and wait for CONNACK; raises :class:`ConnectRefused` on a refusal."""
        async with asyncio.timeout(timeout):
            self._reader, self._writer = await asyncio.open_connection(host, port, ssl=ssl_context)
            self._writer.write(codec.encode(self.connect_packet))
            ack = await codec.read_packet(self._reader)
        if not isinstance(ack, Connack):
            await self.close()
            raise ConnectionError(f"expected CONNACK, got {ack!r}")
        if ack.return_code != codec.ACCEPTED:
            await self.close()
            raise ConnectRefused(ack.return_code)
        self._tasks.append(asyncio.create_task(self._read_loop()))
        if self.connect_packet.keep_alive:
            self._tasks.append(asyncio.create_task(self._ping_loop(self.connect_packet.keep_alive)))

    async def subscribe(self, *filters: tuple[str, int], timeout: float = 10.0) -> tuple[int, ...]:
        pid = self._packet_id()
        ack: Suback = await self._request(Subscribe(pid, tuple(filters)), (Suback, pid), timeout)
        return ack.return_codes

    async def publish(self, topic: str, payload: bytes, qos: int = 0, timeout: float = 10.0) -> None:
        if qos == 0:
            self._send(codec.encode_publish(topic, payload, 0))
            return
        pid = self._packet_id()
        await self._request(codec.encode_publish(topic, payload, 1, packet_id=pid), (Puback, pid), timeout)

    async def close(self) -> None:
        """Send DISCONNECT (if connected) and close the socket."""
        for task in self._tasks:
            task.cancel()
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                writer.write(codec.encode(codec.Disconnect()))
                await writer.drain()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
                await writer.wait_closed()
        self.closed.set()

    # --- internals --------------------------------------------------------------------------
    def _packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def _send(self, data: bytes) -> None:
        if self._writer is None:
            raise ConnectionError("not connected")
        self._writer.write(data)

    async def _request(self, packet: codec.Packet | bytes, key: tuple[type, int], timeout: float) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            self._send(packet if isinstance(packet, bytes) else codec.encode(packet))
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiting.pop(key, None)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while (packet := await codec.read_packet(self._reader)) is not None:
                if isinstance(packet, Publish):
                    if packet.qos == 1 and packet.packet_id is not None:
                        self._send(codec.encode(Puback(packet.packet_id)))
                    if self.on_message is not None:
                        result = self.on_message(packet.topic, packet.payload)
                        if result is not None:
                            await result
                elif isinstance(packet, (Suback, Puback)):
                    future = self._waiting.get((type(packet), packet.packet_id))
                    if future is not None and not future.done():
                        future.set_result(packet)
        except (ConnectionError, OSError, codec.MalformedPacket, asyncio.IncompleteReadError):
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            self.closed.set()

    async def _ping_loop(self, keep_alive: int) -> None:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            while True:
                await asyncio.sleep(keep_alive * 0.75)
                self._send(codec.encode(codec.Pingreq()))
