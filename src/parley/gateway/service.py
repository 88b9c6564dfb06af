"""The gateway's logic: resolve the model, admit the call, route it, meter what it cost
(admission and metering: metering.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.errors import InvalidRequest, NotFound, ParleyError
from parley.gateway.catalog import ModelCatalog, ModelSpec
from parley.gateway.config import GatewayConfig
from parley.gateway.errors import StreamInterrupted, UpstreamError
from parley.gateway.metering import CallUsage, Meter, Outcome
from parley.gateway.providers.base import Json, Provider
from parley.gateway.providers.registry import build_provider
from parley.gateway.router import Attempts, Router, StreamHandle
from parley.gateway.schemas import ChatCompletionRequest, EmbeddingRequest, validate
from parley.gateway.url_parts import check_url_parts
from parley.kit.clock import Clock, utcnow
from parley.kit.netguard import FetchGuard
from parley.kit.tokens import content_text, count_request, count_text, max_request_tokens
from parley.orgs.roles import Action
from parley.principal import OrgContext
from parley.usage.quotas import QuotaService, Ticket
from parley.usage.recorder import UsageRecorder

log = structlog.get_logger("parley.gateway")


@dataclass
class Completion:
    body: Json
    spec: ModelSpec
    attempts: Attempts
    headers: dict[str, str] = field(default_factory=dict)


def _max_output(request: Json, spec: ModelSpec) -> int:
    asked = request.get("max_completion_tokens") or request.get("max_tokens")
    if asked is not None and asked > spec.max_output_tokens:
        raise InvalidRequest(
            f"max_tokens is {asked}, but {spec.name} writes at most {spec.max_output_tokens} "
            "tokens per reply.",
            code="invalid_value",
            param="max_tokens",
        )
    return int(asked or 0)


def _check_context(request: Json, spec: ModelSpec) -> int | None:
    """Refuse a prompt that cannot fit; returns the exact prompt size when it was counted."""
    reserve = _max_output(request, spec)
    budget = spec.context_window - reserve
    if max_request_tokens(request) <= budget:
        return None  # fits without counting
    prompt = count_request(request, spec.name)
    if prompt > budget:
        raise InvalidRequest(
            f"This model's maximum context length is {spec.context_window} tokens. Your "
            f"messages use about {prompt} tokens"
            + (f" and {reserve} are reserved for the reply" if reserve else "")
            + ". Shorten the messages or lower max_tokens.",
            code="context_length_exceeded",
            param="messages",
        )
    return prompt


class GatewayService:
    def __init__(
        self,
        config: GatewayConfig,
        recorder: UsageRecorder,
        quotas: QuotaService,
        *,
        clock: Clock = utcnow,
        fetch_guard: FetchGuard | None = None,
    ) -> None:
        self.config = config.usable()
        self.fetch_guard = fetch_guard or FetchGuard()
        self.quotas = quotas
        self.meter = Meter(quotas, recorder, clock=clock)
        self.clock = clock
        self.providers: dict[str, Provider] = {}
        self.catalog = ModelCatalog(self.config)
        self.router = Router(self.providers, self.config.gateway)
        self.unavailable: dict[str, str] = config.skipped()

    async def start(self) -> None:
        for name, reason in self.unavailable.items():
            log.warning("gateway.provider_skipped", provider=name, reason=reason)
        for name, provider_config in self.config.providers.items():
            try:
                provider = build_provider(name, provider_config)
                await provider.start()
            except Exception as exc:
                reason = str(exc) or type(exc).__name__
                self.unavailable[name] = reason
                log.warning("gateway.provider_unavailable", provider=name, reason=reason)
                continue
            self.providers[name] = provider
        usable = {
            name: model
            for name, model in self.config.models.items()
            if any(d.provider in self.providers for d in model.deployments)
        }
        self.catalog = ModelCatalog(self.config.model_copy(update={"models": usable}))
        log.info(
            "gateway.ready",
            providers=sorted(self.providers),
            models=sorted(m.name for m in self.catalog.all()),
        )

    async def stop(self, *, drain_s: float = 5.0) -> None:
        await self.meter.drain(drain_s)
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception:
                log.exception("gateway.provider_close_failed")

    # --- models --------------------------------------------------------------------------

    async def models_for(self, org: OrgContext) -> list[ModelSpec]:
        """The models the organisation's plan includes."""
        limits = await self.quotas.billing.limits(org.org_id)
        tiers = limits.limits.model_tiers
        return [m for m in self.catalog.all() if m.tier in tiers]

    def model(self, org: OrgContext, name: str, *, kind: str) -> ModelSpec:
        spec = self.catalog.resolve(name)
        if spec is None:
            raise NotFound(
                f"The model '{name}' does not exist or you do not have access to it; "
                "GET /v1/models lists the ones you may use.",
                code="model_not_found",
                param="model",
            )
        if spec.kind != kind:
            raise InvalidRequest(
                f"'{name}' is an {spec.kind} model; use it with "
                + ("/v1/embeddings." if spec.kind == "embedding" else "/v1/chat/completions."),
                code="model_not_supported",
                param="model",
            )
        return spec

    async def plan_model(
        self, org: OrgContext, name: str, *, session: AsyncSession | None = None
    ) -> ModelSpec:
        """A chat model chosen ahead of any call (a conversation's): it must exist, and the
        plan must include it (the same 403 as a call to it gets)."""
        spec = self.model(org, name, kind="chat")
        await self.quotas.require_model(org, spec.name, spec.tier, session)
        return spec

    # --- quotas and rate limits ----------------------------------------------------------

    async def admit(
        self, org: OrgContext, request_id: str, spec: ModelSpec, body: Json, *, counts_message: bool
    ) -> Ticket:
        """Take the request's share of every limit before any provider is called (a chat
        reply with `n` choices takes `n` messages; other calls take none)."""
        await check_url_parts(body, self.fetch_guard)  # before any quota is taken
        return await self.meter.admit(org, request_id, spec, body, counts_message=counts_message)

    def release(self, request_id: str) -> None:
        """The request ended before reaching a provider: give back what it took."""
        self.meter.release(request_id)

    # --- chat ----------------------------------------------------------------------------

    def prepare_chat(
        self, org: OrgContext, body: Any, *, action: Action = Action.INFERENCE
    ) -> tuple[Json, ModelSpec, int | None]:
        """Validate a chat request for a caller allowed `action` (conversations reply through
        here on their owner's behalf)."""
        org.require(action)
        validate(ChatCompletionRequest, body)
        spec = self.model(org, body["model"], kind="chat")
        prompt = _check_context(body, spec)
        return body, spec, prompt

    async def complete(
        self,
        org: OrgContext,
        request_id: str,
        body: Json,
        spec: ModelSpec,
        *,
        endpoint: str,
        counts_message: bool,
    ) -> Completion:
        """Admit, call and meter in one: for callers inside Parley (conversation summaries)."""
        await self.admit(org, request_id, spec, body, counts_message=counts_message)
        try:
            return await self.chat(org, request_id, body, spec, endpoint=endpoint)
        finally:
            self.release(request_id)  # a no-op once the usage was recorded

    async def chat(
        self,
        org: OrgContext,
        request_id: str,
        body: Json,
        spec: ModelSpec,
        *,
        endpoint: str = "chat",
    ) -> Completion:
        started = time.perf_counter()
        usage = CallUsage()
        attempts = Attempts()
        status, error_type = "error", None
        try:
            result, attempts = await self.router.chat(spec, body, attempts)
            usage.take_usage(result.get("usage"))
            if not usage.reported:
                usage.prompt_tokens = count_request(body, spec.name)
                usage.completion_tokens = sum(
                    count_text(content_text((c.get("message") or {}).get("content")), spec.name)
                    for c in result.get("choices") or []
                )
                result["usage"] = usage.json()
            result["model"] = spec.name
            usage.delivered = {int(c.get("index") or 0) for c in result.get("choices") or []}
            status = "ok"
            return Completion(result, spec, attempts)
        except ParleyError as exc:
            error_type = exc.code
            raise
        except asyncio.CancelledError:
            status, error_type = "cancelled", "client_disconnected"
            raise
        finally:
            outcome = Outcome(endpoint, status, error_type, stream=False, started=started)
            self.meter.record(org, request_id, spec, attempts, usage, outcome)

    async def open_stream(
        self,
        org: OrgContext,
        request_id: str,
        body: Json,
        spec: ModelSpec,
        *,
        endpoint: str = "chat",
    ) -> tuple[StreamHandle, AsyncIterator[Json]]:
        """Open the upstream stream (failing over until the first chunk), then relay it.

        The relay yields OpenAI chunks; when the upstream breaks mid-stream it raises
        StreamInterrupted after what arrived, and usage is recorded in every case.
        """
        started = time.perf_counter()
        attempts = Attempts()
        try:
            handle = await self.router.stream(spec, body, attempts)
        except (ParleyError, asyncio.CancelledError) as exc:
            # Failed, or the client left before the first byte: still one usage event.
            if isinstance(exc, ParleyError):
                status, error_type = "error", exc.code
            else:
                status, error_type = "cancelled", "client_disconnected"
            outcome = Outcome(endpoint, status, error_type, stream=True, started=started)
            self.meter.record(org, request_id, spec, attempts, CallUsage(), outcome)
            raise
        ttft_ms = int((time.perf_counter() - started) * 1000)
        return handle, self._relay(org, request_id, endpoint, body, spec, handle, started, ttft_ms)

    async def _relay(
        self,
        org: OrgContext,
        request_id: str,
        endpoint: str,
        body: Json,
        spec: ModelSpec,
        handle: StreamHandle,
        started: float,
        ttft_ms: int,
    ) -> AsyncIterator[Json]:
        usage = CallUsage()
        status = "cancelled"
        error_type: str | None = "client_disconnected"
        try:
            chunk: Json | None = handle.first
            while chunk is not None:
                usage.take_usage(chunk.get("usage"))
                wrote = usage.take_chunk(chunk)
                chunk["model"] = spec.name
                yield chunk
                # Asked for more: the caller has passed this chunk on (for a route, the
                # server has sent it), so its content reached the client.
                usage.delivered |= wrote
                try:
                    chunk = await anext(handle.rest)
                except StopAsyncIteration:
                    chunk = None
            status, error_type = "ok", None
            self.router.record_stream_end(handle, True, time.perf_counter() - started)
        except UpstreamError as exc:
            status, error_type = "incomplete", "upstream_interrupted"
            self.router.record_stream_end(handle, False, time.perf_counter() - started)
            raise StreamInterrupted(exc) from exc
        finally:
            aclose = getattr(handle.rest, "aclose", None)
            if aclose is not None:
                await aclose()
            if not usage.reported:
                usage.prompt_tokens = count_request(body, spec.name)
                usage.completion_tokens = count_text("".join(usage.text), spec.name)
            outcome = Outcome(endpoint, status, error_type, True, started, ttft_ms)
            self.meter.record(org, request_id, spec, handle.attempts, usage, outcome)

    # --- embeddings ----------------------------------------------------------------------

    async def embeddings(self, org: OrgContext, request_id: str, body: Any) -> Completion:
        org.require(Action.INFERENCE)
        validate(EmbeddingRequest, body)
        spec = self.model(org, body["model"], kind="embedding")
        if isinstance(body["input"], list) and not body["input"]:
            raise InvalidRequest("input must not be empty.", code="invalid_value", param="input")
        ticket = await self.admit(org, request_id, spec, body, counts_message=False)
        started = time.perf_counter()
        usage = CallUsage(reported=True)
        attempts = Attempts()
        status, error_type = "error", None
        try:
            result, attempts = await self.router.embed(spec, body, attempts)
            reported = result.get("usage") or {}
            usage.prompt_tokens = int(
                reported.get("prompt_tokens") or reported.get("total_tokens") or 0
            )
            result["model"] = spec.name
            status = "ok"
            return Completion(result, spec, attempts, ticket.headers)
        except ParleyError as exc:
            error_type = exc.code
            raise
        except asyncio.CancelledError:
            status, error_type = "cancelled", "client_disconnected"
            raise
        finally:
            outcome = Outcome("embeddings", status, error_type, stream=False, started=started)
            self.meter.record(org, request_id, spec, attempts, usage, outcome)

    def health(self) -> list[dict[str, Any]]:
        rows = []
        for spec in self.catalog.all():
            for deployment in spec.deployments:
                if deployment.provider not in self.providers:
                    continue
                rows.append(
                    {
                        "model": spec.name,
                        "deployment": deployment.id,
                        "provider": deployment.provider,
                        **self.router.breaker(deployment).snapshot(),
                    }
                )
        return rows
