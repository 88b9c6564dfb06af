"""Live conversation events, fanned out to every client of a conversation on every process.

Each conversation has a channel on the pub/sub backend (in-process, or Redis across
processes). Replies in progress are tracked per process; a cancel is broadcast so that the
process running the reply stops it, wherever the cancel arrived. The stored messages stay
the truth: live events only spare clients from polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import structlog

from parley.backends.pubsub import ChannelListener, PubSub

log = structlog.get_logger("parley.conversations")

Event = dict[str, Any]
CANCEL_CHANNEL = "conversations.cancel"


def events_channel(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


class ConversationHub:
    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        self._replies: dict[str, set[asyncio.Task[Any]]] = {}
        self._cancels = ChannelListener(
            pubsub,
            CANCEL_CHANNEL,
            lambda message: self._cancel_here(message.decode()),
            name="parley-conversation-cancels",
        )

    async def start(self) -> None:
        await self._cancels.start()

    async def stop(self) -> None:
        """Stop listening, and stop the replies still running: each stores what it has."""
        await self._cancels.stop()
        tasks = [t for running in list(self._replies.values()) for t in running]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    # --- events --------------------------------------------------------------------------

    async def publish(self, conversation_id: str, event: Event) -> None:
        try:
            await self.pubsub.publish(events_channel(conversation_id), orjson.dumps(event))
        except Exception:
            # Live viewers miss this event; what they reload from the API is complete.
            log.warning("conversations.publish_failed", conversation_id=conversation_id)

    @asynccontextmanager
    async def events(self, conversation_id: str) -> AsyncIterator[AsyncIterator[Event]]:
        """The conversation's events published after the subscription is in place."""
        async with self.pubsub.subscribe(events_channel(conversation_id)) as messages:

            async def decoded() -> AsyncIterator[Event]:
                async for message in messages:
                    yield orjson.loads(message)

            yield decoded()

    # --- replies in progress -------------------------------------------------------------

    def track(self, conversation_id: str, task: asyncio.Task[Any]) -> None:
        """`task` streams a reply of the conversation until it calls `untrack`."""
        self._replies.setdefault(conversation_id, set()).add(task)
        task.add_done_callback(lambda done: self.untrack(conversation_id, done))

    def untrack(self, conversation_id: str, task: asyncio.Task[Any]) -> None:
        """The reply stopped streaming: a cancel arriving now must not cut its storing."""
        running = self._replies.get(conversation_id)
        if running is not None:
            running.discard(task)
            if not running:
                del self._replies[conversation_id]

    def _cancel_here(self, conversation_id: str) -> None:
        for task in list(self._replies.get(conversation_id, ())):
            task.cancel()

    async def cancel(self, conversation_id: str) -> None:
        """Stop the conversation's replies in progress, on this process and every other."""
        self._cancel_here(conversation_id)
        try:
            await self.pubsub.publish(CANCEL_CHANNEL, conversation_id.encode())
        except Exception:
            log.warning("conversations.cancel_broadcast_failed", conversation_id=conversation_id)
