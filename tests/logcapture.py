"""The production log configuration, writing JSON lines to a buffer the test reads."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
import structlog

from parley.logging import configure_logging


@contextmanager
def capture_logs(monkeypatch: pytest.MonkeyPatch, *modules: ModuleType) -> Iterator[io.StringIO]:
    """`modules` hold a module-level `log`: it may have cached the earlier configuration's
    output on first use, so each gets a fresh logger of the same name."""
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("DEBUG", json=True)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(file=buffer),
        cache_logger_on_first_use=False,
    )
    # The standard library's records go through the same processors, into the buffer too.
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    for module in modules:
        monkeypatch.setattr(module, "log", structlog.get_logger(*module.log._logger_factory_args))
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
