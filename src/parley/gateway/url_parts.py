"""The URLs in a chat request's message parts (images, files, audio...). A provider fetches
them on the tenant's behalf, so each one is checked before any provider sees the request:
`data:` URLs pass, `https:` URLs must reach a public host, anything else is refused."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from parley.errors import InvalidRequest
from parley.gateway.providers.base import Json
from parley.kit.netguard import FetchGuard, UnsafeUrl

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# `image_url.url`, `input_image.image_url`, `file.file_data`, `input_file.file_url`,
# `input_audio.data`, `video_url.url`...: any of these may hold a URL.
_URL_KEYS = frozenset({"url", "uri", "data", "file_data"})
_URL_SUFFIXES = ("_url", "_uri", "Url", "Uri")


def _holds_url(key: str, value: str) -> bool:
    # Base64 never contains ":", so raw inline data is not mistaken for a URL.
    return (key in _URL_KEYS or key.endswith(_URL_SUFFIXES)) and _SCHEME.match(value) is not None


def _collect(value: Any, path: str, found: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, str):
                if _holds_url(key, inner):
                    found.append((f"{path}.{key}", inner))
            else:
                _collect(inner, f"{path}.{key}", found)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _collect(inner, f"{path}[{index}]", found)


def url_fields(request: Json) -> list[tuple[str, str]]:
    """`(param, URL)` for every URL in the parts of the request's messages."""
    found: list[tuple[str, str]] = []
    messages = request.get("messages")
    if not isinstance(messages, list):
        return found
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # plain-text messages cost nothing more
            for j, part in enumerate(content):
                _collect(part, f"messages[{i}].content[{j}]", found)
    return found


async def check_url_parts(request: Json, guard: FetchGuard) -> None:
    """Raise InvalidRequest naming the first part whose URL may not be fetched."""
    fields = url_fields(request)
    if not fields:
        return
    remote = list(dict.fromkeys(url for _, url in fields if url[:5].lower() != "data:"))
    if not remote:
        return  # inline data only: nothing to resolve
    verdicts = await asyncio.gather(*(guard.check(url) for url in remote), return_exceptions=True)
    refused: dict[str, UnsafeUrl] = {}
    for url, verdict in zip(remote, verdicts, strict=True):
        if isinstance(verdict, UnsafeUrl):
            refused[url] = verdict
        elif isinstance(verdict, BaseException):
            raise verdict
    for param, url in fields:
        if url in refused:
            raise InvalidRequest(
                f"{param} is refused: {refused[url]}. Message parts take data: URLs, or https "
                "URLs of public hosts.",
                code="url_not_allowed",
                param=param,
            )
