"""Admission and metering of inference calls: each call takes its share of the limits before
a provider is called, and ends with one usage event and one settlement, however it ends.

A message is each choice whose content reached the caller: every choice of a complete
reply; of a reply cut short (the client left, the provider broke off), those whose content
was passed on; none for a call that failed or was left before its first content.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson
import structlog

from parley.gateway.catalog import ModelSpec
from parley.gateway.providers.base import Json
from parley.gateway.router import Attempts
from parley.kit.clock import Clock, utcnow
from parley.principal import OrgContext
from parley.usage.quotas import QuotaService, Ticket
from parley.usage.recorder import Usage, UsageRecorder

log = structlog.get_logger("parley.gateway")


@dataclass
class CallUsage:
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

    def json(self) -> Json:
        """OpenAI's `usage` object."""
        usage: Json = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return usage


def estimate_tokens(request: Json, spec: ModelSpec) -> int:
    """What a request may use, for tokens per minute before the real count is known: its
    prompt (tools included, capped by the window) and every choice's longest reply."""
    if "messages" not in request:  # embeddings
        return len(orjson.dumps(request.get("input") or "")) // 4
    prompt = (len(orjson.dumps(request["messages"])) + len(orjson.dumps(request.get("tools")))) // 4
    reply = request.get("max_completion_tokens") or request.get("max_tokens")
    choices = int(request.get("n") or 1)
    return min(prompt, spec.context_window) + choices * int(reply or spec.max_output_tokens)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended, as its usage event records it."""

    endpoint: str
    status: str  # ok | error | incomplete | cancelled
    error_type: str | None
    stream: bool
    started: float  # perf_counter at the start
    ttft_ms: int | None = None


class Meter:
    def __init__(
        self, quotas: QuotaService, recorder: UsageRecorder, *, clock: Clock = utcnow
    ) -> None:
        self.quotas = quotas
        self.recorder = recorder
        self.clock = clock
        # Admitted calls by request id, until their usage is recorded and settled.
        self._tickets: dict[str, Ticket] = {}

    async def admit(
        self, org: OrgContext, request_id: str, spec: ModelSpec, body: Json, *, counts_message: bool
    ) -> Ticket:
        ticket = await self.quotas.admit(
            org,
            model=spec.name,
            tier=spec.tier,
            estimate_tokens=estimate_tokens(body, spec),
            messages=int(body.get("n") or 1) if counts_message else 0,
        )
        self._tickets[request_id] = ticket
        return ticket

    def release(self, request_id: str) -> None:
        ticket = self._tickets.pop(request_id, None)
        if ticket is not None:
            self.quotas.settle_later(ticket, served=0, total_tokens=0, cost_micros=0)

    def record(
        self,
        org: OrgContext,
        request_id: str,
        spec: ModelSpec,
        attempts: Attempts,
        usage: CallUsage,
        outcome: Outcome,
    ) -> None:
        """One usage event, and the settlement of what admission took: the messages served
        are kept (a complete stream serves all it asked for), the rest given back."""
        deployment = attempts.deployment
        ticket = self._tickets.pop(request_id, None)
        served = 0
        if ticket is not None and ticket.messages:
            complete_stream = outcome.status == "ok" and outcome.stream
            served = min(
                ticket.messages if complete_stream else len(usage.delivered), ticket.messages
            )
        cost = spec.cost_micros(usage.prompt_tokens, usage.completion_tokens)
        total = usage.prompt_tokens + usage.completion_tokens
        if ticket is not None:
            self.quotas.settle_later(ticket, served=served, total_tokens=total, cost_micros=cost)
        self.recorder.record(
            Usage(
                id=request_id,
                org_id=org.org_id,
                api_key_id=org.actor.api_key_id,
                user_id=org.actor.user_id,
                endpoint=outcome.endpoint,
                model=spec.name,
                provider=deployment.provider if deployment else None,
                deployment_model=deployment.model if deployment else None,
                attempts=attempts.count,
                stream=outcome.stream,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                total_tokens=total,
                cost_micros=cost,
                latency_ms=int((time.perf_counter() - outcome.started) * 1000),
                ttft_ms=outcome.ttft_ms,
                status=outcome.status,
                error_type=outcome.error_type,
                created_at=self.clock(),
                messages=served,
                overage_messages=ticket.overage(served) if ticket is not None else 0,
            )
        )

    async def drain(self, within_s: float) -> None:
        """Calls cut short by a shutdown record their usage as they unwind: let them, so the
        flush that follows has every event."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self._tickets and loop.time() < deadline:  # noqa: ASYNC110 - only at shutdown
            await asyncio.sleep(0.01)
        if self._tickets:
            log.warning("gateway.calls_still_running_at_stop", calls=len(self._tickets))
