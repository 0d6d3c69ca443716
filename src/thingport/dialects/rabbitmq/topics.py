"""MQTT topics ↔ RabbitMQ routing keys, and the devices whose topics do not survive that mapping.

RabbitMQ's MQTT plugin publishes to the ``amq.topic`` exchange with the topic's ``/`` turned into
``.`` and ``+`` into ``*``, and turns them back on delivery. A ``.`` inside a topic segment does not
come back: ``/sys/pk/dk.1/thing/x`` is routed as ``.sys.pk.dk.1.thing.x`` — the routing key of
``/sys/pk/dk/1/thing/x`` too — and delivered as the latter. Behind RabbitMQ a device whose key holds
a ``.`` could therefore not receive its own messages, and its traffic would match another device's
wildcard subscriptions (``/sys/pk/dk/#`` covers it). So Thingport refuses such a device's login with
a log line saying why, and publishes nothing on a topic with a ``.`` in it (docs/operations.md,
"RabbitMQ").
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from thingport.connect.session import DeviceSession

#: The exchange of the MQTT plugin (``mqtt.exchange``), where requests are read and replies published.
EXCHANGE = "amq.topic"


def routing_key(topic_filter: str) -> str:
    """The AMQP binding key of an MQTT topic filter (``/sys/+/+/thing/topo/add`` → ``.sys.*.*.thing.topo.add``)."""
    return ".".join("*" if seg == "+" else seg for seg in topic_filter.split("/"))


def topic(key: str) -> str:
    """The MQTT topic (or filter) of a routing key, as the MQTT plugin delivers it."""
    return "/".join("+" if word == "*" else word for word in key.split("."))


def survives(mqtt_topic: str) -> bool:
    """Whether a topic reaches its MQTT subscribers as it was published: no segment holds a ``.``."""
    return "." not in mqtt_topic


def dotted_name(session: DeviceSession) -> str | None:
    """The name in the device's topics that holds a ``.`` (which RabbitMQ cannot carry), if any."""
    names = (session.product_key, session.device_key) if session.family.sys_tree else (session.asset_id,)
    return next((name for name in names if not survives(name)), None)


def vhost_of(amqp_url: str) -> str:
    """The virtual host an AMQP URL names (``amqp://h/`` and ``amqp://h/%2F`` both name ``/``)."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"
