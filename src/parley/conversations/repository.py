"""Queries of conversations and messages, always scoped to one organisation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.conversations.models import Conversation, ConversationSummary, Message
from parley.db.query import of_org, paginate, scoped, scoped_update


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get(
    session: AsyncSession, org_id: str, conversation_id: str, *, created_by: str | None
) -> Conversation | None:
    """A live conversation of the org; with `created_by`, only if that actor created it."""
    stmt = scoped(Conversation, org_id).where(
        Conversation.id == conversation_id, Conversation.deleted_at.is_(None)
    )
    if created_by is not None:
        stmt = stmt.where(Conversation.created_by == created_by)
    return await session.scalar(stmt)


async def list_conversations(
    session: AsyncSession,
    org_id: str,
    *,
    created_by: str | None,
    title_query: str | None,
    limit: int,
    after: str | None,
) -> tuple[Sequence[Conversation], bool]:
    stmt = scoped(Conversation, org_id).where(Conversation.deleted_at.is_(None))
    if created_by is not None:
        stmt = stmt.where(Conversation.created_by == created_by)
    if title_query:
        stmt = stmt.where(Conversation.title.ilike(f"%{_escape_like(title_query)}%", escape="\\"))
    return await paginate(
        session, stmt, Conversation.id, limit=limit, after=after, newest_first=True
    )


async def conversation_messages(
    session: AsyncSession, org_id: str, conversation_id: str
) -> Sequence[Message]:
    """Every message of a conversation (all branches), oldest first."""
    stmt = (
        scoped(Message, org_id)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.id)
    )
    return (await session.scalars(stmt)).all()


async def children_ids(
    session: AsyncSession, org_id: str, conversation_id: str, parent_id: str | None
) -> list[str]:
    """The ids of a message's children (of the conversation's roots for None), oldest first."""
    parent = Message.parent_id.is_(None) if parent_id is None else Message.parent_id == parent_id
    stmt = (
        select(Message.id)
        .where(of_org(Message, org_id), Message.conversation_id == conversation_id, parent)
        .order_by(Message.id)
    )
    return list((await session.scalars(stmt)).all())


async def message(
    session: AsyncSession, org_id: str, conversation_id: str, message_id: str
) -> Message | None:
    stmt = scoped(Message, org_id).where(
        Message.conversation_id == conversation_id, Message.id == message_id
    )
    return await session.scalar(stmt)


async def streaming_exists(session: AsyncSession, org_id: str, conversation_id: str) -> bool:
    stmt = (
        select(Message.id)
        .where(
            of_org(Message, org_id),
            Message.conversation_id == conversation_id,
            Message.status == "streaming",
        )
        .limit(1)
    )
    return await session.scalar(stmt) is not None


async def summaries(
    session: AsyncSession, org_id: str, conversation_id: str
) -> Sequence[ConversationSummary]:
    """Every stored summary of the conversation (all branches), newest first."""
    stmt = (
        scoped(ConversationSummary, org_id)
        .where(ConversationSummary.conversation_id == conversation_id)
        .order_by(ConversationSummary.id.desc())
    )
    return (await session.scalars(stmt)).all()


async def save_partial(
    session: AsyncSession, org_id: str, message_id: str, content: str, now: datetime
) -> None:
    """What a streaming reply has so far; never over a reply that has finished meanwhile."""
    await session.execute(
        scoped_update(Message, org_id)
        .where(Message.id == message_id, Message.status == "streaming")
        .values(content=content, updated_at=now)
    )


async def mark_stale_replies(
    session: AsyncSession, *, saved_before: datetime, now: datetime
) -> int:
    """Replies still `streaming` that have not saved since `saved_before` lost their process:
    they become `incomplete`, keeping what they saved. (Maintenance over every tenant.)"""
    result = await session.execute(
        update(Message)
        .where(
            Message.status == "streaming",
            func.coalesce(Message.updated_at, Message.created_at) < saved_before,
        )
        .values(status="incomplete", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
