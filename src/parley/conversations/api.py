"""Routes: /v1/conversations (in the organisation of the request)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket, status

from parley.context import AppContext
from parley.conversations.models import Conversation
from parley.conversations.replies import Reply, message_out
from parley.conversations.schemas import (
    CancelOut,
    ConversationExport,
    ConversationOut,
    CreateConversationRequest,
    EditMessageRequest,
    ExchangeOut,
    MessageList,
    PatchConversationRequest,
    PostMessageRequest,
    RegenerateRequest,
    SocketTicketOut,
)
from parley.conversations.service import ReplyDraft
from parley.conversations.socket import ConversationSocket
from parley.gateway.sse import encode_event
from parley.http.deps import (
    App,
    DbSession,
    OrgFromHeader,
    extract_token,
    inference_context,
)
from parley.http.errors import error_responses
from parley.http.streaming import ClosingStreamingResponse
from parley.kit.pagination import Page, PageParams, page_params
from parley.principal import OrgContext

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])

# What the three routes that answer with a reply (JSON or SSE) share.
REPLY_ROUTE: dict[str, Any] = {
    "status_code": status.HTTP_201_CREATED,
    "response_model": ExchangeOut,
    "responses": {
        **error_responses(400, 401, 403, 404, 422, 429, 502, 503, 504),
        200: {
            "content": {"text/event-stream": {}},
            "description": "With stream=true: server-sent events message.created, "
            "message.delta, message.completed and error.",
        },
    },
    "openapi_extra": {"security": [{"HTTPBearer": []}]},
}


def conversation_out(c: Conversation) -> ConversationOut:
    return ConversationOut(
        id=c.id,
        org_id=c.org_id,
        created_by=c.created_by,
        title=c.title,
        model=c.model,
        system_prompt=c.system_prompt,
        metadata=c.metadata_,
        context_strategy=c.context_strategy,
        current_leaf_id=c.current_leaf_id,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 422),
    summary="Start a conversation",
)
async def create_conversation(
    body: CreateConversationRequest, org: OrgFromHeader, app: App, session: DbSession
) -> ConversationOut:
    conversation = await app.conversations.create(
        session,
        org,
        title=body.title,
        model=body.model,
        system_prompt=body.system_prompt,
        metadata=body.metadata,
        context_strategy=body.context_strategy,
    )
    return conversation_out(conversation)


@router.get(
    "", responses=error_responses(401, 403, 404, 422), summary="Conversations, newest first"
)
async def list_conversations(
    org: OrgFromHeader,
    app: App,
    session: DbSession,
    paging: Annotated[PageParams, Depends(page_params)],
    q: Annotated[
        str | None, Query(max_length=200, description="Only titles containing this text.")
    ] = None,
) -> Page[ConversationOut]:
    rows, has_more = await app.conversations.list(
        session, org, query=q, limit=paging.limit, after=paging.after
    )
    return Page.build(rows, has_more, conversation_out)


@router.get(
    "/{conversation_id}", responses=error_responses(401, 403, 404), summary="One conversation"
)
async def get_conversation(
    conversation_id: str, org: OrgFromHeader, app: App, session: DbSession
) -> ConversationOut:
    return conversation_out(await app.conversations.get(session, org, conversation_id))


@router.patch(
    "/{conversation_id}",
    responses=error_responses(400, 401, 403, 404, 422),
    summary="Change a conversation's title, system prompt, model or metadata",
)
async def patch_conversation(
    conversation_id: str,
    body: PatchConversationRequest,
    org: OrgFromHeader,
    app: App,
    session: DbSession,
) -> ConversationOut:
    conversation = await app.conversations.patch(
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
    conversation_id: str, org: OrgFromHeader, app: App, session: DbSession
) -> Response:
    await app.conversations.delete(session, org, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{conversation_id}/messages",
    responses=error_responses(401, 403, 404),
    summary="The messages of the conversation's current branch, oldest first",
)
async def list_messages(
    conversation_id: str, org: OrgFromHeader, app: App, session: DbSession
) -> MessageList:
    rows = await app.conversations.messages(session, org, conversation_id)
    return MessageList(data=[message_out(m, siblings) for m, siblings in rows])


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
    app: App,
    session: DbSession,
    format: Annotated[Literal["json", "markdown"], Query()] = "json",
) -> ConversationExport | Response:
    conversation = await app.conversations.get(session, org, conversation_id)
    rows = await app.conversations.messages(session, org, conversation_id)
    export = ConversationExport(
        conversation=conversation_out(conversation),
        messages=[message_out(m, siblings) for m, siblings in rows],
    )
    if format == "json":
        return export
    return Response(
        to_markdown(export),
        media_type="text/markdown; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{conversation_id}.md"'},
    )


async def _answer(
    request: Request, app: AppContext, org: OrgContext, draft: ReplyDraft, *, stream: bool
) -> Response:
    reply = await app.replies.start(org, request.state.request_id, draft, listen=stream)
    if stream:
        return _sse(reply)
    assistant = await reply.task
    exchange = ExchangeOut(
        conversation_id=draft.conversation_id,
        user_message=reply.user_message,
        assistant_message=assistant,
    )
    return Response(
        exchange.model_dump_json(),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
    )


def _sse(reply: Reply) -> ClosingStreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        async for event in reply.stream():
            yield encode_event(event["type"], event)

    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return ClosingStreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.post(
    "/{conversation_id}/messages",
    summary="Send a message and get the assistant's reply (JSON, or SSE with stream=true)",
    **REPLY_ROUTE,
)
async def post_message(
    conversation_id: str, body: PostMessageRequest, request: Request, app: App
) -> Response:
    # No unit of work spans the model's reply: it is stored in short ones before and after.
    org = await inference_context(app, request)
    draft = await app.conversations.draft_reply(
        org, conversation_id, kind="post", content=body.content, model=body.model
    )
    return await _answer(request, app, org, draft, stream=body.stream)


@router.post(
    "/{conversation_id}/messages/{message_id}/regenerate",
    summary="Another reply to the message an assistant reply answered, as a new branch",
    **REPLY_ROUTE,
)
async def regenerate(
    conversation_id: str, message_id: str, body: RegenerateRequest, request: Request, app: App
) -> Response:
    org = await inference_context(app, request)
    draft = await app.conversations.draft_reply(
        org, conversation_id, kind="regenerate", message_id=message_id, model=body.model
    )
    return await _answer(request, app, org, draft, stream=body.stream)


@router.post(
    "/{conversation_id}/messages/{message_id}/edit",
    summary="A new version of one of your messages, answered, as a new branch",
    **REPLY_ROUTE,
)
async def edit_message(
    conversation_id: str, message_id: str, body: EditMessageRequest, request: Request, app: App
) -> Response:
    org = await inference_context(app, request)
    draft = await app.conversations.draft_reply(
        org,
        conversation_id,
        kind="edit",
        message_id=message_id,
        content=body.content,
        model=body.model,
    )
    return await _answer(request, app, org, draft, stream=body.stream)


@router.post(
    "/{conversation_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(401, 403, 404),
    summary="Stop the reply in progress; what it wrote so far is kept",
)
async def cancel_reply(
    conversation_id: str, org: OrgFromHeader, app: App, session: DbSession
) -> CancelOut:
    running = await app.conversations.reply_in_progress(session, org, conversation_id)
    if running:
        await app.conversation_hub.cancel(conversation_id)
    return CancelOut(cancelled=running)


@router.post(
    "/{conversation_id}/ws-ticket",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404),
    summary="A one-time ticket that opens the conversation's WebSocket (valid 30 s)",
    openapi_extra={"security": [{"HTTPBearer": []}]},
)
async def socket_ticket(conversation_id: str, request: Request, app: App) -> SocketTicketOut:
    # Reads only: authenticated and checked in read-only units, no write transaction.
    org = await inference_context(app, request)
    issued = await app.socket_tickets.issue(org, conversation_id, extract_token(request) or "")
    return SocketTicketOut(
        ticket=issued.ticket, expires_at=issued.expires_at, expires_in=issued.expires_in
    )


@router.websocket("/{conversation_id}/ws")
async def conversation_socket(websocket: WebSocket, conversation_id: str) -> None:
    """Live events of the conversation; see parley.conversations.socket for the protocol."""
    await ConversationSocket(websocket.app.state.ctx, websocket, conversation_id).run()
