"""MQTT topics ↔ RabbitMQ routing keys, as the MQTT plugin maps them."""

from __future__ import annotations

from thingport.connect import family
from thingport.connect.session import DeviceSession
from thingport.dialects.rabbitmq import topics


def test_filters_and_topics_map_both_ways() -> None:
    assert topics.routing_key("/sys/+/+/thing/topo/add") == ".sys.*.*.thing.topo.add"
    assert topics.routing_key("/ext/session/pk/dk/#") == ".ext.session.pk.dk.#"
    assert topics.topic(".sys.*.*.thing.topo.add") == "/sys/+/+/thing/topo/add"
    assert topics.topic(".sys.pk.dk.thing.topo.add_reply") == "/sys/pk/dk/thing/topo/add_reply"
    assert topics.topic("$oc.devices.d1.sys.messages.up") == "$oc/devices/d1/sys/messages/up"


def test_a_dot_in_a_segment_does_not_survive() -> None:
    assert topics.topic(topics.routing_key("/sys/pk/dk.1/thing/x")) == "/sys/pk/dk/1/thing/x"
    assert not topics.survives("/sys/pk/dk.1/thing/x")
    assert topics.survives("/sys/pk/dk-1_a:b/thing/x")


def test_which_names_of_a_session_are_in_its_topics() -> None:
    def session(fam: family.TopicFamily, dk: str) -> DeviceSession:
        return DeviceSession("a.1" if fam is family.ENOS else "asset1", "o", "pk", dk, fam)

    assert topics.dotted_name(session(family.ENOS, "meter.1")) == "meter.1"
    assert topics.dotted_name(session(family.ALINK, "meter-1")) is None
    # OceanConnect topics name the deviceId (the asset id), not the nodeId (device key)
    assert topics.dotted_name(session(family.OCEANCONNECT, "imei.1")) is None


def test_the_virtual_host_of_an_amqp_url() -> None:
    assert topics.vhost_of("amqp://u:p@h:5672/") == "/"
    assert topics.vhost_of("amqp://u:p@h:5672") == "/"
    assert topics.vhost_of("amqp://u:p@h/%2F") == "/"
    assert topics.vhost_of("amqp://u:p@h/iot") == "iot"
