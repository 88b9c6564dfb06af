"""`make bench`: Parley's gateway against a direct call to the same fake upstream, one run.

Starts a fake OpenAI-compatible upstream and `parley serve` (one process, SQLite, auth and
usage metering on), then drives both with wrk: throughput at 50 connections and latency at
one connection. Prints the figures and the ratios; it reports, it does not fail.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "Hello, benchmark!"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def wrk(
    url: str, *, connections: int, seconds: int, headers: dict[str, str], tmp: Path
) -> dict[str, Any]:
    script = tmp / "post.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(json.dumps(BODY))}",
        'wrk.headers["Content-Type"] = "application/json"',
        *(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
    ]
    script.write_text("\n".join(lines) + "\n")
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {
        m.group(1): _ms(m.group(2))
        for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.M)
    }
    return {
        "rps": rps,
        "p50": lat.get("50"),
        "p99": lat.get("99"),
        "total": total,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk); `make bench` installs it")

    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    upstream_port, parley_port = free_port(), free_port()
    config = {
        "providers": {
            "upstream": {
                "type": "openai",
                "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key": "sk-bench",
            }
        },
        "models": {
            "bench-model": {
                "price": {"input_per_mtok_usd": 0.15, "output_per_mtok_usd": 0.60},
                "deployments": [{"provider": "upstream", "model": "bench-upstream"}],
            }
        },
    }
    (tmp / "parley.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PARLEY_DATA_DIR": str(tmp / "data"),
        "PARLEY_CONFIG": str(tmp / "parley.yaml"),
        "PARLEY_PORT": str(parley_port),
        "PARLEY_LOG_LEVEL": os.environ.get("PARLEY_LOG_LEVEL", "INFO"),
    }
    env.pop("PARLEY_DATABASE_URL", None)
    env.pop("PARLEY_REDIS_URL", None)
    python = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen([python, str(ROOT / "bench" / "fake_upstream.py"), str(upstream_port)])
        )
        boot = subprocess.run(
            [
                python,
                "-m",
                "parley",
                "admin",
                "bootstrap",
                "--email",
                "bench@example.com",
                "--password",
                "load test passphrase",
                "--org",
                "Bench",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        booted = json.loads(boot.stdout)
        key = booted["api_key"]
        # Measure the gateway, not the free plan's 20 requests per minute.
        subprocess.run(
            [
                python,
                "-m",
                "parley",
                "admin",
                "set-plan",
                booted["org_id"],
                "custom",
                "--rpm",
                "1000000000",
                "--tpm",
                "1000000000000",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        server = subprocess.Popen(
            [python, "-m", "parley", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(server)
        wait_http(f"http://127.0.0.1:{upstream_port}/")
        wait_http(f"http://127.0.0.1:{parley_port}/healthz")
        direct_url = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
        parley_url = f"http://127.0.0.1:{parley_port}/v1/chat/completions"
        auth = {"Authorization": f"Bearer {key}"}
        check = httpx.post(parley_url, json=BODY, headers=auth, timeout=10)
        check.raise_for_status()

        # Warm both paths, then measure.
        wrk(parley_url, connections=10, seconds=2, headers=auth, tmp=tmp)
        d50 = wrk(
            direct_url, connections=args.connections, seconds=args.seconds, headers={}, tmp=tmp
        )
        p50c = wrk(
            parley_url, connections=args.connections, seconds=args.seconds, headers=auth, tmp=tmp
        )
        d1 = wrk(direct_url, connections=1, seconds=args.seconds, headers={}, tmp=tmp)
        p1 = wrk(parley_url, connections=1, seconds=args.seconds, headers=auth, tmp=tmp)
        # Quota contention: 50 connections race for the last `quota` messages of one org.
        quota = 3000
        used = httpx.get(
            f"http://127.0.0.1:{parley_port}/v1/usage/summary", headers=auth, timeout=10
        )
        used.raise_for_status()
        cap = used.json()["messages"]["used"] + quota
        httpx.patch(
            f"http://127.0.0.1:{parley_port}/v1/billing/subscription",
            json={"message_cap": cap},
            headers=auth,
            timeout=10,
        ).raise_for_status()
        race = wrk(
            parley_url, connections=args.connections, seconds=args.seconds, headers=auth, tmp=tmp
        )
        rss = peak_rss_mb(server.pid)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"gateway benchmark ({args.connections} connections, {args.seconds} s per run, one Parley process, SQLite, auth + metering on)"
    )
    print(
        f"  throughput  direct {d50['rps']:>9.0f} req/s   via Parley {p50c['rps']:>9.0f} req/s   ratio {p50c['rps'] / d50['rps']:.2f}   non-2xx {p50c['non_2xx']}"
    )
    print(
        f"  latency@1   direct p50 {d1['p50']:.3f} ms p99 {d1['p99']:.3f} ms   via Parley p50 {p1['p50']:.3f} ms p99 {p1['p99']:.3f} ms"
    )
    print(
        f"  added       p50 {p1['p50'] - d1['p50']:.3f} ms   p99 {p1['p99'] - d1['p99']:.3f} ms   (target: >= 2000 req/s at 50 connections, <= 1 ms added p50)"
    )
    won = race["total"] - race["non_2xx"]
    print(
        f"  quota race  {race['rps']:>9.0f} req/s with a {quota}-message quota left: {won} succeeded,"
        f" {race['non_2xx']} refused (429) -> {'exact' if won == quota else 'NOT EXACT'}"
    )
    print(f"  peak RSS    Parley {rss:.0f} MB (target < 250 MB)")


if __name__ == "__main__":
    main()
