"""A deterministic offline provider for demos and tests: it answers by echoing the prompt."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
from collections.abc import AsyncIterator

from parley.gateway.providers.base import Deployment, Json, ProviderSettings
from parley.kit.ids import new_id
from parley.kit.tokens import content_text, count_messages, count_text


def mock_reply(request: Json) -> str:
    messages = request.get("messages") or []
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    text = content_text(last_user.get("content")) if last_user else ""
    return f"Mock reply: {text}" if text else "Mock reply."


def _tool_call(request: Json) -> Json | None:
    """When tools are offered and the last turn is the user's, call the first tool."""
    tools = request.get("tools") or []
    choice = request.get("tool_choice")
    messages = request.get("messages") or []
    if not tools or choice == "none" or not messages or messages[-1].get("role") != "user":
        return None
    fn = tools[0].get("function", {})
    if isinstance(choice, dict):
        fn = {"name": choice.get("function", {}).get("name", fn.get("name"))}
    arguments = '{"input": ' + _json_string(content_text(messages[-1].get("content"))) + "}"
    return {
        "id": "call_" + hashlib.sha256(arguments.encode()).hexdigest()[:24],
        "type": "function",
        "function": {"name": fn.get("name", "tool"), "arguments": arguments},
    }


def _json_string(text: str) -> str:
    import orjson

    return orjson.dumps(text).decode()


class MockProvider:
    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.delay_s = float(settings.options.get("delay_s", 0))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _usage(self, request: Json, deployment: Deployment, completion: str) -> Json:
        prompt = count_messages(request.get("messages") or [], deployment.model)
        completion_tokens = count_text(completion, deployment.model)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        }

    async def chat(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        call = _tool_call(request)
        n = int(request.get("n") or 1)
        text = mock_reply(request)
        message: Json = {"role": "assistant", "content": None if call else text}
        if call:
            message["tool_calls"] = [call]
        choices = [
            {
                "index": i,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if call else "stop",
            }
            for i in range(n)
        ]
        completion = call["function"]["arguments"] if call else text
        return {
            "id": "chatcmpl-" + new_id("mock")[5:],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": deployment.model,
            "choices": choices,
            "usage": self._usage(request, deployment, completion * n),
        }

    async def stream(
        self, request: Json, deployment: Deployment, *, timeout_s: float
    ) -> AsyncIterator[Json]:
        chunk_id = "chatcmpl-" + new_id("mock")[5:]
        created = int(time.time())

        n = int(request.get("n") or 1)

        def chunk(delta: Json, finish: str | None = None) -> Json:
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": deployment.model,
                "choices": [
                    {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
                    for i in range(n)
                ],
            }

        call = _tool_call(request)
        yield chunk({"role": "assistant", "content": ""})
        if call:
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            yield chunk(
                {
                    "tool_calls": [
                        {"index": 0, "function": {"arguments": call["function"]["arguments"]}}
                    ]
                }
            )
            completion = call["function"]["arguments"]
            yield chunk({}, "tool_calls")
        else:
            completion = mock_reply(request)
            for word in _words(completion):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                yield chunk({"content": word})
            yield chunk({}, "stop")
        usage = self._usage(request, deployment, completion * n)
        final = {**chunk({}), "choices": [], "usage": usage}
        yield final

    async def embed(self, request: Json, deployment: Deployment, *, timeout_s: float) -> Json:
        inputs = request["input"]
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        dims = int(request.get("dimensions") or 384)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(str(text), dims)}
            for i, text in enumerate(items)
        ]
        tokens = sum(count_text(str(t), deployment.model) for t in items)
        return {
            "object": "list",
            "data": data,
            "model": deployment.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]


def _vector(text: str, dims: int) -> list[float]:
    """A unit vector derived from the text's hash: equal texts embed equally."""
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(x / 2**31 - 1 for x in struct.unpack(">8I", digest))
        counter += 1
    values = values[:dims]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]
