"""Conversations with memory: stored threads whose replies go through the gateway.

Replies are metered like any inference call: the gateway admits the request against the
plan's quotas and limits, and records one usage event for it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from parley.conversations import repository
from parley.conversations.models import Conversation, Message
from parley.conversations.schemas import MAX_CONTENT_CHARS
from parley.errors import InvalidRequest, NotFound
from parley.gateway.catalog import ModelSpec
from parley.gateway.providers.base import Json
from parley.gateway.service import Completion, GatewayService
from parley.kit.clock import Clock, utcnow
from parley.kit.ids import new_id
from parley.kit.tokens import content_text
from parley.orgs.roles import Action, Role
from parley.principal import OrgContext


@dataclass(frozen=True, slots=True)
class PendingExchange:
    """A checked message and the chat request for its reply, before anything is stored."""

    conversation_id: str
    parent_id: str | None
    content: str
    body: Json
    spec: ModelSpec


@dataclass(frozen=True, slots=True)
class Exchange:
    user_message: Message
    assistant_message: Message


def _sees_all(ctx: OrgContext) -> bool:
    """Admins and owners see every conversation of the org; others only their own."""
    return ctx.role in (Role.ADMIN, Role.OWNER)


def _owner_filter(ctx: OrgContext) -> str | None:
    return None if _sees_all(ctx) else ctx.actor.id


class ConversationService:
    def __init__(self, gateway: GatewayService, *, clock: Clock = utcnow) -> None:
        self.gateway = gateway
        self.clock = clock

    # --- conversations -------------------------------------------------------------------

    def _check_model(self, ctx: OrgContext, model: str | None) -> str | None:
        if model is None:
            return None
        return self.gateway.model(ctx, model, kind="chat").name

    async def create(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        *,
        title: str | None,
        model: str | None,
        system_prompt: str | None,
        metadata: dict[str, Any],
    ) -> Conversation:
        ctx.require(Action.CONVERSATIONS)
        now = self.clock()
        conversation = Conversation(
            id=new_id("conv"),
            org_id=ctx.org_id,
            created_by=ctx.actor.id,
            title=title.strip() if title and title.strip() else None,
            model=self._check_model(ctx, model),
            system_prompt=system_prompt or None,
            metadata_=metadata,
            created_at=now,
            updated_at=now,
        )
        session.add(conversation)
        await session.flush()
        return conversation

    async def list(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        *,
        query: str | None,
        limit: int,
        after: str | None,
    ) -> tuple[Sequence[Conversation], bool]:
        ctx.require(Action.CONVERSATIONS)
        return await repository.list_conversations(
            session,
            ctx.org_id,
            created_by=_owner_filter(ctx),
            title_query=query.strip() if query else None,
            limit=limit,
            after=after,
        )

    async def get(
        self, session: AsyncSession, ctx: OrgContext, conversation_id: str
    ) -> Conversation:
        ctx.require(Action.CONVERSATIONS)
        conversation = await repository.get(
            session, ctx.org_id, conversation_id, created_by=_owner_filter(ctx)
        )
        if conversation is None:
            raise NotFound(
                f"No conversation {conversation_id} among yours.", code="conversation_not_found"
            )
        return conversation

    async def patch(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        conversation_id: str,
        changes: dict[str, Any],
    ) -> Conversation:
        """Apply the fields given (title, system_prompt, metadata, model)."""
        conversation = await self.get(session, ctx, conversation_id)
        if "title" in changes:
            title = changes["title"]
            conversation.title = title.strip() if title and title.strip() else None
        if "system_prompt" in changes:
            conversation.system_prompt = changes["system_prompt"] or None
        if "model" in changes:
            conversation.model = self._check_model(ctx, changes["model"])
        if "metadata" in changes:
            conversation.metadata_ = changes["metadata"] or {}
        conversation.updated_at = self.clock()
        await session.flush()
        return conversation

    async def delete(self, session: AsyncSession, ctx: OrgContext, conversation_id: str) -> None:
        conversation = await self.get(session, ctx, conversation_id)
        now = self.clock()
        conversation.deleted_at = now
        conversation.updated_at = now
        await session.flush()

    # --- messages ------------------------------------------------------------------------

    async def _branch(self, session: AsyncSession, conversation: Conversation) -> Sequence[Message]:
        """The current branch: from the first message down to the current leaf."""
        if conversation.current_leaf_id is None:
            return []
        rows = await repository.conversation_messages(session, conversation.org_id, conversation.id)
        by_id = {m.id: m for m in rows}
        branch: list[Message] = []
        seen: set[str] = set()
        node = by_id.get(conversation.current_leaf_id)
        while node is not None and node.id not in seen:
            seen.add(node.id)
            branch.append(node)
            node = by_id.get(node.parent_id) if node.parent_id else None
        branch.reverse()
        return branch

    async def messages(
        self, session: AsyncSession, ctx: OrgContext, conversation_id: str
    ) -> Sequence[Message]:
        conversation = await self.get(session, ctx, conversation_id)
        return await self._branch(session, conversation)

    async def begin_exchange(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        conversation_id: str,
        *,
        content: str,
        model: str | None,
    ) -> PendingExchange:
        """Check the message and build the model's context: the system prompt, then the
        current branch, then the new message. Nothing is written yet."""
        ctx.require(Action.CONVERSATIONS)
        if not content.strip():
            raise InvalidRequest(
                "content must not be empty.", code="invalid_value", param="content"
            )
        if len(content) > MAX_CONTENT_CHARS:
            raise InvalidRequest(
                f"content is {len(content)} characters; a message may have at most "
                f"{MAX_CONTENT_CHARS}. Split it into several messages.",
                code="content_too_long",
                param="content",
            )
        conversation = await self.get(session, ctx, conversation_id)
        model_name = model or conversation.model
        if model_name is None:
            raise InvalidRequest(
                "No model for this reply: send `model`, or set one on the conversation.",
                code="model_required",
                param="model",
            )
        branch = await self._branch(session, conversation)
        context: list[dict[str, Any]] = []
        if conversation.system_prompt:
            context.append({"role": "system", "content": conversation.system_prompt})
        context.extend({"role": m.role, "content": m.content} for m in branch)
        context.append({"role": "user", "content": content})
        body, spec, _ = self.gateway.prepare_chat(
            ctx, {"model": model_name, "messages": context}, action=Action.CONVERSATIONS
        )
        return PendingExchange(
            conversation_id=conversation.id,
            parent_id=conversation.current_leaf_id,
            content=content,
            body=body,
            spec=spec,
        )

    async def reply(
        self, ctx: OrgContext, request_id: str, pending: PendingExchange
    ) -> tuple[Completion, int]:
        """Ask the model through the gateway (quotas, limits, usage); no database session may
        be held open meanwhile. Returns the completion and its latency in milliseconds."""
        await self.gateway.admit(ctx, request_id, pending.spec, pending.body, counts_message=True)
        started = time.perf_counter()
        try:
            done = await self.gateway.chat(ctx, request_id, pending.body, pending.spec)
        except BaseException:
            self.gateway.release(request_id)  # a no-op once the usage was recorded
            raise
        return done, int((time.perf_counter() - started) * 1000)

    async def store_exchange(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        pending: PendingExchange,
        done: Completion,
        latency_ms: int,
    ) -> Exchange:
        """Store the user's message and the reply under it, and move the current leaf."""
        conversation = await self.get(session, ctx, pending.conversation_id)
        choice = (done.body.get("choices") or [{}])[0]
        reply = content_text((choice.get("message") or {}).get("content"))
        usage = done.body.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        now = self.clock()
        user_message = Message(
            id=new_id("msg"),
            org_id=ctx.org_id,
            conversation_id=conversation.id,
            parent_id=pending.parent_id,
            role="user",
            content=pending.content,
            model=None,
            prompt_tokens=0,
            completion_tokens=0,
            cost_micros=0,
            status="complete",
            created_at=now,
        )
        assistant_message = Message(
            id=new_id("msg"),
            org_id=ctx.org_id,
            conversation_id=conversation.id,
            parent_id=user_message.id,
            role="assistant",
            content=reply,
            model=pending.spec.name,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_micros=pending.spec.cost_micros(prompt_tokens, completion_tokens),
            latency_ms=latency_ms,
            status="incomplete" if choice.get("finish_reason") == "length" else "complete",
            created_at=now,
        )
        session.add_all([user_message, assistant_message])
        # A concurrent exchange on the same leaf makes a sibling branch; the latest is current.
        conversation.current_leaf_id = assistant_message.id
        conversation.updated_at = now
        await session.flush()
        return Exchange(user_message, assistant_message)
