"""The official `anthropic` SDK, pointed at Parley, works with any provider behind it."""

from __future__ import annotations

import anthropic
import httpx2  # the anthropic SDK's own HTTP client package
import pytest
from fastapi import FastAPI

from tests.gateway.fakes.openai_server import FakeOpenAI


@pytest.fixture
def claude(app: FastAPI, api_key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url="http://parley.test",
        http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)),
        max_retries=0,
    )


@pytest.fixture
def live_claude(live_url: str, api_key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=api_key, base_url=live_url, max_retries=0)


async def test_message_served_by_an_openai_provider(
    claude: anthropic.AsyncAnthropic, fake_openai: FakeOpenAI
) -> None:
    raw = await claude.messages.with_raw_response.create(
        model="gpt-4o-mini",
        max_tokens=100,
        system="You are terse.",
        messages=[{"role": "user", "content": "Hello"}],
    )
    message = await raw.parse()
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == fake_openai.reply
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == len(fake_openai.reply.split())
    assert raw.headers["x-parley-provider"] == "primary"
    sent = fake_openai.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["max_tokens"] == 100


async def test_a_pdf_document_reaches_an_openai_provider_as_a_file_part(
    claude: anthropic.AsyncAnthropic, fake_openai: FakeOpenAI
) -> None:
    message = await claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBE",
                        },
                        "title": "report.pdf",
                    },
                    {"type": "text", "text": "Summarise this."},
                ],
            }
        ],
    )
    assert message.content[0].type == "text"
    file_part, text_part = fake_openai.requests[-1]["messages"][0]["content"]
    assert file_part == {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "report.pdf"},
    }
    assert text_part == {"type": "text", "text": "Summarise this."}


async def test_streamed_message(
    live_claude: anthropic.AsyncAnthropic, fake_openai: FakeOpenAI
) -> None:
    async with live_claude.messages.stream(
        model="gpt-4o-mini", max_tokens=100, messages=[{"role": "user", "content": "Stream it"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == fake_openai.reply
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


async def test_tool_use(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(
        model="parley-mock",
        max_tokens=200,
        tools=[{"name": "search", "description": "Search", "input_schema": {"type": "object"}}],
        messages=[{"role": "user", "content": "cats"}],
    )
    tool_use = next(b for b in message.content if b.type == "tool_use")
    assert tool_use.name == "search"
    assert tool_use.input == {"input": "cats"}
    assert message.stop_reason == "tool_use"


async def test_streamed_tool_use(live_claude: anthropic.AsyncAnthropic) -> None:
    async with live_claude.messages.stream(
        model="parley-mock",
        max_tokens=200,
        tools=[{"name": "search", "input_schema": {"type": "object"}}],
        messages=[{"role": "user", "content": "dogs"}],
    ) as stream:
        final = await stream.get_final_message()
    tool_use = next(b for b in final.content if b.type == "tool_use")
    assert tool_use.input == {"input": "dogs"}


async def test_typed_errors(app: FastAPI, claude: anthropic.AsyncAnthropic) -> None:
    bad_key = anthropic.AsyncAnthropic(
        api_key="sk-parley-nope",
        base_url="http://parley.test",
        http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)),
        max_retries=0,
    )
    with pytest.raises(anthropic.AuthenticationError) as auth:
        await bad_key.messages.create(
            model="gpt-4o-mini", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert auth.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        await claude.messages.create(
            model="claude-nope", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError) as bad:
        await claude.messages.create(
            model="gpt-4o-mini", max_tokens=0, messages=[{"role": "user", "content": "x"}]
        )
    assert bad.value.body["error"]["param"] == "max_tokens"  # type: ignore[index]
