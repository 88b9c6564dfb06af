"""Google's Gemini API (generateContent), translated to and from the OpenAI chat shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

from parley.gateway.formats.gemini import (
    gemini_stream_to_openai_chunks,
    gemini_to_openai_embeddings,
    gemini_to_openai_response,
    model_path,
    openai_to_gemini_embed_request,
    openai_to_gemini_request,
)
from parley.gateway.providers.base import Deployment, Json, ProviderSettings
from parley.gateway.providers.http import HttpClient, event_object, stream_errors_mapped
from parley.gateway.sse import parse_sse


class GeminiProvider:
    """POSTs `{base_url}/v1beta/models/{model}:generateContent` (and the streaming and
    batch-embedding methods) with the key in `x-goog-api-key`.

    `options.api_version` picks another API version than `v1beta`.
    """

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        headers = {"x-goog-api-key": settings.api_key} if settings.api_key else {}
        self.http = HttpClient(settings, headers)
        base = (settings.base_url or "https://generativelanguage.googleapis.com").rstrip("/")
        version = str(settings.options.get("api_version", "v1beta"))
        self.base_url = base if base.endswith(f"/{version}") else f"{base}/{version}"

    def _url(self, model: str, method: str) -> str:
        return f"{self.base_url}/{model_path(model)}:{method}"

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()

    async def chat(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        body = openai_to_gemini_request(request)
        data = await self.http.post_json(
            self._url(deployment.model, "generateContent"), body, timeout_s=timeout_s
        )
        return gemini_to_openai_response(data, deployment.model)

    async def stream(
        self, request: Json, deployment: Deployment, *, timeout_s: float
    ) -> AsyncIterator[Json]:
        body = openai_to_gemini_request(request)
        url = self._url(deployment.model, "streamGenerateContent") + "?alt=sse"
        name = self.settings.name
        async with self.http.post(url, body, timeout_s=timeout_s, stream=True) as response:

            async def events() -> AsyncIterator[Json]:
                async for event in parse_sse(response.lines()):
                    data = event_object(name, event.data)
                    yield data

            chunks = gemini_stream_to_openai_chunks(events(), deployment.model)
            async for chunk in stream_errors_mapped(name, timeout_s, chunks):
                yield chunk

    async def embed(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        body = openai_to_gemini_embed_request(request, deployment.model)
        data = await self.http.post_json(
            self._url(deployment.model, "batchEmbedContents"), body, timeout_s=timeout_s
        )
        return gemini_to_openai_embeddings(data, request, deployment.model)
