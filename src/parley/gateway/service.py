"""The gateway's logic: resolve the model, route the call, meter what it cost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

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
from parley.kit.tokens import content_text, count_request, count_text, max_request_tokens
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
    # Choices whose content reached the caller: each is a message served, however it ends.
    delivered: set[int] = field(default_factory=set)

    def take_usage(self, usage: Json | None) -> None:
        if not usage:
            return
        self.reported = True
        self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        self.completion_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("completion_tokens_details") or {}
        self.reasoning_tokens = int(details.get("reasoning_tokens") or 0)

    def take_chunk(self, chunk: Json) -> set[int]:
        """Keep a chunk's output for offline counting; the choices it carries output for."""
        wrote: set[int] = set()
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            before = len(self.text)
            for name in ("content", "refusal", "reasoning_content"):
                if delta.get(name):
                    self.text.append(delta[name])
            for call in delta.get("tool_calls") or []:
                function = call.get("function") or {}
                self.text.append((function.get("name") or "") + (function.get("arguments") or ""))
            if len(self.text) > before:
                wrote.add(int(choice.get("index") or 0))
        return wrote


def _estimate_tokens(request: Json, spec: ModelSpec) -> int:
    """What a request may use, for tokens per minute before the real count is known: its
    prompt (capped by the window) and every choice's longest reply."""
    if "messages" not in request:  # embeddings
        return len(orjson.dumps(request.get("input") or "")) // 4
    prompt = (len(orjson.dumps(request["messages"])) + len(orjson.dumps(request.get("tools")))) // 4
    reply = request.get("max_completion_tokens") or request.get("max_tokens")
    choices = int(request.get("n") or 1)
    return min(prompt, spec.context_window) + choices * int(reply or spec.max_output_tokens)


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

    async def stop(self, *, drain_s: float = 5.0) -> None:
        # Calls cut short by a shutdown record their usage as they unwind: let them, so the
        # flush that follows has every event.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        while self._tickets and loop.time() < deadline:  # noqa: ASYNC110 - only at shutdown
            await asyncio.sleep(0.01)
        if self._tickets:
            log.warning("gateway.calls_still_running_at_stop", calls=len(self._tickets))
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
        """Take the request's share of every limit before any provider is called. A chat
        reply with `n` choices takes `n` messages; other calls take none."""
        await check_url_parts(body, self.fetch_guard)  # before any quota is taken
        ticket = await self.quotas.admit(
            org,
            model=spec.name,
            tier=spec.tier,
            estimate_tokens=_estimate_tokens(body, spec),
            messages=int(body.get("n") or 1) if counts_message else 0,
        )
        self._tickets[request_id] = ticket
        return ticket

    def release(self, request_id: str) -> None:
        """The request ended before reaching a provider: give back what it took."""
        ticket = self._tickets.pop(request_id, None)
        if ticket is not None:
            self.quotas.settle_later(ticket, served=0, total_tokens=0, cost_micros=0)

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
        meter = Metering()
        attempts = Attempts()
        status, error_type = "error", None
        try:
            result, attempts = await self.router.chat(spec, body, attempts)
            meter.take_usage(result.get("usage"))
            if not meter.reported:
                meter.prompt_tokens = count_request(body, spec.name)
                meter.completion_tokens = sum(
                    count_text(content_text((c.get("message") or {}).get("content")), spec.name)
                    for c in result.get("choices") or []
                )
                result["usage"] = self._usage_json(meter)
            result["model"] = spec.name
            meter.delivered = {int(c.get("index") or 0) for c in result.get("choices") or []}
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
                org, request_id, endpoint, spec, attempts, meter, started, None, status, error_type
            )

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
            self._record(
                org,
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
        meter = Metering()
        status = "cancelled"
        error_type: str | None = "client_disconnected"
        try:
            chunk: Json | None = handle.first
            while chunk is not None:
                meter.take_usage(chunk.get("usage"))
                wrote = meter.take_chunk(chunk)
                chunk["model"] = spec.name
                yield chunk
                # Asked for more: the caller has passed this chunk on (for a route, the
                # server has sent it), so its content reached the client.
                meter.delivered |= wrote
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
                meter.prompt_tokens = count_request(body, spec.name)
                meter.completion_tokens = count_text("".join(meter.text), spec.name)
            self._record(
                org,
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

    async def embeddings(self, org: OrgContext, request_id: str, body: Any) -> Completion:
        org.require(Action.INFERENCE)
        validate(EmbeddingRequest, body)
        spec = self.model(org, body["model"], kind="embedding")
        if isinstance(body["input"], list) and not body["input"]:
            raise InvalidRequest("input must not be empty.", code="invalid_value", param="input")
        ticket = await self.admit(org, request_id, spec, body, counts_message=False)
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
                org,
                request_id,
                "embeddings",
                spec,
                attempts,
                meter,
                started,
                None,
                status,
                error_type,
            )

    # --- metering ------------------------------------------------------------------------

    def _record(
        self,
        org: OrgContext,
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
        stream: bool = False,
    ) -> None:
        """One usage event, and the settlement of what admission took. Messages served: every
        choice of a complete reply, and of one cut short, those whose content the client got
        (a stream cut before its first content costs nothing)."""
        deployment = attempts.deployment
        ticket = self._tickets.pop(request_id, None)
        served = 0
        if ticket is not None and ticket.messages:
            served = ticket.messages if status == "ok" and stream else len(meter.delivered)
            served = min(served, ticket.messages)
        cost = spec.cost_micros(meter.prompt_tokens, meter.completion_tokens)
        total = meter.prompt_tokens + meter.completion_tokens
        if ticket is not None:
            self.quotas.settle_later(ticket, served=served, total_tokens=total, cost_micros=cost)
        self.recorder.record(
            Usage(
                id=request_id,
                org_id=org.org_id,
                api_key_id=org.actor.api_key_id,
                user_id=org.actor.user_id,
                endpoint=endpoint,
                model=spec.name,
                provider=deployment.provider if deployment else None,
                deployment_model=deployment.model if deployment else None,
                attempts=attempts.count,
                stream=stream,
                prompt_tokens=meter.prompt_tokens,
                completion_tokens=meter.completion_tokens,
                reasoning_tokens=meter.reasoning_tokens,
                total_tokens=total,
                cost_micros=cost,
                latency_ms=int((time.perf_counter() - started) * 1000),
                ttft_ms=ttft_ms,
                status=status,
                error_type=error_type,
                created_at=self.clock(),
                messages=served,
                overage_messages=ticket.overage(served) if ticket is not None else 0,
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
