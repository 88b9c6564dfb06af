"""Structured JSON logs; secrets are never passed to a logger, and common ones are masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

_SECRET_KEYS = re.compile(r"(password|secret|token|authorization|api_key|cookie)", re.I)
_SECRET_VALUES = re.compile(
    r"\b(sk-parley-|rt_|inv_)[A-Za-z0-9_\-]{8,}|eyJ[A-Za-z0-9_\-]{10,}\.[^\s\"']+"
)


_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(password|secret|token|api_key|authorization)(\s*[=:]\s*)([^\s,;&]+)"
)


# One cheap search first: almost no logged string has anything to mask.
_MAYBE_SECRET = re.compile(
    r"sk-parley-|rt_|inv_|eyJ|password|secret|token|api_key|authorization", re.I
)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if not _MAYBE_SECRET.search(value):
            return value
        value = _SECRET_VALUES.sub(lambda m: (m.group(1) or "") + "***", value)
        return _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + m.group(2) + "***", value)
    if isinstance(value, dict):
        return {k: "***" if _SECRET_KEYS.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _mask(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: secrets are never passed to a logger on purpose."""
    for key, value in list(event.items()):
        if key != "event" and _SECRET_KEYS.search(key):
            event[key] = "***"
        else:
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
