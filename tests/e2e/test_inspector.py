"""The MCP Inspector's CLI, a TypeScript MCP client, launches and drives the wallet as a host would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import STATESET, STEP, child_env, serving

pytestmark = pytest.mark.e2e

INSPECTOR = Path(__file__).parents[2] / ".ci" / "node_modules" / ".bin" / "inspector"


def inspector(home: Path, *arguments: str) -> dict[str, Any]:
    if not INSPECTOR.exists():
        pytest.fail(f"the MCP Inspector is not installed at {INSPECTOR}: run .ci/setup --dev")
    # the Inspector gives a server 15 s to connect (start and answer `initialize`) unless told otherwise
    connect_ms = str(round(STEP * 1000))
    result = subprocess.run(
        [str(INSPECTOR), "--cli", "--connect-timeout", connect_ms, *arguments],
        env=child_env(home) | {"HOME": str(home)},  # the Inspector keeps a catalog under $HOME
        # It passes a stdio server only a few variables of its own (not STATESET_HOME), so the server's data
        # lands in ./.stateset: here, never in the checkout.
        cwd=home,
        capture_output=True,
        text=True,
        timeout=STEP,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def call(home: Path, target: list[str], tool: str, **arguments: str) -> dict[str, Any]:
    pairs = [f"--tool-arg={name}={json.dumps(value)}" for name, value in arguments.items()]
    result = inspector(home, *target, "--method", "tools/call", "--tool-name", tool, *pairs)
    assert not result.get("isError"), result
    structured: dict[str, Any] = result["structuredContent"]
    return structured


def test_the_inspector_launches_the_wallet_over_stdio_and_lists_every_tool(tmp_path: Path) -> None:
    tools = inspector(tmp_path, STATESET, "serve", "wallet", "--method", "tools/list")["tools"]
    assert len(tools) == 13
    assert all(tool["description"] and tool["outputSchema"] and tool["annotations"] for tool in tools)
    target = [STATESET, "serve", "wallet"]
    wallet = call(tmp_path, target, "create_wallet", label="ops", daily_limit="500", per_transaction_limit="100")
    assert wallet["limits"]["daily_limit"] == "500"


def test_the_inspector_pays_through_streamable_http(tmp_path: Path) -> None:
    with serving(tmp_path, "--transport", "http") as served:
        target = [f"{served.base}/mcp"]
        limits = {"daily_limit": "500", "per_transaction_limit": "100"}
        payer = call(tmp_path, target, "create_wallet", label="payer", **limits)["address"]
        payee = call(tmp_path, target, "create_wallet", label="payee", **limits)["address"]
        call(tmp_path, target, "fund_wallet", address=payer, amount="50")
        receipt = call(tmp_path, target, "execute_payment", from_address=payer, to_address=payee, amount="12.5")
        assert (receipt["status"], receipt["balance_after"]) == ("settled", "37.5")
        balance = inspector(tmp_path, *target, "--method", "resources/read", "--uri", f"wallet://{payee}/balance")
        assert json.loads(balance["contents"][0]["text"])["available"] == "12.5"
