"""The Gemini provider's translation: OpenAI requests to Gemini, Gemini answers back."""

from __future__ import annotations

import openai
import pytest

from parley.gateway.formats.gemini import (
    gemini_schema,
    gemini_to_openai_response,
    openai_to_gemini_request,
)
from tests.gateway.formats.samples import LOOKUP_TOOLS, PNG, Json, ask


def test_request_translation() -> None:
    body = openai_to_gemini_request(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png?s=1"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"query": "pixel"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"query": "png"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"meaning": "a dot"}'},
                {"role": "tool", "tool_call_id": "call_2", "content": "an image format"},
            ],
            "tools": LOOKUP_TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "lookup"}},
            "temperature": 0.4,
            "top_p": 0.8,
            "max_completion_tokens": 300,
            "stop": "END",
            "n": 2,
            "seed": 11,
            "reasoning_effort": "high",
            "response_format": {"type": "json_object"},
        }
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    user, model, results = body["contents"]
    assert user == {
        "role": "user",
        "parts": [
            {"text": "What is this?"},
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/cat.png?s=1"}},
        ],
    }
    assert model == {
        "role": "model",
        "parts": [
            {"text": "Let me check."},
            {"functionCall": {"name": "lookup", "args": {"query": "pixel"}}},
            {"functionCall": {"name": "lookup", "args": {"query": "png"}}},
        ],
    }
    # Parallel results answer in one turn, each named after the call it answers.
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "lookup", "response": {"meaning": "a dot"}}},
            {"functionResponse": {"name": "lookup", "response": {"result": "an image format"}}},
        ],
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "lookup",
                    "description": "Look a word up",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"query": {"type": "STRING"}},
                        "required": ["query"],
                    },
                }
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}
    }
    assert body["generationConfig"] == {
        "temperature": 0.4,
        "topP": 0.8,
        "maxOutputTokens": 300,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 11,
        "responseMimeType": "application/json",
        "thinkingConfig": {"thinkingBudget": 16384},
    }


@pytest.mark.parametrize("url", ["gs://operator-bucket/a.pdf", "http://x.test/a.png"])
def test_no_gs_or_plain_http_urls(url: str) -> None:
    # A gs: URI would be read with the operator's Google credentials.
    request = ask("hi")
    request["messages"][1]["content"] = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(ValueError, match="must be an https URL or a data: URL"):
        openai_to_gemini_request(request)


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
    ],
)
def test_tool_choice(choice: str, config: Json) -> None:
    body = openai_to_gemini_request(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": LOOKUP_TOOLS,
            "tool_choice": choice,
        }
    )
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_json_schema_becomes_a_gemini_schema() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Who"},
            "age": {"type": ["integer", "null"]},
            "pet": {"$ref": "#/$defs/Pet"},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
            "kind": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["name"],
        "additionalProperties": False,
        "$defs": {"Pet": {"type": "object", "properties": {"legs": {"type": "number"}}}},
    }
    body = openai_to_gemini_request(
        ask(
            "Describe",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": schema, "strict": True},
            },
        )
    )
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING", "description": "Who"},
            "age": {"type": "INTEGER", "nullable": True},
            "pet": {"type": "OBJECT", "properties": {"legs": {"type": "NUMBER"}}},
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}},
            "kind": {"type": "STRING", "nullable": True},
        },
        "required": ["name"],
    }
    assert gemini_schema(None) == {}


@pytest.mark.parametrize(
    ("reason", "has_calls", "finish"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("OTHER", False, "stop"),
    ],
)
def test_finish_reasons(reason: str, has_calls: bool, finish: str) -> None:
    parts: list[Json] = [{"text": "x"}]
    if has_calls:
        parts.append({"functionCall": {"name": "f", "args": {}}})
    resp = gemini_to_openai_response(
        {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": reason}]},
        "g",
    )
    assert resp["choices"][0]["finish_reason"] == finish


def test_response_usage_and_thoughts() -> None:
    resp = gemini_to_openai_response(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "Pondering...", "thought": True},
                            {"text": "Forty-two."},
                        ],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 4,
                "thoughtsTokenCount": 30,
                "cachedContentTokenCount": 6,
                "totalTokenCount": 44,
            },
            "responseId": "abc",
        },
        "gemini-x",
    )
    openai.types.chat.ChatCompletion.model_validate(resp)
    assert resp["id"] == "chatcmpl-abc"
    assert resp["choices"][0]["message"]["content"] == "Forty-two."
    assert resp["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 34,
        "total_tokens": 44,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }


def test_blocked_prompt() -> None:
    resp = gemini_to_openai_response(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}},
        "g",
    )
    assert resp["choices"][0]["finish_reason"] == "content_filter"
    assert resp["choices"][0]["message"]["content"] is None
