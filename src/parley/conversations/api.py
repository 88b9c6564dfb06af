"""Routes: /v1/conversations (in the organisation of the request)."""

from __future__ import annotations

from typing import Annotated, Literal, cast

from fastapi import APIRouter, Depends, Query, Request, Response, status

from parley.context import AppContext
from parley.conversations.models import Conversation, Message
from parley.conversations.schemas import (
    ConversationExport,
    ConversationOut,
    CreateConversationRequest,
    ExchangeOut,
    MessageList,
    MessageOut,
    PatchConversationRequest,
    PostMessageRequest,
)
from parley.conversations.service import ConversationService
from parley.http.deps import Ctx, DbSession, OrgFromHeader, inference_context
from parley.http.errors import error_responses
from parley.kit.pagination import Page, PageParams, page_params

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


def _service(ctx: AppContext) -> ConversationService:
    return ConversationService(ctx.gateway, clock=ctx.clock)


def conversation_out(c: Conversation) -> ConversationOut:
    return ConversationOut(
        id=c.id,
        org_id=c.org_id,
        created_by=c.created_by,
        title=c.title,
        model=c.model,
        system_prompt=c.system_prompt,
        metadata=c.metadata_,
        current_leaf_id=c.current_leaf_id,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def message_out(m: Message) -> MessageOut:
    return MessageOut(
        id=m.id,
        conversation_id=m.conversation_id,
        parent_id=m.parent_id,
        role=cast(Literal["user", "assistant", "system"], m.role),
        content=m.content,
        model=m.model,
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        cost_micros=m.cost_micros,
        latency_ms=m.latency_ms,
        status=cast(Literal["complete", "incomplete"], m.status),
        created_at=m.created_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 422),
    summary="Start a conversation",
)
async def create_conversation(
    body: CreateConversationRequest, org: OrgFromHeader, ctx: Ctx, session: DbSession
) -> ConversationOut:
    conversation = await _service(ctx).create(
        session,
        org,
        title=body.title,
        model=body.model,
        system_prompt=body.system_prompt,
        metadata=body.metadata,
    )
    return conversation_out(conversation)


@router.get(
    "", responses=error_responses(401, 403, 404, 422), summary="Conversations, newest first"
)
async def list_conversations(
    org: OrgFromHeader,
    ctx: Ctx,
    session: DbSession,
    paging: Annotated[PageParams, Depends(page_params)],
    q: Annotated[
        str | None, Query(max_length=200, description="Only titles containing this text.")
    ] = None,
) -> Page[ConversationOut]:
    rows, has_more = await _service(ctx).list(
        session, org, query=q, limit=paging.limit, after=paging.after
    )
    return Page.build(rows, has_more, conversation_out)


@router.get(
    "/{conversation_id}", responses=error_responses(401, 403, 404), summary="One conversation"
)
async def get_conversation(
    conversation_id: str, org: OrgFromHeader, ctx: Ctx, session: DbSession
) -> ConversationOut:
    return conversation_out(await _service(ctx).get(session, org, conversation_id))


@router.patch(
    "/{conversation_id}",
    responses=error_responses(400, 401, 403, 404, 422),
    summary="Change a conversation's title, system prompt, model or metadata",
)
async def patch_conversation(
    conversation_id: str,
    body: PatchConversationRequest,
    org: OrgFromHeader,
    ctx: Ctx,
    session: DbSession,
) -> ConversationOut:
    conversation = await _service(ctx).patch(
        session, org, conversation_id, body.model_dump(exclude_unset=True)
    )
    return conversation_out(conversation)


@router.delete(
    "/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404),
    summary="Delete a conversation",
)
async def delete_conversation(
    conversation_id: str, org: OrgFromHeader, ctx: Ctx, session: DbSession
) -> Response:
    await _service(ctx).delete(session, org, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{conversation_id}/messages",
    responses=error_responses(401, 403, 404),
    summary="The messages of the conversation's current branch, oldest first",
)
async def list_messages(
    conversation_id: str, org: OrgFromHeader, ctx: Ctx, session: DbSession
) -> MessageList:
    rows = await _service(ctx).messages(session, org, conversation_id)
    return MessageList(data=[message_out(m) for m in rows])


def to_markdown(export: ConversationExport) -> str:
    """The conversation as a Markdown document: a heading, then each turn under its role."""
    c = export.conversation
    lines = [f"# {c.title or 'Conversation'}", ""]
    lines.append(f"*{c.id} · model {c.model or 'default'} · {c.created_at:%Y-%m-%d %H:%M} UTC*")
    lines.append("")
    if c.system_prompt:
        lines += ["## System", "", c.system_prompt, ""]
    for m in export.messages:
        heading = (
            "User" if m.role == "user" else f"Assistant ({m.model})" if m.model else "Assistant"
        )
        lines += [f"## {heading}", "", m.content, ""]
    return "\n".join(lines)


@router.get(
    "/{conversation_id}/export",
    response_model=ConversationExport,
    responses={
        **error_responses(401, 403, 404, 422),
        200: {
            "content": {"text/markdown": {}},
            "description": "JSON, or Markdown with format=markdown",
        },
    },
    summary="Export the conversation's current branch as JSON or Markdown",
)
async def export_conversation(
    conversation_id: str,
    org: OrgFromHeader,
    ctx: Ctx,
    session: DbSession,
    format: Annotated[Literal["json", "markdown"], Query()] = "json",
) -> ConversationExport | Response:
    service = _service(ctx)
    conversation = await service.get(session, org, conversation_id)
    rows = await service.messages(session, org, conversation_id)
    export = ConversationExport(
        conversation=conversation_out(conversation), messages=[message_out(m) for m in rows]
    )
    if format == "json":
        return export
    return Response(
        to_markdown(export),
        media_type="text/markdown; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{conversation_id}.md"'},
    )


@router.post(
    "/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 422, 429, 502, 503, 504),
    summary="Send a message and get the assistant's reply",
    openapi_extra={"security": [{"HTTPBearer": []}]},
)
async def post_message(
    conversation_id: str, body: PostMessageRequest, request: Request, ctx: Ctx
) -> ExchangeOut:
    # No unit of work spans the model's reply: one reads and checks, the gateway answers
    # (admitting and metering through its own sessions), and a second one stores.
    org = await inference_context(ctx, request)
    service = _service(ctx)
    async with ctx.db.session() as session:
        pending = await service.begin_exchange(
            session, org, conversation_id, content=body.content, model=body.model
        )
    done, latency_ms = await service.reply(org, request.state.request_id, pending)
    async with ctx.db.session() as session:
        exchange = await service.store_exchange(session, org, pending, done, latency_ms)
        return ExchangeOut(
            conversation_id=conversation_id,
            user_message=message_out(exchange.user_message),
            assistant_message=message_out(exchange.assistant_message),
        )
