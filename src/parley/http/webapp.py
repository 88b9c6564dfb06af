"""The web app's built files (web/dist) at `/`, with index.html for its client-side routes.

It is the router's fallback: a request reaches it only when no API route matched its path
at all (a wrong method on an API path still gets its 405). API paths never fall back to
index.html: an unknown /v1/... stays a JSON 404.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import Receive, Scope, Send

import parley

_API_PREFIXES = ("/v1/", "/docs/", "/redoc/")
_API_PATHS = {"/v1", "/openapi.json", "/docs", "/redoc", "/healthz", "/readyz", "/graphql"}

# The app loads only its own scripts and styles, talks only to this origin (HTTP and
# WebSocket), and may not be framed.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src {connect}; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def html_headers(scope: Scope, *, https: bool) -> dict[str, str]:
    """The page's headers. CSP Level 3 lets 'self' match the page's own ws:/wss: origin; the
    origin is also named outright for browsers that read 'self' as http(s) only."""
    host = Headers(scope=scope).get("host", "")
    connect = "'self'"
    if _HOST.match(host):
        secure = https or scope.get("scheme") == "https"
        connect += f" {'wss' if secure else 'ws'}://{host}"
    return {
        "cache-control": "no-cache",
        "content-security-policy": _CSP.format(connect=connect),
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "same-origin",
    }


_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parley</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>Parley is running</h1>
<p>The API is at <a href="/v1/models">/v1</a> and described at <a href="/docs">/docs</a>.</p>
<p>The web app has not been built: run <code>make web</code> (or <code>make run</code>)
in the Parley checkout, then reload this page.</p>
</body></html>
"""


def default_web_dir() -> Path:
    """web/dist of the checkout this package runs from (an editable install)."""
    return Path(parley.__file__).resolve().parents[2] / "web" / "dist"


def is_api_path(path: str) -> bool:
    return path in _API_PATHS or path.startswith(_API_PREFIXES)


def _file_in(root: Path, path: str) -> Path | None:
    """The file `path` names under `root`, never one outside it."""
    relative = path.lstrip("/")
    if not relative:
        return None
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def web_response(root: Path, path: str, html: dict[str, str]) -> Response:
    index = root / "index.html"
    if not index.is_file():
        return HTMLResponse(_NOT_BUILT, status_code=200 if path == "/" else 404)
    found = _file_in(root, path)
    if found is None or found == index:
        return FileResponse(index, headers=html, media_type="text/html")
    # Vite names everything under assets/ by content hash: cache it for good.
    immutable = found.parent == root / "assets"
    cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
    return FileResponse(
        found, headers={"cache-control": cache, "x-content-type-options": "nosniff"}
    )


def install(app: FastAPI, web_dir: Path | None, *, https: bool = False) -> None:
    """Serve `web_dir` (or the not-built page) for GET and HEAD requests no route matched;
    `https`: browsers reach Parley over https (PARLEY_PUBLIC_URL)."""
    root = (web_dir or default_web_dir()).resolve()
    not_found = app.router.default

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "/")
        if (
            scope["type"] != "http"
            or scope.get("method") not in ("GET", "HEAD")
            or is_api_path(path)
        ):
            await not_found(scope, receive, send)
            return
        html = html_headers(scope, https=https)
        await web_response(root, path, html)(scope, receive, send)

    app.router.default = fallback
