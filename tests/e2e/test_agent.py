"""The agent as operators and hosts run it: `stateset agent run` against a running `stateset up`, and
`stateset agent serve` launched over stdio by a host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from mcp import Client, StdioServerParameters

from tests.e2e.conftest import STATESET, STEP, child_env, free_port
from tests.helpers import call, scaled

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


def test_agent_run_against_a_mesh_that_is_not_there_says_so_in_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # held, not listening: every connection is refused
    command = [STATESET, "agent", "run", str(CONFIG), "--url", url, "--home", str(tmp_path), *COSIGNERS]
    wait = max(1, round(scaled(2)))
    refused = subprocess.run(
        command, env=child_env(tmp_path, STATESET_MESH_WAIT=str(wait)), capture_output=True, text=True, timeout=STEP
    )
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr and "ExceptionGroup" not in refused.stderr, refused.stderr
    [line] = [line for line in refused.stderr.splitlines() if line.startswith("stateset:")]
    assert line == refused.stderr.splitlines()[-1]
    assert f"the mesh at {url} is not ready within {wait} s: " in line
    assert "wallet, governance, reputation, discovery, salesforce, sap not reachable" in line
    assert "STATESET_MESH_WAIT=SECONDS" in line

    bad = subprocess.run(
        command, env=child_env(tmp_path, STATESET_MESH_WAIT="soon"), capture_output=True, text=True, timeout=STEP
    )
    assert (bad.returncode, bad.stderr.strip()) == (2, "stateset: STATESET_MESH_WAIT='soon' is not an integer")


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
