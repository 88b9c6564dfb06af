"""Translation between the OpenAI chat shape and Anthropic's Messages API, both directions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from parley.gateway.anthropic_format import (
    JSON_OBJECT_INSTRUCTION,
    anthropic_stream_to_openai_chunks,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    openai_chunks_to_anthropic_events,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
)
from parley.gateway.errors import UpstreamError

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
STREAM_EVENT = TypeAdapter[Any](RawMessageStreamEvent)


async def aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


# ------------------------------------------------------------- OpenAI -> Anthropic


def test_text_and_system_messages() -> None:
    body = openai_to_anthropic_request(
        {
            "model": "ignored",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "Hello"},
                {"role": "user", "content": [{"type": "text", "text": "Are you there?"}]},
                {"role": "assistant", "content": "Oui."},
                {"role": "user", "content": "Good."},
            ],
        },
        MODEL,
    )
    assert body["model"] == MODEL
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert body["max_tokens"] == 4096
    # Consecutive user messages merge: Anthropic requires alternating roles.
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hello"},
                {"type": "text", "text": "Are you there?"},
            ],
        },
        {"role": "assistant", "content": "Oui."},
        {"role": "user", "content": "Good."},
    ]


def test_sampling_parameters() -> None:
    body = openai_to_anthropic_request(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 100,
            "max_completion_tokens": 200,
            "temperature": 1.7,
            "top_p": 0.9,
            "stop": "END",
            "user": "user-42",
            "seed": 7,
            "logprobs": True,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "n": 1,
        },
        MODEL,
    )
    assert body["max_tokens"] == 200
    assert body["temperature"] == 1.0  # clamped to Anthropic's range
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    for dropped in ("seed", "logprobs", "presence_penalty", "frequency_penalty", "n", "user"):
        assert dropped not in body
    listed = openai_to_anthropic_request(
        {"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b"]}, MODEL
    )
    assert listed["stop_sequences"] == ["a", "b"]


def test_n_greater_than_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"n>1 is not supported by anthropic"):
        openai_to_anthropic_request(
            {"messages": [{"role": "user", "content": "hi"}], "n": 2}, MODEL
        )


def test_images() -> None:
    body = openai_to_anthropic_request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in these?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    ],
                }
            ]
        },
        MODEL,
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    with pytest.raises(ValueError, match="image/tiff"):
        openai_to_anthropic_request(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AA"}}
                        ],
                    }
                ]
            },
            MODEL,
        )


def test_tool_calls_and_results() -> None:
    body = openai_to_anthropic_request(
        {
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "24C"}],
                },
                {"role": "user", "content": "Which is warmer?"},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": "auto",
        },
        MODEL,
    )
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert body["tool_choice"] == {"type": "auto"}
    user, assistant, results = body["messages"]
    assert user == {"role": "user", "content": "Weather in Paris and Rome?"}
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    }
    # Both results and the follow-up question share one user turn, results first.
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "24C"},
            {"type": "text", "text": "Which is warmer?"},
        ],
    }


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: Json) -> None:
    req: Json = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL]}
    if choice is not None:
        req["tool_choice"] = choice
    if parallel is not None:
        req["parallel_tool_calls"] = parallel
    assert openai_to_anthropic_request(req, MODEL)["tool_choice"] == expected


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 4096), ("high", 16384)])
def test_reasoning_effort_enables_thinking(effort: str, budget: int) -> None:
    body = openai_to_anthropic_request(
        {
            "messages": [{"role": "user", "content": "Think"}],
            "reasoning_effort": effort,
            "max_tokens": 2000,
            "temperature": 0.2,
            "top_p": 0.5,
        },
        MODEL,
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] > budget
    assert "temperature" not in body  # Anthropic refuses temperature with thinking
    assert body["top_p"] == 0.95


def test_thinking_is_left_off_for_forced_tool_use() -> None:
    body = openai_to_anthropic_request(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "reasoning_effort": "high",
        },
        MODEL,
    )
    assert "thinking" not in body


def test_json_modes_become_a_system_instruction() -> None:
    plain = openai_to_anthropic_request(
        {
            "messages": [
                {"role": "system", "content": "Be helpful."},
                {"role": "user", "content": "List two colours"},
            ],
            "response_format": {"type": "json_object"},
        },
        MODEL,
    )
    assert plain["system"] == f"Be helpful.\n\n{JSON_OBJECT_INSTRUCTION}"
    schema = {"type": "object", "properties": {"colours": {"type": "array"}}}
    strict = openai_to_anthropic_request(
        {
            "messages": [{"role": "user", "content": "List two colours"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "palette", "schema": schema},
            },
        },
        MODEL,
    )
    assert "JSON" in strict["system"]
    assert "(palette)" in strict["system"]
    assert json.dumps(schema, separators=(",", ":")) in strict["system"]


# ------------------------------------------------------------- Anthropic -> OpenAI


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


def test_response_text_and_thinking() -> None:
    thinking = "Let me weigh both options carefully before answering."
    resp = anthropic_to_openai_response(
        anthropic_message(
            [
                {"type": "thinking", "thinking": thinking, "signature": "sig"},
                {"type": "text", "text": "Hello "},
                {"type": "text", "text": "there."},
            ],
            cache_read_input_tokens=5,
            cache_creation_input_tokens=3,
        ),
        MODEL,
    )
    openai.types.chat.ChatCompletion.model_validate(resp)
    assert resp["id"] == "chatcmpl-01abc"
    assert resp["object"] == "chat.completion"
    assert resp["model"] == MODEL
    choice = resp["choices"][0]
    assert choice["message"]["content"] == "Hello there."
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    usage = resp["usage"]
    assert usage["prompt_tokens"] == 18
    assert usage["completion_tokens"] == 20
    assert usage["total_tokens"] == 38
    assert usage["prompt_tokens_details"] == {"cached_tokens": 5}
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 14  # ceil(54 / 4)


def test_response_reasoning_tokens_from_usage_details() -> None:
    resp = anthropic_to_openai_response(
        anthropic_message(
            [{"type": "thinking", "thinking": "x" * 400, "signature": "s"}],
            output_tokens_details={"thinking_tokens": 9},
        ),
        MODEL,
    )
    assert resp["usage"]["completion_tokens_details"] == {"reasoning_tokens": 9}


def test_response_tool_use() -> None:
    resp = anthropic_to_openai_response(
        anthropic_message(
            [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
            "tool_use",
        ),
        MODEL,
    )
    openai.types.chat.ChatCompletion.model_validate(resp)
    message = resp["choices"][0]["message"]
    assert message["content"] == "Checking."
    assert message["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert resp["choices"][0]["finish_reason"] == "tool_calls"
    only_tool = anthropic_to_openai_response(
        anthropic_message(
            [{"type": "tool_use", "id": "t", "name": "f", "input": {}}], stop_reason="tool_use"
        ),
        MODEL,
    )
    assert only_tool["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    resp = anthropic_to_openai_response(
        anthropic_message([{"type": "text", "text": "x"}], stop_reason), MODEL
    )
    assert resp["choices"][0]["finish_reason"] == finish


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


async def test_stream_text_thinking_and_tools() -> None:
    events = stream_events(
        [
            {"type": "thinking", "thinking": "", "signature": ""},
            {"type": "thinking_delta", "thinking": "Two cities, "},
            {"type": "thinking_delta", "thinking": "two calls."},
            {"type": "signature_delta", "signature": "sig"},
        ],
        [
            {"type": "text", "text": ""},
            {"type": "text_delta", "text": "Let me "},
            {"type": "text_delta", "text": "check."},
        ],
        [
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}},
            {"type": "input_json_delta", "partial_json": ""},
            {"type": "input_json_delta", "partial_json": '{"city": '},
            {"type": "input_json_delta", "partial_json": '"Paris"}'},
        ],
        [
            {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {}},
            {"type": "input_json_delta", "partial_json": '{"city": "Rome"}'},
        ],
        stop_reason="tool_use",
    )
    chunks = await collect(anthropic_stream_to_openai_chunks(aiter(events), MODEL))
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
    assert {c["id"] for c in chunks} == {"chatcmpl-01abc"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check."
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert calls[1:3] == [
        {"index": 0, "function": {"arguments": '{"city": '}},
        {"index": 0, "function": {"arguments": '"Paris"}'}},
    ]
    assert calls[3]["index"] == 1
    assert calls[3]["id"] == "toolu_b"
    assert calls[4] == {"index": 1, "function": {"arguments": '{"city": "Rome"}'}}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 42,
        "total_tokens": 52,
        "completion_tokens_details": {"reasoning_tokens": 6},  # ceil(22 / 4)
    }


@pytest.mark.parametrize(("error_type", "status"), [("overloaded_error", 529), ("api_error", 500)])
async def test_stream_error_event(error_type: str, status: int) -> None:
    events = stream_events([{"type": "text", "text": ""}, {"type": "text_delta", "text": "Hi"}])
    events = [
        *events[:4],
        ("error", {"type": "error", "error": {"type": error_type, "message": "Overloaded"}}),
    ]
    received: list[Json] = []

    async def consume() -> None:
        async for chunk in anthropic_stream_to_openai_chunks(aiter(events), MODEL):
            received.append(chunk)

    with pytest.raises(UpstreamError) as caught:
        await consume()
    assert caught.value.status == status
    assert caught.value.retryable
    assert caught.value.message == "Overloaded"
    assert received[-1]["choices"][0]["delta"] == {"content": "Hi"}


async def test_stream_without_message_stop() -> None:
    events = stream_events([{"type": "text", "text": ""}, {"type": "text_delta", "text": "Hi"}])
    with pytest.raises(UpstreamError) as caught:
        await collect(anthropic_stream_to_openai_chunks(aiter(events[:-2]), MODEL))
    assert caught.value.kind == "connect"
    assert caught.value.retryable


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


def test_broken_tool_arguments_do_not_poison_the_history() -> None:
    body = openai_to_anthropic_request(
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"city": "Par'},
                        }
                    ],
                },
            ]
        },
        MODEL,
    )
    assert body["messages"][1]["content"][0]["input"] == {"raw_arguments": '{"city": "Par'}


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
