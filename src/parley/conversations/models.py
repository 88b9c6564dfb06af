from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, IdMixin
from parley.kit.clock import utcnow


class Conversation(IdMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_org_id_created_by", "org_id", "created_by"),)

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[str] = mapped_column(String(40))  # a user id or an API key id
    title: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    current_leaf_id: Mapped[str | None] = mapped_column(String(40))
    # How history that no longer fits the model's window is handled: summarize | truncate.
    context_strategy: Mapped[str] = mapped_column(
        String(20), default="summarize", server_default="summarize"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class Message(IdMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_status", "status"),)

    org_id: Mapped[str] = mapped_column(String(40), index=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[str | None] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))  # user | assistant | system
    content: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    # complete | incomplete (the upstream stopped early) | cancelled | streaming
    status: Mapped[str] = mapped_column(String(20), default="complete")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A streaming reply saves what it has every few seconds; one that stopped saving (its
    # process died) is marked incomplete by the sweep.
    updated_at: Mapped[datetime | None] = mapped_column(default=None)


class ConversationSummary(IdMixin, Base):
    """A rolling summary of a branch's history, from its first message up to and including
    `upto_message_id`. Each one extends an earlier one, so branches share what they share."""

    __tablename__ = "conversation_summaries"

    org_id: Mapped[str] = mapped_column(String(40), index=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    upto_message_id: Mapped[str] = mapped_column(String(40))
    content: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
