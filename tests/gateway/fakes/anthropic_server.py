"""A fake Anthropic Messages API (`POST /v1/messages`, JSON and SSE) on loopback.

Without a scripted reply it answers from the request: a `thinking` block when thinking is
enabled; a `tool_use` of the chosen (or first) tool when tools are offered and the last user
turn is text; otherwise `Echo: <last user text>` (or `Tool said: <result>` after a tool
result). `max_tokens` truncates the text to that many words (stop_reason `max_tokens`).
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from tests.gateway.fakes import FakeServer, Json, approx_tokens, sse

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class FakeAnthropic(FakeServer):
    def __init__(self, api_key: str | None = "sk-ant-test") -> None:
        super().__init__(api_key)
        self.replies: deque[Json] = deque()
        self._stream_error: str | None = None
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)

    # -- controls

    def reply(self, content: list[Json], stop_reason: str = "end_turn", **usage: int) -> None:
        """Script the next answer's content blocks, stop reason and usage fields."""
        self.replies.append({"content": content, "stop_reason": stop_reason, "usage": usage})

    def stream_error_next(self, error_type: str = "overloaded_error") -> None:
        """The next stream sends message_start, then an `error` event of this type."""
        self._stream_error = error_type

    def error_body(self, status: int, message: str) -> Json:
        kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    # -- handler

    async def messages(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        if (early := await self.intercept(request)) is not None:
            return early
        if self.api_key and recorded.headers.get("x-api-key") != self.api_key:
            return self.json(self.error_body(401, "invalid x-api-key"), 401)
        if not recorded.headers.get("anthropic-version"):
            return self.json(self.error_body(400, "anthropic-version header is required"), 400)
        body = recorded.json
        if not isinstance(body, dict):
            return self.json(self.error_body(400, "body must be a JSON object"), 400)
        for key in ("model", "messages", "max_tokens"):
            if key not in body:
                return self.json(self.error_body(400, f"{key}: Field required"), 400)
        message = self._answer(body)
        if body.get("stream"):
            return await self.write_events(request, self._events(message))
        return await self.json_or_die(request, message)

    def _answer(self, body: Json) -> Json:
        scripted = self.replies.popleft() if self.replies else None
        content, stop_reason = (
            (scripted["content"], scripted["stop_reason"]) if scripted else self._default(body)
        )
        usage: Json = {
            "input_tokens": approx_tokens(body.get("messages")),
            "output_tokens": sum(approx_tokens(b) for b in content) or 1,
        }
        if scripted:
            usage.update(scripted["usage"])
        return {
            "id": f"msg_fake{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }

    def _default(self, body: Json) -> tuple[list[Json], str]:
        content: list[Json] = []
        thinking = body.get("thinking") or {}
        if thinking.get("type") == "enabled":
            content.append(
                {"type": "thinking", "thinking": "The user wants an answer.", "signature": "sig1"}
            )
        last = body["messages"][-1] if body["messages"] else {}
        blocks = last.get("content")
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        texts = [b.get("text", "") for b in blocks or [] if b.get("type") == "text"]
        results = [b for b in blocks or [] if b.get("type") == "tool_result"]
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {"type": "auto"}
        if tools and choice.get("type") != "none" and not results and last.get("role") == "user":
            name = choice.get("name") if choice.get("type") == "tool" else tools[0]["name"]
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_fake{next(self._ids):04d}",
                    "name": name,
                    "input": {"query": " ".join(texts), "limit": 3},
                }
            )
            return content, "tool_use"
        if results:
            result = results[0].get("content")
            if isinstance(result, list):
                result = " ".join(b.get("text", "") for b in result if b.get("type") == "text")
            text = f"Tool said: {result}"
        else:
            text = f"Echo: {' '.join(texts)}"
        words = text.split(" ")
        stop_reason = "end_turn"
        if len(words) > int(body["max_tokens"]):
            words, stop_reason = words[: int(body["max_tokens"])], "max_tokens"
        content.append({"type": "text", "text": " ".join(words)})
        return content, stop_reason

    def _events(self, message: Json) -> list[bytes]:
        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {**message["usage"], "output_tokens": 1}
        events = [sse({"type": "message_start", "message": start}, "message_start")]
        if self._stream_error:
            error_type, self._stream_error = self._stream_error, None
            events.append(
                sse(
                    {"type": "error", "error": {"type": error_type, "message": "Overloaded"}},
                    "error",
                )
            )
            return events
        for index, block in enumerate(message["content"]):
            block_events = _block_events(index, block)
            if index == 0:  # Anthropic pings right after the first content_block_start
                block_events.insert(1, sse({"type": "ping"}, "ping"))
            events.extend(block_events)
        events.append(
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    "usage": {"output_tokens": message["usage"]["output_tokens"]},
                },
                "message_delta",
            )
        )
        events.append(sse({"type": "message_stop"}, "message_stop"))
        return events


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _block_events(index: int, block: Json) -> list[bytes]:
    kind = block["type"]
    empty: dict[str, Any]
    deltas: list[Json]
    if kind == "text":
        empty = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], 6)]
    elif kind == "thinking":
        empty = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"], 8)]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind == "tool_use":
        empty = {**block, "input": {}}
        raw = orjson.dumps(block["input"]).decode()
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [{"type": "input_json_delta", "partial_json": p} for p in _pieces(raw, 7)]
    else:
        raise ValueError(f"the fake cannot stream {kind} blocks")
    events = [
        sse(
            {"type": "content_block_start", "index": index, "content_block": empty},
            "content_block_start",
        )
    ]
    events += [
        sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta")
        for d in deltas
    ]
    events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    return events
