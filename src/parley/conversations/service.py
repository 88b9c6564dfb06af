"""Conversations with memory: stored threads whose replies go through the gateway.

Messages form a tree by `parent_id`: regenerating a reply or editing a message starts a
sibling branch, and the conversation's current leaf says which branch continues. Replies
are metered like any inference call (quotas, limits, one usage event each); see replies.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from parley.conversations import repository
from parley.conversations.context import Context, ContextBuilder, Strategy, Summary, Turn
from parley.conversations.models import Conversation, Message
from parley.conversations.schemas import MAX_CONTENT_CHARS
from parley.db.engine import Database
from parley.errors import InvalidRequest, NotFound
from parley.gateway.catalog import ModelSpec
from parley.gateway.providers.base import Json
from parley.gateway.service import GatewayService
from parley.kit.clock import Clock, utcnow
from parley.kit.ids import new_id
from parley.orgs.roles import Action, Role
from parley.principal import OrgContext

ReplyKind = Literal["post", "regenerate", "edit"]
TITLE_CHARS = 60


@dataclass(frozen=True, slots=True)
class ReplyDraft:
    """A reply checked and placed in its conversation, before any model is called: it is
    admitted against the quotas first, and only then is its context built (which may call
    the summary model)."""

    conversation_id: str
    user: Turn  # the message being answered
    user_parent_id: str | None
    store_user: bool  # a new message (post, edit), or one already stored (regenerate)
    title: str | None  # a title for a conversation that has none yet
    spec: ModelSpec
    system_prompt: str | None
    history: list[Turn]
    summary: Summary | None
    strategy: Strategy

    def estimate(self) -> Json:
        """The request as admission sizes it: the whole branch (the estimate caps it at the
        window) and the reply's reserve."""
        turns = [*self.history, self.user]
        messages = [{"role": t.role, "content": t.content} for t in turns]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return {"messages": messages, "max_tokens": self.spec.reply_reserve}


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    """Everything decided before the model is called; nothing is stored yet."""

    conversation_id: str
    user: Turn  # the message being answered
    user_parent_id: str | None
    store_user: bool  # a new message (post, edit), or one already stored (regenerate)
    title: str | None  # a title for a conversation that has none yet
    body: Json
    spec: ModelSpec
    context: Context


class Tree:
    """A conversation's messages as the tree they form."""

    def __init__(self, rows: Sequence[Message]) -> None:
        self.by_id = {m.id: m for m in rows}
        self.children: dict[str | None, list[str]] = {}
        for m in sorted(rows, key=lambda m: m.id):
            self.children.setdefault(m.parent_id, []).append(m.id)

    def branch(self, leaf_id: str | None) -> list[Message]:
        """From the first message down to `leaf_id`, oldest first."""
        path: list[Message] = []
        node = self.by_id.get(leaf_id) if leaf_id else None
        while node is not None and len(path) <= len(self.by_id):
            path.append(node)
            node = self.by_id.get(node.parent_id) if node.parent_id else None
        path.reverse()
        return path

    def siblings(self, message: Message) -> list[str]:
        return self.children.get(message.parent_id, [message.id])

    def newest_leaf(self, message_id: str) -> str:
        """Following the newest child down from `message_id` to a leaf."""
        node = message_id
        for _ in range(len(self.by_id)):
            kids = self.children.get(node)
            if not kids:
                break
            node = kids[-1]
        return node


def make_title(content: str) -> str:
    """A title from the first message: its first line, cut at a word within 60 characters."""
    line = next((ln.strip() for ln in content.splitlines() if ln.strip()), "").strip("#*> ")
    if len(line) <= TITLE_CHARS:
        return line or "New conversation"
    cut = line[:TITLE_CHARS].rsplit(" ", 1)[0].rstrip(" ,.;:-")
    return (cut or line[:TITLE_CHARS]) + "…"


def _check_content(content: str) -> None:
    if not content.strip():
        raise InvalidRequest("content must not be empty.", code="invalid_value", param="content")
    if len(content) > MAX_CONTENT_CHARS:
        raise InvalidRequest(
            f"content is {len(content)} characters; a message may have at most "
            f"{MAX_CONTENT_CHARS}. Split it into several messages.",
            code="content_too_long",
            param="content",
        )


def _sees_all(org: OrgContext) -> bool:
    """Admins and owners see every conversation of the org, and so do API keys (they act
    for the organisation); members and viewers see only their own."""
    return org.actor.api_key_id is not None or org.role in (Role.ADMIN, Role.OWNER)


def _owner_filter(org: OrgContext) -> str | None:
    return None if _sees_all(org) else org.actor.id


class ConversationService:
    def __init__(
        self,
        db: Database,
        gateway: GatewayService,
        context: ContextBuilder,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.context = context
        self.clock = clock

    # --- conversations -------------------------------------------------------------------

    async def _check_model(
        self, session: AsyncSession, org: OrgContext, model: str | None
    ) -> str | None:
        if model is None:
            return None
        return (await self.gateway.plan_model(org, model, session=session)).name

    async def create(
        self,
        session: AsyncSession,
        org: OrgContext,
        *,
        title: str | None,
        model: str | None,
        system_prompt: str | None,
        metadata: dict[str, Any],
        context_strategy: Strategy = "summarize",
    ) -> Conversation:
        org.require(Action.CONVERSATIONS)
        now = self.clock()
        conversation = Conversation(
            id=new_id("conv"),
            org_id=org.org_id,
            created_by=org.actor.id,
            title=title.strip() if title and title.strip() else None,
            model=await self._check_model(session, org, model),
            system_prompt=system_prompt or None,
            metadata_=metadata,
            context_strategy=context_strategy,
            created_at=now,
            updated_at=now,
        )
        session.add(conversation)
        await session.flush()
        return conversation

    async def list(
        self,
        session: AsyncSession,
        org: OrgContext,
        *,
        query: str | None,
        limit: int,
        after: str | None,
    ) -> tuple[Sequence[Conversation], bool]:
        org.require(Action.CONVERSATIONS)
        return await repository.list_conversations(
            session,
            org.org_id,
            created_by=_owner_filter(org),
            title_query=query.strip() if query else None,
            limit=limit,
            after=after,
        )

    async def get(
        self, session: AsyncSession, org: OrgContext, conversation_id: str
    ) -> Conversation:
        org.require(Action.CONVERSATIONS)
        conversation = await repository.get(
            session, org.org_id, conversation_id, created_by=_owner_filter(org)
        )
        if conversation is None:
            raise NotFound(
                f"No conversation {conversation_id} among yours.", code="conversation_not_found"
            )
        return conversation

    async def patch(
        self,
        session: AsyncSession,
        org: OrgContext,
        conversation_id: str,
        changes: dict[str, Any],
    ) -> Conversation:
        """Apply the fields given (title, system_prompt, metadata, model, context_strategy,
        current_leaf_id)."""
        conversation = await self.get(session, org, conversation_id)
        if "title" in changes:
            title = changes["title"]
            conversation.title = title.strip() if title and title.strip() else None
        if "system_prompt" in changes:
            conversation.system_prompt = changes["system_prompt"] or None
        if "model" in changes:
            conversation.model = await self._check_model(session, org, changes["model"])
        if "metadata" in changes:
            conversation.metadata_ = changes["metadata"] or {}
        if changes.get("context_strategy"):
            conversation.context_strategy = changes["context_strategy"]
        if changes.get("current_leaf_id"):
            tree = await self._tree(session, conversation)
            if changes["current_leaf_id"] not in tree.by_id:
                raise NotFound(
                    f"No message {changes['current_leaf_id']} in this conversation.",
                    code="message_not_found",
                    param="current_leaf_id",
                )
            conversation.current_leaf_id = tree.newest_leaf(changes["current_leaf_id"])
        conversation.updated_at = self.clock()
        await session.flush()
        return conversation

    async def delete(self, session: AsyncSession, org: OrgContext, conversation_id: str) -> None:
        conversation = await self.get(session, org, conversation_id)
        now = self.clock()
        conversation.deleted_at = now
        conversation.updated_at = now
        await session.flush()

    async def reply_in_progress(
        self, session: AsyncSession, org: OrgContext, conversation_id: str
    ) -> bool:
        conversation = await self.get(session, org, conversation_id)
        return await repository.streaming_exists(session, org.org_id, conversation.id)

    # --- messages ------------------------------------------------------------------------

    async def _tree(self, session: AsyncSession, conversation: Conversation) -> Tree:
        rows = await repository.conversation_messages(session, conversation.org_id, conversation.id)
        return Tree(rows)

    async def messages(
        self, session: AsyncSession, org: OrgContext, conversation_id: str
    ) -> Sequence[tuple[Message, Sequence[str]]]:
        """The current branch, oldest first, each message with its siblings' ids."""
        conversation = await self.get(session, org, conversation_id)
        tree = await self._tree(session, conversation)
        return [(m, tree.siblings(m)) for m in tree.branch(conversation.current_leaf_id)]

    async def draft_reply(
        self,
        org: OrgContext,
        conversation_id: str,
        *,
        kind: ReplyKind,
        content: str | None = None,
        message_id: str | None = None,
        model: str | None = None,
    ) -> ReplyDraft:
        """Check the request and place the reply; no model is called yet.

        post: a new message after the current leaf; edit: a new version of user message
        `message_id` (a sibling of it); regenerate: another reply to the user message
        that assistant message `message_id` answered.
        """
        org.require(Action.CONVERSATIONS)
        if content is not None:
            _check_content(content)
        async with self.db.session() as session:
            conversation = await self.get(session, org, conversation_id)
            tree = await self._tree(session, conversation)
            summaries = await repository.summaries(session, org.org_id, conversation.id)
        if kind == "post":
            assert content is not None
            parent_id = conversation.current_leaf_id
            user = Turn(new_id("msg"), "user", content)
        else:
            target = tree.by_id.get(message_id or "")
            wanted = "user" if kind == "edit" else "assistant"
            if target is None:
                raise NotFound(
                    f"No message {message_id} in this conversation.", code="message_not_found"
                )
            if target.role != wanted:
                raise InvalidRequest(
                    f"Only {'your own messages' if kind == 'edit' else 'replies'} can be "
                    f"{'edited' if kind == 'edit' else 'regenerated'}; {message_id} is a "
                    f"{target.role} message.",
                    code="invalid_message_role",
                )
            if kind == "edit":
                assert content is not None
                parent_id = target.parent_id
                user = Turn(new_id("msg"), "user", content)
            else:
                answered = tree.by_id.get(target.parent_id or "")
                if answered is None:
                    raise InvalidRequest(
                        "This reply answers no stored message.", code="invalid_message_role"
                    )
                parent_id = answered.parent_id
                user = Turn(answered.id, "user", answered.content)

        name = model or conversation.model
        if name is None:
            raise InvalidRequest(
                "No model for this reply: send `model`, or set one on the conversation.",
                code="model_required",
                param="model",
            )
        spec = await self.gateway.plan_model(org, name)
        history = [Turn(m.id, m.role, m.content) for m in tree.branch(parent_id) if m.content]
        on_branch = {t.id for t in history}
        summary = next(
            (
                Summary(s.upto_message_id, s.content, s.tokens, s.model)
                for s in summaries
                if s.upto_message_id in on_branch
            ),
            None,
        )
        return ReplyDraft(
            conversation_id=conversation.id,
            user=user,
            user_parent_id=parent_id,
            store_user=kind != "regenerate",
            title=make_title(user.content) if conversation.title is None else None,
            spec=spec,
            system_prompt=conversation.system_prompt,
            history=history,
            summary=summary,
            strategy="truncate" if conversation.context_strategy == "truncate" else "summarize",
        )

    async def plan_reply(self, org: OrgContext, draft: ReplyDraft) -> ReplyPlan:
        """Build the model's context within its window (for an admitted reply: summarizing
        older messages calls a model)."""
        context = await self.context.build(
            org,
            draft.spec,
            system_prompt=draft.system_prompt,
            history=draft.history,
            latest=draft.user,
            summary=draft.summary,
            strategy=draft.strategy,
        )
        body, spec, _ = self.gateway.prepare_chat(
            org,
            {
                "model": draft.spec.name,
                "messages": context.messages,
                "max_tokens": context.max_tokens,
            },
            action=Action.CONVERSATIONS,
        )
        return ReplyPlan(
            conversation_id=draft.conversation_id,
            user=draft.user,
            user_parent_id=draft.user_parent_id,
            store_user=draft.store_user,
            title=draft.title,
            body=body,
            spec=spec,
            context=context,
        )
