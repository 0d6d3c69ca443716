"""The AMQP side of a node behind RabbitMQ, without RabbitMQ: connection events and management-API kicks.

The whole path against a real RabbitMQ cluster is tests/cluster/test_rabbitmq.py.
"""

from __future__ import annotations

import base64
import json

import httpx

from tests.connect.conftest import MakeDevice, make_device, status_is  # noqa: F401 (fixtures)
from tests.connect.test_remote import node
from thingport.dialects.rabbitmq.broker import ConnectionEvents, ManagementApi
from thingport.domain.models import DeviceStatus
from thingport.services.container import Services
from thingport.services.context import Caller

MQTT = "{'MQTT',\"3.1.1\"}"


def created(name: str, user: str) -> dict[str, object]:
    """A ``connection.created`` event's headers, as RabbitMQ 3.10 sends them for an MQTT client."""
    return {"name": name, "user": user, "protocol": MQTT, "type": "direct", "vhost": "/",
            "variable_map": '#{<<"client_id">> => <<"c1">>}', "node": "rmq1@localhost"}


async def test_connections_come_and_go_and_a_takeover_keeps_the_device_online(
        services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:  # noqa: F811
    dev = await make_device(service_product)
    user = f"{dev.device_key}&{service_product}"
    door, _ = node(services)
    events = ConnectionEvents(door.remote, None)
    try:
        await events.on_event("connection.created", created("conn-1", user))
        await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
        assert events.user_of("conn-1") == user
        # the same device again: the newer connection is the device's, the older one's end changes nothing
        await events.on_event("connection.created", created("conn-2", user))
        await events.on_event("connection.closed", {"name": "conn-1", "node": "rmq1@localhost"})
        await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
        assert events.user_of("conn-1") is None
        await events.on_event("connection.closed", {"name": "conn-2"})
        await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)
        # Thingport's own AMQP connections and connections never seen are no devices
        await events.on_event("connection.created", {"name": "amqp-1", "user": "thingport", "protocol": "{0,9,1}"})
        await events.on_event("connection.closed", {"name": "never-seen"})
        assert events.user_of("amqp-1") is None
    finally:
        door.close()


async def test_a_starting_node_learns_the_connections_from_the_api(
        services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:  # noqa: F811
    dev = await make_device(service_product)
    user = f"{dev.device_key}&{service_product}"

    def handler(req: httpx.Request) -> httpx.Response:
        assert req.url.path == "/api/connections"
        return httpx.Response(200, json=[{"name": "conn-1", "user": user, "protocol": "MQTT 3.1.1"},
                                         {"name": "amqp-1", "user": "thingport", "protocol": "AMQP 0-9-1"}])

    door, _ = node(services)
    events = ConnectionEvents(door.remote, ManagementApi("http://rmq:15672", "u", "p", httpx.MockTransport(handler)))
    try:
        await events.seed()
        await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
        assert (events.user_of("conn-1"), events.user_of("amqp-1")) == (user, None)
    finally:
        door.close()


async def test_kicks_close_a_users_only_connection_by_user_name_else_by_connection_name() -> None:
    seen: list[str] = []
    listed = {"solo": [{"name": "a -> b"}], "pair": [{"name": "a -> b"}, {"name": "c -> d"}]}

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(f"{req.method} {req.url.raw_path.decode()} {req.headers.get('x-reason', '')}")
        assert req.headers["authorization"] == "Basic " + base64.b64encode(b"thingport:pw").decode()
        if req.method == "GET":
            return httpx.Response(200, content=json.dumps(listed[req.url.path.rsplit("/", 1)[1]]))
        return httpx.Response(204)

    api = ManagementApi("http://rmq:15672/", "thingport", "pw", httpx.MockTransport(handler))
    users = {"a -> b": "solo"}
    api.user_of = users.get
    assert await api.client("a -> b", "device replaced")
    users["a -> b"] = "pair"
    assert await api.client("a -> b")
    assert not await api.client("gone -> x")  # the events say it closed already: no call
    assert await api.user("dk&pk", "device deleted")
    assert seen == ["GET /api/connections/username/solo ",
                    "DELETE /api/connections/username/solo device replaced",
                    "GET /api/connections/username/pair ",
                    "DELETE /api/connections/a%20-%3E%20b closed by Thingport",
                    "DELETE /api/connections/username/dk%26pk device deleted"]
