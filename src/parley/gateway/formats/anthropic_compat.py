"""Parley's own Anthropic-compatible `/v1/messages`: Anthropic Messages requests to the OpenAI
chat shape, and OpenAI answers (plain and streamed) back to Anthropic's Message and events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from parley.gateway.formats.common import (
    effort_for_budget,
    openai_tool_call,
    text_of_parts,
    tool_use_block,
)
from parley.gateway.providers.base import Json
from parley.kit.ids import new_id
from parley.kit.tokens import count_text

_FINISH_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


# ------------------------------------------------------------------------- requests


def _image_part(source: Json) -> Json:
    kind = source.get("type")
    if kind == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif kind == "url":
        url = str(source.get("url", ""))
    else:
        raise ValueError(f"image source type {kind!r} is not supported")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: Json) -> Json:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type", "application/pdf")
        part: Json = {"file_data": f"data:{media_type};base64,{source.get('data', '')}"}
        if block.get("title"):
            part["filename"] = str(block["title"])
        return {"type": "file", "file": part}
    if kind == "text":
        return {"type": "text", "text": str(source.get("data", ""))}
    raise ValueError(f"document source type {kind!r} is not supported")


def _openai_parts(blocks: list[Json]) -> list[Json]:
    parts: list[Json] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block.get("source") or {}))
        elif kind == "document":
            parts.append(_document_part(block))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise ValueError(f"content block type {kind!r} is not supported here")
    return parts


def _simplify(parts: list[Json]) -> str | list[Json]:
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts) if len(parts) != 1 else parts[0]["text"]
    return parts


def _blocks(content: Any) -> list[Json]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ValueError("message content must be a string or a list of content blocks")
    return content


def _user_messages(blocks: list[Json]) -> list[Json]:
    """A user turn: its tool results as `tool` messages, then the rest as one user message."""
    messages: list[Json] = []
    other: list[Json] = []
    for block in blocks:
        if block.get("type") != "tool_result":
            other.append(block)
            continue
        inner = _blocks(block.get("content"))
        text = text_of_parts([b for b in inner if b.get("type") == "text"])
        if block.get("is_error"):
            text = f"Error: {text}" if text else "Error"
        messages.append(
            {"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": text}
        )
        # Tool messages carry text only: images of a result follow as a user turn.
        other.extend(b for b in inner if b.get("type") == "image")
    parts = _openai_parts(other)
    if parts:
        messages.append({"role": "user", "content": _simplify(parts)})
    return messages


def _assistant_message(blocks: list[Json]) -> Json:
    texts: list[str] = []
    calls: list[Json] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(
                openai_tool_call(block.get("id", ""), block.get("name", ""), block.get("input"))
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise ValueError(f"assistant content block type {kind!r} is not supported")
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def anthropic_to_openai_request(body: Json) -> Json:
    """An OpenAI chat request for an Anthropic Messages request (Parley's `/v1/messages`)."""
    messages: list[Json] = []
    system = body.get("system")
    if system:
        text = system if isinstance(system, str) else text_of_parts(_blocks(system))
        if text:
            messages.append({"role": "system", "content": text})

    for turn in body.get("messages") or []:
        role = turn.get("role")
        blocks = _blocks(turn.get("content"))
        if role == "user":
            messages.extend(_user_messages(blocks))
        elif role == "assistant":
            messages.append(_assistant_message(blocks))
        else:
            raise ValueError(f"message role {role!r} is not supported; use user or assistant")

    req: Json = {"model": body.get("model"), "messages": messages}
    if body.get("max_tokens") is not None:
        req["max_tokens"] = int(body["max_tokens"])
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            req[key] = body[key]
    if body.get("stop_sequences"):
        req["stop"] = list(body["stop_sequences"])
    if body.get("stream"):
        req["stream"] = True
        req["stream_options"] = {"include_usage": True}

    tools = []
    for tool in body.get("tools") or []:
        if tool.get("type") not in (None, "custom"):
            raise ValueError(f"tool type {tool.get('type')!r} is not supported")
        fn: Json = {
            "name": tool.get("name", ""),
            "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            fn["description"] = tool["description"]
        tools.append({"type": "function", "function": fn})
    if tools:
        req["tools"] = tools

    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "auto":
            req["tool_choice"] = "auto"
        elif kind == "any":
            req["tool_choice"] = "required"
        elif kind == "none":
            req["tool_choice"] = "none"
        elif kind == "tool":
            req["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            raise ValueError(f"tool_choice type {kind!r} is not supported")
        if choice.get("disable_parallel_tool_use"):
            req["parallel_tool_calls"] = False

    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "enabled":
            req["reasoning_effort"] = effort_for_budget(int(thinking.get("budget_tokens") or 0))
        elif thinking.get("type") == "adaptive":
            req["reasoning_effort"] = "medium"

    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id:
        req["user"] = str(user_id)
    return req


# -------------------------------------------------------------------------- answers


def _message_id(upstream_id: Any) -> str:
    if isinstance(upstream_id, str) and upstream_id.startswith("msg_"):
        return upstream_id
    if isinstance(upstream_id, str) and upstream_id.startswith("chatcmpl-"):
        return "msg_" + upstream_id.removeprefix("chatcmpl-")
    return new_id("msg")


def _anthropic_usage(usage: Json | None) -> Json:
    usage = usage or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    out: Json = {
        "input_tokens": prompt - cached,
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def openai_to_anthropic_response(resp: Json, model: str) -> Json:
    """An Anthropic Message for a `chat.completion` (its first choice)."""
    choices = resp.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[Json] = []
    text = text_of_parts(message.get("content")) or str(message.get("refusal") or "")
    if text:
        content.append({"type": "text", "text": text})
    content.extend(tool_use_block(call) for call in message.get("tool_calls") or [])
    finish = choice.get("finish_reason")
    return {
        "id": _message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _FINISH_REASONS.get(str(finish), "end_turn"),
        "stop_sequence": None,
        "usage": _anthropic_usage(resp.get("usage")),
    }


async def openai_chunks_to_anthropic_events(
    chunks: AsyncIterator[Json], model: str
) -> AsyncIterator[tuple[str, Json]]:
    """Anthropic stream events `(event name, data)` for `chat.completion.chunk` dicts.

    The sequence is Anthropic's: message_start, then per content block content_block_start
    (the first one followed by a ping), content_block_delta... and content_block_stop, then
    message_delta (stop_reason, usage) and message_stop. Text becomes a text block; each tool
    call becomes its own tool_use block fed by input_json_delta fragments.
    """
    started = False
    block = -1
    open_kind: str | None = None
    tool_blocks: dict[int, int] = {}
    stop_reason: str | None = None
    usage: Json | None = None
    emitted: list[str] = []

    def start_event(first_id: Any) -> tuple[str, Json]:
        message: Json = {
            "id": _message_id(first_id),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return "message_start", {"type": "message_start", "message": message}

    def open_block(content_block: Json) -> list[tuple[str, Json]]:
        nonlocal block, open_kind
        events = close_block()
        block += 1
        open_kind = content_block["type"]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": block, "content_block": content_block},
            )
        )
        if block == 0:
            events.append(("ping", {"type": "ping"}))
        return events

    def close_block() -> list[tuple[str, Json]]:
        nonlocal open_kind
        if open_kind is None:
            return []
        open_kind = None
        return [("content_block_stop", {"type": "content_block_stop", "index": block})]

    async for chunk in chunks:
        if not started:
            started = True
            yield start_event(chunk.get("id"))
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if open_kind != "text":
                    for event in open_block({"type": "text", "text": ""}):
                        yield event
                emitted.append(text)
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": block,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
            for call in delta.get("tool_calls") or []:
                index = int(call.get("index", 0))
                fn = call.get("function") or {}
                if index not in tool_blocks:
                    tool_use: Json = {
                        "type": "tool_use",
                        "id": call.get("id") or new_id("toolu"),
                        "name": fn.get("name") or "",
                        "input": {},
                    }
                    for event in open_block(tool_use):
                        yield event
                    tool_blocks[index] = block
                arguments = fn.get("arguments")
                if arguments:
                    emitted.append(arguments)
                    yield (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": tool_blocks[index],
                            "delta": {"type": "input_json_delta", "partial_json": arguments},
                        },
                    )
            if choice.get("finish_reason"):
                stop_reason = _FINISH_REASONS.get(str(choice["finish_reason"]), "end_turn")

    if not started:
        yield start_event(None)
    if block < 0:
        for event in open_block({"type": "text", "text": ""}):
            yield event
    for event in close_block():
        yield event
    final_usage: Json = {"output_tokens": count_text("".join(emitted), model)}
    if usage:
        final_usage = _anthropic_usage(usage)
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason or "end_turn", "stop_sequence": None},
            "usage": final_usage,
        },
    )
    yield "message_stop", {"type": "message_stop"}
