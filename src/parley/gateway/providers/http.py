"""The pooled aiohttp client every HTTP provider shares the shape of: one session per provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from parley.gateway.errors import UpstreamError
from parley.gateway.providers.base import Json, ProviderSettings
from parley.kit.clock import utcnow


def retry_after_s(headers: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or retry-after-ms."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
        except (TypeError, ValueError):
            return None


def error_message(body: bytes, status: int) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or f"HTTP {status}"
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:1000]
        if isinstance(error, str):
            return error[:1000]
    return f"HTTP {status}"


class HttpClient:
    """One pooled session per provider; maps transport failures to UpstreamError."""

    def __init__(self, settings: ProviderSettings, headers: dict[str, str]) -> None:
        self.settings = settings
        self.headers = {"content-type": "application/json", **headers, **settings.headers}
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
            self.session = aiohttp.ClientSession(
                connector=connector,
                headers=self.headers,
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def _timeout(self, timeout_s: float, *, stream: bool) -> aiohttp.ClientTimeout:
        if stream:
            # The whole stream may run long; each wait for the next bytes may not.
            return aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s)
        return aiohttp.ClientTimeout(total=timeout_s)

    @asynccontextmanager
    async def post(
        self,
        url: str,
        body: Json,
        *,
        timeout_s: float,
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST JSON; yields a 2xx response, raises UpstreamError for anything else."""
        if self.session is None:
            await self.start()
        assert self.session is not None
        name = self.settings.name
        try:
            async with self.session.post(
                url,
                data=orjson.dumps(body),
                headers=headers,
                timeout=self._timeout(timeout_s, stream=stream),
            ) as response:
                if response.status >= 400:
                    raw = await response.read()
                    raise UpstreamError(
                        error_message(raw, response.status),
                        status=response.status,
                        retry_after_s=retry_after_s(response.headers),
                        provider=name,
                    )
                yield response
        except UpstreamError:
            raise
        except TimeoutError as exc:
            raise UpstreamError(
                f"{name} did not answer within {timeout_s:g} s", kind="timeout", provider=name
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamError(
                f"{name} broke the response off: {exc}", kind="connect", provider=name
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"could not reach {name}: {type(exc).__name__}", kind="connect", provider=name
            ) from exc

    async def post_json(
        self, url: str, body: Json, *, timeout_s: float, headers: dict[str, str] | None = None
    ) -> Json:
        async with self.post(url, body, timeout_s=timeout_s, headers=headers) as response:
            raw = await response.read()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"{self.settings.name} answered something that is not JSON",
                kind="protocol",
                provider=self.settings.name,
            ) from exc
        if not isinstance(data, dict):
            raise UpstreamError(
                f"{self.settings.name} answered JSON that is not an object",
                kind="protocol",
                provider=self.settings.name,
            )
        return data


async def stream_errors_mapped(
    name: str, timeout_s: float, chunks: AsyncIterator[Json]
) -> AsyncIterator[Json]:
    """Relay a provider's stream, turning transport failures mid-stream into UpstreamError."""
    try:
        async for chunk in chunks:
            yield chunk
    except UpstreamError as exc:
        exc.provider = exc.provider or name
        raise
    except TimeoutError as exc:
        raise UpstreamError(
            f"{name} stalled mid-stream for {timeout_s:g} s", kind="timeout", provider=name
        ) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(
            f"{name} broke the stream off: {type(exc).__name__}", kind="connect", provider=name
        ) from exc


def event_object(name: str, data: str) -> Json:
    """An upstream stream event's data as a JSON object, or the protocol error it is."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(
            f"{name} sent a malformed stream event", kind="protocol", provider=name
        ) from exc
    if not isinstance(value, dict):
        raise UpstreamError(
            f"{name} sent a stream event that is not an object", kind="protocol", provider=name
        )
    return value
