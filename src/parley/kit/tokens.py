"""Offline token counting.

OpenAI models are counted exactly with their BPE encodings (bundled by `bpe-openai`, so no
download at run time). Other models are estimated at one token per 4 characters (rounded
up), which is within ~15% for English text on Claude, Gemini and Llama-family tokenizers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

import orjson


class _Encoding(Protocol):
    def encode(self, text: str) -> list[int]: ...


@lru_cache(maxsize=8)
def _encoding(name: str) -> _Encoding:
    import bpe_openai

    return bpe_openai.get_encoding(name)  # type: ignore[no-any-return]


def encoding_name(model: str) -> str | None:
    """The OpenAI encoding of a model name, or None when it is not an OpenAI model."""
    m = model.lower()
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return "o200k_base"
    if m.startswith(("gpt-4", "gpt-3.5", "text-embedding-")):
        return "cl100k_base"
    return None


def count_text(text: str, model: str = "") -> int:
    if not text:
        return 0
    name = encoding_name(model)
    if name is None:
        return math.ceil(len(text) / 4)
    return len(_encoding(name).encode(text))


def content_text(content: Any) -> str:
    """The text of an OpenAI message `content` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "\n".join(parts)


# Images are billed by size upstream; a fixed estimate keeps context planning conservative.
IMAGE_TOKENS = 765


def count_messages(messages: list[dict[str, Any]], model: str = "") -> int:
    """Prompt tokens of a chat request, with OpenAI's per-message framing overhead."""
    return _prompt_tokens(messages, lambda text: count_text(text, model))


def max_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """An upper bound of count_messages that needs no tokenizer: a token is at least one
    byte (and the estimate for other models is a quarter of the characters)."""
    return _prompt_tokens(messages, lambda text: len(text.encode()))


def count_request(request: dict[str, Any], model: str = "") -> int:
    """Prompt tokens of a chat request: its messages and the definitions of its tools."""
    total = count_messages(request["messages"], model)
    if tools := request.get("tools"):
        total += count_text(orjson.dumps(tools).decode(), model)
    return total


def max_request_tokens(request: dict[str, Any]) -> int:
    """An upper bound of count_request that needs no tokenizer."""
    total = max_prompt_tokens(request["messages"])
    if tools := request.get("tools"):
        total += len(orjson.dumps(tools))
    return total


def _prompt_tokens(messages: list[dict[str, Any]], count: Callable[[str], int]) -> int:
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += 3
        content = message.get("content")
        text = content_text(content)
        total += count(text) if text else 0
        if isinstance(content, list):
            total += IMAGE_TOKENS * sum(
                1 for p in content if isinstance(p, dict) and p.get("type") == "image_url"
            )
        if message.get("name"):
            total += 1 + count(str(message["name"]))
        for call in message.get("tool_calls") or []:
            fn = call.get("function", {})
            total += 3 + count(fn.get("name", "") + fn.get("arguments", ""))
    return total
