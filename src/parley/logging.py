"""Structured JSON logs; secrets are never passed to a logger, and common ones are masked."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(password|secret|token|authorization|api_key|cookie)", re.I)
_SECRET_VALUES = re.compile(
    r"\b(sk-parley-|rt_|inv_)[A-Za-z0-9_\-]{8,}|eyJ[A-Za-z0-9_\-]{10,}\.[^\s\"']+"
)


def _mask(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and key != "event":
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = _SECRET_VALUES.sub(
                lambda m: m.group(1) + "***" if m.group(1) else "***", value
            )
    return event


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _mask,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
