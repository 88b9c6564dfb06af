"""TLS with a private CA (a CA bundle, default verification, verification off, a client
certificate), and proxies: a CONNECT tunnel for https, absolute-form requests for http,
NO_PROXY, proxy credentials, a refusing proxy, and the environment variables."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from parley.gateway.providers._http1 import CannotConnect, HttpError, Pool, Tls
from tests.gateway.http1.conftest import Run
from tests.gateway.http1.servers import Proxy, RawServer, answering
from tests.gateway.http1.tls import TlsFiles

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def post(pool: Pool, url: str) -> tuple[int, bytes]:
    response = await pool.post(url, b"{}", read_timeout_s=5)
    try:
        return response.status, await response.read()
    finally:
        response.release()


def test_tls_with_a_private_ca(run: Run[Any], tls_files: TlsFiles) -> None:
    async def scenario() -> None:
        async with RawServer(answering(lambda _r: OK), tls=tls_files.server_context()) as server:
            trusting = Pool({}, tls=Tls(ca_bundle=str(tls_files.ca)))
            assert await post(trusting, server.url()) == (200, b"ok")
            assert await post(trusting, server.url(host="localhost")) == (200, b"ok")
            # The system's CAs do not know this one.
            with pytest.raises(CannotConnect, match=r"certificate verify failed"):
                await post(Pool({}), server.url())
            # Verification off takes any certificate.
            assert await post(Pool({}, tls=Tls(verify=False)), server.url()) == (200, b"ok")

    run(scenario())


def test_a_client_certificate_is_presented_when_configured(
    run: Run[Any], tls_files: TlsFiles
) -> None:
    async def scenario() -> None:
        context = tls_files.server_context(require_client_cert=True)
        async with RawServer(answering(lambda _r: OK), tls=context) as server:
            with_cert = Pool(
                {},
                tls=Tls(
                    ca_bundle=str(tls_files.ca),
                    client_cert=str(tls_files.client_cert),
                    client_key=str(tls_files.client_key),
                ),
            )
            assert await post(with_cert, server.url()) == (200, b"ok")
            subject = dict(pair[0] for pair in server.peer_certs[-1]["subject"])  # type: ignore[index]
            assert subject["commonName"] == "parley-client"
            # Without one, the server refuses (at the handshake, or at the first read).
            with pytest.raises(HttpError):
                await post(Pool({}, tls=Tls(ca_bundle=str(tls_files.ca))), server.url())

    run(scenario())


def test_bad_tls_files_fail_when_the_pool_is_made(tls_files: TlsFiles, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Pool({}, tls=Tls(ca_bundle=str(tls_files.ca) + ".missing"))
    mismatched = Tls(client_cert=str(tls_files.client_cert), client_key=str(tls_files.server_key))
    with pytest.raises(ssl.SSLError, match="key values mismatch"):
        Pool({}, tls=mismatched)
    # An encrypted key: its password is needed (and never asked for on a terminal).
    key = serialization.load_pem_private_key(tls_files.client_key.read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"open sesame"),
        )
    )
    with pytest.raises(ValueError, match="the client key is encrypted"):
        Pool({}, tls=Tls(client_cert=str(tls_files.client_cert), client_key=str(locked)))
    unlocked = Tls(
        client_cert=str(tls_files.client_cert),
        client_key=str(locked),
        client_key_password="open sesame",
    )
    Pool({}, tls=unlocked).close()


def test_https_goes_through_a_connect_tunnel_unless_no_proxy_says_otherwise(
    run: Run[Any], tls_files: TlsFiles
) -> None:
    async def scenario() -> None:
        async with (
            RawServer(answering(lambda _r: OK), tls=tls_files.server_context()) as server,
            Proxy() as proxy,
        ):
            proxies = {"https": proxy.url, "no": "localhost"}
            pool = Pool({}, tls=Tls(ca_bundle=str(tls_files.ca)), proxies=proxies)
            for _ in range(2):
                assert await post(pool, server.url()) == (200, b"ok")
            # One tunnel, kept alive for both requests, with TLS to the server through it.
            assert proxy.tunnels == [f"127.0.0.1:{server.port}"]
            assert server.connections == 1
            # NO_PROXY: straight to the server.
            assert await post(pool, server.url(host="localhost")) == (200, b"ok")
            assert proxy.tunnels == [f"127.0.0.1:{server.port}"]
            assert server.connections == 2
            pool.close()
            # Through the tunnel, the server's certificate is checked as ever.
            untrusting = Pool({}, proxies=proxies)
            with pytest.raises(
                CannotConnect, match=r"certificate verify failed.*through the proxy"
            ):
                await post(untrusting, server.url())

    run(scenario())


def test_http_goes_through_the_proxy_in_absolute_form_with_its_credentials(
    run: Run[Any],
) -> None:
    async def scenario() -> None:
        async with RawServer(answering(lambda _r: OK)) as server, Proxy() as proxy:
            proxy_url = proxy.url.replace("http://", "http://us%40er:p%3Ass@")
            pool = Pool({}, proxies={"http": proxy_url})
            assert await post(pool, server.url()) == (200, b"ok")
            assert proxy.forwarded == [
                f"POST http://127.0.0.1:{server.port}/v1/things?x=1 HTTP/1.1"
            ]
            expected = "Basic " + base64.b64encode(b"us@er:p:ss").decode()
            assert proxy.authorizations == [expected]
            assert proxy.tunnels == []
            pool.close()

    run(scenario())


def test_a_refused_tunnel_is_a_clear_connect_error(run: Run[Any], tls_files: TlsFiles) -> None:
    async def scenario() -> None:
        refusal = b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n"
        async with Proxy(refuse=refusal) as proxy:
            pool = Pool({}, proxies={"https": proxy.url})
            with pytest.raises(
                CannotConnect,
                match=r"the proxy refused the tunnel: 407 Proxy Authentication Required",
            ):
                await post(pool, "https://api.example/v1/chat/completions")

    run(scenario())


def test_the_proxy_variables_are_read_from_the_environment(
    run: Run[Any], tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)

    async def scenario() -> None:
        async with (
            RawServer(answering(lambda _r: OK), tls=tls_files.server_context()) as server,
            Proxy() as proxy,
        ):
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            monkeypatch.setenv("NO_PROXY", "localhost,.internal")
            pool = Pool({}, tls=Tls(ca_bundle=str(tls_files.ca)))
            assert await post(pool, server.url()) == (200, b"ok")
            assert await post(pool, server.url(host="localhost")) == (200, b"ok")
            assert proxy.tunnels == [f"127.0.0.1:{server.port}"]
            pool.close()

    run(scenario())


def test_proxies_it_cannot_use_are_refused_without_showing_their_password() -> None:
    with pytest.raises(ValueError, match="only http:// proxies") as refused:
        Pool({}, proxies={"https": "socks5://user:secret@proxy:1080"})
    assert "secret" not in str(refused.value)
