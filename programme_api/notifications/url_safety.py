"""Server-side request forgery defence for webhook URLs.

A webhook URL is chosen by an admin, but the request is made by the worker from inside the operator's network.
Before a subscription is accepted, and again before every attempt (DNS answers change), every address the
host resolves to must be public: private, loopback, link-local (cloud metadata at 169.254.169.254),
multicast, reserved and unspecified addresses are refused, unless they fall in a network the operator allows
(``PROGRAMME_API_WEBHOOK_ALLOWED_NETWORKS``, e.g. ``127.0.0.0/8`` for a receiver on the same host).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeURL(Exception):
    """The URL resolves to an address the worker may not call (or does not resolve)."""


def networks(allowed: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(item.strip(), strict=False) for item in allowed if item.strip()]


def is_allowed(address: IPAddress, allowed: list[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return True
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise UnsafeURL(f"the host {host!r} does not resolve") from error
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def refuse_unsafe(url: str, allowed: Iterable[str]) -> None:
    """Raise ``UnsafeURL`` unless every address ``url``'s host resolves to is allowed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    permitted = networks(allowed)
    addresses = await resolve(host, port)
    if not addresses:
        raise UnsafeURL(f"the host {host!r} does not resolve")
    for address in addresses:
        if not is_allowed(address, permitted):
            raise UnsafeURL(f"the host {host!r} resolves to {address}, which is not a public address")


async def is_safe(url: str, allowed: Iterable[str]) -> bool:
    try:
        await refuse_unsafe(url, allowed)
    except UnsafeURL:
        return False
    return True
