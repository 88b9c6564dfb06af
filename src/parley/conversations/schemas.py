from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_CONTENT_CHARS = 100_000

ContextStrategy = Literal["summarize", "truncate"]
MessageStatus = Literal["complete", "incomplete", "cancelled", "streaming"]
_STRATEGY_DOC = (
    "When the history outgrows the model's window: `summarize` (default) replaces the oldest "
    "messages by a rolling summary, `truncate` drops them."
)


class CreateConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, description="Default model for replies.")
    system_prompt: str | None = Field(default=None, description="Sent before every exchange.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    context_strategy: ContextStrategy = Field(default="summarize", description=_STRATEGY_DOC)


class PatchConversationRequest(BaseModel):
    """Only the fields sent change; send null to clear title, model or system_prompt."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=200)
    model: str | None = None
    system_prompt: str | None = None
    metadata: dict[str, Any] | None = None
    context_strategy: ContextStrategy | None = Field(default=None, description=_STRATEGY_DOC)
    current_leaf_id: str | None = Field(
        default=None,
        description="Switch branch: the conversation continues from the newest message "
        "under this one.",
    )


class ReplyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None, description="Model for this reply; defaults to the conversation's."
    )
    stream: bool = Field(
        default=False,
        description="Answer as server-sent events: message.created, message.delta, "
        "message.completed, error.",
    )


class RegenerateRequest(ReplyOptions):
    pass


class PostMessageRequest(ReplyOptions):
    content: str = Field(min_length=1, description="The user's message.")


class EditMessageRequest(ReplyOptions):
    content: str = Field(min_length=1, description="The new text of the user's message.")


class ConversationOut(BaseModel):
    object: Literal["conversation"] = "conversation"
    id: str
    org_id: str
    created_by: str
    title: str | None
    model: str | None
    system_prompt: str | None
    metadata: dict[str, Any]
    context_strategy: ContextStrategy
    current_leaf_id: str | None
    created_at: datetime
    updated_at: datetime


class MessageOut(BaseModel):
    object: Literal["conversation.message"] = "conversation.message"
    id: str
    conversation_id: str
    parent_id: str | None
    role: Literal["user", "assistant", "system"]
    content: str
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    latency_ms: int | None
    status: MessageStatus
    created_at: datetime
    sibling_ids: list[str] = Field(
        description="Every message with the same parent (this one included), oldest first: "
        "the branches at this point."
    )


class ConversationExport(BaseModel):
    object: Literal["conversation.export"] = "conversation.export"
    conversation: ConversationOut
    messages: list[MessageOut] = Field(description="The current branch, oldest first.")


class MessageList(BaseModel):
    object: Literal["list"] = "list"
    data: list[MessageOut]


class ExchangeOut(BaseModel):
    """What posting a message produced: the stored user message and the assistant's reply."""

    object: Literal["conversation.exchange"] = "conversation.exchange"
    conversation_id: str
    user_message: MessageOut
    assistant_message: MessageOut


class CancelOut(BaseModel):
    object: Literal["conversation.cancel"] = "conversation.cancel"
    cancelled: bool = Field(description="Whether a reply was in progress.")


class SocketTicketOut(BaseModel):
    object: Literal["conversation.ws_ticket"] = "conversation.ws_ticket"
    ticket: str = Field(
        description="Opens the conversation's WebSocket once: /v1/conversations/{id}/ws?ticket=..."
    )
    expires_at: datetime
    expires_in: int = Field(description="Seconds the ticket stays valid.")
