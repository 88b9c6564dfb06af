"""Which HTTP client should providers use? httpx, aiohttp and Parley's own keep-alive pool
(parley.gateway.providers._http1, what the providers use) against the same fake upstream.

Each client sends the same chat request with 50 in flight, then one at a time, from one
process, and the figures are printed side by side.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import orjson
import uvloop

from parley.gateway.providers._http1 import Pool

BODY = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "Hello"}]})
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def drive(
    call: Callable[[], Awaitable[None]], *, concurrency: int, seconds: float
) -> tuple[float, float]:
    """Requests per second, and p50 latency in ms."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


async def main(url: str, seconds: float) -> None:
    results = {}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as hx:

        async def with_httpx() -> None:
            response = await hx.post(url, content=BODY, headers=HEADERS)
            orjson.loads(response.content)

        results["httpx"] = [
            await drive(with_httpx, concurrency=c, seconds=seconds) for c in (50, 1)
        ]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as ah:

        async def with_aiohttp() -> None:
            async with ah.post(url, data=BODY, headers=HEADERS) as response:
                orjson.loads(await response.read())

        results["aiohttp"] = [
            await drive(with_aiohttp, concurrency=c, seconds=seconds) for c in (50, 1)
        ]
    pool = Pool(HEADERS)

    async def with_pool() -> None:
        response = await pool.post(url, BODY, read_timeout_s=60)
        try:
            orjson.loads(await response.read())
        finally:
            response.release()

    results["parley"] = [await drive(with_pool, concurrency=c, seconds=seconds) for c in (50, 1)]
    pool.close()
    print(f"\nHTTP client benchmark ({seconds:g} s per run, one process, uvloop)")
    for name, ((rps50, _), (rps1, p50)) in results.items():
        print(
            f"  {name:8} {rps50:8.0f} req/s at 50 in flight   {rps1:7.0f} req/s, p50 {p50:.3f} ms at 1"
        )
    ratio = results["aiohttp"][0][0] / results["httpx"][0][0]
    print(f"  aiohttp / httpx at 50 in flight: {ratio:.2f}x")
    ratio = results["parley"][0][0] / results["aiohttp"][0][0]
    print(f"  parley / aiohttp at 50 in flight: {ratio:.2f}x")


if __name__ == "__main__":
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("fake_upstream.py")), str(port)]
    )
    try:
        time.sleep(1.5)
        uvloop.run(
            main(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                float(sys.argv[1]) if len(sys.argv) > 1 else 5,
            )
        )
    finally:
        upstream.terminate()
