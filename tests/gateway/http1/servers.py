"""Real servers on loopback for the HTTP client's conformance tests: a raw HTTP/1.1 server
that does exactly what a test tells it (byte by byte if need be), a CONNECT proxy, and
bodies generated on the fly so that 50 MiB never sits in memory twice on the server side."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from urllib.parse import urlsplit

Handler = Callable[["Peer"], Awaitable[None]]

LINE_BYTES = 100
BLOCK_LINES = 655  # a block is whole lines: 65,500 bytes


def body_blocks(size: int) -> Iterator[bytes]:
    """`size` bytes of numbered 100-byte lines ("000000042....\\n"), in blocks."""
    sent = 0
    first = 0
    while sent < size:
        block = b"".join(
            b"%09d%s\n" % (i, b"." * (LINE_BYTES - 10)) for i in range(first, first + BLOCK_LINES)
        )[: size - sent]
        sent += len(block)
        first += BLOCK_LINES
        yield block


def body_of(size: int) -> bytes:
    return b"".join(body_blocks(size))


def digest_of(size: int) -> str:
    sha = hashlib.sha256()
    for block in body_blocks(size):
        sha.update(block)
    return sha.hexdigest()


def chunked(blocks: Iterator[bytes] | list[bytes]) -> Iterator[bytes]:
    for block in blocks:
        if block:
            yield b"%x\r\n%s\r\n" % (len(block), block)
    yield b"0\r\n\r\n"


class Peer:
    """The server's side of one connection."""

    def __init__(
        self, server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer

    async def request(self) -> bytes | None:
        """The next request (head and body), or None when the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        request = head + await self.reader.readexactly(length)
        self.server.requests.append(request)
        return request

    async def send(self, *parts: bytes) -> None:
        for part in parts:
            self.writer.write(part)
            await self.writer.drain()

    def reset(self) -> None:
        """Close with a TCP reset, as a server does that drops a connection abruptly."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


class RawServer:
    """`async with RawServer(handler) as server:` runs `handler(peer)` for each connection
    and counts connections, how many were open at once, and the requests read."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.peer_certs: list[object] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str = "/v1/things?x=1", host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self._writers.add(writer)
        self.peer_certs.append(writer.get_extra_info("peercert"))
        try:
            await self.handler(Peer(self, reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()


def answering(answer: Callable[[bytes], bytes | None]) -> Handler:
    """Answers each request on a connection with `answer(request)` (None: hang up)."""

    async def handle(peer: Peer) -> None:
        while (request := await peer.request()) is not None:
            response = answer(request)
            if response is None:
                return
            await peer.send(response)
            head = response.split(b"\r\n\r\n", 1)[0].lower()
            if b"connection: close" in head:
                return

    return handle


def fixed(status: int, body: bytes, extra: bytes = b"") -> Handler:
    head = b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n" % (status, len(body))
    return answering(lambda _request: head + extra + b"\r\n" + body)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class Proxy:
    """A forward proxy: CONNECT tunnels for https, absolute-form requests for http. Records
    what it was asked; `refuse` answers every request with those bytes instead."""

    def __init__(self, refuse: bytes | None = None) -> None:
        self.refuse = refuse
        self.tunnels: list[str] = []
        self.forwarded: list[str] = []  # request lines of plain-http requests
        self.authorizations: list[str | None] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        self.authorizations.append(fields.get("proxy-authorization"))
        if self.refuse is not None:
            writer.write(self.refuse)
            writer.close()
            return
        if method == "CONNECT":
            self.tunnels.append(target)
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            self.forwarded.append(lines[0])
            parts = urlsplit(target)
            assert parts.hostname is not None
            up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port)
            up_writer.write(head)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()


class ClosingServer:
    """A server on a thread of its own (blocking sockets) that answers one request per
    connection and then, when told, closes the connection without saying so in the
    response: the keep-alive connection the client holds goes stale while the client's
    loop may be too busy to notice."""

    ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.requests = 0
        self.close_now = threading.Event()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/things"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data or not data.endswith(b"{}"):
                    data += conn.recv(65536)
                self.requests += 1
                conn.sendall(self.ANSWER)
                self.close_now.wait(5)
            self.closed.set()

    def stop(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread out of accept()
        self.listener.close()
        self._thread.join(5)
