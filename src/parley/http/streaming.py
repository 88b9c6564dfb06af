"""Streamed responses that always close their body iterator when the response ends."""

from __future__ import annotations

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class ClosingStreamingResponse(StreamingResponse):
    """When the client goes away, the server's next send fails and the response ends; the
    iterator must then be closed at once (its `finally` stops the work behind it), not
    whenever the garbage collector gets to it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
