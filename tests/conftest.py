"""Shared fixtures: the asyncio backend, a manual clock, and fast keystores for tests."""

from __future__ import annotations

import os

import pytest

# scrypt at its production cost takes half a second per wallet; tests use the smallest cost eth-account allows.
os.environ.setdefault("STATESET_KEYSTORE_SCRYPT_N", "1024")
TEST_SCRYPT_N = 1024


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
