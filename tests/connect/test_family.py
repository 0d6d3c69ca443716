"""Topic families: a signed device's family from its signature, and the rule for a remote device's."""

from __future__ import annotations

from thingport.connect import family


def test_a_signed_device_speaks_the_family_of_its_signature() -> None:
    assert family.of_signature("enos") is family.ENOS
    assert family.of_signature("alink") is family.ALINK
    assert (family.ENOS.key_field, family.ALINK.key_field) == ("deviceKey", "deviceName")


def test_a_remote_devices_family_is_the_one_on_record_else_the_requests() -> None:
    names_by_device_name = b'{"id":"1","params":[{"productKey":"pk","deviceName":"dn"}]}'
    assert family.of_remote_device(family.ENOS, names_by_device_name) is family.ENOS
    assert family.of_remote_device(family.ALINK, b'{"params":{}}') is family.ALINK
    assert family.of_remote_device(None, names_by_device_name) is family.ALINK
    assert family.of_remote_device(None, b'{"params":[{"productKey":"pk","deviceKey":"dk"}]}') is family.ENOS
    assert family.of_remote_device(None) is family.ENOS


def test_only_the_signed_families_share_the_topic_tree() -> None:
    assert family.SIGNED == (family.ALINK, family.ENOS)
    assert all(f.sys_tree for f in family.SIGNED) and not family.OCEANCONNECT.sys_tree
