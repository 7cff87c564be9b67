"""Calling MCP tools in tests: results that must succeed, errors that must be refusals, EIP-712 signing;
and the deadlines tests wait with, stretched on a slow or busy machine."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from mcp import Client
from mcp_types import CallToolResult

# protocol version -> the Client mode that negotiates it
ERAS = {"2026-07-28": "auto", "2025-11-25": "legacy"}


def _timeout_scale() -> float:
    raw = os.environ.get("STATESET_TEST_TIMEOUT_SCALE", "1")
    try:
        scale = float(raw)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise RuntimeError(f"STATESET_TEST_TIMEOUT_SCALE={raw!r} is not a positive number (the default is 1)")
    return scale


# Every deadline in the tests is multiplied by this: set it above 1 on a machine slower or busier than a loaded
# 2-core one, which the deadlines already allow for at 1.
TIMEOUT_SCALE = _timeout_scale()


def scaled(seconds: float) -> float:
    """A deadline for something that takes far less time, stretched by STATESET_TEST_TIMEOUT_SCALE."""
    return seconds * TIMEOUT_SCALE


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail with a tool error; its message without the SDK's prefix."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    return text(result).removeprefix(f"Error executing tool {tool}: ")


def text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def sign(account: LocalAccount, typed_data: dict[str, Any]) -> str:
    """Sign eth_signTypedData_v4 JSON as any Ethereum wallet would."""
    return "0x" + bytes(account.sign_message(encode_typed_data(full_message=typed_data)).signature).hex()


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def high_s_twin(signature: str) -> str:
    """The other signature that verifies for the same key and data: (r, n - s) with v flipped (27 <-> 28)."""
    r, s, v = signature[2:66], int(signature[66:130], 16), int(signature[130:], 16)
    return f"0x{r}{SECP256K1_N - s:064x}{55 - v:02x}"


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until `check()` holds: for changes that reach another server through its follower. Up to 60 s (scaled):
    a follower that lost its peer retries with a backoff that grows to 30 s, and a loaded machine is slow besides."""
    with anyio.fail_after(scaled(60)):
        for _ in itertools.count():
            if await check():
                return
            await anyio.sleep(0.01)


class OpenScopes(dict[str, str | None]):
    """A scope table for test servers: every tool open to any principal."""

    def __contains__(self, name: object) -> bool:
        return True

    def __getitem__(self, name: str) -> str | None:
        return None

    def get(self, name: str, default: object = None) -> str | None:  # type: ignore[override]
        return None


OPEN_SCOPES = OpenScopes()
