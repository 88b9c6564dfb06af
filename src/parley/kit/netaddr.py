"""Client addresses as the per-address limits count them."""

from __future__ import annotations

import ipaddress

UNKNOWN = "unknown"


def address_bucket(ip: str | None) -> str:
    """The key a client address is counted under: an IPv4 address as it is, an IPv6 address
    by its /64 (one subscriber usually holds a whole /64, so single addresses cost nothing
    to change), and anything unparseable as itself."""
    if not ip:
        return UNKNOWN
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
