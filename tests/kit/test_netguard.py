"""The outbound URL guard: schemes, hosts resolved here, every address checked, allow-list."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from parley.kit.netguard import FetchGuard, UnsafeUrl, is_blocked


class FakeDns:
    """Answers from a table; records what it was asked."""

    def __init__(self, **table: list[str]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


DNS = FakeDns(
    **{
        "images.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
        "rebind.example.com": ["93.184.215.14", "10.1.2.3"],
        "metadata.google.internal": ["169.254.169.254"],
        "scoped.example.com": ["fe80::1%eth0"],
    }
)


async def refusal(url: str, guard: FetchGuard | None = None) -> str:
    with pytest.raises(UnsafeUrl) as refused:
        await (guard or FetchGuard(resolver=DNS)).check(url)
    return str(refused.value)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.8",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # AWS, GCP, Azure instance metadata
        "100.100.100.200",  # Alibaba metadata, in the shared 100.64/10
        "168.63.129.16",  # Azure's wire server: public, yet the platform's own
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fe80::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
    ],
)
def test_inner_addresses_are_blocked(address: str) -> None:
    assert is_blocked(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert not is_blocked(ipaddress.ip_address(address))


async def test_public_hosts_pass_after_resolving() -> None:
    dns = FakeDns(**DNS.table)
    guard = FetchGuard(resolver=dns)
    await guard.check("https://images.example.com/cat.png?size=2")
    await guard.check("https://images.example.com:8443/cat.png")
    await guard.check("https://93.184.215.14/cat.png")  # a literal needs no lookup
    assert dns.asked == [("images.example.com", 443), ("images.example.com", 8443)]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://images.example.com/cat.png", "http: URLs are not fetched; use https"),
        ("gs://bucket/cat.png", "gs: URLs are not fetched"),
        ("file:///etc/passwd", "file: URLs are not fetched"),
        ("ftp://images.example.com/cat.png", "ftp: URLs"),
        ("//images.example.com/cat.png", "a URL without a scheme"),
        ("https:///cat.png", "no host"),
        ("https://user:pw@images.example.com/cat.png", "user name or password"),
        ("https://images.example.com:99999/", "malformed"),
        ("https://[::1/", "malformed"),
        ("https://127.0.0.1/", "127.0.0.1 is a private, loopback"),
        ("https://[::ffff:169.254.169.254]/latest/meta-data/", "is a private"),
        ("https://metadata.google.internal/computeMetadata/v1/", "resolves to a private"),
        ("https://rebind.example.com/x.png", "resolves to a private"),  # one inner address
        ("https://scoped.example.com/x.png", "resolves to a private"),
        ("https://nowhere.example.com/x.png", "could not be resolved"),
    ],
)
async def test_refusals_say_why(url: str, reason: str) -> None:
    assert reason in await refusal(url)


async def test_names_are_resolved_by_the_system_resolver() -> None:
    # `localhost`, and 127.0.0.1 spelled as one decimal number, resolve without a network.
    assert "localhost resolves to a private" in await refusal("https://localhost/x", FetchGuard())
    assert "resolves to a private" in await refusal("https://2130706433/x", FetchGuard())


async def test_a_resolver_that_hangs_is_a_refusal() -> None:
    async def hang(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return ["93.184.215.14"]

    guard = FetchGuard(resolver=hang, timeout_s=0.05)
    assert "could not be resolved" in await refusal("https://slow.example.com/x", guard)


async def test_allowed_hosts_skip_the_address_check() -> None:
    dns = FakeDns(**DNS.table)
    guard = FetchGuard(["Images.Internal", "*.corp.example", " "], resolver=dns)
    await guard.check("https://images.internal/cat.png")
    await guard.check("https://images.internal./cat.png")
    await guard.check("https://files.eu.corp.example/report.pdf")
    assert dns.asked == []
    # The allow-list does not widen the schemes, nor cover the bare domain of a wildcard.
    assert "http: URLs" in await refusal("http://images.internal/cat.png", guard)
    assert "could not be resolved" in await refusal("https://corp.example/x", guard)
    assert "is a private" in await refusal("https://10.0.0.1/x", guard)
