"""Running a reply: admitted, streamed from the gateway, stored, and told to every client.

The upstream stream is opened first (failing over until its first chunk), so a request that
fails outright stores nothing. Then the user's message and an empty assistant message
(status `streaming`) are stored, the reply streams into the conversation's live channel,
and the assistant message is completed with what arrived: `complete`, `incomplete` (the
upstream broke off, or the length limit cut it), or `cancelled`. No database session is
held while the model writes.

Events (the same over SSE and the WebSocket):
  message.created   {"message": Message}   the user's message, then the empty reply
  message.delta     {"message_id", "index", "delta"}   index: characters before this delta
  message.completed {"message": Message}   the stored reply, with tokens and cost
  error             {"error": {"type", "code", "message"}}   after the stream began
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from parley.conversations import repository
from parley.conversations.live import ConversationHub, Event
from parley.conversations.models import ConversationSummary, Message
from parley.conversations.schemas import MessageOut
from parley.conversations.service import ConversationService, ReplyDraft, ReplyPlan
from parley.errors import NotFound, ParleyError
from parley.gateway.errors import StreamInterrupted, stream_broke_off
from parley.gateway.providers.base import Json
from parley.kit.ids import new_id
from parley.kit.tokens import count_messages, count_text
from parley.principal import OrgContext

log = structlog.get_logger("parley.conversations")


def message_out(m: Message, sibling_ids: Sequence[str]) -> MessageOut:
    return MessageOut(
        id=m.id,
        conversation_id=m.conversation_id,
        parent_id=m.parent_id,
        role=m.role,
        content=m.content,
        model=m.model,
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        cost_micros=m.cost_micros,
        latency_ms=m.latency_ms,
        status=m.status,
        created_at=m.created_at,
        sibling_ids=list(sibling_ids),
    )


@dataclass
class Reply:
    """A reply in progress: its stored messages, and the task that streams and stores it."""

    user_message: MessageOut
    assistant_message: MessageOut
    task: asyncio.Task[MessageOut]
    # The events for the client that asked, when it listens here (SSE); None at the end.
    events: asyncio.Queue[Event | None] | None = field(default=None)

    async def stream(self) -> AsyncIterator[Event]:
        """This reply's events; leaving early (the client went away) cancels the reply."""
        assert self.events is not None
        try:
            while (event := await self.events.get()) is not None:
                yield event
        finally:
            # Not awaited: the reply stores what it has on its own, and awaiting it from a
            # task being cancelled would cancel that storing too.
            self.task.cancel()


class ReplyRunner:
    def __init__(
        self,
        conversations: ConversationService,
        hub: ConversationHub,
        *,
        save_every_s: float = 2.0,
        stale_after_s: float = 120.0,
    ) -> None:
        self.conversations = conversations
        self.hub = hub
        self.db = conversations.db
        self.gateway = conversations.gateway
        self.clock = conversations.clock
        self.save_every_s = save_every_s
        self.stale_after_s = stale_after_s
        self._sweeper: asyncio.Task[None] | None = None

    # --- replies whose process died --------------------------------------------------------

    async def start_sweeping(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="parley-reply-sweeper")

    async def stop_sweeping(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def sweep(self) -> int:
        """Mark replies that stopped saving as incomplete; returns how many."""
        now = self.clock()
        async with self.db.session() as session:
            return await repository.mark_stale_replies(
                session, saved_before=now - timedelta(seconds=self.stale_after_s), now=now
            )

    async def _sweep_forever(self) -> None:
        while True:
            try:
                if swept := await self.sweep():
                    log.warning("conversations.stale_replies_closed", count=swept)
            except Exception:
                log.warning("conversations.sweep_failed", exc_info=True)
            await asyncio.sleep(self.stale_after_s / 4)

    # --- a reply ---------------------------------------------------------------------------

    async def start(
        self, org: OrgContext, request_id: str, draft: ReplyDraft, *, listen: bool
    ) -> Reply:
        """Admit, build the context, open the upstream stream, store the messages; the reply
        then streams on in a task of its own. `listen`: keep this reply's events for the
        caller. Admission comes first, so a refused reply costs no summary call."""
        await self.gateway.admit(org, request_id, draft.spec, draft.estimate(), counts_message=True)
        started = time.perf_counter()
        try:
            plan = await self.conversations.plan_reply(org, draft)
            body = {**plan.body, "stream": True, "stream_options": {"include_usage": True}}
            _, chunks = await self.gateway.open_stream(
                org, request_id, body, plan.spec, endpoint="conversation"
            )
        except BaseException:
            self.gateway.release(request_id)  # a no-op once the usage was recorded
            raise
        try:
            user, assistant = await self._store_start(org, plan)
        except BaseException:
            await _close(chunks)  # records the usage of what was opened
            raise
        queue: asyncio.Queue[Event | None] | None = asyncio.Queue() if listen else None
        try:
            for message in [user, assistant] if plan.store_user else [assistant]:
                await self._emit(plan.conversation_id, queue, _event("message.created", message))
        finally:  # the reply goes on (and is stored) even if the caller is gone by now
            task = asyncio.create_task(
                self._stream(org, plan, body, assistant, chunks, started, queue),
                name=f"parley-reply-{assistant.id}",
            )
            self.hub.track(plan.conversation_id, task)
        return Reply(user, assistant, task, queue)

    async def _store_start(self, org: OrgContext, plan: ReplyPlan) -> tuple[MessageOut, MessageOut]:
        async with self.db.session() as session:
            conversation = await self.conversations.get(session, org, plan.conversation_id)
            now = self.clock()
            if plan.store_user:
                user = Message(
                    id=plan.user.id,
                    org_id=org.org_id,
                    conversation_id=conversation.id,
                    parent_id=plan.user_parent_id,
                    role="user",
                    content=plan.user.content,
                    status="complete",
                    created_at=now,
                )
                session.add(user)
            else:
                found = await repository.message(session, org.org_id, conversation.id, plan.user.id)
                if found is None:
                    raise NotFound(f"No message {plan.user.id} in this conversation.")
                user = found
            assistant = Message(
                id=new_id("msg"),
                org_id=org.org_id,
                conversation_id=conversation.id,
                parent_id=user.id,
                role="assistant",
                content="",
                model=plan.spec.name,
                status="streaming",
                created_at=now,
            )
            session.add(assistant)
            summary = plan.context.new_summary
            if summary is not None:
                session.add(
                    ConversationSummary(
                        id=new_id("csum"),
                        org_id=org.org_id,
                        conversation_id=conversation.id,
                        upto_message_id=summary.upto_message_id,
                        content=summary.content,
                        tokens=summary.tokens,
                        model=summary.model,
                        created_at=now,
                    )
                )
            # Replies started together make sibling branches; the latest started is current.
            conversation.current_leaf_id = assistant.id
            if plan.title is not None and conversation.title is None:
                conversation.title = plan.title
            conversation.updated_at = now
            await session.flush()
            user_siblings = await repository.children_ids(
                session, org.org_id, conversation.id, user.parent_id
            )
            reply_siblings = await repository.children_ids(
                session, org.org_id, conversation.id, user.id
            )
            return message_out(user, user_siblings), message_out(assistant, reply_siblings)

    async def _stream(
        self,
        org: OrgContext,
        plan: ReplyPlan,
        body: Json,
        assistant: MessageOut,
        chunks: AsyncIterator[Json],
        started: float,
        queue: asyncio.Queue[Event | None] | None,
    ) -> MessageOut:
        conversation_id = plan.conversation_id
        me = asyncio.current_task()
        assert me is not None
        text: list[str] = []
        size = 0
        save_at = time.monotonic() + self.save_every_s
        usage: Json | None = None
        status, error = "complete", None
        try:
            async for chunk in chunks:
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    if choice.get("index", 0) != 0:
                        continue
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        event = {
                            "type": "message.delta",
                            "message_id": assistant.id,
                            "index": size,
                            "delta": delta,
                        }
                        text.append(delta)
                        size += len(delta)
                        await self._emit(conversation_id, queue, event)
                        if time.monotonic() >= save_at:
                            await self._save_partial(org, assistant, "".join(text))
                            save_at = time.monotonic() + self.save_every_s
                    if choice.get("finish_reason") == "length":
                        status = "incomplete"
        except StreamInterrupted as exc:
            status = "incomplete"
            error = {
                "type": "api_error",
                "code": "upstream_interrupted",
                "message": stream_broke_off(exc),
            }
        except Exception:
            log.exception("conversations.reply_failed", conversation_id=conversation_id)
            status = "incomplete"
            error = {
                "type": "api_error",
                "code": "internal_error",
                "message": "The reply failed midway; what arrived is kept.",
            }
        except asyncio.CancelledError:
            status = "cancelled"
            me.uncancel()  # this task stores what arrived before it ends
        finally:
            self.hub.untrack(conversation_id, me)
            with contextlib.suppress(Exception):
                await _close(chunks)
        finish = asyncio.ensure_future(
            self._finish(
                org, plan, body, assistant, "".join(text), usage, status, error, started, queue
            )
        )
        while True:
            try:
                final = await asyncio.shield(finish)
                break
            except asyncio.CancelledError:
                me.uncancel()  # cancelled again meanwhile: what arrived is stored regardless
        if queue is not None:
            queue.put_nowait(None)
        return final

    async def _finish(
        self,
        org: OrgContext,
        plan: ReplyPlan,
        body: Json,
        assistant: MessageOut,
        content: str,
        usage: Json | None,
        status: str,
        error: Event | None,
        started: float,
        queue: asyncio.Queue[Event | None] | None,
    ) -> MessageOut:
        if usage:
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
        else:
            prompt = count_messages(body["messages"], plan.spec.name)
            completion = count_text(content, plan.spec.name)
        final = await self._store_end(
            org,
            assistant,
            content=content,
            status=status,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_micros=plan.spec.cost_micros(prompt, completion),
            latency_ms=int((time.perf_counter() - started) * 1000),
        )
        await self._emit(plan.conversation_id, queue, _event("message.completed", final))
        if error is not None:
            await self._emit(plan.conversation_id, queue, {"type": "error", "error": error})
        return final

    async def _save_partial(self, org: OrgContext, assistant: MessageOut, content: str) -> None:
        """Reloads mid-reply show what has arrived, and a crash loses only the last seconds."""
        async with self.db.session() as session:
            await repository.save_partial(session, org.org_id, assistant.id, content, self.clock())

    async def _store_end(self, org: OrgContext, assistant: MessageOut, **fields: Any) -> MessageOut:
        async with self.db.session() as session:
            message = await repository.message(
                session, org.org_id, assistant.conversation_id, assistant.id
            )
            if message is None:  # the conversation was deleted meanwhile
                return assistant.model_copy(update=fields)
            for name, value in fields.items():
                setattr(message, name, value)
            message.updated_at = self.clock()
            await session.flush()
            return message_out(message, assistant.sibling_ids)

    async def _emit(
        self, conversation_id: str, queue: asyncio.Queue[Event | None] | None, event: Event
    ) -> None:
        if queue is not None:
            queue.put_nowait(event)
        await self.hub.publish(conversation_id, event)


async def _close(chunks: AsyncIterator[Json]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _event(kind: str, message: MessageOut) -> Event:
    return {"type": kind, "message": message.model_dump(mode="json")}


def error_event(exc: ParleyError) -> Event:
    return {"type": "error", **exc.to_dict()}
