"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp, Groq, Together...)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from parley.gateway.errors import UpstreamError
from parley.gateway.providers.base import Deployment, Json, ProviderSettings
from parley.gateway.providers.http import HttpClient, stream_errors_mapped
from parley.gateway.sse import parse_sse


class OpenAIProvider:
    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        headers = {"authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self.http = HttpClient(settings, headers)
        self.base_url = (settings.base_url or "https://api.openai.com/v1").rstrip("/")

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()

    async def chat(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        body = {**request, "model": deployment.model, "stream": False}
        body.pop("stream_options", None)
        return await self.http.post_json(
            f"{self.base_url}/chat/completions", body, timeout_s=timeout_s
        )

    async def stream(
        self, request: Json, deployment: Deployment, *, timeout_s: float
    ) -> AsyncIterator[Json]:
        # Always ask for usage: Parley meters every stream, whatever the client asked.
        body = {
            **request,
            "model": deployment.model,
            "stream": True,
            "stream_options": {**(request.get("stream_options") or {}), "include_usage": True},
        }
        name = self.settings.name
        async with self.http.post(
            f"{self.base_url}/chat/completions", body, timeout_s=timeout_s, stream=True
        ) as response:

            async def chunks() -> AsyncIterator[Json]:
                async for event in parse_sse(response.lines()):
                    if event.data == "[DONE]":
                        return
                    try:
                        chunk = orjson.loads(event.data)
                    except orjson.JSONDecodeError as exc:
                        raise UpstreamError(
                            f"{name} sent a malformed stream event", kind="protocol", provider=name
                        ) from exc
                    if isinstance(chunk, dict) and "error" in chunk:
                        error = chunk["error"] if isinstance(chunk["error"], dict) else {}
                        raise UpstreamError(
                            str(error.get("message") or "upstream stream error"),
                            status=500,
                            provider=name,
                        )
                    yield chunk
                raise UpstreamError(
                    f"{name} ended the stream without [DONE]", kind="connect", provider=name
                )

            async for chunk in stream_errors_mapped(name, timeout_s, chunks()):
                yield chunk

    async def embed(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        body = {**request, "model": deployment.model}
        return await self.http.post_json(f"{self.base_url}/embeddings", body, timeout_s=timeout_s)
