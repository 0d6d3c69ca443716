"""The asyncio client against the embedded broker: connect, refusal, subscribe, publish, receive."""

from __future__ import annotations

import asyncio

import pytest

from thingport.connect.mqtt.broker import AllowAllHooks, AuthResult, Broker, ConnectInfo
from thingport.connect.mqtt.client import ConnectRefused, MqttClient

pytestmark = [pytest.mark.slow]


class Refusing(AllowAllHooks):
    async def authenticate(self, conn: ConnectInfo) -> AuthResult:
        return AuthResult.refuse(4) if conn.username == "bad" else await super().authenticate(conn)


async def test_round_trip_and_refusal() -> None:
    broker = Broker(Refusing())
    await broker.start("127.0.0.1", 0)
    got: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    sub = MqttClient("sub", on_message=lambda t, p: got.put_nowait((t, p)))
    pub = MqttClient("pub", keep_alive=1)
    try:
        await sub.connect("127.0.0.1", broker.port)
        await pub.connect("127.0.0.1", broker.port)
        assert await sub.subscribe(("a/+", 1), ("b", 0)) == (1, 0)
        await pub.publish("a/x", b"one", qos=1)
        await pub.publish("b", b"two")
        assert await asyncio.wait_for(got.get(), 5) == ("a/x", b"one")
        assert await asyncio.wait_for(got.get(), 5) == ("b", b"two")
        await asyncio.sleep(1.5)  # keep-alive pings hold the 1 s connection open
        assert not pub.closed.is_set()
        with pytest.raises(ConnectRefused) as refused:
            await MqttClient("x", username="bad", password="p").connect("127.0.0.1", broker.port)
        assert refused.value.return_code == 4
    finally:
        await sub.close()
        await pub.close()
        await broker.stop()
