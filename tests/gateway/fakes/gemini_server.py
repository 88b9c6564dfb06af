"""A fake Gemini API on loopback: `POST /v1beta/models/{model}:generateContent`,
`:streamGenerateContent?alt=sse` and `:batchEmbedContents`, key in `x-goog-api-key`.

Without a scripted reply it answers from the request: a `functionCall` of the allowed (or
first) function when tools are offered (mode not NONE) and the last user turn is text;
`Tool said: <response>` after a `functionResponse`; otherwise `Echo: <last user text>`.
`candidateCount` gives that many candidates, `maxOutputTokens` truncates to that many words
(MAX_TOKENS), and a positive `thinkingBudget` adds thought tokens (and a thought part when
`includeThoughts` is set).
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections import deque

from aiohttp import web

from tests.gateway.fakes import FakeServer, Json, approx_tokens, sse

STATUSES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
THOUGHT_TOKENS = 12


class FakeGemini(FakeServer):
    def __init__(self, api_key: str | None = "gm-test-key") -> None:
        super().__init__(api_key)
        self.replies: deque[Json] = deque()
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{spec}", self.models)

    def reply(self, parts: list[Json], finish_reason: str = "STOP", **usage: int) -> None:
        """Script the next answer's parts (one candidate), finishReason and usageMetadata."""
        self.replies.append({"parts": parts, "finishReason": finish_reason, "usage": usage})

    def error_body(self, status: int, message: str) -> Json:
        return {
            "error": {
                "code": status,
                "message": message,
                "status": STATUSES.get(status, "UNKNOWN"),
            }
        }

    async def models(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        if (early := await self.intercept(request)) is not None:
            return early
        if self.api_key and recorded.headers.get("x-goog-api-key") != self.api_key:
            return self.json(
                self.error_body(400, "API key not valid. Please pass a valid API key."), 400
            )
        model, _, method = request.match_info["spec"].partition(":")
        body = recorded.json
        if not isinstance(body, dict):
            return self.json(self.error_body(400, "Invalid JSON payload"), 400)
        if method == "generateContent":
            return await self.json_or_die(request, self._answer(model, body))
        if method == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return self.json(self.error_body(400, "the fake only streams with alt=sse"), 400)
            return await self.write_events(request, self._events(self._answer(model, body)))
        if method == "batchEmbedContents":
            return await self.json_or_die(request, self._embed(model, body))
        return self.json(self.error_body(404, f"unknown method {method}"), 404)

    # -- answers

    def _answer(self, model: str, body: Json) -> Json:
        config = body.get("generationConfig") or {}
        scripted = self.replies.popleft() if self.replies else None
        if scripted:
            candidates = [
                {
                    "content": {"role": "model", "parts": scripted["parts"]},
                    "finishReason": scripted["finishReason"],
                    "index": 0,
                }
            ]
        else:
            count = int(config.get("candidateCount") or 1)
            candidates = [self._candidate(body, config, i) for i in range(count)]
        budget = int((config.get("thinkingConfig") or {}).get("thinkingBudget") or 0)
        output = sum(approx_tokens(c["content"]["parts"]) for c in candidates)
        usage: Json = {
            "promptTokenCount": approx_tokens(body.get("contents")),
            "candidatesTokenCount": output,
        }
        if budget > 0:
            usage["thoughtsTokenCount"] = THOUGHT_TOKENS
        if scripted:
            usage.update(scripted["usage"])
        usage["totalTokenCount"] = (
            usage["promptTokenCount"]
            + usage["candidatesTokenCount"]
            + usage.get("thoughtsTokenCount", 0)
        )
        return {
            "candidates": candidates,
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": f"resp{next(self._ids):04d}",
        }

    def _candidate(self, body: Json, config: Json, index: int) -> Json:
        parts: list[Json] = []
        thinking = config.get("thinkingConfig") or {}
        if int(thinking.get("thinkingBudget") or 0) > 0 and thinking.get("includeThoughts"):
            parts.append({"text": "Thinking about it.", "thought": True})
        contents = body.get("contents") or []
        last = contents[-1] if contents else {}
        texts = [p["text"] for p in last.get("parts") or [] if "text" in p]
        responses = [
            p["functionResponse"] for p in last.get("parts") or [] if "functionResponse" in p
        ]
        declarations = [
            d for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []
        ]
        calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        if declarations and calling.get("mode", "AUTO") != "NONE" and texts and not responses:
            allowed = calling.get("allowedFunctionNames") or [declarations[0]["name"]]
            parts.append({"functionCall": {"name": allowed[0], "args": {"query": " ".join(texts)}}})
            return {
                "content": {"role": "model", "parts": parts},
                "finishReason": "STOP",
                "index": index,
            }
        if responses:
            text = f"Tool said: {responses[0].get('response')}"
        else:
            text = f"Echo: {' '.join(texts)}" + (f" #{index}" if index else "")
        words = text.split(" ")
        finish = "STOP"
        limit = config.get("maxOutputTokens")
        if limit is not None and len(words) > int(limit):
            words, finish = words[: int(limit)], "MAX_TOKENS"
        parts.append({"text": " ".join(words)})
        return {
            "content": {"role": "model", "parts": parts},
            "finishReason": finish,
            "index": index,
        }

    def _events(self, answer: Json) -> list[bytes]:
        """Text streamed a few words per event; the last event has finishReason and usage."""
        events: list[bytes] = []
        head = {"modelVersion": answer["modelVersion"], "responseId": answer["responseId"]}
        prompt_only = {
            "promptTokenCount": answer["usageMetadata"]["promptTokenCount"],
            "totalTokenCount": answer["usageMetadata"]["promptTokenCount"],
        }
        for candidate in answer["candidates"]:
            pieces: list[Json] = []
            for part in candidate["content"]["parts"]:
                if "text" in part and not part.get("thought"):
                    words = part["text"].split(" ")
                    pieces += [
                        {"text": " ".join(words[i : i + 2]) + (" " if i + 2 < len(words) else "")}
                        for i in range(0, len(words), 2)
                    ]
                else:
                    pieces.append(part)
            for number, piece in enumerate(pieces):
                last = number == len(pieces) - 1
                streamed: Json = {
                    "content": {"role": "model", "parts": [piece]},
                    "index": candidate["index"],
                }
                if last:
                    streamed["finishReason"] = candidate["finishReason"]
                events.append(
                    sse(
                        {
                            "candidates": [streamed],
                            "usageMetadata": answer["usageMetadata"] if last else prompt_only,
                            **head,
                        }
                    )
                )
        return events

    def _embed(self, model: str, body: Json) -> Json:
        embeddings = []
        for item in body.get("requests") or []:
            if item.get("model") != f"models/{model}":
                raise web.HTTPBadRequest(text="each request's model must match the URL's")
            text = " ".join(p.get("text", "") for p in item["content"]["parts"])
            dims = int(item.get("outputDimensionality") or 768)
            embeddings.append({"values": _vector(text, dims)})
        return {"embeddings": embeddings}


def _vector(text: str, dims: int) -> list[float]:
    values: list[float] = []
    for counter in itertools.count():
        if len(values) >= dims:
            break
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(x / 2**31 - 1 for x in struct.unpack(">8I", digest))
    values = values[:dims]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]
