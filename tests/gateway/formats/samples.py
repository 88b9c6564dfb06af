"""Requests, answers and streams that the format and provider tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

Json = dict[str, Any]
MODEL = "claude-test"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
    "60e6kgAAAABJRU5ErkJggg=="
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
LOOKUP_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    }
]


def ask(text: str, **extra: Any) -> Json:
    """An OpenAI chat request: a short system prompt and one user message."""
    return {
        "model": "parley-alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": text},
        ],
        **extra,
    }


async def aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


def anthropic_message(content: list[Json], stop_reason: str = "end_turn", **usage: Any) -> Json:
    return {
        "id": "msg_01abc",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 20, **usage},
    }


def stream_events(*blocks: list[Json], stop_reason: str = "end_turn") -> list[tuple[str, Json]]:
    """A well-formed Anthropic event sequence; each block is [start, delta, delta...]."""
    start = anthropic_message([], None, output_tokens=1)
    events: list[tuple[str, Json]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for index, (first, *deltas) in enumerate(blocks):
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": first},
            )
        )
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": 42},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
