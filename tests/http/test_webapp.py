"""The built web app at `/`: files, the index.html fallback for client routes, and the API
left alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from tests.support import FakeClock, assert_error

INDEX = "<!doctype html><html><body><div id=root></div>parley-web</body></html>"


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "app-1234.js").write_text("console.log('hi')")
    (root / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("outside")
    return root


async def _client(
    settings: Settings, clock: FakeClock, web_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock=clock, configure_logs=False, web_dir=web_dir)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as c:
            yield c


@pytest.fixture
async def web(settings: Settings, clock: FakeClock, dist: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(settings, clock, dist):
        yield c


@pytest.fixture
async def unbuilt(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(settings, clock, tmp_path / "missing"):
        yield c


async def test_index_and_client_routes_get_the_app(web: httpx.AsyncClient) -> None:
    for path in ("/", "/chat", "/chat/conv_123", "/settings/keys?x=1", "/index.html"):
        response = await web.get(path)
        assert response.status_code == 200, path
        assert response.text == INDEX
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-cache"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    head = await web.head("/chat")
    assert head.status_code == 200


async def test_static_files_and_their_caching(web: httpx.AsyncClient) -> None:
    asset = await web.get("/assets/app-1234.js")
    assert asset.status_code == 200
    assert asset.text == "console.log('hi')"
    assert "immutable" in asset.headers["cache-control"]
    icon = await web.get("/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["cache-control"] == "no-cache"


async def test_no_file_outside_the_build_is_served(web: httpx.AsyncClient) -> None:
    for path in ("/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt"):
        response = await web.get(path)
        assert "outside" not in response.text, path


async def test_api_paths_never_fall_back_to_the_app(web: httpx.AsyncClient) -> None:
    assert_error(await web.get("/v1/no-such-route"), 404, "not_found_error")
    assert_error(await web.get("/v1"), 404, "not_found_error")
    # A wrong method on an API route is still a 405, not the app.
    assert_error(await web.put("/v1/auth/login"), 405, "invalid_request_error")
    assert_error(await web.get("/v1/auth/login"), 405, "invalid_request_error")
    assert (await web.get("/healthz")).json() == {"status": "ok"}
    assert (await web.get("/openapi.json")).json()["info"]["title"] == "Parley"
    assert (await web.get("/docs")).status_code == 200
    # Other methods on app paths are not the app's.
    assert (await web.post("/chat")).status_code in (404, 405)


async def test_without_a_build_the_root_says_how_to_build(unbuilt: httpx.AsyncClient) -> None:
    root = await unbuilt.get("/")
    assert root.status_code == 200
    assert "make web" in root.text
    assert (await unbuilt.get("/chat")).status_code == 404
    assert (await unbuilt.get("/healthz")).status_code == 200
