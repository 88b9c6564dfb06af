"""The providers' connection keys in the YAML file: what they become, and the clear errors
a mistake in them gives at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from parley.gateway.config import parse_config
from parley.gateway.providers._http1 import Limits, MiB, Tls
from parley.gateway.providers.registry import build_provider


def provider_yaml(body: str) -> str:
    return f"providers:\n  up: {{type: openai, base_url: 'https://up.example/v1', {body}}}\n"


def test_connection_keys_reach_the_provider(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until the pool is made")
    config = parse_config(
        provider_yaml(
            "connect_timeout_s: 3, "
            f"tls: {{ca_bundle: '{ca}', verify: false}}, "
            "limits: {max_body: 2MiB, max_line: 64KiB, max_header_size: 8KiB, "
            "max_headers: 50, max_connections: 16}"
        ),
        environ={},
    )
    settings = build_provider("up", config.providers["up"]).settings
    assert settings.limits == Limits(
        max_body_bytes=2 * MiB,
        max_line_bytes=64 * 1024,
        max_header_bytes=8 * 1024,
        max_headers=50,
        max_connections=16,
        connect_timeout_s=3,
    )
    assert settings.tls == Tls(verify=False, ca_bundle=str(ca))
    # Unset, they are the client's defaults.
    default = build_provider("up", parse_config(provider_yaml(""), environ={}).providers["up"])
    assert (default.settings.limits, default.settings.tls) == (Limits(), Tls())


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ("tls: {ca_bundle: /nowhere/ca.pem}", "Path does not point to a file"),
        ("tls: {client_key_password: x}", "need client_cert"),
        ("limits: {max_body: lots}", "could not parse value and unit from byte string"),
        ("limits: {max_connections: 0}", "greater than 0"),
        ("limits: {max_bodies: 1MiB}", "Extra inputs are not permitted"),
        ("connect_timeout_s: 0", "greater than 0"),
    ],
)
def test_mistakes_are_named(body: str, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        parse_config(provider_yaml(body), environ={})
