"""Builds a provider from its configured type; optional ones are imported only when used."""

from __future__ import annotations

from parley.gateway.config import ProviderConfig
from parley.gateway.providers.base import Provider, ProviderSettings


def build_provider(name: str, config: ProviderConfig) -> Provider:
    settings = ProviderSettings(
        name=name,
        type=config.type,
        base_url=config.base_url,
        api_key=config.api_key or None,
        timeout_s=config.timeout_s,
        headers=config.headers,
        options=config.options,
        limits=config.limits.limits(config.connect_timeout_s),
        tls=config.tls.tls(),
    )
    if config.type == "openai":
        from parley.gateway.providers.openai import OpenAIProvider

        return OpenAIProvider(settings)
    if config.type == "anthropic":
        from parley.gateway.providers.anthropic import AnthropicProvider

        return AnthropicProvider(settings)
    if config.type == "gemini":
        from parley.gateway.providers.gemini import GeminiProvider

        return GeminiProvider(settings)
    if config.type == "local":
        from parley.gateway.providers.local import LocalProvider

        return LocalProvider(settings)
    from parley.gateway.providers.mock import MockProvider

    return MockProvider(settings)
