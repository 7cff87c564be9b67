"""The agent as operators and hosts run it: `stateset agent run` against a running `stateset up`, and
`stateset agent serve` launched over stdio by a host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from mcp import Client, StdioServerParameters

from tests.e2e.conftest import STATESET, STEP, child_env
from tests.helpers import call

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "agents" / "procurement.yaml"
COSIGNERS = ["--cosigner", Account.create().address, "--cosigner", Account.create().address]


def test_agent_run_against_a_running_mesh_and_again_after_a_restart(tmp_path: Path, mesh: str) -> None:
    home = tmp_path / "agent"
    command = [STATESET, "agent", "run", str(CONFIG), "--url", mesh, "--cycles", "2", "--interval", "0", *COSIGNERS]
    first = subprocess.run(
        [*command, "--home", str(home)], env=child_env(home), capture_output=True, text=True, timeout=STEP
    )
    assert first.returncode == 0, first.stderr
    assert "procurement-agent created" in first.stdout and "2 cycles" in first.stdout
    assert first.stdout.count("procurement-agent created") == 1 and "agent.journal" not in first.stderr
    assert "frames: no agent in discovery offers supply:bike-frames" in first.stdout  # a fresh mesh: it says so
    again = subprocess.run(
        [*command, "--home", str(home)], env=child_env(home), capture_output=True, text=True, timeout=STEP
    )
    assert again.returncode == 0, again.stderr
    assert "procurement-agent resumed" in again.stdout and "4 cycles" in again.stdout


async def test_a_host_launches_the_agent_over_stdio(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agent.cli", "agent", "serve", str(CONFIG), "--home", str(tmp_path), *COSIGNERS],
        env=child_env(tmp_path),
    )
    async with Client(params, read_timeout_seconds=STEP) as host:
        summary = await call(host, "run_cycle")
        assert summary["cycle"] == 1 and {d["goal"] for d in summary["decisions"]} == {"reserve", "frames", "acme-deal"}
        state = await call(host, "get_state")
        assert state["name"] == "procurement-agent" and state["wallet"].startswith("0x")
