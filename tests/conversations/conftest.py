"""Conversation fixtures: a config with the offline mock, a slow mock (for cancels), and a
small-window model served by a fake OpenAI-compatible upstream that records every call.

- parley-mock   answers "Mock reply: <last user message>" at once
- slow-mock     the same, one word every 50 ms
- tiny          a 1,024-token window (256 kept for the reply), on the fake upstream, also
                the model that writes summaries
- premium-chat  the mock on the premium tier (paid plans only)
The fake upstream answers summary requests like a careful summarizer would: it keeps every
line that states a fact (`FACT: ...`), from the earlier summary and from the new messages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from parley.config import Settings
from parley.conversations.context import SUMMARIZER_INSTRUCTIONS
from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.support import ROOMY_PLANS

TINY_WINDOW = 1024
TINY_RESERVE = 256
FACT = re.compile(r"FACT: [^\n]*?[.](?=\s|$)")


def fake_reply(body: dict[str, Any]) -> str:
    messages = body["messages"]
    if messages and messages[0]["content"] == SUMMARIZER_INSTRUCTIONS:
        facts = dict.fromkeys(FACT.findall(messages[-1]["content"]))
        return "\n".join(facts) or "Nothing of note yet."
    return f"Noted ({len(messages)} messages seen)."


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(respond=fake_reply)
    await server.start()
    yield server
    await server.stop()


def conversations_config(upstream_url: str) -> dict[str, Any]:
    tiny = {
        "tier": "basic",
        "context_window": TINY_WINDOW,
        "max_output_tokens": 512,
        "reply_reserve": TINY_RESERVE,
        "deployments": [{"provider": "upstream", "model": "fake-tiny", "max_retries": 0}],
    }
    return {
        "providers": {
            "mock": {"type": "mock"},
            "slow": {"type": "mock", "options": {"delay_s": 0.05}},
            "upstream": {
                "type": "openai",
                "base_url": upstream_url,
                "api_key": "sk-upstream",
                "timeout_s": 5,
            },
        },
        "models": {
            "parley-mock": {
                "tier": "basic",
                "deployments": [{"provider": "mock", "model": "parley-mock"}],
            },
            "slow-mock": {
                "tier": "basic",
                "deployments": [{"provider": "slow", "model": "slow-mock"}],
            },
            "tiny": tiny,
            "premium-chat": {
                "tier": "premium",
                "deployments": [{"provider": "mock", "model": "parley-mock"}],
            },
        },
        "conversations": {"summary_model": "tiny", "summary_max_tokens": 200},
        "plans": ROOMY_PLANS,
    }


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], tmp_path: Path, upstream: FakeOpenAI
) -> Settings:
    path = tmp_path / "parley.yaml"
    path.write_text(yaml.safe_dump(conversations_config(upstream.url)))
    return make_settings(config=path, usage_flush_s=0.05)
