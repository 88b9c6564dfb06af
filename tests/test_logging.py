"""Provider keys are masked anywhere in a logged string, through the real configuration."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog

from tests.logcapture import capture_logs, lines

KEYS = {
    "openai": ("sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL", "sk-***"),
    "openai project": ("sk-proj-Xy1_abcdefghijklmnopqrstuvwxyz-0123456789", "sk-proj-***"),
    "openai service": ("sk-svcacct-abcdefghijklmnopqrstuvwxyz0123", "sk-svcacct-***"),
    "anthropic": ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz_0123456789-AA", "sk-ant-***"),
    "google": ("AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW", "AIza***"),
    "parley": ("sk-parley-abcdefghijklmnopqrstuvwxyz012345", "sk-parley-***"),
}


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    with capture_logs(monkeypatch) as buffer:
        yield buffer


@pytest.mark.parametrize("kind", list(KEYS))
def test_provider_keys_are_masked_wherever_they_stand(log_output: io.StringIO, kind: str) -> None:
    key, masked = KEYS[kind]
    log = structlog.get_logger("parley.test")
    log.warning("upstream.refused", error=f"Incorrect API key provided: {key}.")
    log.info("nested", detail={"headers": [f"x-goog-api-key={key}"]}, note=f"({key})")
    logging.getLogger("uvicorn.error").warning("client sent %s in a query string", f"key={key}")

    output = log_output.getvalue()
    assert key not in output
    assert key[-12:] not in output  # not even a recognisable piece
    refused, nested, stdlib = lines(log_output)
    assert refused["error"] == f"Incorrect API key provided: {masked}."
    assert nested["detail"] == {"headers": [f"x-goog-api-key={masked}"]}
    assert nested["note"] == f"({masked})"
    assert stdlib["event"] == f"client sent key={masked} in a query string"


def test_words_that_only_look_alike_are_kept(log_output: io.StringIO) -> None:
    text = "task-queue risk-free sk-short AIza! scikit sk-learn"
    structlog.get_logger("parley.test").info("plain", note=text)
    assert lines(log_output)[0]["note"] == text
