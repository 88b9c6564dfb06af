"""Structured JSON logs; secrets are never passed to a logger, and common ones are masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any

import orjson
import structlog

_SECRET_KEYS = re.compile(r"(password|secret|token|authorization|api_key|cookie)", re.I)
# Parley's keys (sk-parley-), refresh tokens and invitations, OpenAI's keys (sk-, sk-proj-,
# sk-svcacct-, sk-admin-), Anthropic's (sk-ant-), Google's (AIza) and JWTs, anywhere in a
# string; the prefix stays, to tell which credential it was.
_SECRET_VALUES = re.compile(
    r"\b(sk-(?:parley-|ant-|proj-|svcacct-|admin-)?|rt_|inv_|AIza)[A-Za-z0-9_\-]{8,}"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.[^\s\"']+"
)


_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(password|secret|token|api_key|authorization)(\s*[=:]\s*)([^\s,;&]+)"
)


# One cheap look first: almost no logged string has anything to mask.
_HINTS = (
    "sk-",
    "aiza",
    "rt_",
    "inv_",
    "eyj",
    "password",
    "secret",
    "token",
    "api_key",
    "authorization",
)
_MAYBE_SECRET = re.compile("|".join(_HINTS), re.I)


def _maybe_secret(value: str) -> bool:
    if value.isascii():  # then lower() is exactly the regex's IGNORECASE, and far cheaper
        lowered = value.lower()
        return any(hint in lowered for hint in _HINTS)
    return _MAYBE_SECRET.search(value) is not None


# Values that cannot hold a secret, returned as they are without a look.
_PLAIN = (int, float, bool, type(None))


@lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    """Log keys are few and repeat on every line: decide each once."""
    return _SECRET_KEYS.search(key) is not None


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if not _maybe_secret(value):
            return value
        value = _SECRET_VALUES.sub(lambda m: (m.group(1) or "") + "***", value)
        return _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + m.group(2) + "***", value)
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {k: "***" if _secret_key(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _nothing_to_mask(event: MutableMapping[str, Any]) -> bool:
    """The common line: plain values under harmless keys, no hint of a secret in the text
    (looked for in all the strings at once; no hint spans the line break that joins them)."""
    texts = []
    for key, value in event.items():
        if key != "event" and _secret_key(key):
            return False
        if isinstance(value, str):
            texts.append(value)
        elif not isinstance(value, _PLAIN):
            return False
    return not _maybe_secret("\n".join(texts))


def _mask(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: secrets are never passed to a logger on purpose."""
    if _nothing_to_mask(event):
        return event
    for key, value in list(event.items()):
        if key != "event" and _secret_key(key):
            event[key] = "***"
        elif not isinstance(value, _PLAIN):
            event[key] = _scrub(value)
    return event


def _dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _mask, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, SQLAlchemy, asyncio) log through the standard library: same format.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _mask,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
