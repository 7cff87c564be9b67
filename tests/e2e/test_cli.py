"""The `stateset` command itself: help, the demo, configuration errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import STATESET, STEP, child_env

pytestmark = pytest.mark.e2e


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STATESET, *args], env=env, capture_output=True, text=True, timeout=STEP)


def test_help_explains_every_command_and_option(tmp_path: Path) -> None:
    top = run("--help", env=child_env(tmp_path))
    assert top.returncode == 0 and "serve" in top.stdout and "demo" in top.stdout
    serve = run("serve", "--help", env=child_env(tmp_path))
    for option in ("--transport", "--host", "--port", "--home", "stdio", "http", "sse", "STATESET_HTTP_TOKENS"):
        assert option in serve.stdout


def test_the_demo_runs_the_procurement_agent_offline_and_checks_its_outcome(tmp_path: Path) -> None:
    result = run("demo", "--home", str(tmp_path / "demo"), env=child_env(tmp_path))
    assert result.returncode == 0, result.stderr
    for step in (
        "Ruled out: Budget Frames's reputation",
        "the CFO approved",
        "the controller co-signed the wallet proposal",
        "SAP: purchase order 4500000000 created",
        "reputation: rated Frame Works",
        "now at Negotiation/Review",
        "purchase order 4500000000 for 250 PC from Frame Works, paid 80 USDC",
    ):
        assert step in result.stdout
    assert (tmp_path / "demo" / "agents.db").exists() and (tmp_path / "demo" / "wallet.db").exists()


def test_the_wallet_tour_runs_offline_and_checks_its_own_outcome(tmp_path: Path) -> None:
    result = run("demo", "wallet", "--home", str(tmp_path / "demo"), env=child_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "refused: amount 150 USDC exceeds the per-transaction limit 100 USDC" in result.stdout
    assert "controller signed the proposal" in result.stdout
    assert "done: 1000 USDC in, 1000 USDC accounted for" in result.stdout
    assert (tmp_path / "demo" / "wallet.db").exists()


def test_a_bad_setting_stops_start_up_with_the_variable_named(tmp_path: Path) -> None:
    result = run("serve", "wallet", env=child_env(tmp_path, STATESET_GOVERNANCE_ADDRESS="0x1234"))
    assert result.returncode == 2
    assert "STATESET_GOVERNANCE_ADDRESS '0x1234' is not an Ethereum address" in result.stderr
