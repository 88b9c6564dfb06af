"""The pieces every translation shares."""

from __future__ import annotations

import base64

import pytest

from parley.gateway.formats.common import (
    effort_for_budget,
    parse_arguments,
    parse_data_url,
    tool_choice_of,
)


def test_data_urls() -> None:
    assert parse_data_url("data:image/PNG;base64,iVBO") == ("image/png", "iVBO")
    media_type, data = parse_data_url("data:,hello%20world")
    assert (media_type, base64.b64decode(data)) == ("text/plain", b"hello world")
    for not_data in ("https://x.test/a.png", "data:image/png;base64"):
        with pytest.raises(ValueError, match="data: URL"):
            parse_data_url(not_data)


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        (None, {}),
        ("  ", {}),
        ('{"city": "Paris"}', {"city": "Paris"}),
        ("[1, 2]", {"value": [1, 2]}),
        ('{"city": "Par', {"raw_arguments": '{"city": "Par'}),
    ],
)
def test_tool_call_arguments(text: str | None, arguments: dict[str, object]) -> None:
    assert parse_arguments(text) == arguments


def test_tool_choice() -> None:
    assert tool_choice_of(None) is None
    assert tool_choice_of("required") == ("required", None)
    assert tool_choice_of({"type": "function", "function": {"name": "f"}}) == ("function", "f")
    with pytest.raises(ValueError, match="name is required"):
        tool_choice_of({"type": "function", "function": {}})
    with pytest.raises(ValueError, match="must be 'auto'"):
        tool_choice_of("sometimes")


@pytest.mark.parametrize(
    ("budget", "effort"), [(0, "low"), (1024, "low"), (4096, "medium"), (16384, "high")]
)
def test_thinking_budget_to_effort(budget: int, effort: str) -> None:
    assert effort_for_budget(budget) == effort
