"""The address policy of pushes: public addresses, and others only inside the networks an operator allows."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import ip_address
from typing import Any

import pytest

from thingport.net import AddressPolicy, Refused

PUBLIC = AddressPolicy()

REFUSED = [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd12:3456::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("100.64.0.1", "not a public address"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("239.1.2.3", "multicast"), ("ff02::1", "multicast"),
    ("255.255.255.255", "private"), ("198.18.0.1", "private"), ("192.0.2.1", "private"),
    # IPv6 forms of an IPv4 address: mapped, compatible, 6to4, NAT64, Teredo
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::7f00:1", "loopback"),
    ("2002:7f00:1::", "carries 127.0.0.1"), ("2002:a9fe:a9fe::1", "carries 169.254.169.254"),
    ("64:ff9b::a00:1", "carries 10.0.0.1"), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private"),
]


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_addresses_only_the_server_can_reach_are_refused(address: str, kind: str) -> None:
    reason = PUBLIC.refusal(ip_address(address))
    assert reason is not None and kind in reason and str(ip_address(address)) in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34",
                                     "2002:5db8:d822::1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert PUBLIC.refusal(ip_address(address)) is None


def test_an_operator_allows_networks_and_their_ipv6_forms() -> None:
    policy = AddressPolicy.parse("10.20.0.0/16, 127.0.0.1,fd00:1::/64", setting="s")
    for address in ("10.20.3.4", "127.0.0.1", "::ffff:127.0.0.1", "fd00:1::5"):
        assert policy.refusal(ip_address(address)) is None, address
    for address in ("10.21.0.1", "127.0.0.2", "fd00:2::1", "169.254.169.254"):
        assert policy.refusal(ip_address(address)) is not None, address
    with pytest.raises(ValueError, match="setting 'oceanconnect_push_allowed_networks'"):
        AddressPolicy.parse("10.0.0.0/33", setting="oceanconnect_push_allowed_networks")


def answers(*addresses: str) -> Any:
    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]
    return getaddrinfo


async def test_a_name_is_refused_when_any_of_its_addresses_is(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", answers("93.184.216.34", "127.0.0.1"))
    with pytest.raises(Refused, match=r"callback\.example resolves to 127\.0\.0\.1 is a loopback address"):
        await PUBLIC.resolve("callback.example", 443)
    assert await PUBLIC.check_url("https://callback.example/cb") == \
        "callback.example resolves to 127.0.0.1 is a loopback address"
    monkeypatch.setattr(loop, "getaddrinfo", answers("93.184.216.34", "2606:4700::1111", "93.184.216.34"))
    assert [str(a) for a in await PUBLIC.resolve("callback.example", 443)] == ["93.184.216.34", "2606:4700::1111"]
    assert await PUBLIC.check_url("https://callback.example/cb") is None


async def test_a_callback_url_is_judged_by_its_host(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await PUBLIC.check_url("http://[::ffff:127.0.0.1]:8080/cb") == \
        "::ffff:7f00:1 carries 127.0.0.1, a loopback address"
    assert await PUBLIC.check_url("http://10.0.0.5/cb") == "10.0.0.5 is a private address"
    assert await PUBLIC.check_url("http:///cb") == "the URL names no host"

    async def unknown(*_: Any, **__: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", unknown)
    assert await PUBLIC.check_url("http://not-yet.example/cb") is None  # checked again when connecting
