"""Fitting a conversation into its model's context window.

The system prompt and the newest message always go in. When the rest of the branch does
not fit, `truncate` drops the oldest messages; `summarize` (the default) replaces them by a
rolling summary written by a cheap model. A summary is extended, never recomputed: each new
one folds a batch of older messages into the previous one, and the batch is large enough
(half of the room) that the next turns fit again without another call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from parley.errors import InvalidRequest, ParleyError
from parley.gateway.catalog import ModelSpec
from parley.gateway.config import ConversationsSection
from parley.gateway.providers.base import Json
from parley.gateway.service import GatewayService
from parley.kit.ids import new_id
from parley.kit.tokens import content_text, count_messages, count_text, max_prompt_tokens
from parley.principal import OrgContext

log = structlog.get_logger("parley.conversations")

Strategy = Literal["summarize", "truncate"]

SUMMARY_HEADING = "Summary of the earlier part of this conversation:\n"
SUMMARIZER_INSTRUCTIONS = (
    "You maintain the running summary of a conversation between a user and an assistant. "
    "Rewrite the summary so that it also covers the new messages. Keep every fact, name, "
    "number, decision and open question; drop pleasantries. Answer with the summary only."
)
# What the framing of one chat message costs (role, separators), as count_messages counts.
MESSAGE_OVERHEAD = 3


@dataclass(frozen=True, slots=True)
class Turn:
    """A stored message, as the context sees it."""

    id: str
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Summary:
    upto_message_id: str
    content: str
    tokens: int
    model: str


@dataclass(frozen=True, slots=True)
class Context:
    messages: list[Json]
    max_tokens: int
    new_summary: Summary | None = None  # written during this build; the caller stores it


def _message(role: str, content: str) -> Json:
    return {"role": role, "content": content}


def _summary_message(summary: Summary) -> Json:
    return _message("system", SUMMARY_HEADING + summary.content)


def _clip(text: str, max_tokens: int, model: str) -> str:
    """The longest prefix of `text` within `max_tokens` (binary search on characters)."""
    if count_text(text, model) <= max_tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_text(text[:mid], model) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


class ContextBuilder:
    def __init__(self, gateway: GatewayService, settings: ConversationsSection) -> None:
        self.gateway = gateway
        self.settings = settings

    async def build(
        self,
        org: OrgContext,
        spec: ModelSpec,
        *,
        system_prompt: str | None,
        history: Sequence[Turn],
        latest: Turn,
        summary: Summary | None,
        strategy: Strategy,
    ) -> Context:
        """The messages to send for a reply to `latest`, after `history` (oldest first).
        `summary` is the newest stored summary of this branch, if any."""
        model = spec.name

        def cost(message: Json) -> int:
            return count_messages([message], model) - MESSAGE_OVERHEAD

        budget = spec.context_window - spec.reply_reserve
        head = [_message("system", system_prompt)] if system_prompt else []
        last = _message(latest.role, latest.content)
        turns = [_message(t.role, t.content) for t in history]

        def done(middle: list[Json], new: Summary | None = None) -> Context:
            return Context([*head, *middle, last], spec.reply_reserve, new)

        # Most conversations fit whole, which their size in bytes shows without a tokenizer.
        if max_prompt_tokens([*head, *turns, last]) <= budget:
            return done(turns)
        fixed = MESSAGE_OVERHEAD + sum(cost(m) for m in head) + cost(last)
        if fixed > budget:
            raise InvalidRequest(
                f"This message and the system prompt take about {fixed} tokens, but {model} "
                f"leaves {budget} for the prompt (a {spec.context_window}-token window, "
                f"{spec.reply_reserve} kept for the reply). Shorten the message.",
                code="context_length_exceeded",
                param="content",
            )
        room = budget - fixed
        costs = [cost(m) for m in turns]
        if sum(costs) <= room:
            return done(turns)
        if strategy == "truncate":
            keep = _newest_within(costs, room)
            return done(turns[len(turns) - keep :])

        # The stored summary applies when it ends on this branch.
        ids = [t.id for t in history]
        start = 0
        if summary is not None and summary.upto_message_id in ids:
            start = ids.index(summary.upto_message_id) + 1
        else:
            summary = None
        tail, tail_costs = turns[start:], costs[start:]
        if summary is not None:
            with_summary = cost(_summary_message(summary)) + sum(tail_costs)
            if with_summary <= room:
                return done([_summary_message(summary), *tail])

        summary_room = min(self.settings.summary_max_tokens, room // 3)
        keep = _newest_within(tail_costs, (room - summary_room) // 2)
        fold = history[start : len(history) - keep]
        try:
            new = await self._summarize(org, summary, fold, summary_room, model)
        except ParleyError as exc:
            # Better a shorter memory than no reply: this turn falls back to truncation.
            log.warning("conversations.summary_failed", error=exc.code, model=model)
            keep = _newest_within(costs, room)
            return done(turns[len(turns) - keep :])
        kept = tail[len(tail) - keep :] if keep else []
        return done([_summary_message(new), *kept], new)

    async def _summarize(
        self,
        org: OrgContext,
        previous: Summary | None,
        fold: Sequence[Turn],
        max_tokens: int,
        context_model: str,
    ) -> Summary:
        """Fold `fold` into `previous`, in as many calls as the summary model's window needs."""
        name = self.settings.summary_model or context_model
        spec = self.gateway.model(org, name, kind="chat")
        # The summary must fit the room of the context model, whoever writes it.
        limit = max(1, max_tokens - count_text(SUMMARY_HEADING, context_model) - 1)
        reply_tokens = min(limit, spec.max_output_tokens)
        content = previous.content if previous else ""
        window = (
            spec.context_window
            - reply_tokens
            - count_messages([_message("system", SUMMARIZER_INSTRUCTIONS)], spec.name)
            - 64  # the labels around the summary and the messages
        )
        batch: list[str] = []
        batch_tokens = count_text(content, spec.name)

        async def flush() -> str:
            prompt = f"Summary so far:\n{content or '(none yet)'}\n\nNew messages:\n" + "\n".join(
                batch
            )
            body: Json = {
                "model": spec.name,
                "messages": [
                    _message("system", SUMMARIZER_INSTRUCTIONS),
                    _message("user", prompt),
                ],
                "max_tokens": reply_tokens,
                "temperature": 0,
            }
            # Admitted like any call (rates, plan tier, spending cap), but not a message.
            done = await self.gateway.complete(
                org,
                new_id("req"),
                body,
                spec,
                endpoint="conversation.summary",
                counts_message=False,
            )
            choice = (done.body.get("choices") or [{}])[0]
            text = content_text((choice.get("message") or {}).get("content")).strip()
            return _clip(text, limit, context_model)

        for turn in fold:
            line = f"{turn.role.capitalize()}: {turn.content}"
            size = count_text(line, spec.name) + 1
            if batch and batch_tokens + size > window:
                content = await flush()
                batch, batch_tokens = [], count_text(content, spec.name)
            if batch_tokens + size > window:  # one message larger than the whole window
                line = _clip(line, max(1, window - batch_tokens - 1), spec.name)
                size = window - batch_tokens
            batch.append(line)
            batch_tokens += size
        if batch:
            content = await flush()
        return Summary(
            upto_message_id=fold[-1].id if fold else (previous.upto_message_id if previous else ""),
            content=content,
            tokens=count_text(content, context_model),
            model=spec.name,
        )


def _newest_within(costs: Sequence[int], room: int) -> int:
    """How many of the newest items fit in `room`, taken newest first."""
    total = kept = 0
    for c in reversed(costs):
        if total + c > room:
            break
        total += c
        kept += 1
    return kept
