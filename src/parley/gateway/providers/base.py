"""What every provider offers the router.

Requests and responses inside Parley use the OpenAI Chat Completions shape (plain dicts):
a provider for another wire format translates both ways. Streams yield
`chat.completion.chunk` dicts; the last one may carry `usage`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from parley.gateway.providers._http1 import Limits, Tls

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str
    type: str
    base_url: str = ""
    api_key: str | None = None
    timeout_s: float = 60.0
    headers: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    # How an HTTP provider's connections behave (connect timeout, size and pool limits).
    limits: Limits = field(default_factory=Limits)
    tls: Tls = field(default_factory=Tls)


@dataclass(frozen=True, slots=True)
class Deployment:
    """One way to serve a model: a provider and the model name it knows."""

    provider: str
    model: str
    weight: float = 1.0
    timeout_s: float | None = None
    max_retries: int = 2

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.model}"


class Provider(Protocol):
    settings: ProviderSettings

    async def start(self) -> None:
        """Open pooled connections or load a model."""
        ...

    async def close(self) -> None: ...

    async def chat(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        """A complete `chat.completion` for an OpenAI-shaped request."""
        ...

    def stream(
        self, request: Json, deployment: Deployment, *, timeout_s: float
    ) -> AsyncIterator[Json]:
        """`chat.completion.chunk` dicts; raises UpstreamError before or during the stream."""
        ...

    async def embed(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        """An OpenAI `list` of embeddings with `usage`."""
        ...
