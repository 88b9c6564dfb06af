"""The Gemini provider's translation: OpenAI chat and embedding requests to Gemini's
generateContent and batchEmbedContents, and Gemini's answers (plain and streamed) back to the
OpenAI shape."""

from __future__ import annotations

import base64
import mimetypes
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from parley.gateway.errors import UpstreamError
from parley.gateway.formats.common import (
    THINKING_BUDGETS,
    assistant_message,
    completion_chunk,
    file_data_url,
    function_tools,
    image_url_of,
    max_tokens_of,
    merge_turn,
    openai_tool_call,
    parse_arguments,
    parse_data_url,
    stop_sequences,
    tool_choice_of,
    usage_chunk,
)
from parley.gateway.formats.common import openai_usage as usage_json
from parley.gateway.providers.base import Json
from parley.kit.ids import new_id
from parley.kit.tokens import count_text

# Gemini also takes `none` (thinking off) and `minimal`.
_BUDGETS = {"none": 0, "minimal": THINKING_BUDGETS["low"], **THINKING_BUDGETS}
_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)

# The fields of Gemini's Schema object (an OpenAPI 3.0 subset); JSON Schema's others are dropped.
_SCHEMA_KEYS = frozenset(
    {
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "propertyOrdering",
        "default",
        "minimum",
        "maximum",
    }
)


def model_path(model: str) -> str:
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def _call_id() -> str:
    return "call_" + new_id("x")[2:]


# ------------------------------------------------------------------------ schemas


def gemini_schema(schema: Any, *, _defs: Json | None = None, _depth: int = 0) -> Json:
    """A Gemini Schema for a JSON Schema: `$ref`s inlined, types upper-cased, extras dropped."""
    if not isinstance(schema, dict):
        return {}
    if _defs is None:
        _defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    if _depth > 16:
        return {"type": "OBJECT"}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _defs.get(ref.rsplit("/", 1)[-1])
        merged = {**(target or {}), **{k: v for k, v in schema.items() if k != "$ref"}}
        return gemini_schema(merged, _defs=_defs, _depth=_depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        merged = {**all_of[0], **{k: v for k, v in schema.items() if k != "allOf"}}
        return gemini_schema(merged, _defs=_defs, _depth=_depth + 1)

    out: Json = {k: v for k, v in schema.items() if k in _SCHEMA_KEYS}
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        kind = kinds[0] if kinds else None
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind.upper()
    if "const" in schema and "enum" not in out:
        out["enum"] = [schema["const"]]
    if "enum" in out:
        out["enum"] = [str(v) for v in out["enum"] if v is not None]
        out.setdefault("type", "STRING")
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {
            name: gemini_schema(sub, _defs=_defs, _depth=_depth + 1)
            for name, sub in schema["properties"].items()
        }
        out.setdefault("type", "OBJECT")
    if isinstance(schema.get("required"), list):
        out["required"] = list(schema["required"])
    if isinstance(schema.get("items"), dict):
        out["items"] = gemini_schema(schema["items"], _defs=_defs, _depth=_depth + 1)
        out.setdefault("type", "ARRAY")
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        non_null = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
        if len(non_null) < len(variants):
            out["nullable"] = True
        if len(non_null) == 1:
            out.update(gemini_schema(non_null[0], _defs=_defs, _depth=_depth + 1))
        else:
            out["anyOf"] = [gemini_schema(v, _defs=_defs, _depth=_depth + 1) for v in non_null]
    return out


# ----------------------------------------------------------------------- requests


def _media_part(url: str, fallback_type: str) -> Json:
    if url.startswith("data:"):
        mime_type, data = parse_data_url(url)
        return {"inlineData": {"mimeType": mime_type, "data": data}}
    # Not gs: URIs: Gemini would read them with the operator's credentials.
    if url.startswith("https://"):
        mime_type = mimetypes.guess_type(url.split("?", 1)[0])[0] or fallback_type
        return {"fileData": {"mimeType": mime_type, "fileUri": url}}
    raise ValueError("image_url.url must be an https URL or a data: URL")


def _parts(content: Any) -> list[Json]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[Json] = []
    for part in content:
        if not isinstance(part, dict):
            raise ValueError("message content parts must be objects")
        kind = part.get("type")
        if kind in ("text", "input_text"):
            if part.get("text"):
                parts.append({"text": str(part["text"])})
        elif kind == "image_url":
            parts.append(_media_part(image_url_of(part), "image/jpeg"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            fmt = str(audio.get("format") or "wav")
            parts.append(
                {"inlineData": {"mimeType": f"audio/{fmt}", "data": audio.get("data", "")}}
            )
        elif kind == "file":
            parts.append(_media_part(file_data_url(part, "gemini"), "application/octet-stream"))
        elif kind == "refusal":
            continue
        else:
            raise ValueError(f"content part type {kind!r} is not supported by gemini")
    return parts


def _text(content: Any) -> str:
    return "\n".join(p["text"] for p in _parts(content) if "text" in p)


def _function_response(content: Any) -> Json:
    text = _text(content)
    try:
        value = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        value = text
    return value if isinstance(value, dict) else {"result": value}


def _tool_config(choice: Any) -> Json | None:
    chosen = tool_choice_of(choice)
    if chosen is None:
        return None
    mode, name = chosen
    if mode == "function":
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return {"functionCallingConfig": {"mode": _MODES[mode]}}


def openai_to_gemini_request(req: Json) -> Json:
    """A generateContent body for an OpenAI chat request.

    Roles: system/developer -> `systemInstruction`, assistant -> `model`, tool results ->
    user `functionResponse` parts (named after the call they answer). Images and files with
    data: URLs become `inlineData`; https URLs become `fileData` with a MIME type guessed
    from the URL. JSON modes set `responseMimeType` (and `responseSchema`, converted to
    Gemini's OpenAPI subset); `reasoning_effort` sets `thinkingConfig.thinkingBudget`
    (none 0, minimal/low 1024, medium 4096, high 16384). `logprobs`, `logit_bias` and
    `parallel_tool_calls` are dropped.
    """
    system: list[str] = []
    contents: list[Json] = []
    call_names: dict[str, str] = {}
    for message in req.get("messages") or []:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text(content)
            if text:
                system.append(text)
        elif role == "user":
            merge_turn(contents, "user", _parts(content), "parts")
        elif role == "assistant":
            parts = _parts(content)
            for call in message.get("tool_calls") or []:
                fn = call.get("function") or {}
                name = str(fn.get("name", ""))
                call_names[str(call.get("id", ""))] = name
                args = parse_arguments(fn.get("arguments"))
                parts.append({"functionCall": {"name": name, "args": args}})
            merge_turn(contents, "model", parts, "parts")
        elif role == "tool":
            call_id = str(message.get("tool_call_id", ""))
            name = call_names.get(call_id) or str(message.get("name") or "tool")
            response = _function_response(content)
            function_response = {"functionResponse": {"name": name, "response": response}}
            merge_turn(contents, "user", [function_response], "parts")
        else:
            raise ValueError(f"message role {role!r} is not supported by gemini")

    body: Json = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}

    declarations = []
    for fn in function_tools(req, "gemini"):
        declaration: Json = {"name": fn.get("name", "")}
        if fn.get("description"):
            declaration["description"] = fn["description"]
        parameters = gemini_schema(fn.get("parameters"))
        if parameters.get("properties"):
            declaration["parameters"] = parameters
        declarations.append(declaration)
    if declarations:
        body["tools"] = [{"functionDeclarations": declarations}]
        config = _tool_config(req.get("tool_choice"))
        if config:
            body["toolConfig"] = config

    generation: Json = {}
    if req.get("temperature") is not None:
        generation["temperature"] = req["temperature"]
    if req.get("top_p") is not None:
        generation["topP"] = req["top_p"]
    max_tokens = max_tokens_of(req)
    if max_tokens:
        generation["maxOutputTokens"] = int(max_tokens)
    stop = req.get("stop")
    if stop:
        generation["stopSequences"] = stop_sequences(stop)
    if int(req.get("n") or 1) > 1:
        generation["candidateCount"] = int(req["n"])
    if req.get("seed") is not None:
        generation["seed"] = int(req["seed"])
    if req.get("presence_penalty"):
        generation["presencePenalty"] = req["presence_penalty"]
    if req.get("frequency_penalty"):
        generation["frequencyPenalty"] = req["frequency_penalty"]
    response_format = req.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_object":
            generation["responseMimeType"] = "application/json"
        elif response_format.get("type") == "json_schema":
            generation["responseMimeType"] = "application/json"
            schema = (response_format.get("json_schema") or {}).get("schema")
            if schema:
                generation["responseSchema"] = gemini_schema(schema)
    effort = req.get("reasoning_effort")
    if effort is not None:
        budget = _BUDGETS.get(str(effort).lower())
        if budget is None:
            raise ValueError("reasoning_effort must be none, minimal, low, medium or high")
        generation["thinkingConfig"] = {"thinkingBudget": budget}
    if generation:
        body["generationConfig"] = generation
    return body


# ------------------------------------------------------------------------ answers


def finish_reason(reason: str | None, has_calls: bool) -> str:
    if reason in _FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if has_calls else "stop"


def openai_usage(meta: Json | None) -> Json:
    """OpenAI usage for Gemini `usageMetadata`; completion tokens include thinking tokens."""
    meta = meta or {}
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    cached = int(meta.get("cachedContentTokenCount") or 0)
    return usage_json(prompt, completion, cached=cached, reasoning=thoughts)


def _candidate_output(candidate: Json) -> tuple[list[str], list[Json]]:
    texts: list[str] = []
    calls: list[Json] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue
        if "text" in part:
            texts.append(str(part["text"]))
        elif "functionCall" in part:
            call = part["functionCall"] or {}
            call_id = str(call.get("id") or _call_id())
            calls.append(openai_tool_call(call_id, str(call.get("name", "")), call.get("args")))
    return texts, calls


def _completion_id(resp: Json) -> str:
    return "chatcmpl-" + str(resp.get("responseId") or new_id("x")[2:])


def gemini_to_openai_response(resp: Json, model: str) -> Json:
    """A `chat.completion` for a GenerateContentResponse; thought parts are left out."""
    choices: list[Json] = []
    for position, candidate in enumerate(resp.get("candidates") or []):
        texts, calls = _candidate_output(candidate)
        choices.append(
            {
                "index": int(candidate.get("index", position)),
                "message": assistant_message(texts, calls),
                "logprobs": None,
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
            }
        )
    if not choices:
        # The prompt itself was blocked (promptFeedback.blockReason): no candidates at all.
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": None},
                "logprobs": None,
                "finish_reason": "content_filter",
            }
        )
    choices.sort(key=lambda c: int(c["index"]))
    return {
        "id": _completion_id(resp),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": openai_usage(resp.get("usageMetadata")),
    }


def stream_error(data: Json) -> UpstreamError | None:
    error = data.get("error")
    if not isinstance(error, dict):
        return None
    code = error.get("code")
    status = int(code) if isinstance(code, int) and code >= 400 else 500
    return UpstreamError(str(error.get("message") or "gemini stream error"), status=status)


async def gemini_stream_to_openai_chunks(
    events: AsyncIterator[Json], model: str
) -> AsyncIterator[Json]:
    """`chat.completion.chunk` dicts for streamed GenerateContentResponses.

    Per candidate: a role chunk, text deltas, whole function calls as tool_calls deltas
    (Gemini does not split arguments) and a finish_reason chunk; then a last chunk with empty
    `choices` and `usage`. Input that ends before every candidate finished raises
    UpstreamError(kind="connect"); an `error` payload raises UpstreamError with its code.
    """
    chunk_id: str | None = None
    created = int(time.time())
    usage_meta: Json | None = None
    started: set[int] = set()
    finished: set[int] = set()
    calls: dict[int, int] = {}

    def chunk(index: int, delta: Json, finish: str | None = None) -> Json:
        return completion_chunk(chunk_id, created, model, delta, finish, index=index)

    async for data in events:
        error = stream_error(data)
        if error is not None:
            raise error
        if chunk_id is None:
            chunk_id = _completion_id(data)
        if data.get("usageMetadata"):
            usage_meta = data["usageMetadata"]
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            yield chunk(0, {"role": "assistant", "content": ""})
            yield chunk(0, {}, "content_filter")
            started.add(0)
            finished.add(0)
            continue
        for position, candidate in enumerate(candidates):
            index = int(candidate.get("index", position))
            if index not in started:
                started.add(index)
                yield chunk(index, {"role": "assistant", "content": ""})
            texts, new_calls = _candidate_output(candidate)
            text = "".join(texts)
            if text:
                yield chunk(index, {"content": text})
            for call in new_calls:
                call_index = calls.get(index, 0)
                calls[index] = call_index + 1
                yield chunk(index, {"tool_calls": [{"index": call_index, **call}]})
            if candidate.get("finishReason"):
                finished.add(index)
                reason = finish_reason(candidate["finishReason"], calls.get(index, 0) > 0)
                yield chunk(index, {}, reason)
    if not finished or finished != started:
        raise UpstreamError("gemini ended the stream before it finished", kind="connect")
    yield usage_chunk(chunk_id, created, model, openai_usage(usage_meta))


# --------------------------------------------------------------------- embeddings


def embedding_inputs(req: Json) -> list[str]:
    inputs = req.get("input")
    items = [inputs] if isinstance(inputs, str) else list(inputs or [])
    if not items or not all(isinstance(item, str) for item in items):
        raise ValueError("gemini embeddings take a string or a list of strings as input")
    return items


def openai_to_gemini_embed_request(req: Json, model: str) -> Json:
    """A batchEmbedContents body; `dimensions` -> `outputDimensionality`."""
    requests = []
    for text in embedding_inputs(req):
        item: Json = {"model": model_path(model), "content": {"parts": [{"text": text}]}}
        if req.get("dimensions"):
            item["outputDimensionality"] = int(req["dimensions"])
        requests.append(item)
    return {"requests": requests}


def gemini_to_openai_embeddings(resp: Json, req: Json, model: str) -> Json:
    """An OpenAI embeddings `list`; Gemini reports no usage, so tokens are estimated."""
    base64_out = req.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(resp.get("embeddings") or []):
        values = [float(v) for v in item.get("values") or []]
        embedding: Any = values
        if base64_out:
            embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(count_text(text, model) for text in embedding_inputs(req))
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
