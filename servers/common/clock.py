"""Time: services take a clock (Unix seconds) so tests can move it; outputs carry UTC datetimes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
