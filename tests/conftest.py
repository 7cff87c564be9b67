"""Shared fixtures: the asyncio backend, a manual clock, fast keystores, and a per-test time limit that scales."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import settings
from mcp import Client

from servers.common.auth import LOCAL_OPERATOR, set_process_principal
from tests.helpers import ERAS, scaled

# scrypt at its production cost takes half a second per wallet; tests use the smallest cost eth-account allows.
os.environ.setdefault("STATESET_KEYSTORE_SCRYPT_N", "1024")
TEST_SCRYPT_N = 1024

# Keystore passwords live outside the data directory, in the user's config folder or OS keyring: the tests (and the
# processes they start, through tests.e2e.conftest.child_env) use a folder of their own and no keyring, never the
# real user's. A test of the keyring sets its own in-memory backend.
TEST_CONFIG_HOME = tempfile.mkdtemp(prefix="stateset-test-config-")
atexit.register(shutil.rmtree, TEST_CONFIG_HOME, ignore_errors=True)
os.environ["XDG_CONFIG_HOME"] = TEST_CONFIG_HOME
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"


# Properties: no per-example deadline (a loaded machine is not a failing property). Under CI the examples
# come from each test's own source, so a run is repeatable and a red CI is a real bug, never a draw;
# elsewhere they are random, to find what CI's fixed draw does not.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """pytest-timeout's limit per test (`timeout` in pyproject.toml) stretches with STATESET_TEST_TIMEOUT_SCALE;
    an explicit --timeout or PYTEST_TIMEOUT is taken as given."""
    if config.option.timeout is None and "PYTEST_TIMEOUT" not in os.environ:
        config.option.timeout = scaled(float(config.getini("timeout")))


@pytest.fixture(autouse=True)
def operator_by_default() -> Iterator[None]:
    """In-process clients act as the local operator (as a stdio host does) unless a test opens them
    `acting_as` another principal; the auth tests choose their principals explicitly."""
    set_process_principal(LOCAL_OPERATOR)
    yield
    set_process_principal(None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite and web3 are asyncio-only


class ManualClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=list(ERAS))
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(harness: Any, era: str) -> AsyncIterator[Client]:
    """An in-memory client of the package's `harness` server, in each protocol era."""
    async with Client(harness.server, mode=ERAS[era]) as connected:  # type: ignore[arg-type]
        assert connected.protocol_version == era
        yield connected
