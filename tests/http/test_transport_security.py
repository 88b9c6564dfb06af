"""What a browser is told about transport: the page may open WebSockets to its own origin
only, HSTS when Parley is reached over https, and the refresh cookie's Secure flag."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from tests.support import PASSWORD, FakeClock, unique_email

COOKIE = "parley_refresh"


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><div id=root></div>")
    return root


Browse = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def browse(
    make_settings: Callable[..., Settings], clock: FakeClock, dist: Path, redis_cleanup: None
) -> Browse:
    """An app serving the web build, seen at `base_url`; keyword arguments are settings."""

    @asynccontextmanager
    async def open_app(base_url: str, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        settings = make_settings(run_worker=False, **overrides)
        app = create_app(settings, clock=clock, configure_logs=False, web_dir=dist)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                yield client

    return open_app


def connect_src(response: httpx.Response) -> list[str]:
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    return directives["connect-src"].split()


def refresh_cookie(response: httpx.Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for raw in response.headers.get_list("set-cookie"):
        jar.load(raw)
    assert COOKIE in jar, response.headers
    return jar


async def test_the_page_opens_websockets_to_its_own_origin_only(browse: Browse) -> None:
    async with browse("http://parley.test:8080") as web:
        page = await web.get("/chat")
        assert page.status_code == 200
        assert connect_src(page) == ["'self'", "ws://parley.test:8080"]
    async with browse("https://chat.example.com", public_url="https://chat.example.com") as web:
        page = await web.get("/")
        assert connect_src(page) == ["'self'", "wss://chat.example.com"]
    # A Host that is not a plain host name names nothing more than 'self'.
    async with browse("http://parley.test") as web:
        page = await web.get("/", headers={"host": "evil.example; script-src *"})
        assert connect_src(page) == ["'self'"]
        assert "script-src *" not in page.headers["content-security-policy"]


async def test_hsts_when_reached_over_https(browse: Browse) -> None:
    async with browse("http://parley.test", public_url="http://parley.test") as web:
        for path in ("/", "/healthz", "/v1/billing/plans"):
            assert "strict-transport-security" not in (await web.get(path)).headers, path
    # Behind a TLS-terminating proxy: the public URL says https, the hop is plain http.
    async with browse("http://parley.test", public_url="https://parley.example") as web:
        for path in ("/", "/healthz", "/v1/billing/plans", "/v1/nothing-here"):
            response = await web.get(path)
            assert response.headers["strict-transport-security"] == "max-age=31536000", path
    # Served over https directly, whatever the public URL says.
    async with browse("https://parley.test", public_url="") as web:
        response = await web.get("/healthz")
        assert response.headers["strict-transport-security"] == "max-age=31536000"


@pytest.mark.parametrize(
    ("public_url", "secure"),
    [
        ("http://parley.test", False),
        ("https://parley.example", True),
        ("HTTPS://Parley.Example/", True),
    ],
)
async def test_the_refresh_cookie_is_secure_when_the_public_url_is_https(
    browse: Browse, public_url: str, secure: bool
) -> None:
    async with browse("http://parley.test", public_url=public_url) as web:
        registered = await web.post(
            "/v1/auth/register", json={"email": unique_email(), "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        assert bool(refresh_cookie(registered)[COOKIE]["secure"]) is secure
        logout = await web.post("/v1/auth/logout")
        assert bool(refresh_cookie(logout)[COOKIE]["secure"]) is secure
