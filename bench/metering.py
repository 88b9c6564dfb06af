"""`make bench`: exact metering under load, at the quota edge.

Starts `parley serve` (embedded: SQLite + in-process; then scale-out: PostgreSQL + Redis,
when they answer on 127.0.0.1) with the offline mock model, puts an organisation on a plan
that stops at a message cap, and lets 50 concurrent clients race past it with a mix of
requests: plain, streamed to the end, streams left after their first words, streams left
before their first word, and `n = 2`. The clients count the messages they were served (the
choices whose content reached them); the ledger counts what it billed. Prints both, which
must be equal, and the overshoot past the cap, which must be 0. It reports; it never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson
import yaml
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from tests import pg  # the PostgreSQL (with pgvector) the tests use

from gateway import free_port, wait_http

REDIS_URL = "redis://127.0.0.1:6379/0"
CAP = 400
CLIENTS = 50
KINDS = ("plain", "stream", "left_after_content", "left_before_content", "n2")


@dataclass
class Tally:
    served: int = 0
    refused: int = 0
    requests: int = 0


async def one_request(http: httpx.AsyncClient, key: str, kind: str, tally: Tally) -> None:
    stream = kind in ("stream", "left_after_content", "left_before_content")
    body: dict[str, object] = {
        "model": "slow" if kind == "left_before_content" else "bench-mock",
        "messages": [{"role": "user", "content": "one two three four five six"}],
        "stream": stream,
    }
    if kind == "n2":
        body["n"] = 2
    headers = {"Authorization": f"Bearer {key}"}
    tally.requests += 1
    if kind == "left_before_content":
        # The slow model waits before its first word: leave before it comes.
        try:
            async with asyncio.timeout(0.05):
                async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers):
                    pass
        except TimeoutError:
            return
        return
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
        if r.status_code == 429:
            tally.refused += 1
            await r.aread()
            return
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code}: {(await r.aread())[:200]!r}")
        if not stream:
            answer = orjson.loads(await r.aread())  # read before the shared tally is touched
            tally.served += len(answer["choices"])
            return
        got: set[int] = set()
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            for choice in orjson.loads(line[6:]).get("choices") or []:
                if choice["delta"].get("content"):
                    got.add(choice["index"])
            if kind == "left_after_content" and got:
                break  # leave after the first words (closing the connection)
        tally.served += len(got)


async def client_loop(url: str, key: str, seed: int, tally: Tally, stop: asyncio.Event) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while not stop.is_set():
            before = tally.refused
            await one_request(http, key, rng.choice(KINDS), tally)
            if tally.refused > before and tally.refused >= CLIENTS * 4:
                stop.set()  # everyone has hit the cap several times


async def ledger_messages(url: str, key: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get("/v1/usage/summary", headers={"Authorization": f"Bearer {key}"})
        response.raise_for_status()
        return int(response.json()["messages"]["used"])


def parley(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "parley", *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


async def run_stack(name: str, env: dict[str, str], tmp: Path) -> None:
    port = free_port()
    env = {**env, "PARLEY_PORT": str(port)}
    booted = json.loads(
        parley(
            env, "admin", "bootstrap", "--email", "meter@example.com", "--password",
            "load test passphrase", "--org", "Metering", "--json",
        )
    )  # fmt: skip
    key, org = booted["api_key"], booted["org_id"]
    parley(
        env, "admin", "set-plan", org, "custom", "--messages", str(CAP), "--rpm", "10000000",
        "--tpm", "1000000000000",
    )  # fmt: skip
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before the load
        [sys.executable, "-m", "parley", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz")
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            capped = await http.patch(
                "/v1/billing/subscription",
                json={"message_cap": CAP},
                headers={"Authorization": f"Bearer {key}"},
            )
            capped.raise_for_status()
        tally = Tally()
        stop = asyncio.Event()
        await asyncio.gather(*(client_loop(url, key, seed, tally, stop) for seed in range(CLIENTS)))
        await asyncio.sleep(2.5)  # the last events reach the ledger (flushed every second)
        counted = await ledger_messages(url, key)
    finally:
        server.terminate()
        server.wait(timeout=30)
    verdict = "exact" if counted == tally.served and counted <= CAP else "NOT EXACT"
    print(
        f"  {name:<10} {tally.requests:>5} requests, {tally.refused:>4} refused at the cap   "
        f"served {tally.served:>4}   counted {counted:>4}   overshoot {max(0, counted - CAP)}"
        f"   -> {verdict}"
    )


async def scaleout_env(base: dict[str, str]) -> tuple[dict[str, str], str] | None:
    try:
        server = pg.server()
        admin = await asyncpg.connect(server.admin_dsn, timeout=2)
        redis = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        await redis.ping()
        await redis.aclose()
    except Exception:  # no scale-out stack here: embedded only
        return None
    name = f"parley_bench_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    env = {
        **base,
        "PARLEY_DATABASE_URL": server.url(name),
        "PARLEY_REDIS_URL": REDIS_URL,
        "PARLEY_REDIS_NAMESPACE": name,
    }
    return env, name


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(pg.server().admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def amain() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="parley-metering-"))
    config = {
        "providers": {
            "mock": {"type": "mock", "options": {"delay_s": 0.002}},
            "slow": {"type": "mock", "options": {"delay_s": 5.0}},
        },
        "models": {
            "bench-mock": {
                "price": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 2},
                "deployments": [{"provider": "mock", "model": "bench-mock"}],
            },
            "slow": {"deployments": [{"provider": "slow", "model": "slow"}]},
        },
    }
    (tmp / "parley.yaml").write_text(yaml.safe_dump(config))
    base = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_") or k == "PARLEY_ENV"}
    base.update(PARLEY_CONFIG=str(tmp / "parley.yaml"), PARLEY_LOG_LEVEL="WARNING")
    print()
    print(
        f"metering at the quota edge ({CLIENTS} clients, a {CAP}-message cap; plain, streamed,"
        " left after content, left before content, n = 2)"
    )
    try:
        await run_stack("embedded", {**base, "PARLEY_DATA_DIR": str(tmp / "embedded")}, tmp)
        scaleout = await scaleout_env({**base, "PARLEY_DATA_DIR": str(tmp / "scaleout")})
        if scaleout is None:
            print("  scale-out  skipped: no PostgreSQL and Redis on 127.0.0.1")
        else:
            env, database = scaleout
            try:
                await run_stack("scale-out", env, tmp)
            finally:
                await drop_database(database)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    asyncio.run(amain())


if __name__ == "__main__":
    main()
