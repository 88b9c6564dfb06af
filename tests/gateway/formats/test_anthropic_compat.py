"""Parley's `/v1/messages` translation: Anthropic requests to OpenAI, OpenAI answers back."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from parley.gateway.formats.anthropic_compat import (
    anthropic_to_openai_request,
    openai_chunks_to_anthropic_events,
    openai_to_anthropic_response,
)
from parley.gateway.formats.anthropic_upstream import (
    anthropic_stream_to_openai_chunks,
    openai_to_anthropic_request,
)
from tests.gateway.formats.samples import (
    MODEL,
    PNG,
    WEATHER_TOOL,
    Json,
    aiter,
    collect,
    stream_events,
)

STREAM_EVENT = TypeAdapter[Any](RawMessageStreamEvent)


# --------------------------------------------- Anthropic requests for /v1/messages


def test_anthropic_request_to_openai() -> None:
    req = anthropic_to_openai_request(
        {
            "model": "parley-chat",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "Let me look it up."},
                        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a pixel"},
                        {"type": "text", "text": "Thanks"},
                    ],
                },
            ],
            "tools": [
                {
                    "name": "lookup",
                    "description": "Look something up",
                    "input_schema": {"type": "object", "properties": {"q": {"type": "integer"}}},
                }
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "stop_sequences": ["STOP"],
            "temperature": 0.3,
            "top_k": 5,
            "thinking": {"type": "enabled", "budget_tokens": 5000},
            "metadata": {"user_id": "u-1"},
            "stream": True,
        }
    )
    assert req["model"] == "parley-chat"
    assert req["max_tokens"] == 1024
    assert req["messages"] == [
        {"role": "system", "content": "Be brief.\nBe kind."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look it up.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q":1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a pixel"},
        {"role": "user", "content": "Thanks"},
    ]
    assert req["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look something up",
                "parameters": {"type": "object", "properties": {"q": {"type": "integer"}}},
            },
        }
    ]
    assert req["tool_choice"] == "required"
    assert req["parallel_tool_calls"] is False
    assert req["stop"] == ["STOP"]
    assert req["temperature"] == 0.3
    assert "top_k" not in req
    assert req["reasoning_effort"] == "medium"
    assert req["user"] == "u-1"
    assert req["stream"] is True
    assert req["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "any"}, "required"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_anthropic_tool_choice(choice: Json, expected: Any) -> None:
    req = anthropic_to_openai_request(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": choice,
        }
    )
    assert req["tool_choice"] == expected


def test_tool_result_errors_and_images() -> None:
    req = anthropic_to_openai_request(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "is_error": True,
                            "content": [
                                {"type": "text", "text": "not found"},
                                {
                                    "type": "image",
                                    "source": {"type": "url", "url": "https://x.test/a.png"},
                                },
                            ],
                        }
                    ],
                }
            ],
        }
    )
    assert req["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "Error: not found"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
        },
    ]


def test_round_trip_openai_anthropic_openai() -> None:
    original = {
        "model": "m",
        "max_tokens": 300,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "stop": ["END"],
        "user": "u",
    }
    back = anthropic_to_openai_request(openai_to_anthropic_request(original, "m"))
    assert back["messages"] == original["messages"]
    assert back["tools"] == original["tools"]
    for key in ("model", "max_tokens", "tool_choice", "stop", "user"):
        assert back[key] == original[key]


# ----------------------------------- OpenAI answers -> Anthropic (checked by the SDK)


def chat_completion(message: Json, finish: str, **usage: Any) -> Json:
    return {
        "id": "chatcmpl-xyz",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19, **usage},
    }


def test_openai_response_to_anthropic_message() -> None:
    body = openai_to_anthropic_response(
        chat_completion(
            {"role": "assistant", "content": "Hello!"},
            "stop",
            prompt_tokens_details={"cached_tokens": 2},
        ),
        "claude-compatible",
    )
    message = anthropic.types.Message.model_validate(body)
    assert message.id == "msg_xyz"
    assert message.model == "claude-compatible"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello!"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 10
    assert message.usage.cache_read_input_tokens == 2
    assert message.usage.output_tokens == 7


def test_openai_tool_calls_to_anthropic_message() -> None:
    body = openai_to_anthropic_response(
        chat_completion(
            {
                "role": "assistant",
                "content": "Looking.",
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            "tool_calls",
        ),
        "m",
    )
    message = anthropic.types.Message.model_validate(body)
    assert message.stop_reason == "tool_use"
    text, tool = message.content
    assert text.type == "text"
    assert tool.type == "tool_use"
    assert tool.id == "call_9"
    assert tool.name == "get_weather"
    assert tool.input == {"city": "Oslo"}


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
def test_finish_reasons_to_anthropic(finish: str, stop_reason: str) -> None:
    body = openai_to_anthropic_response(
        chat_completion({"role": "assistant", "content": "x"}, finish), "m"
    )
    assert anthropic.types.Message.model_validate(body).stop_reason == stop_reason


def openai_chunk(delta: Json, finish: str | None = None) -> Json:
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def usage_chunk(prompt: int, completion: int) -> Json:
    return {
        **openai_chunk({}),
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def validate_stream(events: list[tuple[str, Json]]) -> anthropic.types.Message:
    """Every event parses as the SDK's RawMessageStreamEvent (ping aside), names match their
    `type`, and the SDK's own accumulator assembles them into a valid Message."""
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for name, data in events:
        assert data["type"] == name
        if name == "ping":
            continue
        event = STREAM_EVENT.validate_python(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    return anthropic.types.Message.model_validate(snapshot.model_dump())


async def test_openai_text_stream_to_anthropic_events() -> None:
    chunks = [
        openai_chunk({"role": "assistant", "content": ""}),
        openai_chunk({"content": "Hello"}),
        openai_chunk({"content": " world"}),
        openai_chunk({}, "stop"),
        usage_chunk(11, 2),
    ]
    events = await collect(openai_chunks_to_anthropic_events(aiter(chunks), "m"))
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    message = validate_stream(events)
    assert message.id == "msg_s1"
    assert message.content[0].text == "Hello world"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 11
    assert message.usage.output_tokens == 2
    assert events[-2][1]["usage"]["output_tokens"] == 2


async def test_openai_tool_stream_to_anthropic_events() -> None:
    chunks = [
        openai_chunk({"role": "assistant", "content": ""}),
        openai_chunk({"content": "Checking both."}),
        openai_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        openai_chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    }
                ]
            }
        ),
        openai_chunk({}, "tool_calls"),
        usage_chunk(30, 25),
    ]
    events = await collect(openai_chunks_to_anthropic_events(aiter(chunks), "m"))
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 3
    assert names[-2:] == ["message_delta", "message_stop"]
    fragments = [
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert fragments == ['{"city":', '"Paris"}', '{"city":"Rome"}']
    message = validate_stream(events)
    assert message.stop_reason == "tool_use"
    text, first, second = message.content
    assert text.type == "text"
    assert first.type == "tool_use"
    assert second.type == "tool_use"
    assert (first.id, first.name, first.input) == ("call_a", "get_weather", {"city": "Paris"})
    assert (second.id, second.input) == ("call_b", {"city": "Rome"})


async def test_empty_openai_stream_still_makes_a_valid_message() -> None:
    events = await collect(openai_chunks_to_anthropic_events(aiter([]), "m"))
    message = validate_stream(events)
    assert message.content[0].type == "text"
    assert message.stop_reason == "end_turn"


async def test_round_trip_stream_anthropic_openai_anthropic() -> None:
    upstream = stream_events(
        [
            {"type": "text", "text": ""},
            {"type": "text_delta", "text": "Sure, "},
            {"type": "text_delta", "text": "calling."},
        ],
        [
            {"type": "tool_use", "id": "toolu_z", "name": "lookup", "input": {}},
            {"type": "input_json_delta", "partial_json": '{"q": '},
            {"type": "input_json_delta", "partial_json": "3}"},
        ],
        stop_reason="tool_use",
    )
    chunks = anthropic_stream_to_openai_chunks(aiter(upstream), MODEL)
    events = await collect(openai_chunks_to_anthropic_events(chunks, MODEL))
    message = validate_stream(events)
    assert message.content[0].text == "Sure, calling."  # type: ignore[union-attr]
    tool = message.content[1]
    assert tool.type == "tool_use"
    assert (tool.id, tool.name, tool.input) == ("toolu_z", "lookup", {"q": 3})
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 42
    assert message.usage.input_tokens == 10


def test_openai_refusal_becomes_text() -> None:
    body = openai_to_anthropic_response(
        chat_completion(
            {"role": "assistant", "content": None, "refusal": "I can't."}, "content_filter"
        ),
        "m",
    )
    message = anthropic.types.Message.model_validate(body)
    assert message.content[0].text == "I can't."  # type: ignore[union-attr]
    assert message.stop_reason == "refusal"
