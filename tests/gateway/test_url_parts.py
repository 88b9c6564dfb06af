"""URLs in message parts: only data: URLs and https URLs of public hosts reach a provider."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.config import Settings
from parley.gateway.url_parts import url_fields
from tests.gateway.fakes.openai_server import FakeOpenAI
from tests.support import assert_error

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
)
PUBLIC = "https://93.184.215.14/cat.png"  # a literal public address: no lookup needed


@pytest.fixture
def settings(make_settings: Callable[..., Settings], gateway_yaml: Path) -> Settings:
    return make_settings(
        config=gateway_yaml, usage_flush_s=0.05, allowed_fetch_hosts=["images.internal"]
    )


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


async def chat(
    client: httpx.AsyncClient, api_key: str, *parts: Any, **extra: Any
) -> httpx.Response:
    messages = [
        {"role": "system", "content": "Describe images."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, *parts]},
    ]
    return await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": messages, **extra},
        headers={"Authorization": f"Bearer {api_key}"},
    )


@pytest.mark.parametrize(
    ("part", "param", "reason"),
    [
        (image("https://127.0.0.1:8080/x.png"), "image_url.url", "127.0.0.1 is a private"),
        (image("https://localhost/x.png"), "image_url.url", "localhost resolves to a private"),
        (image("https://169.254.169.254/latest/meta-data/"), "image_url.url", "is a private"),
        (image("https://[fd00:ec2::254]/"), "image_url.url", "is a private"),
        (image("http://93.184.215.14/cat.png"), "image_url.url", "http: URLs are not fetched"),
        (image("gs://operator-bucket/secret.png"), "image_url.url", "gs: URLs are not fetched"),
        (image("file:///etc/passwd"), "image_url.url", "file: URLs are not fetched"),
        (
            {"type": "file", "file": {"file_data": "https://10.0.0.5/report.pdf"}},
            "file.file_data",
            "is a private",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": "gs://bucket/a.wav", "format": "wav"}},
            "input_audio.data",
            "gs: URLs are not fetched",
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_inner_and_unfetchable_urls_are_refused_before_any_provider(
    client: httpx.AsyncClient,
    api_key: str,
    fake_openai: FakeOpenAI,
    fake_backup: FakeOpenAI,
    part: dict[str, Any],
    param: str,
    reason: str,
    stream: bool,
) -> None:
    response = await chat(client, api_key, image(PNG), part, stream=stream)
    error = assert_error(response, 400, "invalid_request_error", "url_not_allowed")
    assert error["param"] == f"messages[1].content[2].{param}"
    assert reason in error["message"]
    assert (fake_openai.requests, fake_backup.requests) == ([], [])


async def test_data_urls_public_https_and_allowed_hosts_reach_the_provider(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI
) -> None:
    parts = [
        image(PNG),
        image(PUBLIC),
        image("https://images.internal/logo.png"),  # PARLEY_ALLOWED_FETCH_HOSTS
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        },
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]
    response = await chat(client, api_key, *parts)
    assert response.status_code == 200, response.text
    (sent,) = fake_openai.requests
    assert sent["messages"][1]["content"][1:] == parts


async def test_the_first_refused_part_is_named(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI
) -> None:
    response = await chat(
        client, api_key, image(PUBLIC), image("https://10.9.8.7/a.png"), image("gs://b/c")
    )
    error = assert_error(response, 400, "invalid_request_error", "url_not_allowed")
    assert error["param"] == "messages[1].content[2].image_url.url"
    assert fake_openai.requests == []


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_url_sources_on_v1_messages_are_checked_too(
    client: httpx.AsyncClient, api_key: str, fake_openai: FakeOpenAI, stream: bool
) -> None:
    def ask(url: str) -> dict[str, Any]:
        return {
            "model": "gpt-4o-mini",
            "max_tokens": 50,
            "stream": stream,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "url", "url": url}},
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        }

    headers = {"x-api-key": api_key, "anthropic-version": "2023-06-01"}
    refused = await client.post("/v1/messages", json=ask("https://[::1]/x.png"), headers=headers)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "url_not_allowed"
    assert body["error"]["param"] == "messages[0].content[0].image_url.url"
    assert fake_openai.requests == []

    answered = await client.post("/v1/messages", json=ask(PUBLIC), headers=headers)
    assert answered.status_code == 200, answered.text
    (sent,) = fake_openai.requests
    assert sent["messages"][0]["content"][0] == image(PUBLIC)


def test_every_field_that_may_hold_a_url_is_found() -> None:
    request = {
        "messages": [
            {"role": "user", "content": "https://127.0.0.1/ in plain text is only text"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see https://10.0.0.1/x and data:,x"},
                    {"type": "image_url", "image_url": "https://a.test/1.png"},
                    {"type": "input_image", "image_url": "https://a.test/2.png"},
                    {"type": "input_file", "file_url": "https://a.test/3.pdf", "file_data": "JVBE"},
                    {"type": "video_url", "video_url": {"url": "gs://b/4.mp4"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "file", "file": {"file_data": PNG, "file_id": "file-abc"}},
                ],
            },
        ]
    }
    assert url_fields(request) == [
        ("messages[1].content[1].image_url", "https://a.test/1.png"),
        ("messages[1].content[2].image_url", "https://a.test/2.png"),
        ("messages[1].content[3].file_url", "https://a.test/3.pdf"),
        ("messages[1].content[4].video_url.url", "gs://b/4.mp4"),
        ("messages[1].content[6].file.file_data", PNG),
    ]
    assert url_fields({"messages": [{"role": "user", "content": "hello"}]}) == []
