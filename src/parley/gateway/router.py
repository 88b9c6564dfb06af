"""Routing: which deployment answers, retries with backoff, failover, breakers, deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from parley.errors import ParleyError, RateLimited, ServiceUnavailable
from parley.gateway.breaker import CircuitBreaker
from parley.gateway.catalog import ModelSpec
from parley.gateway.config import GatewaySection
from parley.gateway.errors import (
    UpstreamError,
    failed_message,
    log_failure,
    rejected_message,
)
from parley.gateway.providers.base import Deployment, Json, Provider


class UpstreamFailed(ParleyError):
    status = 502
    type = "api_error"
    default_code = "upstream_error"


class UpstreamTimeout(ParleyError):
    status = 504
    type = "api_error"
    default_code = "upstream_timeout"


class UpstreamRejected(ParleyError):
    """The upstream refused the request itself (a 400 another deployment would repeat)."""

    status = 400
    type = "invalid_request_error"
    default_code = "upstream_rejected_request"


@dataclass
class Attempts:
    """What routing did, for headers and the usage event."""

    count: int = 0
    deployment: Deployment | None = None


@dataclass
class StreamHandle:
    """A stream whose first chunk has arrived: from here on there is no failover."""

    deployment: Deployment
    first: Json
    rest: AsyncIterator[Json]
    attempts: Attempts


RetryPolicy = Callable[[int], float]


class Router:
    def __init__(
        self,
        providers: dict[str, Provider],
        section: GatewaySection,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.providers = providers
        self.section = section
        self.monotonic = monotonic
        self.sleep = sleep
        self.breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, deployment: Deployment) -> CircuitBreaker:
        breaker = self.breakers.get(deployment.id)
        if breaker is None:
            cfg = self.section.breaker
            breaker = CircuitBreaker(
                cfg.failure_threshold, cfg.cooldown_s, cfg.window, clock=self.monotonic
            )
            self.breakers[deployment.id] = breaker
        return breaker

    def order(self, spec: ModelSpec) -> list[Deployment]:
        deployments = list(spec.deployments)
        if spec.strategy == "weighted" and len(deployments) > 1:
            ordered: list[Deployment] = []
            pool = deployments[:]
            while pool:
                pick = random.choices(pool, weights=[d.weight for d in pool])[0]  # noqa: S311
                ordered.append(pick)
                pool.remove(pick)
            return ordered
        if spec.strategy == "least_busy":
            return sorted(deployments, key=lambda d: self.breaker(d).in_flight)
        return deployments

    def backoff_s(self, retry_number: int) -> float:
        cfg = self.section.retry
        return random.uniform(0, min(cfg.max_delay_s, cfg.base_delay_s * 2**retry_number))  # noqa: S311

    async def chat(
        self, spec: ModelSpec, request: Json, attempts: Attempts | None = None
    ) -> tuple[Json, Attempts]:
        async def call(provider: Provider, deployment: Deployment, timeout_s: float) -> Json:
            return await provider.chat(request, deployment, timeout_s=timeout_s)

        return await self._route(spec, call, attempts=attempts)

    async def embed(
        self, spec: ModelSpec, request: Json, attempts: Attempts | None = None
    ) -> tuple[Json, Attempts]:
        async def call(provider: Provider, deployment: Deployment, timeout_s: float) -> Json:
            return await provider.embed(request, deployment, timeout_s=timeout_s)

        return await self._route(spec, call, attempts=attempts)

    async def stream(
        self, spec: ModelSpec, request: Json, attempts: Attempts | None = None
    ) -> StreamHandle:
        """Open a stream, failing over until one yields its first chunk."""

        async def call(
            provider: Provider, deployment: Deployment, timeout_s: float
        ) -> StreamHandle:
            agen = provider.stream(request, deployment, timeout_s=timeout_s)
            try:
                async with asyncio.timeout(timeout_s):
                    first = await anext(agen)
            except StopAsyncIteration as exc:
                raise UpstreamError(
                    "the stream ended before any data", kind="connect", provider=deployment.provider
                ) from exc
            except TimeoutError as exc:
                await _aclose(agen)
                raise UpstreamError(
                    f"no first byte within {timeout_s:g} s",
                    kind="timeout",
                    provider=deployment.provider,
                ) from exc
            except BaseException:
                await _aclose(agen)
                raise
            return StreamHandle(deployment, first, agen, Attempts())

        handle, attempts = await self._route(spec, call, record_success=False, attempts=attempts)
        assert isinstance(handle, StreamHandle)
        handle.attempts = attempts
        return handle

    async def _route(
        self,
        spec: ModelSpec,
        call: Callable[..., Any],
        *,
        record_success: bool = True,
        attempts: Attempts | None = None,
    ) -> tuple[Any, Attempts]:
        """Fills `attempts` (the caller's, when given: it still tells what was tried when
        this raises)."""
        deadline = self.monotonic() + self.section.deadline_s
        if attempts is None:
            attempts = Attempts()
        last: UpstreamError | None = None
        blocked = 0
        for deployment in self.order(spec):
            provider = self.providers.get(deployment.provider)
            if provider is None:
                continue
            breaker = self.breaker(deployment)
            for retry in range(deployment.max_retries + 1):
                if not breaker.allow():
                    blocked += retry == 0
                    break
                remaining = deadline - self.monotonic()
                if remaining <= 0:
                    raise UpstreamTimeout(
                        f"No deployment of {spec.name} answered within the "
                        f"{self.section.deadline_s:g} s deadline ({attempts.count} attempts).",
                        code="deadline_exceeded",
                    )
                timeout_s = min(deployment.timeout_s or provider.settings.timeout_s, remaining)
                attempts.count += 1
                attempts.deployment = deployment
                breaker.in_flight += 1
                started = self.monotonic()
                try:
                    try:
                        result = await call(provider, deployment, timeout_s)
                    except ValueError as exc:
                        # A provider's translation found something it cannot express.
                        raise UpstreamError(
                            str(exc), status=400, provider=deployment.provider, public=True
                        ) from exc
                except UpstreamError as error:
                    last = error
                    # The provider's own words go to the log only; clients get our wording.
                    log_failure("gateway.attempt_failed", error, deployment=deployment.id)
                    if error.client_fault:
                        breaker.release_probe()
                        raise UpstreamRejected(rejected_message(error)) from error
                    breaker.record(False, self.monotonic() - started)
                    if not error.retryable or retry == deployment.max_retries:
                        break
                    delay = error.retry_after_s
                    if delay is None:
                        delay = self.backoff_s(retry)
                    if (
                        delay > self.section.retry.max_delay_s
                        or delay >= deadline - self.monotonic()
                    ):
                        break  # waiting that long here is worse than trying elsewhere
                    await self.sleep(delay)
                    continue
                except BaseException:
                    # Cancelled, or a bug rather than an upstream failure: no verdict, but a
                    # half-open probe must give its slot back or the circuit stays shut.
                    breaker.release_probe()
                    raise
                finally:
                    breaker.in_flight -= 1
                if record_success:
                    breaker.record(True, self.monotonic() - started)
                else:
                    breaker.release_probe()
                return result, attempts
        raise self._failure(spec, attempts, last, blocked)

    def _failure(
        self, spec: ModelSpec, attempts: Attempts, last: UpstreamError | None, blocked: int
    ) -> ParleyError:
        if attempts.count == 0:
            waits = [
                b.cooldown_s - (self.monotonic() - b.opened_at)
                for d in spec.deployments
                if (b := self.breakers.get(d.id)) is not None
            ]
            retry_after = max(1, int(min(waits, default=1)) + 1)
            reason = "are failing and paused" if blocked else "have no configured provider"
            return ServiceUnavailable(
                f"Every deployment of {spec.name} {reason}; try again in about {retry_after} s.",
                code="no_deployment_available",
                headers={"Retry-After": str(retry_after)},
            )
        assert last is not None
        message = failed_message(spec.name, last)
        if last.status == 429:
            return RateLimited(
                message, retry_after_s=int(last.retry_after_s or 1), code="upstream_rate_limited"
            )
        if last.kind == "timeout":
            return UpstreamTimeout(message)
        return UpstreamFailed(message)

    def record_stream_end(self, handle: StreamHandle, ok: bool, latency_s: float) -> None:
        self.breaker(handle.deployment).record(ok, latency_s)

    def health(self) -> list[dict[str, Any]]:
        return [
            {"deployment": deployment_id, **breaker.snapshot()}
            for deployment_id, breaker in sorted(self.breakers.items())
        ]


async def _aclose(agen: AsyncIterator[Json]) -> None:
    aclose = getattr(agen, "aclose", None)
    if aclose is not None:
        # Closing a failed stream: its cause is already known and reported.
        with contextlib.suppress(Exception):
            await aclose()
