"""The gateway's logic: resolve the model, route the call, meter what it cost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from parley.errors import InvalidRequest, NotFound, ParleyError
from parley.gateway.catalog import ModelCatalog, ModelSpec
from parley.gateway.config import GatewayConfig
from parley.gateway.errors import StreamInterrupted, UpstreamError
from parley.gateway.providers.base import Json, Provider
from parley.gateway.providers.registry import build_provider
from parley.gateway.router import Attempts, Router, StreamHandle
from parley.gateway.schemas import ChatCompletionRequest, EmbeddingRequest, validate
from parley.gateway.url_parts import check_url_parts
from parley.kit.clock import Clock, utcnow
from parley.kit.netguard import FetchGuard
from parley.kit.tokens import content_text, count_messages, count_text, max_prompt_tokens
from parley.orgs.roles import Action
from parley.principal import OrgContext
from parley.usage.quotas import QuotaService, Ticket
from parley.usage.recorder import Usage, UsageRecorder

log = structlog.get_logger("parley.gateway")


@dataclass
class Completion:
    body: Json
    spec: ModelSpec
    attempts: Attempts
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Metering:
    """What a call used, filled in as it goes (streams update it chunk by chunk)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    reported: bool = False  # the upstream said; otherwise counted offline
    text: list[str] = field(default_factory=list)

    def take_usage(self, usage: Json | None) -> None:
        if not usage:
            return
        self.reported = True
        self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        self.completion_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("completion_tokens_details") or {}
        self.reasoning_tokens = int(details.get("reasoning_tokens") or 0)


def _estimate_tokens(request: Json) -> int:
    """What a request may use, for tokens-per-minute before the real count is known."""
    text = request.get("messages") or request.get("input") or ""
    size = len(orjson.dumps(text)) // 4
    return size + int(request.get("max_completion_tokens") or request.get("max_tokens") or 0)


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
    if max_prompt_tokens(request["messages"]) <= budget:
        return None  # fits without counting
    prompt = count_messages(request["messages"], spec.name)
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
        self.recorder = recorder
        self.quotas = quotas
        # Admitted requests by request id, until their usage is recorded and settled.
        self._tickets: dict[str, Ticket] = {}
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

    async def stop(self) -> None:
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception:
                log.exception("gateway.provider_close_failed")

    # --- models --------------------------------------------------------------------------

    async def models_for(self, ctx: OrgContext) -> list[ModelSpec]:
        """The models the organisation's plan includes."""
        limits = await self.quotas.billing.limits(ctx.org_id)
        tiers = limits.limits.model_tiers
        return [m for m in self.catalog.all() if m.tier in tiers]

    # --- quotas and rate limits ----------------------------------------------------------

    async def admit(
        self, ctx: OrgContext, request_id: str, spec: ModelSpec, body: Json, *, counts_message: bool
    ) -> Ticket:
        """Take the request's share of every limit before any provider is called."""
        await check_url_parts(body, self.fetch_guard)  # before any quota is taken
        ticket = await self.quotas.admit(
            ctx,
            model=spec.name,
            tier=spec.tier,
            estimate_tokens=_estimate_tokens(body),
            counts_message=counts_message,
        )
        self._tickets[request_id] = ticket
        return ticket

    def release(self, request_id: str) -> None:
        """The request ended before reaching a provider: give back what it took."""
        ticket = self._tickets.pop(request_id, None)
        if ticket is not None:
            self.quotas.settle_later(ticket, ok=False, total_tokens=0, cost_micros=0)

    def model(self, ctx: OrgContext, name: str, *, kind: str) -> ModelSpec:
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

    # --- chat ----------------------------------------------------------------------------

    def prepare_chat(
        self, ctx: OrgContext, body: Any, *, action: Action = Action.INFERENCE
    ) -> tuple[Json, ModelSpec, int | None]:
        """Validate a chat request for a caller allowed `action` (conversations reply through
        here on their owner's behalf)."""
        ctx.require(action)
        validate(ChatCompletionRequest, body)
        spec = self.model(ctx, body["model"], kind="chat")
        prompt = _check_context(body, spec)
        return body, spec, prompt

    async def chat(
        self,
        ctx: OrgContext,
        request_id: str,
        body: Json,
        spec: ModelSpec,
        *,
        endpoint: str = "chat",
    ) -> Completion:
        started = time.perf_counter()
        meter = Metering()
        attempts = Attempts()
        status, error_type = "error", None
        try:
            result, attempts = await self.router.chat(spec, body, attempts)
            meter.take_usage(result.get("usage"))
            if not meter.reported:
                meter.prompt_tokens = count_messages(body["messages"], spec.name)
                meter.completion_tokens = sum(
                    count_text(content_text((c.get("message") or {}).get("content")), spec.name)
                    for c in result.get("choices") or []
                )
                result["usage"] = self._usage_json(meter)
            result["model"] = spec.name
            status = "ok"
            return Completion(result, spec, attempts)
        except ParleyError as exc:
            error_type = exc.code
            raise
        except asyncio.CancelledError:
            status, error_type = "cancelled", "client_disconnected"
            raise
        finally:
            self._record(
                ctx,
                request_id,
                endpoint,
                spec,
                attempts,
                meter,
                started,
                None,
                status,
                error_type,
                stream=False,
            )

    async def open_stream(
        self,
        ctx: OrgContext,
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
            self._record(
                ctx,
                request_id,
                endpoint,
                spec,
                attempts,
                Metering(),
                started,
                None,
                status,
                error_type,
                stream=True,
            )
            raise
        ttft_ms = int((time.perf_counter() - started) * 1000)
        return handle, self._relay(ctx, request_id, endpoint, body, spec, handle, started, ttft_ms)

    async def _relay(
        self,
        ctx: OrgContext,
        request_id: str,
        endpoint: str,
        body: Json,
        spec: ModelSpec,
        handle: StreamHandle,
        started: float,
        ttft_ms: int,
    ) -> AsyncIterator[Json]:
        meter = Metering()
        status = "cancelled"
        error_type: str | None = "client_disconnected"
        try:
            chunk: Json | None = handle.first
            while chunk is not None:
                meter.take_usage(chunk.get("usage"))
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        meter.text.append(delta["content"])
                    for call in delta.get("tool_calls") or []:
                        meter.text.append((call.get("function") or {}).get("arguments") or "")
                chunk["model"] = spec.name
                yield chunk
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
            if not meter.reported:
                meter.prompt_tokens = count_messages(body["messages"], spec.name)
                meter.completion_tokens = count_text("".join(meter.text), spec.name)
            self._record(
                ctx,
                request_id,
                endpoint,
                spec,
                handle.attempts,
                meter,
                started,
                ttft_ms,
                status,
                error_type,
                stream=True,
            )

    def _usage_json(self, meter: Metering) -> Json:
        usage: Json = {
            "prompt_tokens": meter.prompt_tokens,
            "completion_tokens": meter.completion_tokens,
            "total_tokens": meter.prompt_tokens + meter.completion_tokens,
        }
        if meter.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": meter.reasoning_tokens}
        return usage

    # --- embeddings ----------------------------------------------------------------------

    async def embeddings(self, ctx: OrgContext, request_id: str, body: Any) -> Completion:
        ctx.require(Action.INFERENCE)
        validate(EmbeddingRequest, body)
        spec = self.model(ctx, body["model"], kind="embedding")
        if isinstance(body["input"], list) and not body["input"]:
            raise InvalidRequest("input must not be empty.", code="invalid_value", param="input")
        ticket = await self.admit(ctx, request_id, spec, body, counts_message=False)
        started = time.perf_counter()
        meter = Metering()
        attempts = Attempts()
        status, error_type = "error", None
        try:
            result, attempts = await self.router.embed(spec, body, attempts)
            usage = result.get("usage") or {}
            meter.reported = True
            meter.prompt_tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
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
            self._record(
                ctx,
                request_id,
                "embeddings",
                spec,
                attempts,
                meter,
                started,
                None,
                status,
                error_type,
                stream=False,
            )

    # --- metering ------------------------------------------------------------------------

    def _record(
        self,
        ctx: OrgContext,
        request_id: str,
        endpoint: str,
        spec: ModelSpec,
        attempts: Attempts,
        meter: Metering,
        started: float,
        ttft_ms: int | None,
        status: str,
        error_type: str | None,
        *,
        stream: bool,
    ) -> None:
        deployment = attempts.deployment
        ticket = self._tickets.pop(request_id, None)
        ok = status == "ok"
        cost = spec.cost_micros(meter.prompt_tokens, meter.completion_tokens)
        if ticket is not None:
            self.quotas.settle_later(
                ticket,
                ok=ok,
                total_tokens=meter.prompt_tokens + meter.completion_tokens,
                cost_micros=cost,
            )
        self.recorder.record(
            Usage(
                id=request_id,
                org_id=ctx.org_id,
                api_key_id=ctx.actor.api_key_id,
                user_id=ctx.actor.user_id,
                endpoint=endpoint,
                model=spec.name,
                provider=deployment.provider if deployment else None,
                deployment_model=deployment.model if deployment else None,
                attempts=attempts.count,
                stream=stream,
                prompt_tokens=meter.prompt_tokens,
                completion_tokens=meter.completion_tokens,
                reasoning_tokens=meter.reasoning_tokens,
                total_tokens=meter.prompt_tokens + meter.completion_tokens,
                cost_micros=cost,
                latency_ms=int((time.perf_counter() - started) * 1000),
                ttft_ms=ttft_ms,
                status=status,
                error_type=error_type,
                created_at=self.clock(),
                counted=ok and ticket is not None and ticket.counts_message,
                overage=ok and ticket is not None and ticket.overage,
            )
        )

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
