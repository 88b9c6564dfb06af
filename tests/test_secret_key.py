"""The signing key: generated once into the data dir in development (whole, 0600, the same
for every process that races to make it, `parley serve --workers N` included), and required
from the environment everywhere else."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL
from tests.test_cli import cli_env, free_port, parley

RACERS = 8

# Each racer waits for the starting gun (a file), then asks for the key.
RACE = """
import sys, time
from pathlib import Path
from parley.config import Settings
gun = Path(sys.argv[2])
while not gun.exists():
    time.sleep(0.001)
print(Settings(data_dir=sys.argv[1]).signing_key())
"""


def stack_env(data_dir: Path, stack: str, database_url: str, **extra: str) -> dict[str, str]:
    env = cli_env(data_dir, PARLEY_DATABASE_URL=database_url, **extra)
    if stack == "scaleout":
        env["PARLEY_REDIS_URL"] = REDIS_URL
    return env


@pytest.mark.slow
def test_processes_racing_to_make_the_key_all_get_one_key(tmp_path: Path) -> None:
    data_dir, gun = tmp_path / "data", tmp_path / "go"
    env = cli_env(data_dir)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(data_dir), str(gun)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(RACERS)
    ]
    time.sleep(1.0)  # let them all import and wait at the line
    gun.touch()
    keys = set()
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        keys.add(out.strip())
    assert len(keys) == 1
    (key,) = keys
    assert len(key) >= 64
    path = data_dir / "secret.key"
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in data_dir.iterdir()] == ["secret.key"]  # no drafts left behind


@pytest.fixture
def served_by_workers(
    stack: str, database_url: str, tmp_path: Path, redis_cleanup: None
) -> Iterator[tuple[str, Path]]:
    """`parley serve --workers 2` in development, no PARLEY_SECRET_KEY, a fresh data dir."""
    port, data_dir = free_port(), tmp_path / "data"
    env = stack_env(data_dir, stack, database_url, PARLEY_LOG_LEVEL="WARNING")
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "parley", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, "server exited:\n" + log_path.read_text()
                try:
                    if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server never became ready"
                time.sleep(0.2)
            yield base_url, data_dir
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert "Traceback" not in log_path.read_text()


@pytest.mark.slow
def test_every_worker_accepts_the_tokens_of_the_others(
    served_by_workers: tuple[str, Path],
) -> None:
    base_url, data_dir = served_by_workers
    registered = httpx.post(
        f"{base_url}/v1/auth/register",
        json={"email": "workers@example.com", "password": "correct horse battery staple"},
        timeout=30,
    )
    assert registered.status_code == 201, registered.text
    token = registered.json()["access_token"]
    # A new connection each time, so the workers take turns accepting them.
    for _ in range(40):
        me = httpx.get(
            f"{base_url}/v1/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert me.status_code == 200, me.text
    key_file = data_dir / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in data_dir.iterdir() if p.name.startswith(".secret.key")] == []


@pytest.mark.slow
@pytest.mark.parametrize("command", [["serve"], ["worker"]])
def test_outside_development_a_missing_key_stops_start_up(
    stack: str, database_url: str, tmp_path: Path, command: list[str]
) -> None:
    data_dir = tmp_path / "data"
    env = stack_env(data_dir, stack, database_url, PARLEY_ENV="production")
    done = parley(*command, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("error: PARLEY_SECRET_KEY is not set"), done.stderr
    assert "secrets.token_urlsafe" in message  # how to make a value
    assert not (data_dir / "secret.key").exists()
