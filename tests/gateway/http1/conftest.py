"""The HTTP client's conformance suite runs every scenario on both event loops Parley may
run on: asyncio's own and uvloop (what `parley serve` uses)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from tests.gateway.http1.tls import TlsFiles, make_tls_files

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.fixture(params=list(LOOPS))
def run(request: pytest.FixtureRequest) -> Run[Any]:
    """Runs a scenario to the end on a fresh loop of the parametrised kind."""
    factory = LOOPS[request.param]

    def run_scenario(scenario: Coroutine[Any, Any, T]) -> T:
        # With a loop factory, the runner leaves the thread's current loop alone.
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(asyncio.wait_for(scenario, 60))

    return run_scenario


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))
