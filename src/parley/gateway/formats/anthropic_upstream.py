"""The Anthropic provider's translation: OpenAI chat requests to Anthropic's Messages API, and
Anthropic's answers (plain and streamed) back to the OpenAI shape."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from parley.gateway.errors import UpstreamError
from parley.gateway.formats.common import (
    THINKING_BUDGETS,
    assistant_message,
    completion_chunk,
    dumps,
    file_data_url,
    function_tools,
    image_url_of,
    max_tokens_of,
    merge_turn,
    openai_tool_call,
    openai_usage,
    parse_data_url,
    stop_sequences,
    text_of_parts,
    tool_choice_of,
    tool_use_block,
    usage_chunk,
)
from parley.gateway.providers.base import Json
from parley.kit.ids import new_id
from parley.kit.tokens import count_text

DEFAULT_MAX_TOKENS = 4096

JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no Markdown, "
    "no code fences."
)
JSON_SCHEMA_INSTRUCTION = (
    "Respond with a single valid JSON value that conforms to this JSON Schema, and nothing "
    "else: no prose, no Markdown, no code fences.\nSchema{name}: {schema}"
)

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_TOOL_CHOICES: dict[str, Json] = {
    "auto": {"type": "auto"},
    "none": {"type": "none"},
    "required": {"type": "any"},
}


def _chunk_id(upstream_id: str | None) -> str:
    if upstream_id:
        return "chatcmpl-" + upstream_id.removeprefix("msg_")
    return "chatcmpl-" + new_id("msg")[4:]


# ------------------------------------------------------------------------- requests


def _image_block(url: str) -> Json:
    if url.startswith("data:"):
        media_type, data = parse_data_url(url)
        if media_type == "image/jpg":
            media_type = "image/jpeg"
        if media_type not in _IMAGE_TYPES:
            raise ValueError(
                f"image type {media_type} is not supported by anthropic: use JPEG, PNG, GIF or WebP"
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith("https://"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise ValueError("image_url.url must be an https URL or a data: URL")


def _content_blocks(content: Any) -> list[Json]:
    """Anthropic blocks of an OpenAI user/assistant/tool `content` (string or parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Json] = []
    for part in content:
        if not isinstance(part, dict):
            raise ValueError("message content parts must be objects")
        kind = part.get("type")
        if kind in ("text", "input_text"):
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image_block(image_url_of(part)))
        elif kind == "file":
            media_type, data = parse_data_url(file_data_url(part, "anthropic"))
            if media_type != "application/pdf":
                raise ValueError(f"file type {media_type} is not supported by anthropic")
            blocks.append(
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": media_type, "data": data},
                }
            )
        elif kind == "refusal":
            continue
        else:
            raise ValueError(f"content part type {kind!r} is not supported by anthropic")
    return blocks


def _tool_choice(choice: Any, parallel: Any) -> Json | None:
    chosen = tool_choice_of(choice)
    result: Json | None = None
    if chosen is not None:
        mode, name = chosen
        result = (
            dict(_TOOL_CHOICES[mode]) if mode in _TOOL_CHOICES else {"type": "tool", "name": name}
        )
    if parallel is False and (result is None or result["type"] != "none"):
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result


def _json_instruction(response_format: Any) -> str | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        name = f" ({spec['name']})" if spec.get("name") else ""
        return JSON_SCHEMA_INSTRUCTION.format(name=name, schema=dumps(spec.get("schema") or {}))
    return None


def openai_to_anthropic_request(req: Json, model: str) -> Json:
    """An Anthropic Messages request for an OpenAI chat request (without `stream`).

    - `system`/`developer` messages become `system`; consecutive messages of the same role
      are merged (Anthropic requires alternating turns); `tool` messages become user
      `tool_result` blocks, listed before any other block of that user turn.
    - `max_tokens`/`max_completion_tokens` -> `max_tokens` (default 4096: Anthropic requires it).
    - `temperature` is clamped to Anthropic's 0..1; `stop` -> `stop_sequences`.
    - `reasoning_effort` low/medium/high -> extended thinking with a 1024/4096/16384 token
      budget (`max_tokens` grows above the budget when needed). Thinking does not combine
      with a forced tool choice, so thinking is left off then; with thinking on,
      `temperature` is dropped and `top_p` kept at 0.95 or more, as Anthropic requires.
    - `response_format` json_object/json_schema: Anthropic has no JSON mode, so a system
      instruction asks for JSON only (with the schema for json_schema). The answer is not
      guaranteed to parse.
    - `user` -> `metadata.user_id`. `n` > 1 raises ValueError; `seed`, `logprobs`,
      `top_logprobs`, presence/frequency penalties and `logit_bias` are dropped.
    """
    if int(req.get("n") or 1) > 1:
        raise ValueError("n>1 is not supported by anthropic")

    system_parts: list[str] = []
    turns: list[Json] = []
    for message in req.get("messages") or []:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = text_of_parts(content)
            if text:
                system_parts.append(text)
        elif role == "user":
            merge_turn(turns, "user", _content_blocks(content), "content")
        elif role == "assistant":
            blocks = _content_blocks(content)
            blocks.extend(tool_use_block(call) for call in message.get("tool_calls") or [])
            merge_turn(turns, "assistant", blocks, "content")
        elif role == "tool":
            result: Json = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", "")}
            inner = _content_blocks(content)
            if inner:
                result["content"] = (
                    inner[0]["text"] if len(inner) == 1 and inner[0]["type"] == "text" else inner
                )
            merge_turn(turns, "user", [result], "content")
        else:
            raise ValueError(f"message role {role!r} is not supported by anthropic")

    for turn in turns:
        if turn["role"] == "user":
            # Anthropic wants a user turn's tool results before anything else in it.
            turn["content"].sort(key=lambda b: b.get("type") != "tool_result")
        blocks = turn["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            turn["content"] = blocks[0]["text"]

    instruction = _json_instruction(req.get("response_format"))
    if instruction:
        system_parts.append(instruction)

    max_tokens = max_tokens_of(req) or DEFAULT_MAX_TOKENS
    body: Json = {"model": model, "max_tokens": int(max_tokens), "messages": turns}
    if system_parts:
        body["system"] = "\n\n".join(system_parts)

    tools = []
    for fn in function_tools(req, "anthropic"):
        spec: Json = {
            "name": fn.get("name", ""),
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        tools.append(spec)
    if tools:
        body["tools"] = tools
    choice = _tool_choice(req.get("tool_choice"), req.get("parallel_tool_calls"))
    if choice is not None and tools:
        body["tool_choice"] = choice

    if req.get("temperature") is not None:
        body["temperature"] = min(max(float(req["temperature"]), 0.0), 1.0)
    if req.get("top_p") is not None:
        body["top_p"] = float(req["top_p"])
    stop = req.get("stop")
    if stop:
        body["stop_sequences"] = stop_sequences(stop)

    budget = THINKING_BUDGETS.get(str(req.get("reasoning_effort") or "").lower())
    forced_tool = body.get("tool_choice", {}).get("type") in ("any", "tool")
    if budget and not forced_tool:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if body["max_tokens"] <= budget:
            body["max_tokens"] = budget + body["max_tokens"]
        body.pop("temperature", None)
        if "top_p" in body:
            body["top_p"] = max(body["top_p"], 0.95)

    user = req.get("user") or req.get("safety_identifier")
    if user:
        body["metadata"] = {"user_id": str(user)}
    return body


# -------------------------------------------------------------------------- answers


def _usage(usage: Json, thinking_text: str, model: str) -> Json:
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cache_write + cache_read
    completion = int(usage.get("output_tokens") or 0)
    details = usage.get("output_tokens_details")
    reasoning = int(details.get("thinking_tokens") or 0) if isinstance(details, dict) else 0
    if not reasoning and thinking_text:
        reasoning = count_text(thinking_text, model)
        if completion:
            reasoning = min(reasoning, completion)
    return openai_usage(prompt, completion, cached=cache_read, reasoning=reasoning)


def anthropic_to_openai_response(resp: Json, model: str) -> Json:
    """A `chat.completion` for an Anthropic Message; thinking blocks are left out of content."""
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[Json] = []
    for block in resp.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking") or ""))
        elif kind == "tool_use":
            tool_calls.append(
                openai_tool_call(block.get("id", ""), block.get("name", ""), block.get("input"))
            )
    finish = _STOP_REASONS.get(str(resp.get("stop_reason")), "stop")
    return {
        "id": _chunk_id(resp.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": assistant_message(texts, tool_calls),
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": _usage(resp.get("usage") or {}, "".join(thinking), model),
    }


async def anthropic_stream_to_openai_chunks(
    events: AsyncIterator[tuple[str | None, Json]], model: str
) -> AsyncIterator[Json]:
    """`chat.completion.chunk` dicts for Anthropic stream events.

    The role chunk comes first, then content and tool-call deltas (a tool call opens with its
    index, id and name, then its argument fragments), a finish_reason chunk and a last chunk
    with empty `choices` and `usage`. An `error` event raises UpstreamError (529 when
    overloaded, else 500); input that ends before `message_stop` raises
    UpstreamError(kind="connect").
    """
    chunk_id = _chunk_id(None)
    created = int(time.time())
    usage: Json = {}
    thinking: list[str] = []
    tool_index: dict[int, int] = {}
    started = False
    finish: str | None = None

    def chunk(delta: Json, finish_reason: str | None = None) -> Json:
        return completion_chunk(chunk_id, created, model, delta, finish_reason)

    async for name, data in events:
        kind = data.get("type") or name
        if kind == "ping":
            continue
        if kind == "error":
            error = data.get("error")
            if not isinstance(error, dict):
                error = {}
            status = 529 if error.get("type") == "overloaded_error" else 500
            raise UpstreamError(
                str(error.get("message") or "anthropic stream error"), status=status
            )
        if not started:
            if kind == "message_start":
                message = data.get("message") or {}
                chunk_id = _chunk_id(message.get("id"))
                usage.update(message.get("usage") or {})
            started = True
            yield chunk({"role": "assistant", "content": ""})
            if kind == "message_start":
                continue
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = tool_index.setdefault(int(data.get("index", 0)), len(tool_index))
                yield chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": block.get("id", ""),
                                "type": "function",
                                "function": {"name": block.get("name", ""), "arguments": ""},
                            }
                        ]
                    }
                )
            elif block.get("type") == "text" and block.get("text"):
                yield chunk({"content": block["text"]})
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            delta_type = delta.get("type")
            if delta_type == "text_delta":
                if delta.get("text"):
                    yield chunk({"content": delta["text"]})
            elif delta_type == "input_json_delta":
                fragment = delta.get("partial_json") or ""
                block_index = int(data.get("index", 0))
                if fragment and block_index in tool_index:
                    yield chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": tool_index[block_index],
                                    "function": {"arguments": fragment},
                                }
                            ]
                        }
                    )
            elif delta_type == "thinking_delta":
                thinking.append(str(delta.get("thinking") or ""))
        elif kind == "message_delta":
            stop_reason = (data.get("delta") or {}).get("stop_reason")
            if stop_reason:
                finish = _STOP_REASONS.get(stop_reason, "stop")
            for key, value in (data.get("usage") or {}).items():
                if value is not None:
                    usage[key] = value
        elif kind == "message_stop":
            yield chunk({}, finish or "stop")
            yield usage_chunk(chunk_id, created, model, _usage(usage, "".join(thinking), model))
            return
    raise UpstreamError("anthropic ended the stream without message_stop", kind="connect")
