"""Translation between the OpenAI Chat Completions shape and Anthropic's Messages API.

Both directions live here, as pure functions:

- OpenAI -> Anthropic requests and Anthropic -> OpenAI answers (plain and streamed), for the
  Anthropic provider;
- Anthropic -> OpenAI requests and OpenAI -> Anthropic answers (plain and streamed), for
  Parley's own Anthropic-compatible `/v1/messages` endpoint.

A request that cannot be expressed in the target format raises ValueError; callers answer
it with a 400 `invalid_request_error`.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import orjson

from parley.gateway.errors import UpstreamError
from parley.gateway.providers.base import Json
from parley.kit.ids import new_id
from parley.kit.tokens import count_text

DEFAULT_MAX_TOKENS = 4096
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}

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
_FINISH_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


# --------------------------------------------------------------------------- helpers


def parse_data_url(url: str) -> tuple[str, str]:
    """`(media_type, base64 data)` of a `data:` URL; raises ValueError when it is not one."""
    if not url.startswith("data:") or "," not in url:
        raise ValueError("expected a data: URL")
    header, _, payload = url[5:].partition(",")
    params = header.split(";")
    media_type = (params[0] or "text/plain").strip().lower()
    if "base64" in (p.strip().lower() for p in params[1:]):
        return media_type, payload
    raw = urllib.parse.unquote_to_bytes(payload)
    return media_type, base64.b64encode(raw).decode("ascii")


def _json_loads_object(text: str | None) -> Json:
    """Tool-call arguments as a dict: `{}` for empty, `{"value": x}` for a non-object.

    Arguments a model cut short (or otherwise broke) come back as `{"raw_arguments": text}`
    rather than an error, so a conversation holding them can still be sent.
    """
    if not text or not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"raw_arguments": text}
    return value if isinstance(value, dict) else {"value": value}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _text_of_parts(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
            texts.append(str(part.get("text") or ""))
    return "\n".join(t for t in texts if t)


def _chunk_id(upstream_id: str | None) -> str:
    if upstream_id:
        return "chatcmpl-" + upstream_id.removeprefix("msg_")
    return "chatcmpl-" + new_id("msg")[4:]


# ----------------------------------------------------------- OpenAI -> Anthropic request


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
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise ValueError("image_url.url must be an http(s) URL or a data: URL")


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
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise ValueError("image_url parts need image_url.url")
            blocks.append(_image_block(url))
        elif kind == "file":
            file = part.get("file") or {}
            data_url = file.get("file_data")
            if not isinstance(data_url, str) or not data_url.startswith("data:"):
                raise ValueError("file parts need file.file_data as a data: URL for anthropic")
            media_type, data = parse_data_url(data_url)
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


def _append_turn(turns: list[Json], role: str, blocks: list[Json]) -> None:
    """Add blocks to the conversation, merging into the previous turn of the same role."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _tool_choice(choice: Any, parallel: Any) -> Json | None:
    result: Json | None
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "none":
        result = {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise ValueError("tool_choice.function.name is required")
        result = {"type": "tool", "name": name}
    else:
        raise ValueError("tool_choice must be 'auto', 'none', 'required' or a function")
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
        return JSON_SCHEMA_INSTRUCTION.format(name=name, schema=_dumps(spec.get("schema") or {}))
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
            text = _text_of_parts(content)
            if text:
                system_parts.append(text)
        elif role == "user":
            _append_turn(turns, "user", _content_blocks(content))
        elif role == "assistant":
            blocks = _content_blocks(content)
            for call in message.get("tool_calls") or []:
                fn = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id") or "toolu_" + new_id("x")[2:],
                        "name": fn.get("name", ""),
                        "input": _json_loads_object(fn.get("arguments")),
                    }
                )
            _append_turn(turns, "assistant", blocks)
        elif role == "tool":
            result: Json = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", "")}
            inner = _content_blocks(content)
            if inner:
                result["content"] = (
                    inner[0]["text"] if len(inner) == 1 and inner[0]["type"] == "text" else inner
                )
            _append_turn(turns, "user", [result])
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

    max_tokens = req.get("max_completion_tokens") or req.get("max_tokens") or DEFAULT_MAX_TOKENS
    body: Json = {"model": model, "max_tokens": int(max_tokens), "messages": turns}
    if system_parts:
        body["system"] = "\n\n".join(system_parts)

    tools = []
    for tool in req.get("tools") or []:
        if tool.get("type", "function") != "function":
            raise ValueError(f"tool type {tool.get('type')!r} is not supported by anthropic")
        fn = tool.get("function") or {}
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
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)

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


# ---------------------------------------------------------- Anthropic -> OpenAI answer


def _openai_usage(usage: Json, thinking_text: str, model: str) -> Json:
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cache_write + cache_read
    completion = int(usage.get("output_tokens") or 0)
    out: Json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cache_read:
        out["prompt_tokens_details"] = {"cached_tokens": cache_read}
    details = usage.get("output_tokens_details")
    reasoning = int(details.get("thinking_tokens") or 0) if isinstance(details, dict) else 0
    if not reasoning and thinking_text:
        reasoning = count_text(thinking_text, model)
        if completion:
            reasoning = min(reasoning, completion)
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


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
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": _dumps(block.get("input") or {}),
                    },
                }
            )
    message: Json = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    finish = _STOP_REASONS.get(str(resp.get("stop_reason")), "stop")
    return {
        "id": _chunk_id(resp.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _openai_usage(resp.get("usage") or {}, "".join(thinking), model),
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
        return {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

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
            final = chunk({})
            final["choices"] = []
            final["usage"] = _openai_usage(usage, "".join(thinking), model)
            yield final
            return
    raise UpstreamError("anthropic ended the stream without message_stop", kind="connect")


# ----------------------------------------------------------- Anthropic -> OpenAI request


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


def _effort(budget: int) -> str:
    if budget < THINKING_BUDGETS["medium"]:
        return "low"
    if budget < THINKING_BUDGETS["high"]:
        return "medium"
    return "high"


def anthropic_to_openai_request(body: Json) -> Json:
    """An OpenAI chat request for an Anthropic Messages request (Parley's `/v1/messages`)."""
    messages: list[Json] = []
    system = body.get("system")
    if system:
        text = system if isinstance(system, str) else _text_of_parts(_blocks(system))
        if text:
            messages.append({"role": "system", "content": text})

    for turn in body.get("messages") or []:
        role = turn.get("role")
        blocks = _blocks(turn.get("content"))
        if role == "user":
            other: list[Json] = []
            for block in blocks:
                if block.get("type") != "tool_result":
                    other.append(block)
                    continue
                inner = _blocks(block.get("content"))
                text = _text_of_parts([b for b in inner if b.get("type") == "text"])
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
        elif role == "assistant":
            texts: list[str] = []
            calls: list[Json] = []
            for block in blocks:
                kind = block.get("type")
                if kind == "text":
                    texts.append(str(block.get("text", "")))
                elif kind == "tool_use":
                    calls.append(
                        {
                            "id": block.get("id", ""),
                            "type": "function",
                            "function": {
                                "name": block.get("name", ""),
                                "arguments": _dumps(block.get("input") or {}),
                            },
                        }
                    )
                elif kind in ("thinking", "redacted_thinking"):
                    continue
                else:
                    raise ValueError(f"assistant content block type {kind!r} is not supported")
            message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
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
            req["reasoning_effort"] = _effort(int(thinking.get("budget_tokens") or 0))
        elif thinking.get("type") == "adaptive":
            req["reasoning_effort"] = "medium"

    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id:
        req["user"] = str(user_id)
    return req


# ----------------------------------------------------------- OpenAI -> Anthropic answer


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
    text = _text_of_parts(message.get("content")) or str(message.get("refusal") or "")
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        arguments = _json_loads_object(fn.get("arguments"))
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu"),
                "name": fn.get("name", ""),
                "input": arguments,
            }
        )
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
