"""Refuse URLs that would make Parley, or a provider on a tenant's behalf, reach inside the
operator's network.

`FetchGuard.check` parses a URL, checks its scheme, resolves its host (on the event loop's
resolver) and refuses it when any address is loopback, private, link-local, shared,
reserved, multicast or a cloud metadata endpoint, unless the operator allowed the host by
name. Resolving here is a first line only: whoever fetches later resolves again, so an
allowed name must be one the operator trusts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to
Resolver = Callable[[str, int], Awaitable[list[str]]]

_DEFAULT_PORTS = {"https": 443, "http": 80}
# Public addresses that still answer as a cloud's own control plane (Azure's wire server).
_METADATA = frozenset({ipaddress.ip_address("168.63.129.16")})
# IPv6 prefixes that carry an IPv4 address the traffic ends up at.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeUrl(ValueError):
    """Why a URL is refused, in words a client can act on."""


def is_blocked(address: IPAddress) -> bool:
    """Whether an address is one a tenant must not make anyone fetch from."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_blocked(embedded)
    return not address.is_global or address.is_multicast or address in _METADATA


async def resolve_on_loop(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class FetchGuard:
    """`allowed_hosts` are exact names or `*.domain` (any name below domain); an allowed
    host is not resolved nor checked."""

    def __init__(
        self,
        allowed_hosts: Iterable[str] = (),
        *,
        schemes: Iterable[str] = ("https",),
        resolver: Resolver = resolve_on_loop,
        timeout_s: float = 5.0,
    ) -> None:
        hosts = {h.strip().lower().rstrip(".") for h in allowed_hosts if h.strip()}
        self.exact = frozenset(h for h in hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))
        self.schemes = frozenset(schemes)
        self.resolver = resolver
        self.timeout_s = timeout_s

    def allows_host(self, host: str) -> bool:
        host = host.rstrip(".")
        return host in self.exact or host.endswith(self.suffixes)

    async def check(self, url: str) -> None:
        """Raises UnsafeUrl unless the URL may be fetched."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UnsafeUrl(f"the URL is malformed ({exc})") from exc
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            allowed = " or ".join(sorted(self.schemes))
            shown = f"{scheme}: URLs are" if scheme else "a URL without a scheme is"
            raise UnsafeUrl(f"{shown} not fetched; use {allowed}")
        host = parts.hostname
        if not host:
            raise UnsafeUrl("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise UnsafeUrl("the URL must not carry a user name or password")
        if self.allows_host(host):
            return
        literal = _literal(host)
        if literal is not None:
            addresses, verb = [literal], "is"
        else:
            addresses = await self._resolve(host, port or _DEFAULT_PORTS.get(scheme, 443))
            verb = "resolves to"
        if any(is_blocked(address) for address in addresses):
            raise UnsafeUrl(
                f"{host} {verb} a private, loopback, link-local or metadata address; only "
                "public hosts are fetched"
            )

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            async with asyncio.timeout(self.timeout_s):
                found = await self.resolver(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise UnsafeUrl(f"the host {host} could not be resolved") from exc
        addresses = [a for a in (_literal(f.split("%", 1)[0]) for f in found) if a is not None]
        if not addresses:
            raise UnsafeUrl(f"the host {host} could not be resolved")
        return addresses
