"""Which addresses Thingport may connect to on an application's behalf (OceanConnect pushes).

An application names its callback URL and Thingport POSTs pushes there. Unchecked, any
application could make the server call what only the server can reach: its own loopback services,
the cloud's metadata endpoint, the private network behind it (SSRF). Public addresses are allowed;
loopback, link-local, private (RFC 1918, ULA), shared (CGNAT), unspecified, multicast and the other
special-purpose addresses only inside networks the operator allows. IPv6 forms that carry an IPv4
address (mapped, compatible, 6to4, Teredo, NAT64) are judged by that address as well.

A name is judged by every address it resolves to, and the connection goes to one of the addresses
just checked: a name that resolves elsewhere the next time (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")
#: How long a callback URL's name may take to resolve when it is subscribed; beyond it (or when it does
#: not resolve yet) the URL is taken, and its addresses are checked at each connection.
SUBSCRIBE_RESOLVE_S = 2.0


class Refused(Exception):
    """An address the policy does not allow; the message says which and why."""


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    #: Networks reachable although not public (an operator's callback receivers, the tests' loopback).
    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, networks: str, *, setting: str) -> AddressPolicy:
        """A comma-separated list of networks (``10.20.0.0/16, fd00::/8``, ``127.0.0.1``)."""
        try:
            return cls(tuple(ip_network(n.strip(), strict=False) for n in networks.split(",") if n.strip()))
        except ValueError as exc:
            raise ValueError(f"setting '{setting}': {exc}") from None

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be connected to; None when it may."""
        forms = (*_embedded(address), address)  # the IPv4 address carried says more than its IPv6 form
        if any(form in network for form in forms for network in self.allowed):
            return None
        for form in forms:
            kind = _special(form)
            if kind is not None:
                return f"{address} is {kind}" if form == address else f"{address} carries {form}, {kind}"
        return None

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` stands for, each allowed, else :class:`Refused`.

        A resolver failure is an :class:`OSError` (``socket.gaierror``).
        """
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(ip_address(info[4][0]) for info in infos))
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                raise Refused(reason if literal is not None else f"{host} resolves to {reason}")
        return addresses

    async def check_url(self, url: str) -> str | None:
        """Why pushes may not go to ``url`` as far as can be told now; None when they may.

        A name that does not resolve (yet) is taken: its addresses are checked at each connection.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not host:
            return "the URL names no host"
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return "the port is not a number"
        try:
            async with asyncio.timeout(SUBSCRIBE_RESOLVE_S):  # not wait_for (may swallow a cancel on 3.11)
                await self.resolve(host, port)
        except Refused as exc:
            return str(exc)
        except (OSError, TimeoutError, UnicodeError):
            return None
        return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host.strip("[]"))
    except ValueError:
        return None


def _embedded(address: IPAddress) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 address carries."""
    if isinstance(address, IPv4Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if (address in _NAT64 or address in _IPV4_COMPATIBLE) and int(address) > 1:
        found.append(IPv4Address(int(address) & 0xFFFF_FFFF))
    return found


def _special(address: IPAddress) -> str | None:
    """What kind of non-public address this is; None for a public unicast one."""
    checks = ((address.is_loopback, "a loopback address"), (address.is_link_local, "a link-local address"),
              (address.is_multicast, "a multicast address"), (address.is_unspecified, "the unspecified address"),
              (address.is_private, "a private address"), (not address.is_global, "not a public address"))
    return next((kind for special, kind in checks if special), None)
