"""The pooled HTTP client every HTTP provider uses: one keep-alive pool per provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from parley import __version__
from parley.gateway.errors import UpstreamError
from parley.gateway.providers._http1 import (
    BadResponse,
    BrokenBody,
    Disconnected,
    HttpError,
    Pool,
    Response,
    TooLarge,
)
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
    """One connection pool per provider; maps transport failures to UpstreamError."""

    def __init__(self, settings: ProviderSettings, headers: dict[str, str]) -> None:
        self.settings = settings
        self.headers = {
            "content-type": "application/json",
            "accept": "*/*",
            "user-agent": f"parley/{__version__}",
            **headers,
            **settings.headers,
        }
        self.pool: Pool | None = None

    async def start(self) -> None:
        if self.pool is None:
            # The proxy variables are read here, once per provider.
            self.pool = Pool(self.headers, limits=self.settings.limits, tls=self.settings.tls)

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def _failure(self, exc: BaseException, timeout_s: float) -> UpstreamError:
        if isinstance(exc, TimeoutError):
            name = self.settings.name
            return UpstreamError(
                f"{name} did not answer within {timeout_s:g} s", kind="timeout", provider=name
            )
        assert isinstance(exc, HttpError)
        return transport_failure(self.settings.name, exc)

    async def _open(
        self, url: str, body: Json, timeout_s: float, headers: dict[str, str] | None
    ) -> Response:
        """Send; a response with status >= 400 is read, released and raised."""
        if self.pool is None:
            await self.start()
        assert self.pool is not None
        response = await self.pool.post(
            url, orjson.dumps(body), headers=headers, read_timeout_s=timeout_s
        )
        if response.status >= 400:
            try:
                raw = await response.read()
            finally:
                response.release()
            raise UpstreamError(
                error_message(raw, response.status),
                status=response.status,
                retry_after_s=retry_after_s(response.headers),
                provider=self.settings.name,
            )
        return response

    @asynccontextmanager
    async def post(
        self,
        url: str,
        body: Json,
        *,
        timeout_s: float,
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[Response]:
        """POST JSON; yields a 2xx response, raises UpstreamError for anything else. With
        `stream`, `timeout_s` bounds the wait for the headers and then each read, not the
        whole body."""
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._open(url, body, timeout_s, headers)
        except (TimeoutError, HttpError) as exc:
            raise self._failure(exc, timeout_s) from exc
        try:
            if stream:
                yield response
            else:
                async with asyncio.timeout(timeout_s):
                    yield response
        except (TimeoutError, HttpError) as exc:
            raise self._failure(exc, timeout_s) from exc
        finally:
            response.release()

    async def post_json(
        self, url: str, body: Json, *, timeout_s: float, headers: dict[str, str] | None = None
    ) -> Json:
        # Not through post(): this is the hot path, and a context manager costs here.
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._open(url, body, timeout_s, headers)
                try:
                    raw = await response.read()
                finally:
                    response.release()
        except (TimeoutError, HttpError) as exc:
            raise self._failure(exc, timeout_s) from exc
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
    except (TooLarge, BadResponse) as exc:
        raise transport_failure(name, exc) from exc
    except HttpError as exc:
        raise UpstreamError(
            f"{name} broke the stream off: {exc}", kind="connect", provider=name
        ) from exc


def transport_failure(name: str, exc: HttpError) -> UpstreamError:
    """What the router needs to know about a transport failure: whether trying again (here
    or at another deployment) can help."""
    if isinstance(exc, TooLarge):
        # The request asked for more than we accept; asking again costs the same again.
        return UpstreamError(
            f"{name}'s answer is too large: {exc}", kind="too_large", provider=name
        )
    if isinstance(exc, BadResponse):
        return UpstreamError(f"{name} sent a bad response: {exc}", kind="protocol", provider=name)
    if isinstance(exc, BrokenBody):
        return UpstreamError(f"{name} broke the response off: {exc}", kind="connect", provider=name)
    if isinstance(exc, Disconnected):
        return UpstreamError(
            f"{name} closed the connection before answering", kind="connect", provider=name
        )
    # CannotConnect and the rest: "primary: could not connect: Connection refused".
    return UpstreamError(f"{name}: {exc}", kind="connect", provider=name)


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
