"""Anthropic's Messages API, translated to and from the OpenAI chat shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

from parley.gateway.errors import UpstreamError
from parley.gateway.formats.anthropic_upstream import (
    anthropic_stream_to_openai_chunks,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
)
from parley.gateway.providers.base import Deployment, Json, ProviderSettings
from parley.gateway.providers.http import HttpClient, event_object, stream_errors_mapped
from parley.gateway.sse import parse_sse

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider:
    """POSTs `{base_url}/v1/messages` with `x-api-key` and `anthropic-version`.

    `options.anthropic_version` overrides the version header and `options.anthropic_beta`
    (a string or a list) sets `anthropic-beta`. Overloaded (529) answers are >= 500, so the
    router retries them like any server error.
    """

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        headers = {
            "anthropic-version": str(settings.options.get("anthropic_version", ANTHROPIC_VERSION))
        }
        if settings.api_key:
            headers["x-api-key"] = settings.api_key
        beta = settings.options.get("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        self.http = HttpClient(settings, headers)
        self.base_url = (settings.base_url or "https://api.anthropic.com").rstrip("/")
        self.url = f"{self.base_url}/v1/messages"

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()

    async def chat(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        body = openai_to_anthropic_request(request, deployment.model)
        data = await self.http.post_json(self.url, body, timeout_s=timeout_s)
        if data.get("type") == "error":
            error = data.get("error") if isinstance(data.get("error"), dict) else None
            message = str((error or {}).get("message") or "anthropic answered an error")
            raise UpstreamError(message, status=500, provider=self.settings.name)
        return anthropic_to_openai_response(data, deployment.model)

    async def stream(
        self, request: Json, deployment: Deployment, *, timeout_s: float
    ) -> AsyncIterator[Json]:
        body = {**openai_to_anthropic_request(request, deployment.model), "stream": True}
        name = self.settings.name
        async with self.http.post(self.url, body, timeout_s=timeout_s, stream=True) as response:

            async def events() -> AsyncIterator[tuple[str | None, Json]]:
                async for event in parse_sse(response.lines()):
                    data = event_object(name, event.data)
                    yield event.event, data
                    if (data.get("type") or event.event) == "message_stop":
                        return
                raise UpstreamError(
                    f"{name} ended the stream without message_stop", kind="connect", provider=name
                )

            chunks = anthropic_stream_to_openai_chunks(events(), deployment.model)
            async for chunk in stream_errors_mapped(name, timeout_s, chunks):
                yield chunk

    async def embed(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        raise UpstreamError(
            "anthropic offers no embeddings", status=400, provider=self.settings.name
        )
