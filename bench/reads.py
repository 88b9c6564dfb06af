"""`make bench`: authenticated reads against `parley serve` on SQLite, at 50 connections.

Every request authenticates (a user's access token: the user and their membership are read;
or an API key, cached) and lists conversations. Measured alone, then while a few clients
write at the same time (new conversations), since reads that queue behind the write lock
show there. It reports; it does not fail.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from gateway import free_port, wait_http

WRITE = {"title": "bench write"}


def wrk(
    url: str,
    *,
    connections: int,
    seconds: int,
    headers: dict[str, str],
    tmp: Path,
    body: dict[str, Any] | None = None,
) -> subprocess.Popen[str]:
    """wrk in the background (GET, or POST `body`); `result` reads its figures."""
    script = tmp / f"wrk-{len(list(tmp.glob('wrk-*.lua')))}.lua"
    lines = [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    if body is not None:
        lines += [
            'wrk.method = "POST"',
            f"wrk.body = {json.dumps(json.dumps(body))}",
            'wrk.headers["Content-Type"] = "application/json"',
        ]
    script.write_text("\n".join(lines) + "\n")
    command = ["wrk", "-t", str(min(2, connections)), "-c", str(connections)]
    command += ["-d", f"{seconds}s", "--latency", "-s", str(script), url]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {
        m.group(1): _ms(m.group(2)) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M)
    }
    return {
        "rps": rps,
        "p50": lat.get("50", float("nan")),
        "p99": lat.get("99", float("nan")),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run(url: str, headers: dict[str, str], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    return result(
        wrk(url, connections=args.connections, seconds=args.seconds, headers=headers, tmp=tmp)
    )


def line(name: str, figures: dict[str, Any]) -> str:
    return (
        f"  {name:<34} {figures['rps']:>7.0f} req/s   p50 {figures['p50']:>7.2f} ms"
        f"   p99 {figures['p99']:>7.2f} ms   non-2xx {figures['non_2xx']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk); `make bench` installs it")

    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-reads-"))
    port = free_port()
    env = {
        **os.environ,
        "PARLEY_DATA_DIR": str(tmp / "data"),
        "PARLEY_PORT": str(port),
        "PARLEY_LOG_LEVEL": os.environ.get("PARLEY_LOG_LEVEL", "WARNING"),
    }
    env.pop("PARLEY_DATABASE_URL", None)
    env.pop("PARLEY_REDIS_URL", None)
    python = sys.executable
    password = "load test passphrase"
    boot = subprocess.run(
        [python, "-m", "parley", "admin", "bootstrap", "--email", "reads@example.com",
         "--password", password, "--org", "Bench", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    booted = json.loads(boot.stdout)
    server = subprocess.Popen(
        [python, "-m", "parley", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
        key = {"Authorization": f"Bearer {booted['api_key']}"}
        login = httpx.post(
            f"{base}/v1/auth/login",
            json={"email": "reads@example.com", "password": password},
            timeout=30,
        )
        login.raise_for_status()
        user = {
            "Authorization": f"Bearer {login.json()['access_token']}",
            "Parley-Organization": booted["org_id"],
        }
        for i in range(20):
            httpx.post(
                f"{base}/v1/conversations", json={"title": f"c{i}"}, headers=key, timeout=10
            ).raise_for_status()
        reads = f"{base}/v1/conversations?limit=20"
        writes = f"{base}/v1/conversations"
        run(reads, user, argparse.Namespace(connections=10, seconds=2), tmp)  # warm up
        as_user = run(reads, user, args, tmp)
        as_key = run(reads, key, args, tmp)
        writer = wrk(
            writes,
            connections=args.writers,
            seconds=args.seconds,
            headers=key,
            tmp=tmp,
            body=WRITE,
        )
        mixed = run(reads, user, args, tmp)
        written = result(writer)
    finally:
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"authenticated reads ({args.connections} connections, {args.seconds} s per run,"
        " one Parley process, SQLite): GET /v1/conversations"
    )
    print(line("user access token", as_user))
    print(line("API key", as_key))
    print(line(f"user token, {args.writers} clients writing", mixed))
    print(line("  ...the writers (POST)", written))


if __name__ == "__main__":
    main()
