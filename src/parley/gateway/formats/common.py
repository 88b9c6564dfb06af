"""What the translations share: data URLs, reasoning budgets, tool calls, answers and chunks."""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

import orjson

from parley.gateway.providers.base import Json
from parley.kit.ids import new_id

# Thinking tokens for an OpenAI `reasoning_effort` (vendors add their own extra levels).
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}


def effort_for_budget(budget: int) -> str:
    """The `reasoning_effort` closest below a thinking budget."""
    if budget < THINKING_BUDGETS["medium"]:
        return "low"
    if budget < THINKING_BUDGETS["high"]:
        return "medium"
    return "high"


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


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


# ------------------------------------------------------------------- OpenAI requests


def text_of_parts(content: Any) -> str:
    """The text of a `content` (string or parts); other parts are left out."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
            texts.append(str(part.get("text") or ""))
    return "\n".join(t for t in texts if t)


def image_url_of(part: Json) -> str:
    """The URL of an `image_url` part (an object with `url`, or the URL itself)."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise ValueError("image_url parts need image_url.url")
    return url


def file_data_url(part: Json, vendor: str) -> str:
    """The `data:` URL of a `file` part: the only way a vendor takes a file inline."""
    data_url = (part.get("file") or {}).get("file_data")
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise ValueError(f"file parts need file.file_data as a data: URL for {vendor}")
    return data_url


def parse_arguments(text: str | None) -> Json:
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


def tool_use_block(call: Json) -> Json:
    """An Anthropic `tool_use` block for an OpenAI tool call."""
    fn = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": call.get("id") or new_id("toolu"),
        "name": fn.get("name", ""),
        "input": parse_arguments(fn.get("arguments")),
    }


def function_tools(req: Json, vendor: str) -> list[Json]:
    """The `function` object of each of a request's tools; other tool types are refused."""
    functions = []
    for tool in req.get("tools") or []:
        if tool.get("type", "function") != "function":
            raise ValueError(f"tool type {tool.get('type')!r} is not supported by {vendor}")
        functions.append(tool.get("function") or {})
    return functions


def tool_choice_of(choice: Any) -> tuple[str, str | None] | None:
    """An OpenAI `tool_choice` as `(mode, function name)`: auto, none, required or function."""
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return str(choice), None
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise ValueError("tool_choice.function.name is required")
        return "function", name
    raise ValueError("tool_choice must be 'auto', 'none', 'required' or a function")


def max_tokens_of(req: Json) -> Any:
    return req.get("max_completion_tokens") or req.get("max_tokens")


def stop_sequences(stop: Any) -> list[Any]:
    return [stop] if isinstance(stop, str) else list(stop)


def merge_turn(turns: list[Json], role: str, items: list[Json], key: str) -> None:
    """Add items to the conversation, merging into the previous turn of the same role (the
    vendors want alternating roles)."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: list(items)})


# -------------------------------------------------------------------- OpenAI answers


def openai_tool_call(call_id: Any, name: Any, arguments: Any) -> Json:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": dumps(arguments or {})},
    }


def assistant_message(texts: list[str], calls: list[Json]) -> Json:
    """A `chat.completion` message: `content` is null only when tool calls stand alone."""
    message: Json = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    return message


def openai_usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> Json:
    usage: Json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def completion_chunk(
    chunk_id: str | None,
    created: int,
    model: str,
    delta: Json,
    finish: str | None = None,
    *,
    index: int = 0,
) -> Json:
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def usage_chunk(chunk_id: str | None, created: int, model: str, usage: Json) -> Json:
    """The last chunk of a stream: no choices, the usage of the whole answer."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }
