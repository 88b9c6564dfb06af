"""The Anthropic provider's translation: OpenAI requests to Anthropic, Anthropic answers back."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from parley.gateway.errors import UpstreamError
from parley.gateway.formats.anthropic_upstream import (
    JSON_OBJECT_INSTRUCTION,
    anthropic_stream_to_openai_chunks,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
)
from tests.gateway.formats.samples import (
    MODEL,
    PNG,
    WEATHER_TOOL,
    Json,
    aiter,
    anthropic_message,
    collect,
    stream_events,
)

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


@pytest.mark.parametrize("url", ["http://x.test/a.png", "gs://bucket/a.png", "file:///a.png"])
def test_images_are_data_or_https_urls_only(url: str) -> None:
    request = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
        ]
    }
    with pytest.raises(ValueError, match="must be an https URL or a data: URL"):
        openai_to_anthropic_request(request, MODEL)


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
